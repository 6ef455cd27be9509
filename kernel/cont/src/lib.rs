//! Continuations: the x86_64 core of crash containment.
//!
//! [`call`] saves the callee-saved registers, the stack pointer, the return
//! address and the flags into a [`Registers`] block and calls a function.
//! If the function returns, `call` returns 0. If instead anything resumes
//! the block with [`resume`] (the kernel's panic handler, or a trap handler
//! via [`RESUME_ENTRY`]), the function's frames are abandoned without
//! running any destructor and `call` returns the value given to `resume`.
//! To the compiler `call` is an ordinary function that returns once, so
//! there is no "returns twice" hazard.
//!
//! The same code runs in the kernel and in a Linux process, where the host
//! benchmarks time it and the tests below exercise it.
//!
//! What it must never do: resume a block whose `call` has returned (the
//! stack it points into is gone). Callers keep blocks in a stack discipline
//! (the kernel links them through per-core data) to guarantee that.

#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

use core::arch::naked_asm;
use core::cell::UnsafeCell;

/// Saved state to resume at: rbx, rbp, r12-r15, rsp, rip, rflags, in that
/// order (the layout the assembly below uses). Interior-mutable, because the
/// assembly writes it while shared references to it exist.
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct Registers(UnsafeCell<[u64; 9]>);

// SAFETY: a block is written only by `call` on the thread that owns it and
// read by `resume` on that same thread (or CPU).
unsafe impl Sync for Registers {}

impl Registers {
    pub const fn new() -> Registers {
        Registers(UnsafeCell::new([0; 9]))
    }

    /// The stack pointer `call` will return with (valid while it runs).
    pub fn stack_pointer(&self) -> u64 {
        // SAFETY: a plain read of a word `call` wrote before running `f`.
        unsafe { (*self.0.get())[6] }
    }
}

/// Saves the continuation into `regs` and calls `f(arg)`. Returns 0 when
/// `f` returns, or the value given to [`resume`].
///
/// # Safety
/// `regs` must stay valid (not moved) until `call` returns, and `f` must be
/// safe to call with `arg`.
#[unsafe(naked)]
pub unsafe extern "C" fn call(
    regs: *const Registers,
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
        "lea rax, [rsp + 8]", // the caller's rsp once we have returned
        "mov [rdi + 48], rax",
        "mov rax, [rsp]", // our return address
        "mov [rdi + 56], rax",
        "pushfq",
        "pop rax",
        "mov [rdi + 64], rax",
        "sub rsp, 8", // align the stack for the call
        "mov rdi, rdx",
        "call rsi",
        "add rsp, 8",
        "xor eax, eax",
        "ret",
    )
}

/// Restores `regs` and makes its [`call`] return `value` (which should be
/// non-zero to be told apart from a normal return).
///
/// # Safety
/// `regs` must belong to a [`call`] that is still running on this CPU (or
/// thread), below which the stack is intact; everything above it is
/// abandoned without destructors.
#[unsafe(naked)]
pub unsafe extern "C" fn resume(regs: *const Registers, value: u64) -> ! {
    naked_asm!(
        "mov rbx, [rdi + 0]",
        "mov rbp, [rdi + 8]",
        "mov r12, [rdi + 16]",
        "mov r13, [rdi + 24]",
        "mov r14, [rdi + 32]",
        "mov r15, [rdi + 40]",
        "mov rsp, [rdi + 48]",
        "push qword ptr [rdi + 64]",
        "popfq",
        "mov rax, rsi",
        "jmp qword ptr [rdi + 56]",
    )
}

/// Address to point a trap frame's `rip` at (with `rdi` = the block and
/// `rsi` = the value) to resume from an interrupt handler via `iretq`.
pub fn resume_entry() -> u64 {
    resume as *const () as u64
}

/// Runs `f` under a continuation; `f` receives the block so it (or code
/// it calls) can [`resume`] it. Returns `Ok` with `f`'s value, or `Err`
/// with the resume value.
pub fn run<R, F: FnOnce(&Registers) -> R>(f: F) -> Result<R, u64> {
    struct Slot<'a, F, R> {
        f: Option<F>,
        regs: &'a Registers,
        result: Option<R>,
    }
    extern "C" fn trampoline<F: FnOnce(&Registers) -> R, R>(arg: *mut u8) {
        // SAFETY: `arg` is the `Slot` on `run`'s frame, alive for the call.
        let slot = unsafe { &mut *(arg as *mut Slot<'_, F, R>) };
        if let Some(f) = slot.f.take() {
            slot.result = Some(f(slot.regs));
        }
    }
    let regs = Registers::new();
    let mut slot = Slot {
        f: Some(f),
        regs: &regs,
        result: None,
    };
    // SAFETY: `regs` and `slot` outlive the call; the trampoline matches the
    // slot's types.
    let value = unsafe { call(&regs, trampoline::<F, R>, &raw mut slot as *mut u8) };
    match value {
        0 => Ok(slot.result.take().expect("closure returned")),
        value => Err(value),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn normal_return_gives_the_value() {
        assert_eq!(run(|_| 41 + 1), Ok(42));
    }

    #[test]
    fn resume_abandons_the_closure_and_returns_the_value() {
        let dropped = std::cell::Cell::new(false);
        struct Flag<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Flag<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let result: Result<u32, u64> = run(|regs| {
            let _flag = Flag(&dropped);
            #[inline(never)]
            fn deep(regs: &Registers, depth: u32) -> u32 {
                if depth == 0 {
                    // SAFETY: our `call` is running below us on this thread.
                    unsafe { resume(regs, 7) }
                }
                deep(regs, depth - 1) + 1
            }
            deep(regs, 50)
        });
        assert_eq!(result, Err(7));
        assert!(!dropped.get(), "frames were abandoned, not unwound");
    }

    #[test]
    fn nested_continuations_resume_the_right_one() {
        let outer = run(|_outer| {
            let inner: Result<u8, u64> = run(|inner| {
                // SAFETY: the inner `call` is running below us.
                unsafe { resume(inner, 3) }
            });
            assert_eq!(inner, Err(3));
            // Callee-saved state survived the inner resume.
            let values: std::vec::Vec<u64> = (0..10).collect();
            values.iter().sum::<u64>()
        });
        assert_eq!(outer, Ok(45));
    }

    #[test]
    fn callee_saved_registers_survive_a_resume() {
        let mut total = 0u64;
        for i in 0..1000u64 {
            let r = run(|regs| {
                if i % 2 == 0 {
                    // SAFETY: as above.
                    unsafe { resume(regs, i + 1) }
                }
                i
            });
            total += match r {
                Ok(v) => v,
                Err(v) => v - 1,
            };
        }
        assert_eq!(total, (0..1000).sum());
    }
}
