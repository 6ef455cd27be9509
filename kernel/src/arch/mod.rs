//! x86_64 CPU structures: descriptor tables, trap entry and dispatch.

pub mod gdt;
pub mod idt;
pub mod trap;

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enables interrupts and halts in one step: `sti` delays interrupt
/// delivery by one instruction, so an interrupt that arrives between the
/// two still wakes the `hlt` (no lost wake-up).
#[inline(always)]
pub fn enable_interrupts_and_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}
