//! Bringing up the application processors.
//!
//! The BSP copies a small real-mode trampoline to physical 0x8000, fills in
//! the page-table root, a fresh guarded stack and the entry point, and
//! sends INIT, STARTUP, STARTUP to one core at a time. The trampoline walks
//! the core from real mode through protected mode into long mode with the
//! kernel's page tables and jumps to [`ap_entry`].

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::mem::{PAGE_SIZE, paging, phys_to_virt, stacks};
use crate::{apic, cpu, time};

const TRAMPOLINE: u64 = 0x8000;
/// Each core's stack: its executor, and every domain entry made from it,
/// run on it (a task's poll migrates into callee after callee), so domain
/// code with big by-value locals (a 4 KiB DMA page, page-aligned) runs
/// here too. 64 KiB was found too tight for the NVMe driver's extent path
/// under the test harness; a guard page below it turns an overflow into a
/// contained crash of the domain running.
pub const CPU_STACK_SIZE: u64 = 256 * 1024;

global_asm!(
    r#"
    .section .rodata.trampoline, "a"
    .p2align 12
    .global ap_trampoline_start
    .global ap_trampoline_end
    .global ap_tr_cr3
    .global ap_tr_stack
    .global ap_tr_entry
    .global ap_tr_arg
    .code16
ap_trampoline_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl (ap_tr_gdt_ptr - ap_trampoline_start + 0x8000)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $(ap_tr_prot - ap_trampoline_start + 0x8000)

    .code32
ap_tr_prot:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $(1 << 5), %eax
    mov %eax, %cr4
    mov (ap_tr_cr3 - ap_trampoline_start + 0x8000), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16)), %eax
    mov %eax, %cr0
    ljmp $0x18, $(ap_tr_long - ap_trampoline_start + 0x8000)

    .code64
ap_tr_long:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov (ap_tr_stack - ap_trampoline_start + 0x8000), %rsp
    mov (ap_tr_arg - ap_trampoline_start + 0x8000), %rdi
    mov (ap_tr_entry - ap_trampoline_start + 0x8000), %rax
    xor %rbp, %rbp
    jmp *%rax

    .p2align 3
ap_tr_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
ap_tr_gdt_end:
ap_tr_gdt_ptr:
    .word ap_tr_gdt_end - ap_tr_gdt - 1
    .long ap_tr_gdt - ap_trampoline_start + 0x8000
    .p2align 3
ap_tr_cr3:   .quad 0
ap_tr_stack: .quad 0
ap_tr_entry: .quad 0
ap_tr_arg:   .quad 0
ap_trampoline_end:
    .code64
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_tr_cr3: u8;
    static ap_tr_stack: u8;
    static ap_tr_entry: u8;
    static ap_tr_arg: u8;
}

static AP_READY: AtomicBool = AtomicBool::new(false);

fn offset_of(symbol: *const u8) -> u64 {
    symbol as u64 - (&raw const ap_trampoline_start) as u64
}

/// Starts every enabled processor in `apic_ids` other than ourselves.
/// Returns how many came up.
pub fn start_aps(apic_ids: &[u32], max_cpus: usize) -> usize {
    let me = apic::id();
    let start = (&raw const ap_trampoline_start) as u64;
    let len = (&raw const ap_trampoline_end) as u64 - start;
    assert!(len <= PAGE_SIZE, "trampoline larger than a page");
    let (root, _) = x86_64::registers::control::Cr3::read();
    let root = root.start_address().as_u64();
    assert!(
        root < 1 << 32,
        "page-table root must be below 4 GiB for the trampoline"
    );

    paging::with_kernel(|pt| pt.map_4k(TRAMPOLINE, TRAMPOLINE, paging::WRITABLE))
        .expect("trampoline page");
    let page = phys_to_virt(TRAMPOLINE);
    // SAFETY: physical page 0x8000 is reserved from the frame allocator for
    // the trampoline; we copy the code then fill its data words.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, page, len as usize);
        (page.add(offset_of(&raw const ap_tr_cr3) as usize) as *mut u64).write_volatile(root);
        (page.add(offset_of(&raw const ap_tr_entry) as usize) as *mut u64)
            .write_volatile(ap_entry as *const () as u64);
    }

    let mut started = 0;
    let cap = max_cpus.clamp(1, cpu::MAX_CPUS);
    for &apic_id in apic_ids.iter().filter(|&&id| id != me) {
        let index = cpu::count();
        if index >= cap {
            if cap == cpu::MAX_CPUS {
                crate::warn!("smp: more than {} cpus, ignoring the rest", cpu::MAX_CPUS);
            } else {
                crate::info!("smp: cpus={cap}: leaving the other cpus parked");
            }
            break;
        }
        if apic_id > 0xFF && !apic::is_x2apic() {
            // An xAPIC ICR names at most id 255.
            crate::warn!("smp: cpu with APIC id {apic_id} needs x2APIC mode; left parked");
            continue;
        }
        let stack = stacks::alloc(CPU_STACK_SIZE).expect("no memory for a cpu stack");
        // SAFETY: as above; no AP is running the trampoline now (we wait
        // for each to finish with it before starting the next).
        unsafe {
            (page.add(offset_of(&raw const ap_tr_stack) as usize) as *mut u64)
                .write_volatile(stack.top);
            (page.add(offset_of(&raw const ap_tr_arg) as usize) as *mut u64)
                .write_volatile(((index as u64) << 32) | u64::from(apic_id));
        }
        AP_READY.store(false, Ordering::SeqCst);
        apic::send_init(apic_id);
        time::spin_ns(10_000_000);
        apic::send_startup(apic_id, (TRAMPOLINE >> 12) as u8);
        time::spin_ns(200_000);
        if !wait_ready(10_000_000) {
            apic::send_startup(apic_id, (TRAMPOLINE >> 12) as u8);
        }
        if wait_ready(1_000_000_000) {
            started += 1;
        } else {
            crate::warn!("smp: cpu with apic id {apic_id} did not start");
            stacks::free(stack);
        }
    }
    paging::with_kernel(|pt| pt.unmap_4k(TRAMPOLINE));
    started
}

fn wait_ready(ns: u64) -> bool {
    let end = time::now_ns() + ns;
    while time::now_ns() < end {
        if AP_READY.load(Ordering::SeqCst) {
            return true;
        }
        core::hint::spin_loop();
    }
    AP_READY.load(Ordering::SeqCst)
}

/// First Rust code on an application processor.
extern "C" fn ap_entry(arg: u64) -> ! {
    let index = (arg >> 32) as usize;
    let apic_id = arg as u32;
    cpu::init_ap_boot();
    cpu::init_ap(index, apic_id);
    crate::arch::gdt::init_this_cpu();
    crate::arch::idt::load();
    apic::init_local();
    crate::sched::init_this_cpu();
    time::start_tick(time::tick_hz());
    AP_READY.store(true, Ordering::SeqCst);
    crate::sched::run()
}
