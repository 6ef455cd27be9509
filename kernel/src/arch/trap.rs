//! Trap dispatch: exceptions, device interrupts, IPIs and the local timer.

use core::sync::atomic::{AtomicPtr, Ordering};

use super::idt::TrapFrame;
use crate::{apic, catch, cpu};

/// Vector numbers used by the kernel.
pub mod vectors {
    /// IOAPIC inputs (GSI n) arrive at `IRQ_BASE + n`.
    pub const IRQ_BASE: u8 = 32;
    pub const IRQ_COUNT: u8 = 24;
    /// Cross-core wake-up: its only job is to end a `hlt`.
    pub const WAKE: u8 = 0xE0;
    /// Stop this core (fatal error elsewhere).
    pub const STOP: u8 = 0xE1;
    /// Used by the in-QEMU tests to check interrupt-to-task wake-ups.
    pub const TEST: u8 = 0xE2;
    /// TLB shootdown.
    pub const TLB_FLUSH: u8 = 0xE3;
    pub const TIMER: u8 = 0xEF;
    pub const SPURIOUS: u8 = 0xFF;
}

/// Handlers for IOAPIC interrupts: plain functions, set once at init.
static IRQ_HANDLERS: [AtomicPtr<()>; vectors::IRQ_COUNT as usize] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; vectors::IRQ_COUNT as usize];

/// Installs `handler` for GSI `gsi`. The handler runs with interrupts off
/// and must neither block nor allocate (wake a task instead).
pub fn set_irq_handler(gsi: u8, handler: fn()) {
    IRQ_HANDLERS[usize::from(gsi)].store(handler as *mut (), Ordering::Release);
}

/// What the `TEST` vector runs (nothing until a test registers it: the
/// in-QEMU tests of interrupt delivery, in the test kernel only).
static TEST_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the `TEST` vector's handler (same rules as
/// [`set_irq_handler`]).
#[cfg_attr(not(feature = "ktest"), allow(dead_code))]
pub fn set_test_handler(handler: fn()) {
    TEST_HANDLER.store(handler as *mut (), Ordering::Release);
}

pub(super) extern "C" fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector < 32 {
        return exception(vector, frame);
    }
    let cpu = cpu::current();
    cpu.irq_depth.set(cpu.irq_depth.get() + 1);
    match vector {
        vectors::TIMER => {
            cpu.ticks.fetch_add(1, Ordering::Relaxed);
            crate::time::on_tick(frame);
            apic::eoi();
        }
        vectors::WAKE => apic::eoi(),
        vectors::TLB_FLUSH => {
            apic::on_tlb_flush();
            apic::eoi();
        }
        vectors::TEST => {
            let handler = TEST_HANDLER.load(Ordering::Acquire);
            if !handler.is_null() {
                // SAFETY: only `set_test_handler` stores here, always a `fn()`.
                let handler: fn() = unsafe { core::mem::transmute(handler) };
                handler();
            }
            apic::eoi();
        }
        vectors::STOP => loop {
            x86_64::instructions::interrupts::disable();
            x86_64::instructions::hlt();
        },
        vectors::SPURIOUS => {}
        v if (vectors::IRQ_BASE..vectors::IRQ_BASE + vectors::IRQ_COUNT).contains(&v) => {
            let handler = IRQ_HANDLERS[usize::from(v - vectors::IRQ_BASE)].load(Ordering::Acquire);
            if !handler.is_null() {
                // SAFETY: only `set_irq_handler` stores here, always a `fn()`.
                let handler: fn() = unsafe { core::mem::transmute(handler) };
                handler();
            }
            apic::eoi();
        }
        other => {
            crate::warn!(
                "unexpected interrupt vector {other:#x} on cpu {}",
                cpu.index
            );
            apic::eoi();
        }
    }
    cpu.irq_depth.set(cpu.irq_depth.get() - 1);
}

fn exception(vector: u8, frame: &mut TrapFrame) {
    let address = if vector == 14 {
        x86_64::registers::control::Cr2::read_raw()
    } else {
        0
    };
    let fault = catch::exception_fault(vector, frame, address);
    // Contain anything but a machine check or NMI if a continuation is active.
    if !matches!(vector, 2 | 18) && catch::can_contain() {
        catch::redirect_trap(frame, fault);
        return;
    }
    if vector == 2 {
        // An NMI with nothing to contain is another core stopping us.
        loop {
            x86_64::instructions::hlt();
        }
    }
    crate::fatal::report_trap(&fault, frame);
}
