//! Experiments on the continuation's cost on the CPU at hand: the same
//! call through `cont::call` and through copies of it with one step taken
//! out, each against a bare `call` through the same trampoline. They take
//! away what crash containment needs, so they exist only here, to say
//! where the cycles go (`docs/benchmarks.md`).

use std::arch::naked_asm;
use std::hint::black_box;

use crate::harness::{Measurement, Settings, time};
use crate::suites::{Adder, Service};

/// `cont::call` without saving the flags (what resuming needs to restore
/// the interrupt flag).
#[unsafe(naked)]
unsafe extern "C" fn call_without_flags(
    regs: *const cont::Registers,
    f: extern "C" fn(*mut u8),
    arg: *mut u8,
) -> u64 {
    naked_asm!(
        "mov [rdi + 0], rbx",
        "mov [rdi + 8], rbp",
        "mov [rdi + 16], r12",
        "mov [rdi + 24], r13",
        "mov [rdi + 32], r14",
        "mov [rdi + 40], r15",
        "lea rax, [rsp + 8]",
        "mov [rdi + 48], rax",
        "mov rax, [rsp]",
        "mov [rdi + 56], rax",
        "sub rsp, 8",
        "mov rdi, rdx",
        "call rsi",
        "add rsp, 8",
        "xor eax, eax",
        "ret",
    )
}

/// The same call with nothing saved: the baseline of both experiments.
#[unsafe(naked)]
unsafe extern "C" fn call_bare(
    regs: *const cont::Registers,
    f: extern "C" fn(*mut u8),
    arg: *mut u8,
) -> u64 {
    naked_asm!(
        "sub rsp, 8",
        "mov rdi, rdx",
        "call rsi",
        "add rsp, 8",
        "xor eax, eax",
        "ret",
    )
}

extern "C" fn trampoline(arg: *mut u8) {
    // SAFETY: `arg` is the `&dyn Service` the experiment passes.
    let object = unsafe { *(arg as *const &dyn Service) };
    black_box(object.call(black_box(5)));
}

type Call = unsafe extern "C" fn(*const cont::Registers, extern "C" fn(*mut u8), *mut u8) -> u64;

fn through(settings: Settings, call: Call) -> crate::harness::Stats {
    let adder = Adder(3);
    let mut object: &dyn Service = black_box(&adder);
    let regs = cont::Registers::new();
    time(settings, || {
        // SAFETY: `regs` outlives the call; the trampoline reads `object`.
        let value = unsafe { call(&regs, trampoline, &raw mut object as *mut u8) };
        black_box(value);
    })
}

/// `cont::call` itself against the bare call.
pub fn call_full(settings: Settings) -> Measurement {
    let measured = through(settings, cont::call);
    let baseline = through(settings, call_bare);
    Measurement {
        name: "exp: cont::call",
        workload: "cont::call (nine registers and the flags saved) around a trait-object call, from a trampoline",
        baseline_name: "bare call, same trampoline",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// Without `pushfq`.
pub fn call_no_flags(settings: Settings) -> Measurement {
    let measured = through(settings, call_without_flags);
    let baseline = through(settings, call_bare);
    Measurement {
        name: "exp: cont::call, no pushfq",
        workload: "the same with the flags not saved (pushfq, pop, store taken out)",
        baseline_name: "bare call, same trampoline",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}
