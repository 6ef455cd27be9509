//! Time: the TSC (calibrated against the PIT) is the clock; the local APIC
//! timer gives each core a periodic tick that ends `hlt` so due timers run,
//! and lets the kernel check for runaway code.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use crate::apic;
use crate::arch::idt::TrapFrame;
use crate::arch::rdtsc;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer ticks (after the /16 divider) per second.
static APIC_HZ: AtomicU64 = AtomicU64::new(0);
/// Scheduler ticks per second.
static TICK_HZ: AtomicU64 = AtomicU64::new(1000);

const PIT_HZ: u64 = 1_193_182;

/// Busy-waits for `count` PIT ticks on channel 2 (gate via port 0x61).
fn pit_wait(count: u16) {
    // SAFETY: programming PIT channel 2 and the speaker gate only affects
    // the (disconnected) speaker output we poll; done on the BSP at boot.
    unsafe {
        let mut gate = Port::<u8>::new(0x61);
        let mut command = Port::<u8>::new(0x43);
        let mut channel2 = Port::<u8>::new(0x42);
        let value = gate.read();
        gate.write((value & !0x02) | 0x01); // gate on, speaker off
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        // Restart the count by toggling the gate.
        let value = gate.read();
        gate.write(value & !0x01);
        gate.write(value | 0x01);
        let mut spins = 0u64;
        while gate.read() & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
    }
}

/// Measures the TSC and APIC timer frequencies over ~10 ms of PIT time
/// (median of three runs, to shrug off an emulator hiccup).
pub fn calibrate() {
    const WINDOW: u16 = 11932; // 10 ms
    let mut tsc = [0u64; 3];
    let mut apic_ticks = [0u64; 3];
    for i in 0..3 {
        apic::timer_start_calibration();
        let t0 = rdtsc();
        let a0 = apic::timer_current();
        pit_wait(WINDOW);
        let t1 = rdtsc();
        let a1 = apic::timer_current();
        tsc[i] = (t1 - t0) * PIT_HZ / u64::from(WINDOW);
        apic_ticks[i] = u64::from(a0 - a1) * PIT_HZ / u64::from(WINDOW);
    }
    tsc.sort_unstable();
    apic_ticks.sort_unstable();
    TSC_HZ.store(tsc[1].max(1_000_000), Ordering::Relaxed);
    APIC_HZ.store(apic_ticks[1].max(1000), Ordering::Relaxed);
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn apic_timer_hz() -> u64 {
    APIC_HZ.load(Ordering::Relaxed)
}

pub fn tick_hz() -> u64 {
    TICK_HZ.load(Ordering::Relaxed)
}

/// Converts TSC ticks to nanoseconds.
pub fn tsc_to_ns(ticks: u64) -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed).max(1);
    ((u128::from(ticks) * 1_000_000_000) / u128::from(hz)) as u64
}

/// Nanoseconds since calibration.
pub fn now_ns() -> u64 {
    tsc_to_ns(rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed)))
}

/// Starts this core's periodic tick at `hz` per second.
pub fn start_tick(hz: u64) {
    let hz = hz.clamp(10, 10_000);
    TICK_HZ.store(hz, Ordering::Relaxed);
    let count = (APIC_HZ.load(Ordering::Relaxed) / hz).clamp(1, u64::from(u32::MAX));
    apic::timer_start_periodic(count as u32);
}

/// Called from the timer interrupt on every core: stops a closure that
/// spent its watchdog budget (see `catch::catch_with_budget`).
pub fn on_tick(frame: &mut TrapFrame) {
    let ticks = crate::cpu::current().ticks.load(Ordering::Relaxed);
    crate::storm::watch_stall(frame, ticks);
    crate::catch::check_budget(frame);
}

/// Timer ticks in `ns` nanoseconds (at least 1).
pub fn ns_to_ticks(ns: u64) -> u64 {
    (ns * tick_hz() / 1_000_000_000).max(1)
}

/// Spins for `ns` nanoseconds (boot-time delays such as the SMP start-up).
pub fn spin_ns(ns: u64) {
    let end = now_ns() + ns;
    while now_ns() < end {
        core::hint::spin_loop();
    }
}
