//! Deliberate faults, for the console's `crash` command and for tests.
//! Each is a real CPU event (not a simulated error), raised in whatever
//! context calls it; a continuation must be active to survive it.

use core::arch::{asm, naked_asm};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Panic,
    PageFault,
    GeneralProtection,
    DivideByZero,
    InvalidOpcode,
    StackOverflow,
    Loop,
}

impl Kind {
    pub const NAMES: &'static str = "panic|pagefault|gpf|divzero|invalid|overflow|loop";

    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "panic" => Kind::Panic,
            "pagefault" => Kind::PageFault,
            "gpf" => Kind::GeneralProtection,
            "divzero" => Kind::DivideByZero,
            "invalid" => Kind::InvalidOpcode,
            "overflow" => Kind::StackOverflow,
            "loop" => Kind::Loop,
            _ => return None,
        })
    }

    pub const ALL: [Kind; 7] = [
        Kind::Panic,
        Kind::PageFault,
        Kind::GeneralProtection,
        Kind::DivideByZero,
        Kind::InvalidOpcode,
        Kind::StackOverflow,
        Kind::Loop,
    ];

    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Panic => "panic",
            Kind::PageFault => "pagefault",
            Kind::GeneralProtection => "gpf",
            Kind::DivideByZero => "divzero",
            Kind::InvalidOpcode => "invalid",
            Kind::StackOverflow => "overflow",
            Kind::Loop => "loop",
        }
    }
}

/// Where an interrupt handler sends the code it interrupted to make it
/// fault there (see `storm`): entered by `iretq` with the interrupted
/// stack pointer and `rdi` = the kind's index in [`Kind::ALL`]. The
/// interrupted code is abandoned (the fault resumes its continuation), so
/// its registers need no saving; the stack only needs realigning (there is
/// no red zone on this target, so nothing below the stack pointer is live).
#[unsafe(naked)]
pub extern "C" fn fault_trampoline() {
    naked_asm!(
        "and rsp, -16",
        "call {raise}",
        "ud2",
        raise = sym raise_from_trampoline,
    )
}

extern "C" fn raise_from_trampoline(kind: u64) {
    let kind = Kind::ALL.get(kind as usize).copied().unwrap_or(Kind::Panic);
    trigger(kind);
}

/// Raises the fault. Returns only for `Loop` if nothing stops it (never).
pub fn trigger(kind: Kind) {
    match kind {
        Kind::Panic => panic!("injected panic"),
        Kind::PageFault => {
            read_u64(0x1000);
        }
        Kind::GeneralProtection => {
            read_u64(0x8000_0000_0000_0000);
        }
        Kind::DivideByZero => {
            hardware_divide(1, core::hint::black_box(0));
        }
        Kind::InvalidOpcode => {
            // SAFETY: `ud2` raises #UD; the caller's continuation catches it.
            unsafe { asm!("ud2", options(nostack, nomem)) }
        }
        Kind::StackOverflow => {
            core::hint::black_box(recurse(0));
        }
        Kind::Loop => {
            let mut spins = 0u64;
            loop {
                spins = core::hint::black_box(spins.wrapping_add(1));
            }
        }
    }
}

#[inline(never)]
pub fn read_u64(address: u64) -> u64 {
    let value: u64;
    // SAFETY: deliberately reads an address that may be unmapped or
    // non-canonical; the caller's continuation catches the fault.
    unsafe { asm!("mov {v}, [{a}]", a = in(reg) address, v = out(reg) value, options(nostack)) };
    value
}

#[inline(never)]
#[cfg(feature = "ktest")]
pub fn write_u64(address: u64, value: u64) {
    // SAFETY: as in `read_u64`.
    unsafe { asm!("mov [{a}], {v}", a = in(reg) address, v = in(reg) value, options(nostack)) };
}

#[inline(never)]
pub fn hardware_divide(dividend: u64, divisor: u64) -> u64 {
    let quotient: u64;
    // SAFETY: `div` by zero raises #DE (caught by the caller's continuation);
    // it touches only registers.
    unsafe {
        asm!("div {d}", d = in(reg) divisor, inout("rax") dividend => quotient, inout("rdx") 0u64 => _,
             options(nostack, nomem))
    };
    quotient
}

#[inline(never)]
pub fn recurse(depth: u64) -> u64 {
    let buffer = core::hint::black_box([depth as u8; 256]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(u64::from(buffer[3]))
}

/// Calls `f` on the stack whose top is `top`.
///
/// # Safety
/// `top` must be the top of a mapped stack nothing else uses, and a
/// continuation must be active if `f` may fail.
#[unsafe(naked)]
#[cfg(feature = "ktest")]
pub unsafe extern "C" fn call_on_stack(top: u64, f: extern "C" fn()) {
    naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "mov rsp, rdi",
        "call rsi",
        "mov rsp, rbp",
        "pop rbp",
        "ret"
    )
}
