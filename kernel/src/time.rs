//! Time: the TSC (calibrated against the ACPI PM timer, or the PIT on a
//! machine without one) is the clock; the local APIC
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

/// The ACPI PM timer's rate (ACPI: 3.579545 MHz).
const PM_TIMER_HZ: u64 = 3_579_545;

/// Busy-waits until the ACPI PM timer at `port` has advanced by at least
/// `ticks`; returns by how much it did (the counter wraps at 24 or 32
/// bits). Bounded: gives up after ~10^8 reads of a stuck counter.
fn pm_timer_wait(port: u16, wide: bool, ticks: u32) -> u32 {
    let mask: u32 = if wide { u32::MAX } else { 0x00FF_FFFF };
    let mut timer = Port::<u32>::new(port);
    // SAFETY: the FADT names this port as the PM timer; reading it has no
    // side effects.
    let read = |t: &mut Port<u32>| unsafe { t.read() } & mask;
    let start = read(&mut timer);
    let mut spins = 0u64;
    loop {
        let elapsed = read(&mut timer).wrapping_sub(start) & mask;
        if elapsed >= ticks || spins >= 100_000_000 {
            return elapsed;
        }
        spins += 1;
        core::hint::spin_loop();
    }
}

/// What the TSC was calibrated against (for the boot log).
pub static CALIBRATED_BY: spin::Once<&'static str> = spin::Once::new();

/// Measures the TSC and APIC timer frequencies over ~10 ms (median of
/// three runs, to shrug off an emulator hiccup), against the ACPI PM timer
/// when the FADT names one (`pm_timer`), else the PIT. Recent machines may
/// have no PIT at all; every ACPI machine has the PM timer.
pub fn calibrate(pm_timer: Option<(u16, bool)>) {
    const WINDOW: u16 = 11932; // 10 ms of the PIT
    const PM_WINDOW: u32 = 35_795; // 10 ms of the PM timer
    let mut tsc = [0u64; 3];
    let mut apic_ticks = [0u64; 3];
    for i in 0..3 {
        apic::timer_start_calibration();
        let t0 = rdtsc();
        let a0 = apic::timer_current();
        let (elapsed, hz) = match pm_timer {
            Some((port, wide)) => (u64::from(pm_timer_wait(port, wide, PM_WINDOW)), PM_TIMER_HZ),
            None => {
                pit_wait(WINDOW);
                (u64::from(WINDOW), PIT_HZ)
            }
        };
        let t1 = rdtsc();
        let a1 = apic::timer_current();
        let elapsed = elapsed.max(1);
        tsc[i] = (t1 - t0) * hz / elapsed;
        apic_ticks[i] = u64::from(a0.wrapping_sub(a1)) * hz / elapsed;
    }
    CALIBRATED_BY.call_once(|| {
        if pm_timer.is_some() {
            "ACPI PM timer"
        } else {
            "PIT"
        }
    });
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
    let cpu = crate::cpu::current();
    let ticks = cpu.ticks.load(Ordering::Relaxed);
    // The profile (`prof`): who this tick found running.
    if cpu.halted.load(Ordering::Relaxed) {
        cpu.idle_samples.fetch_add(1, Ordering::Relaxed);
    } else {
        let slot = crate::cpu::current_owner().slot() % crate::domain::MAX_SLOTS;
        cpu.samples[slot].fetch_add(1, Ordering::Relaxed);
    }
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
