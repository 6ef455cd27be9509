//! Continuations: the x86_64 core of crash containment.
//!
//! [`call`] saves the callee-saved registers, the stack pointer (which
//! points at its return address) and the flags into a [`Registers`] block
//! and calls a function.
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
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering, compiler_fence};

pub use owner::{AtomicOwnerId, OwnerId};

/// Saved state to resume at: rbx, rbp, r12-r15, rsp, rflags, in that
/// order (the layout the assembly below uses). Interior-mutable, because the
/// assembly writes it while shared references to it exist.
///
/// The saved `rsp` is the one [`call`] was entered with: it points at the
/// return address into `call`'s caller, which [`resume`] returns through
/// (a copy of it here would cost three instructions per call and protect
/// nothing: the slot lies in the caller's part of the stack, which must be
/// intact for a resume anyway, as must the block itself, which lives there
/// too).
///
/// Only the flags word starts initialised (to 0, "not saved": see
/// [`Registers::saved`]); the others are written by [`call`] before anything
/// reads them (zeroing all of them cost five stores on every domain entry).
#[repr(transparent)]
pub struct Registers(UnsafeCell<[MaybeUninit<u64>; WORDS]>);

/// Words of a [`Registers`] block; the last is the flags.
const WORDS: usize = 8;
const FLAGS: usize = WORDS - 1;
const RSP: usize = 6;

impl Default for Registers {
    fn default() -> Registers {
        Registers::new()
    }
}

impl core::fmt::Debug for Registers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registers")
            .field("saved", &self.saved())
            .finish_non_exhaustive()
    }
}

// SAFETY: a block is written only by `call` on the thread that owns it and
// read by `resume` on that same thread (or CPU).
unsafe impl Sync for Registers {}

impl Registers {
    pub const fn new() -> Registers {
        let mut words = [MaybeUninit::uninit(); WORDS];
        words[FLAGS] = MaybeUninit::new(0);
        Registers(UnsafeCell::new(words))
    }

    /// The stack pointer `call` will return with (valid while it runs:
    /// 0 before [`call`] saved it).
    pub fn stack_pointer(&self) -> u64 {
        if !self.saved() {
            return 0;
        }
        // SAFETY: a plain read of a word `call` wrote (before the flags
        // word `saved` read) before running `f`. It holds the stack pointer
        // at `call`'s entry, 8 below the one it returns with (the return
        // address).
        unsafe { (*self.0.get())[RSP].assume_init() + 8 }
    }

    /// Marks the block not saved again (the flags word 0): what an entry
    /// does to a frame a failure resumed, while it reports the failure
    /// under it. A frame that does not read [`saved`](Self::saved) is
    /// never resumed nor charged by a failure path that checks (the
    /// kernel's does), so nothing resumes it a second time, through a
    /// return address its entry's later calls have overwritten.
    pub fn spend(&self) {
        // SAFETY: a write of a word only this core uses; volatile for the
        // same reason as in `saved`.
        unsafe {
            core::ptr::write_volatile(&raw mut (*self.0.get())[FLAGS], MaybeUninit::new(0));
        }
    }

    /// True once [`call`] has saved the registers here, so that [`resume`]
    /// may load them. A block starts zeroed and `call` writes the flags
    /// last (bit 1 of RFLAGS always reads 1): an interrupt on this core
    /// that finds a frame linked but not yet saved (the few instructions
    /// between [`guarded`] linking it and `call` running) must leave it
    /// alone, since resuming it would load a stack pointer of 0.
    pub fn saved(&self) -> bool {
        // SAFETY: a read of a word only this core writes; volatile because
        // the writer is the code the interrupt stopped.
        unsafe { core::ptr::read_volatile(&raw const (*self.0.get())[FLAGS]).assume_init() != 0 }
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
        // rsp as entered: it points at our return address, which `resume`
        // returns through (see `Registers`).
        "mov [rdi + 48], rsp",
        // The flags word last (it says "saved").
        "pushfq",
        "pop rax",
        "mov [rdi + 56], rax",
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
/// thread), below which the stack is intact (from the return address
/// `call` was entered with, which this returns through, on up); everything
/// above it is abandoned without destructors.
#[unsafe(naked)]
pub unsafe extern "C" fn resume(regs: *const Registers, value: u64) -> ! {
    naked_asm!(
        "mov rbx, [rdi + 0]",
        "mov rbp, [rdi + 8]",
        "mov r12, [rdi + 16]",
        "mov r13, [rdi + 24]",
        "mov r14, [rdi + 32]",
        "mov r15, [rdi + 40]",
        // `call`'s entry rsp: its return address is on top.
        "mov rsp, [rdi + 48]",
        "push qword ptr [rdi + 56]",
        "popfq",
        "mov rax, rsi",
        "ret",
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

/// Per-core (or, on the host, per-thread) state that guarded calls need:
/// the innermost active [`Frame`] and the running domain incarnation.
pub trait Core {
    /// Innermost active frame (type-erased), null if none.
    fn top(&self) -> *mut ();
    fn set_top(&self, frame: *mut ());
    /// The domain incarnation whose code runs (0: the kernel).
    fn owner(&self) -> OwnerId;
    fn set_owner(&self, owner: OwnerId);
}

/// A continuation as the kernel links them: registers first (so a pointer
/// to the frame is a pointer to its registers), the enclosing frame, the
/// watchdog budget and room for what went wrong (`P`, written by the
/// failure path before it resumes).
#[repr(C)]
pub struct Frame<P> {
    pub regs: Registers,
    pub prev: *mut (),
    /// What the watchdog may still let the closure run, in whatever unit
    /// it counts (the kernel: timer ticks that land in the closure's own
    /// code, not in a kernel service it called nor in an entry it made
    /// into another domain, whose own frame is charged); the watchdog
    /// stops the closure when it would reach 0. 0: no limit. Cleared as
    /// soon as the closure returns, so the watchdog can never fire after
    /// the fact.
    pub budget: AtomicU64,
    /// The incarnation current when the frame was pushed (a gate makes
    /// its incarnation current first): whose code a failure resuming this
    /// frame abandons. Read by interrupt handlers that act on one
    /// incarnation only (the kernel's fault campaign), since the current
    /// owner alone is off by one frame just before a push and just after
    /// a pop.
    pub owner: OwnerId,
    pub payload: MaybeUninit<P>,
}

/// The incarnation that made the innermost entry on `core`: the owner
/// of the frame enclosing the innermost one (the kernel, 0, if there is
/// none). A gate pushes each frame as its incarnation, so the enclosing
/// frame's owner is whose code made the call that runs now.
///
/// # Safety
/// Every frame linked on `core` (from `top` through `prev`) is a live
/// [`Frame`] (of any payload type: the fields read come before it).
pub unsafe fn caller(core: &impl Core) -> OwnerId {
    let top = core.top() as *const Frame<()>;
    if top.is_null() {
        return OwnerId::KERNEL;
    }
    // SAFETY: per the contract; `prev` and `owner` lie before the payload,
    // at the same offsets whatever its type.
    let prev = unsafe { (*top).prev } as *const Frame<()>;
    if prev.is_null() {
        return OwnerId::KERNEL;
    }
    // SAFETY: as above.
    unsafe { (*prev).owner }
}

/// Runs `f` under a new innermost frame on `core`. `Ok` if it returns;
/// `Err` with the payload the failure path wrote if it was resumed.
pub fn guarded<P, R, F: FnOnce() -> R>(core: &impl Core, budget: u64, f: F) -> Result<R, P> {
    guarded_with(core, budget, f, |payload: &P, _| {
        // SAFETY: a copy out of the frame, which never drops its payload.
        unsafe { core::ptr::read(payload) }
    })
}

/// [`guarded`] handing a failure's payload to `failed` where it lies, in
/// the frame, while the frame is still the innermost one (it is unlinked
/// once `failed` returns): see [`Gate::enter_raw_with`] for why.
#[inline]
pub fn guarded_with<P, R, E, F: FnOnce() -> R>(
    core: &impl Core,
    budget: u64,
    f: F,
    failed: impl FnOnce(&P, OwnerId) -> E,
) -> Result<R, E> {
    // The result goes to a `MaybeUninit` (not an `Option`): writing an
    // enum's tag byte and then reading the whole value back with a wider
    // load defeats store-to-load forwarding, which cost more than the rest
    // of a domain entry for `RpcResult` values.
    struct Slot<F, R> {
        f: MaybeUninit<F>,
        result: MaybeUninit<R>,
        budget: *const AtomicU64,
    }
    extern "C" fn trampoline<F: FnOnce() -> R, R>(arg: *mut u8) {
        // SAFETY: `arg` is the `Slot` on `guarded`'s frame, alive for the
        // call, which runs the trampoline once: `f` is read once.
        let slot = unsafe { &mut *(arg as *mut Slot<F, R>) };
        // SAFETY: `guarded` wrote `f` before the call, and it is read once.
        let f = unsafe { slot.f.assume_init_read() };
        slot.result.write(f());
        // Only this core's own timer interrupt reads the budget, and an
        // interrupt sees this core's earlier stores, so no fence is needed.
        // SAFETY: `budget` points into the frame on `guarded`'s stack.
        unsafe { (*slot.budget).store(0, Ordering::Relaxed) };
    }
    let mut frame = Frame::<P> {
        regs: Registers::new(),
        prev: core.top(),
        budget: AtomicU64::new(budget),
        owner: core.owner(),
        payload: MaybeUninit::uninit(),
    };
    let mut slot = Slot {
        f: MaybeUninit::new(f),
        result: MaybeUninit::uninit(),
        budget: &frame.budget,
    };
    // An interrupt on this core may read the frame as soon as it is
    // linked: its zeroed registers must be in memory first (see
    // `Registers::saved`).
    compiler_fence(Ordering::SeqCst);
    core.set_top(&raw mut frame as *mut ());
    // SAFETY: `frame` and `slot` outlive the call; the trampoline matches the
    // slot's types. A failure path resumes `frame.regs` on this core while
    // this stack is intact below it.
    let value = unsafe { call(&frame.regs, trampoline::<F, R>, &raw mut slot as *mut u8) };
    if value == 0 {
        core.set_top(frame.prev);
        // SAFETY: a normal return means the trampoline wrote the result.
        Ok(unsafe { slot.result.assume_init_read() })
    } else {
        // The closure (moved out) and anything it built were abandoned.
        // SAFETY: the failure path wrote the payload before resuming.
        Err(unsafe { report_failure(core, &frame, failed) })
    }
}

/// What an entry does once a failure resumed its `frame`: reports it
/// with the frame still the innermost, then unlinks it. The failure path
/// zeroed the frame's budget before resuming it, and the watchdog and a
/// campaign strike only under a frame with budget left, so the code
/// reporting it (`failed`, the caller's) cannot be unwound before it has.
/// (Unlinked first, a tick there could unwind the caller, and the
/// callee's failure would go unseen: still alive with the frames the
/// failure abandoned.) Spent first: a failure path that checks
/// `Registers::saved` (the kernel's) then treats a fault during the
/// report as the reporter's own, never resuming this frame a second time.
///
/// # Safety
/// `frame` is the innermost frame on `core`, resumed by a failure path
/// that wrote its payload.
#[inline(always)]
unsafe fn report_failure<P, E>(
    core: &impl Core,
    frame: &Frame<P>,
    failed: impl FnOnce(&P, OwnerId) -> E,
) -> E {
    frame.regs.spend();
    // SAFETY: per the contract, the payload is written.
    let reported = failed(unsafe { frame.payload.assume_init_ref() }, frame.owner);
    core.set_top(frame.prev);
    reported
}

/// A type-erased call for [`guarded_raw`] / [`Gate::enter_raw`]: the
/// caller embeds it at the start of its own `repr(C)` slot, whose `run`
/// function does the work, then calls [`RawCall::done`]. One indirect call
/// instead of a `&mut dyn FnMut` behind a trampoline of its own: the path
/// generated proxies take through a type-erased runtime.
///
/// `run` is private: it is called only by [`guarded_raw`] and
/// [`RawCall::run_unguarded`], and both point `budget` at a live word
/// first. That is what lets [`done`](RawCall::done) store through it with
/// no test (and a new call skip writing it).
#[repr(C)]
pub struct RawCall {
    /// Runs the call; receives the `RawCall` (the start of the slot).
    run: unsafe extern "C-unwind" fn(*mut RawCall),
    /// The running frame's watchdog budget (or a dummy): written before
    /// `run` is called, see above.
    budget: MaybeUninit<*const AtomicU64>,
}

impl RawCall {
    pub const fn new(run: unsafe extern "C-unwind" fn(*mut RawCall)) -> RawCall {
        RawCall {
            run,
            budget: MaybeUninit::uninit(),
        }
    }

    /// Marks the work done: the watchdog may no longer stop it. `run`
    /// calls this as soon as its work returns.
    ///
    /// # Safety
    /// Called from `run` (or after it began), on the `RawCall` it was
    /// given: `budget` is set then.
    #[inline]
    pub unsafe fn done(&self) {
        // SAFETY: `budget` was set before `run` was called (see `RawCall`)
        // to a word that outlives the call (the frame's budget, which only
        // this core's interrupt reads, or `run_unguarded`'s dummy).
        unsafe { (*self.budget.assume_init()).store(0, Ordering::Relaxed) };
    }

    /// Runs `call` right here, with no frame or watchdog (what a runtime
    /// does for a callee that needs no entry, or inside an entry of its
    /// own).
    ///
    /// # Safety
    /// As for [`guarded_raw`].
    #[inline]
    pub unsafe fn run_unguarded(call: *mut RawCall) {
        let budget = AtomicU64::new(0);
        // SAFETY: per the contract, `call` is live; the dummy outlives the
        // call of `run`, which is safe to make.
        unsafe {
            (*call).budget = MaybeUninit::new(&budget);
            ((*call).run)(call)
        }
    }
}

/// [`guarded`] for a [`RawCall`]: `Ok(())` if `run` returned, `Err` with
/// the failure path's payload if it was resumed.
///
/// # Safety
/// `call` points to a live `RawCall` at the start of its slot, valid for
/// the whole call, whose `run` is safe to call with it.
pub unsafe fn guarded_raw<P>(core: &impl Core, budget: u64, call: *mut RawCall) -> Result<(), P> {
    // SAFETY: forwarded; the frame's owner is the current one.
    unsafe { guarded_raw_as(core, core.owner(), budget, call) }
}

/// [`guarded_raw`] when the caller knows the current owner (a gate that
/// just made it current), saving a read of it.
///
/// # Safety
/// As for [`guarded_raw`]; `owner` is `core.owner()`.
#[inline(always)]
unsafe fn guarded_raw_as<P>(
    core: &impl Core,
    owner: OwnerId,
    budget: u64,
    call: *mut RawCall,
) -> Result<(), P> {
    // SAFETY: forwarded; the payload is copied out of the frame, which
    // never drops it.
    unsafe {
        guarded_raw_with(core, owner, budget, call, |payload: &P, _| {
            core::ptr::read(payload)
        })
    }
}

/// [`guarded_raw_as`] handing a failure's payload to `failed` where it
/// lies, in the frame, while the frame is still the innermost (spent:
/// see below), instead of moving it out: what an entry inlined into its
/// caller uses, so that the success path carries no room for a moved
/// payload, and what every entry uses to report a failure before anything
/// can unwind its caller.
///
/// # Safety
/// As for [`guarded_raw_as`].
#[inline(always)]
unsafe fn guarded_raw_with<P, E>(
    core: &impl Core,
    owner: OwnerId,
    budget: u64,
    call: *mut RawCall,
    failed: impl FnOnce(&P, OwnerId) -> E,
) -> Result<(), E> {
    let frame = Frame::<P> {
        regs: Registers::new(),
        prev: core.top(),
        budget: AtomicU64::new(budget),
        owner,
        payload: MaybeUninit::uninit(),
    };
    // SAFETY: per the contract; the frame outlives the call. `run` is
    // read before the fence below (after it, the compiler would load it
    // again right after the caller stored it).
    let run = unsafe {
        (*call).budget = MaybeUninit::new(&frame.budget);
        (*call).run
    };
    // As in `guarded`.
    compiler_fence(Ordering::SeqCst);
    core.set_top(&raw const frame as *mut ());
    // SAFETY: `run` has the C ABI `call` expects (one pointer argument; it
    // is declared "C-unwind" so host runtimes may contain panics by
    // unwinding, which never happens on this path: a failure here resumes
    // `frame.regs` while this stack is intact).
    let value = unsafe {
        let run: extern "C" fn(*mut u8) = core::mem::transmute(run);
        self::call(&frame.regs, run, call as *mut u8)
    };
    if value == 0 {
        core.set_top(frame.prev);
        Ok(())
    } else {
        // SAFETY: the failure path wrote the payload before resuming.
        Err(unsafe { report_failure(core, &frame, failed) })
    }
}

/// Why [`Gate::enter`] produced no value.
#[derive(Debug)]
pub enum Refused<P> {
    /// The incarnation is not (or no longer) the alive one.
    NotAlive,
    /// The code failed; the payload says how.
    Failed(P),
}

/// The entry gate of one domain: which incarnation is current and whether
/// it is open. The kernel embeds one per domain; every domain entry passes
/// through [`Gate::enter`].
///
/// The gate keeps no count of cores inside: entering costs one plain load
/// and no locked instruction. Knowing when nobody is inside a closed
/// incarnation is the kernel's job, done like an RCU grace period: after
/// `close`, every core must pass a point where it runs no domain code (the
/// kernel uses the top of its executor loop), and any entry that began
/// before the close has ended by then.
pub struct Gate {
    /// The current incarnation's bits (low 32), with [`CLOSED`] set once
    /// it is closed: one word, so that an entry checks "this incarnation,
    /// open" with one load and one comparison (an owner id zero-extended
    /// never has bit 32 set, so a closed gate matches no owner).
    state: AtomicU64,
}

/// See [`Gate::state`].
const CLOSED: u64 = 1 << 32;

impl Gate {
    pub const fn new(owner: OwnerId) -> Gate {
        Gate {
            state: AtomicU64::new(owner.to_bits() as u64),
        }
    }

    pub fn owner(&self) -> OwnerId {
        OwnerId::from_bits(self.state.load(Ordering::Acquire) as u32)
    }

    #[inline]
    pub fn is_alive_as(&self, owner: OwnerId) -> bool {
        self.state.load(Ordering::Acquire) == owner.to_bits() as u64
    }

    /// Closes incarnation `owner` (once): new entries are refused; entries
    /// already inside finish or fail on their own.
    pub fn close(&self, owner: OwnerId) -> bool {
        let open = owner.to_bits() as u64;
        self.state
            .compare_exchange(open, open | CLOSED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Opens the gate for a new incarnation.
    pub fn open(&self, owner: OwnerId) {
        self.state.store(owner.to_bits() as u64, Ordering::SeqCst);
    }

    /// Runs `f` as incarnation `owner` on `core`: checks it is the open
    /// incarnation, makes `owner` current, runs `f` guarded with the
    /// watchdog budget, and restores the previous owner.
    #[inline]
    pub fn enter<P, R>(
        &self,
        core: &impl Core,
        owner: OwnerId,
        budget: u64,
        f: impl FnOnce() -> R,
    ) -> Result<R, Refused<P>> {
        if !self.is_alive_as(owner) {
            return Err(Refused::NotAlive);
        }
        let previous = core.owner();
        core.set_owner(owner);
        let result = guarded(core, budget, f).map_err(Refused::Failed);
        core.set_owner(previous);
        result
    }

    /// [`enter`](Self::enter) reporting a refusal as `refused()` and a
    /// failure as `failed` of the payload in place, with the previous
    /// owner current again and the failed frame still the innermost (see
    /// [`enter_raw_with`](Self::enter_raw_with)).
    #[inline]
    pub fn enter_with<P, R, E>(
        &self,
        core: &impl Core,
        owner: OwnerId,
        budget: u64,
        f: impl FnOnce() -> R,
        refused: impl FnOnce() -> E,
        failed: impl FnOnce(&P, OwnerId) -> E,
    ) -> Result<R, E> {
        if !self.is_alive_as(owner) {
            return Err(refused());
        }
        let previous = core.owner();
        core.set_owner(owner);
        let result = guarded_with(core, budget, f, |payload: &P, owner| {
            core.set_owner(previous);
            failed(payload, owner)
        });
        if result.is_ok() {
            core.set_owner(previous);
        }
        result
    }

    /// [`enter`](Self::enter) for a [`RawCall`].
    ///
    /// # Safety
    /// As for [`guarded_raw`].
    #[inline]
    pub unsafe fn enter_raw<P>(
        &self,
        core: &impl Core,
        owner: OwnerId,
        budget: u64,
        call: *mut RawCall,
    ) -> Result<(), Refused<P>> {
        if !self.is_alive_as(owner) {
            return Err(Refused::NotAlive);
        }
        let previous = core.owner();
        core.set_owner(owner);
        // SAFETY: forwarded; `owner` is current now.
        let result = unsafe { guarded_raw_as(core, owner, budget, call) }.map_err(Refused::Failed);
        core.set_owner(previous);
        result
    }

    /// [`enter_raw`](Self::enter_raw) for an entry inlined into its
    /// caller: a refusal is `refused()`; a failure is `failed` of the
    /// payload in place and the incarnation it failed in, called with the
    /// previous owner current again and the failed frame still the
    /// innermost (unlinked once `failed` returns). The failure path must
    /// zero that frame's budget before it resumes it: the watchdog then
    /// leaves it alone, and nothing unwinds the caller before `failed` has
    /// reported the failure.
    ///
    /// # Safety
    /// As for [`guarded_raw`].
    #[inline(always)]
    pub unsafe fn enter_raw_with<P, E>(
        &self,
        core: &impl Core,
        owner: OwnerId,
        budget: u64,
        call: *mut RawCall,
        refused: impl FnOnce() -> E,
        failed: impl FnOnce(&P, OwnerId) -> E,
    ) -> Result<(), E> {
        if !self.is_alive_as(owner) {
            return Err(refused());
        }
        let previous = core.owner();
        core.set_owner(owner);
        // SAFETY: forwarded; `owner` is current now. The previous owner is
        // current again before `failed` runs (first thing in the closure)
        // or, on success, right after.
        let result = unsafe {
            guarded_raw_with(core, owner, budget, call, |payload: &P, owner| {
                core.set_owner(previous);
                failed(payload, owner)
            })
        };
        if result.is_ok() {
            core.set_owner(previous);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn a_block_reads_saved_only_once_call_has_filled_it() {
        assert!(!Registers::new().saved());
        assert_eq!(run(|regs| regs.saved()), Ok(true));
    }

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

    struct TestCore {
        top: core::cell::Cell<*mut ()>,
        owner: core::cell::Cell<OwnerId>,
    }

    impl Core for TestCore {
        fn top(&self) -> *mut () {
            self.top.get()
        }
        fn set_top(&self, frame: *mut ()) {
            self.top.set(frame)
        }
        fn owner(&self) -> OwnerId {
            self.owner.get()
        }
        fn set_owner(&self, owner: OwnerId) {
            self.owner.set(owner)
        }
    }

    fn test_core() -> TestCore {
        TestCore {
            top: core::cell::Cell::new(core::ptr::null_mut()),
            owner: core::cell::Cell::new(OwnerId::KERNEL),
        }
    }

    /// What a failure path does: write the payload into the innermost frame
    /// and resume it.
    fn fail(core: &TestCore, code: u32) -> ! {
        let frame = core.top() as *mut Frame<u32>;
        // SAFETY: the innermost frame is live (its `guarded` is running).
        unsafe {
            (*frame).payload.write(code);
            resume(&raw const (*frame).regs, 1)
        }
    }

    #[test]
    fn gate_runs_as_the_owner_and_restores() {
        let core = test_core();
        let gate = Gate::new(OwnerId::new(1, 1));
        let result = gate.enter::<u32, _>(&core, OwnerId::new(1, 1), 0, || core.owner());
        assert_eq!(result.ok(), Some(OwnerId::new(1, 1)));
        assert_eq!(core.owner(), OwnerId::KERNEL);
        assert!(core.top().is_null());
    }

    #[test]
    fn the_caller_is_whoever_entered_the_running_domain() {
        let core = test_core();
        let (a, b) = (OwnerId::new(3, 1), OwnerId::new(4, 1));
        let (gate_a, gate_b) = (Gate::new(a), Gate::new(b));
        // SAFETY: the frames linked on `core` are `guarded`'s, live while
        // linked.
        let caller_now = || unsafe { caller(&core) };
        assert_eq!(caller_now(), OwnerId::KERNEL);
        let seen = gate_a.enter::<u32, _>(&core, a, 0, || {
            let from_kernel = caller_now();
            let from_a = gate_b.enter::<u32, _>(&core, b, 0, caller_now).ok();
            // Back in `a` after the call: the kernel entered it.
            (from_kernel, from_a, caller_now())
        });
        assert_eq!(seen.ok(), Some((OwnerId::KERNEL, Some(a), OwnerId::KERNEL)));
    }

    #[test]
    fn a_failure_is_reported_under_its_frame_as_the_caller() {
        let core = test_core();
        let callee = OwnerId::new(2, 3);
        let gate = Gate::new(callee);
        let result = gate.enter_with::<u32, (), (u32, bool, bool)>(
            &core,
            callee,
            0,
            || fail(&core, 9),
            || unreachable!("the gate is open"),
            |payload, owner| {
                let top = core.top() as *const Frame<u32>;
                // SAFETY: a linked frame is live.
                let under_its_frame =
                    !top.is_null() && unsafe { (*top).owner == owner && !(*top).regs.saved() };
                (*payload, under_its_frame, core.owner() == OwnerId::KERNEL)
            },
        );
        assert_eq!(result.err(), Some((9, true, true)));
        assert!(core.top().is_null(), "unlinked after the report");
        assert_eq!(core.owner(), OwnerId::KERNEL);
    }

    #[test]
    fn gate_failure_returns_the_payload_and_unlinks() {
        let core = test_core();
        let gate = Gate::new(OwnerId::new(2, 1));
        let result = gate.enter::<u32, ()>(&core, OwnerId::new(2, 1), 0, || fail(&core, 9));
        assert!(matches!(result, Err(Refused::Failed(9))));
        assert_eq!(
            core.owner(),
            OwnerId::KERNEL,
            "owner restored after a failure"
        );
        assert!(core.top().is_null(), "frame unlinked after a failure");
    }

    #[test]
    fn closed_or_stale_incarnations_are_refused_without_running() {
        let core = test_core();
        let gate = Gate::new(OwnerId::new(3, 1));
        let ran = core::cell::Cell::new(false);
        let stale = gate.enter::<u32, _>(&core, OwnerId::new(3, 2), 0, || ran.set(true));
        assert!(matches!(stale, Err(Refused::NotAlive)));
        assert!(gate.close(OwnerId::new(3, 1)));
        assert!(!gate.close(OwnerId::new(3, 1)), "close happens once");
        let closed = gate.enter::<u32, _>(&core, OwnerId::new(3, 1), 0, || ran.set(true));
        assert!(matches!(closed, Err(Refused::NotAlive)));
        assert!(!ran.get());
        gate.open(OwnerId::new(3, 2));
        let reopened = gate.enter::<u32, _>(&core, OwnerId::new(3, 2), 0, || 5);
        assert!(matches!(reopened, Ok(5)));
    }

    #[test]
    fn nested_gates_fail_inner_only() {
        let core = test_core();
        let a = Gate::new(OwnerId::new(4, 1));
        let b = Gate::new(OwnerId::new(5, 1));
        let outer = a.enter::<u32, _>(&core, OwnerId::new(4, 1), 0, || {
            let inner = b.enter::<u32, ()>(&core, OwnerId::new(5, 1), 0, || fail(&core, 3));
            assert!(matches!(inner, Err(Refused::Failed(3))));
            assert_eq!(
                core.owner(),
                OwnerId::new(4, 1),
                "A is current again after B failed"
            );
            11
        });
        assert!(matches!(outer, Ok(11)));
    }
}
