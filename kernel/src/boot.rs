//! The entries: the first code that runs.
//!
//! QEMU (and any PVH-capable loader) reads the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note below and jumps to `pvh_start` in 32-bit protected mode with paging
//! off and `ebx` holding the physical address of `hvm_start_info`. GRUB
//! (`multiboot2`, for real machines: `make iso`) finds the multiboot2
//! header and jumps to `mb2_start` in the same state, with `eax` holding
//! the multiboot2 magic and `ebx` the boot information; the rest is shared
//! and `kmain_bsp` learns which loader it was. The stub
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

    /* The multiboot2 header (GRUB's `multiboot2` command): the linker
       script puts it first in .text, well inside the file's first 32 KiB,
       8-byte aligned. It asks for nothing but the 32-bit entry below. */
    .section .multiboot2, "a"
    .p2align 3
mb2_header:
    .long 0xE85250D6                /* magic */
    .long 0                         /* architecture: i386 (32-bit entry) */
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xE85250D6 + (mb2_header_end - mb2_header))
    .p2align 3
    .short 3                        /* entry address tag */
    .short 0
    .long 12
    .long mb2_start
    .p2align 3
    .short 0                        /* end tag */
    .short 0
    .long 8
mb2_header_end:

    .section .text.boot, "ax"
    .code32
    /* Multiboot2 entry: eax = magic, ebx = boot information, 32-bit
       protected mode, paging off (as PVH). esi says which loader. */
    .global mb2_start
mb2_start:
    cli
    cld
    cmp $0x36d76289, %eax
    jne 4f
    mov $1, %esi
    jmp boot_common

    .global pvh_start
pvh_start:
    cli
    cld
    xor %esi, %esi                  /* 0: PVH */
boot_common:
    /* ebx = hvm_start_info or the multiboot2 information, esi = the
       loader; both kept until the call. */

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
    mov %ebx, %edi                  /* zero-extends: rdi = the boot information */
    mov %esi, %esi                  /* rsi = the loader (upper half cleared) */
    call {kmain}
4:  cli
    hlt
    jmp 4b
    "#,
    stack_size = const BOOT_STACK_SIZE,
    kmain = sym crate::kmain_bsp,
    options(att_syntax)
);
