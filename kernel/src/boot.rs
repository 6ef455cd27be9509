//! PVH entry: the first code that runs.
//!
//! QEMU (and any PVH-capable loader) reads the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note below and jumps to `pvh_start` in 32-bit protected mode with paging
//! off and `ebx` holding the physical address of `hvm_start_info`. The stub
//! zeroes `.bss`, identity-maps the first 4 GiB with 2 MiB pages, enables
//! long mode (with NX) and calls [`crate::kmain_bsp`] on a boot stack. The
//! kernel replaces these boot page tables with its own as soon as it has a
//! frame allocator (see `mem::paging`).

use core::arch::global_asm;

/// Size of the stack the bootstrap processor starts on (in `.bss`, no guard
/// page; the BSP moves to a guarded stack early in `kmain_bsp`).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* name size: "Xen\0" */
    .long 4                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .long pvh_start
    .p2align 2

    .section .bss.boot, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4
    .p2align 4
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:

    .section .rodata.boot, "a"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF  /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF  /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    /* ebx = hvm_start_info; keep it there until the call. */

    /* Zero .bss (the loader should have, but a bootloader that does not
       must not leave us with garbage page tables). */
    mov $__bss_start, %edi
    mov $__kernel_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $boot_stack_top, %esp

    /* 2048 x 2 MiB pages = 4 GiB identity map, in four page directories. */
    mov $boot_pd, %edx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                  /* present | writable | huge */
    mov %eax, (%edx, %ecx, 8)
    movl $0, 4(%edx, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov $boot_pdpt, %edx
    mov $boot_pd + 3, %eax
    xor %ecx, %ecx
2:  mov %eax, (%edx, %ecx, 8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 2b

    mov $boot_pdpt + 3, %eax
    mov %eax, boot_pml4

    mov %cr4, %eax
    or $(1 << 5), %eax              /* PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx           /* EFER */
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $3f

    .code64
3:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    xor %rbp, %rbp
    mov %ebx, %edi                  /* zero-extends: rdi = hvm_start_info */
    call {kmain}
4:  cli
    hlt
    jmp 4b
    "#,
    stack_size = const BOOT_STACK_SIZE,
    kmain = sym crate::kmain_bsp,
    options(att_syntax)
);
