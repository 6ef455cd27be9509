//! Continuations: the point a core returns to when the code it runs fails.
//!
//! [`catch`] runs a closure under a continuation. If the closure returns,
//! so does `catch`, with `Ok`. If it panics, takes a CPU exception or is
//! stopped by the watchdog, the failure path (panic handler or trap
//! handler) abandons the closure's frames *without running their
//! destructors* and resumes at the continuation, so `catch` returns `Err`.
//! This is the mechanism beneath crash containment: a domain entry is a
//! `catch` around the domain's code.
//!
//! The low-level part is the `cont` crate's two assembly routines (shared
//! with the host benchmarks): `cont::call` saves the callee-saved registers,
//! stack pointer, return address and flags and calls the closure;
//! `cont::resume` restores them and makes `cont::call` return a second
//! value. Continuations are linked through the per-core data, so nesting
//! depth is bounded only by stack size.

use core::fmt::{self, Write};

use crate::arch::idt::TrapFrame;
use crate::cpu;

/// What went wrong inside a [`catch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A CPU exception, by vector number.
    Exception(u8),
    Panic,
    /// The watchdog stopped a context that ran too long.
    Watchdog,
}

#[derive(Clone, Copy)]
pub struct Fault {
    pub kind: FaultKind,
    pub rip: u64,
    pub error_code: u64,
    /// Faulting address for page faults (CR2).
    pub address: u64,
    /// True when a page fault hit a stack guard page.
    pub stack_overflow: bool,
    message: [u8; 120],
    message_len: usize,
}

impl Fault {
    fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            rip: 0,
            error_code: 0,
            address: 0,
            stack_overflow: false,
            message: [0; 120],
            message_len: 0,
        }
    }

    pub fn message(&self) -> &str {
        core::str::from_utf8(&self.message[..self.message_len]).unwrap_or("<invalid utf-8>")
    }
}

impl Write for Fault {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.message_len == self.message.len() {
                break;
            }
            self.message[self.message_len] = b;
            self.message_len += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Exception(v) => {
                write!(
                    f,
                    "{} (vector {v}) at rip {:#x}",
                    exception_name(v),
                    self.rip
                )?;
                if v == 14 {
                    write!(
                        f,
                        ", address {:#x}, error {:#x}",
                        self.address, self.error_code
                    )?;
                    if self.stack_overflow {
                        write!(f, " (stack overflow: guard page)")?;
                    }
                } else if self.error_code != 0 {
                    write!(f, ", error {:#x}", self.error_code)?;
                }
                Ok(())
            }
            FaultKind::Panic => write!(f, "panic: {}", self.message()),
            FaultKind::Watchdog => write!(f, "watchdog: ran too long (rip {:#x})", self.rip),
        }
    }
}

pub fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        20 => "virtualization exception",
        21 => "control protection",
        _ => "reserved exception",
    }
}

/// A continuation: `cont`'s frame carrying our [`Fault`].
pub type Continuation = cont::Frame<Fault>;

/// The per-core state `cont::guarded` and `cont::Gate` need, on this core.
pub struct ThisCore;

impl cont::Core for ThisCore {
    #[inline]
    fn top(&self) -> *mut () {
        cpu::catch_top()
    }
    #[inline]
    fn set_top(&self, frame: *mut ()) {
        cpu::set_catch_top(frame)
    }
    #[inline]
    fn owner(&self) -> executor::OwnerId {
        cpu::current_owner()
    }
    #[inline]
    fn set_owner(&self, owner: executor::OwnerId) {
        cpu::set_current_owner(owner)
    }
}

fn top() -> *mut Continuation {
    cpu::current().catch_top.get() as *mut Continuation
}

// A `Fault` is large (it carries the panic message inline) on purpose: the
// failure path must not allocate, since the code that failed may hold the
// heap lock. Faults are rare, so the size costs nothing on the success path.
#[allow(clippy::result_large_err)]
#[cfg(feature = "ktest")]
pub fn catch<R, F: FnOnce() -> R>(f: F) -> Result<R, Fault> {
    catch_with_budget(0, f)
}

/// Like [`catch`], but the closure is also stopped (with
/// [`FaultKind::Watchdog`]) on the `budget_ticks`-th timer tick that lands
/// in its own code (0: no limit): ticks that land in a kernel service it
/// called, or in another domain it entered (charged to that entry), do not
/// count. The check runs in the timer interrupt. Ticks rather than the TSC
/// because reading the TSC on every domain entry is costly.
#[allow(clippy::result_large_err)] // see `catch`
#[cfg(feature = "ktest")]
pub fn catch_with_budget<R, F: FnOnce() -> R>(budget_ticks: u64, f: F) -> Result<R, Fault> {
    cont::guarded(&ThisCore, budget_ticks, f)
}

/// True if a continuation is active on this core and we are not inside an
/// interrupt handler (a fault in a handler is the kernel's, never
/// contained).
pub fn can_contain() -> bool {
    let cpu = cpu::current();
    let top = cpu.catch_top.get() as *const Continuation;
    // A frame not saved (yet, or again: an entry reporting its failure
    // marks it spent) is not one to resume: a fault then is the kernel's.
    // SAFETY: a linked continuation is live (see `redirect_trap`).
    !top.is_null()
        && unsafe { (*top).regs.saved() }
        && cpu.irq_depth.get() == 0
        && cpu.kernel_section.get() == 0
}

/// From a trap handler: records `fault` in the innermost continuation and
/// rewrites `frame` so that `iretq` lands in `cont::resume`.
pub(crate) fn redirect_trap(frame: &mut TrapFrame, mut fault: Fault) {
    let cont = top();
    fault.rip = if fault.rip == 0 { frame.rip } else { fault.rip };
    // SAFETY: `cont` is live: it is only unlinked by `catch` after
    // `cont::call` returns, which has not happened while its closure runs.
    unsafe {
        (*cont).payload.write(fault);
        // Spent: from here until its entry unlinks it, neither the
        // watchdog nor a campaign strikes under this frame (see
        // `check_budget`), so the code that reports the failure (the
        // caller's, after the resume) cannot be stopped before it has
        // (a caller unwound there would leave the failure unreported).
        (*cont)
            .budget
            .store(0, core::sync::atomic::Ordering::Relaxed);
        frame.rip = cont::resume_entry();
        frame.rdi = cont as u64;
        frame.rsi = 1;
        // Any writable spot below the continuation's stack pointer will do;
        // `cont::resume` loads the real one at once.
        frame.rsp = ((*cont).regs.stack_pointer() - 256) & !0xF;
        frame.rflags &= !(1 << 9); // interrupts off until popfq restores them
        frame.cs = u64::from(crate::arch::gdt::KERNEL_CS);
        frame.ss = u64::from(crate::arch::gdt::KERNEL_DS);
    }
}

/// From the panic handler: resumes the innermost continuation. Returns
/// only if there is none (the panic is then the kernel's own).
pub(crate) fn resume_from_panic(info: &core::panic::PanicInfo) {
    if !can_contain() {
        return;
    }
    let cont = top();
    let mut fault = Fault::new(FaultKind::Panic);
    let _ = write!(fault, "{}", info.message());
    if let Some(location) = info.location() {
        let _ = write!(fault, " at {}:{}", location.file(), location.line());
    }
    // SAFETY: as in `redirect_trap`; we never return to the panicking frames.
    unsafe {
        (*cont).payload.write(fault);
        // As in `redirect_trap`.
        (*cont)
            .budget
            .store(0, core::sync::atomic::Ordering::Relaxed);
        cont::resume(&raw const (*cont).regs, 1);
    }
}

pub(crate) fn exception_fault(vector: u8, frame: &TrapFrame, address: u64) -> Fault {
    let mut fault = Fault::new(FaultKind::Exception(vector));
    fault.rip = frame.rip;
    fault.error_code = frame.error_code;
    fault.address = address;
    fault.stack_overflow = vector == 14 && crate::mem::stacks::is_guard_hit(address);
    fault
}

/// From the timer interrupt: charges the tick to the continuation whose
/// own code it interrupted, and redirects that code there once the
/// continuation's budget is spent.
pub(crate) fn check_budget(frame: &mut TrapFrame) {
    let cpu = cpu::current();
    // Only when the tick interrupted the closure itself, not another
    // handler or a kernel service it called (which may hold locks).
    if cpu.irq_depth.get() != 1 || cpu.kernel_section.get() != 0 {
        return;
    }
    let cont = top();
    if cont.is_null() {
        return;
    }
    // SAFETY: a linked continuation is live (see `redirect_trap`).
    let budget = unsafe { (*cont).budget.load(core::sync::atomic::Ordering::SeqCst) };
    // A frame is linked a few instructions before `cont::call` saves the
    // registers into it: resuming it then would load zeroes (a campaign
    // caught a core spinning in faults at stack pointer 0 with interrupts
    // off, the other cores waiting for it in a TLB shootdown).
    // SAFETY: as above.
    if !unsafe { (*cont).regs.saved() } {
        return;
    }
    // 0: no limit, or the entry's work has returned and its own epilogue
    // runs (where neither the watchdog nor the campaign may strike: a
    // runaway loop raised there could never be stopped).
    if budget == 0 {
        return;
    }
    if budget == 1 {
        let mut fault = Fault::new(FaultKind::Watchdog);
        fault.rip = frame.rip;
        redirect_trap(frame, fault);
        return;
    }
    // SAFETY: as above; only this core writes it, and the code that
    // clears it is the code this interrupt stopped.
    unsafe {
        (*cont)
            .budget
            .store(budget - 1, core::sync::atomic::Ordering::SeqCst)
    };
    // The same moment is where a fault campaign may strike: code of a
    // domain, under its continuation, outside any kernel service, while
    // the entry's work runs.
    // SAFETY: as above.
    let frame_owner = unsafe { core::ptr::read_volatile(&raw const (*cont).owner) };
    crate::storm::on_tick(frame, cpu.current_owner.get(), frame_owner);
}
