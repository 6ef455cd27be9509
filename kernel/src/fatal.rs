//! Fatal errors: a panic or exception in kernel code (no continuation to
//! return to). Print what we know, stop the other cores and make QEMU exit
//! with a failure status. Never hangs silently.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::idt::TrapFrame;
use crate::catch::Fault;
use crate::serial::emergency_write;

static DYING: AtomicBool = AtomicBool::new(false);

fn begin() {
    x86_64::instructions::interrupts::disable();
    if DYING.swap(true, Ordering::SeqCst) {
        // Another core is already reporting; stay out of its way.
        loop {
            x86_64::instructions::hlt();
        }
    }
    crate::apic::stop_other_cpus();
}

pub fn report_trap(fault: &Fault, frame: &TrapFrame) -> ! {
    begin();
    let cpu = crate::cpu::current().index;
    emergency_write(format_args!("\n!!! KERNEL FAULT on cpu {cpu}: {fault}\n"));
    emergency_write(format_args!(
        "    vector {} error {:#x} rip {:#x} cs {:#x} rflags {:#x} rsp {:#x} ss {:#x}\n",
        frame.vector, frame.error_code, frame.rip, frame.cs, frame.rflags, frame.rsp, frame.ss
    ));
    emergency_write(format_args!(
        "    rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n",
        frame.rax, frame.rbx, frame.rcx, frame.rdx
    ));
    emergency_write(format_args!(
        "    rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n",
        frame.rsi, frame.rdi, frame.rbp, frame.r8
    ));
    emergency_write(format_args!(
        "    r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n",
        frame.r9, frame.r10, frame.r11, frame.r12
    ));
    emergency_write(format_args!(
        "    r13 {:#018x} r14 {:#018x} r15 {:#018x} cr2 {:#018x}\n",
        frame.r13, frame.r14, frame.r15, fault.address
    ));
    crate::power::exit_failure()
}

pub fn report_panic(info: &core::panic::PanicInfo) -> ! {
    begin();
    let cpu = crate::cpu::current().index;
    emergency_write(format_args!("\n!!! KERNEL PANIC on cpu {cpu}: {info}\n"));
    crate::power::exit_failure()
}
