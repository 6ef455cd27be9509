//! Leaving the machine: ACPI soft-off for `shutdown`, and QEMU's
//! `isa-debug-exit` device for test results and fatal errors.
//!
//! `isa-debug-exit` (at port 0xf4) makes QEMU exit with status
//! `(value << 1) | 1`, never 0, so it cannot express success by itself.
//! `shutdown` therefore uses ACPI S5 (QEMU then exits with status 0), with
//! the debug-exit status [`EXIT_SHUTDOWN`] as a fallback that the Makefile
//! maps to 0.

use spin::Once;
use x86_64::instructions::port::Port;

use kcore::acpi::AcpiPowerOff;

const DEBUG_EXIT_PORT: u16 = 0xF4;
/// QEMU status 33: orderly shutdown without ACPI (the Makefile maps it to 0).
pub const EXIT_SHUTDOWN: u32 = 0x10;
/// QEMU status 35: the in-QEMU test suite ran and something failed.
pub const EXIT_TESTS_FAILED: u32 = 0x11;
/// QEMU status 37: fatal kernel error.
pub const EXIT_FATAL: u32 = 0x12;
/// QEMU status 39: the in-QEMU test suite ran and everything passed.
#[cfg(feature = "ktest")]
pub const EXIT_TESTS_PASSED: u32 = 0x13;

static ACPI_OFF: Once<AcpiPowerOff> = Once::new();

pub fn set_acpi_poweroff(off: AcpiPowerOff) {
    ACPI_OFF.call_once(|| off);
}

/// Exits QEMU through `isa-debug-exit`; halts forever on a machine
/// without it.
pub fn exit_qemu(value: u32) -> ! {
    // SAFETY: port 0xf4 is QEMU's debug-exit device (or nothing at all).
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(value) };
    halt_forever()
}

/// The end of an unattended run (tests, benchmarks): QEMU exits with
/// `value` through `isa-debug-exit`; a real machine, which has no such
/// device, powers off (ACPI S5) instead of halting forever.
#[cfg(feature = "ktest")]
pub fn finish(value: u32) -> ! {
    // SAFETY: port 0xf4 is QEMU's debug-exit device (or nothing at all).
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(value) };
    shutdown()
}

pub fn exit_failure() -> ! {
    exit_qemu(EXIT_FATAL)
}

pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Powers the machine off (ACPI S5), falling back to the debug-exit device.
pub fn shutdown() -> ! {
    x86_64::instructions::interrupts::disable();
    if let Some(off) = ACPI_OFF.get() {
        // SAFETY: the ports come from the firmware's FADT; writing SLP_TYP
        // and SLP_EN to PM1 control is the ACPI-defined way to enter S5.
        unsafe {
            let mut pm1a = Port::<u16>::new(off.pm1a_cnt);
            if off.needs_acpi_enable(pm1a.read()) {
                // Hand the hardware from SMM to the OS (sets SCI_EN).
                Port::<u8>::new(off.smi_cmd).write(off.acpi_enable);
                for _ in 0..1000 {
                    if pm1a.read() & 1 != 0 {
                        break;
                    }
                    crate::time::spin_ns(100_000);
                }
            }
            pm1a.write(off.sleep_value_a());
            if let Some(pm1b) = off.pm1b_cnt {
                Port::<u16>::new(pm1b).write(off.sleep_value_b());
            }
        }
        crate::time::spin_ns(100_000_000);
    }
    exit_qemu(EXIT_SHUTDOWN)
}
