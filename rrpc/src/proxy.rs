//! The runtime behind generated proxies: the kernel installs how to enter
//! a domain; `#[interface]` proxies call [`call`] for every method.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use spin::Once;

use crate::{Owner, RpcError, RpcResult};

/// How to run code as another domain (the kernel's domain entry).
///
/// # Safety
/// Proxies rely on what an entry's result says: [`enter`](Self::enter)
/// returns `Ok(())` only once `f` has returned (ran to completion), and
/// [`enter_raw`](Self::enter_raw) only once `run` has returned; any failure
/// on the way is an `Err`. (A proxy reads its callee's result, which `run`
/// writes, on `Ok(())` alone: it keeps no flag of its own for it.)
pub unsafe trait Runtime: Sync {
    /// The domain incarnation running now.
    fn current(&self) -> Owner;
    /// The incarnation whose entry into the running domain is the
    /// innermost one: who called the method running now (the kernel, 0,
    /// for a task of the domain's own or a call from the kernel). Taken
    /// from what the entry recorded, not from anything the caller says,
    /// so a callee may rely on it to tell its clients apart (a socket
    /// belongs to the domain that opened it).
    fn caller(&self) -> Owner;
    /// Whether `owner` is the live incarnation of its domain (false once
    /// it crashed, was killed or restarted: what a callee checks before
    /// keeping resources for a client that may be gone).
    fn is_alive(&self, owner: Owner) -> bool;
    /// Runs `f` as `callee`: `Err(DomainCrashed)` if it failed there,
    /// `Err(DomainNotAlive)` without running it if `callee` is not alive.
    ///
    /// # Safety
    /// Running code as another domain is what only generated proxies (and
    /// the kernel) may do: `f` must be a proxy's call of `callee`'s own
    /// object, or code the kernel trusts. (The runtime is reachable from
    /// every domain, through `Kernel::rrpc_runtime`, so this must not be
    /// safe to call: a domain could otherwise crash another or fill its
    /// heap with code of its own.)
    unsafe fn enter(&self, callee: Owner, f: &mut dyn FnMut()) -> Result<(), RpcError>;
    /// [`enter`](Self::enter) for a type-erased [`cont::RawCall`]: what
    /// generated proxies use (one indirect call fewer). The default runs it
    /// through `enter`; the kernel hands it to its gate directly.
    ///
    /// # Safety
    /// `call` is a live `RawCall` at the start of its slot whose `run` is
    /// safe to call with it, valid for the whole call. An implementation
    /// calls `run` at most once (it consumes the call's closure).
    unsafe fn enter_raw(&self, callee: Owner, call: *mut cont::RawCall) -> Result<(), RpcError> {
        // SAFETY: forwarded (the closure runs once, inside `enter`).
        unsafe { self.enter(callee, &mut || cont::RawCall::run_unguarded(call)) }
    }
    /// The waker to poll a callee's future with, if not `waker` itself
    /// (`None`: it is fine as it is). A callee may keep the waker it is
    /// polled with and wake it later: a waker the calling domain made (a
    /// `Wake` of its own, code in its image) would then run the caller's
    /// code inside the callee, or, once the caller is dead and unloaded,
    /// code that is gone. The kernel hands callees only wakers of its own
    /// executor (plain task ids): it replaces any other with the waker of
    /// the task being polled. Default: `None` (a host runtime).
    fn callee_waker(&self, waker: &core::task::Waker) -> Option<core::task::Waker> {
        let _ = waker;
        None
    }
    /// The vtable of wakers [`callee_waker`](Self::callee_waker) always
    /// passes as they are (the kernel: its executor's task wakers), so
    /// that a proxy can tell with one comparison, without calling the
    /// runtime, that a waker needs no replacement (the common case: a
    /// task polling a proxied call). Read once, when the runtime is
    /// installed. Default: `None` (every waker goes to `callee_waker`).
    fn trusted_wakers(&self) -> Option<&'static core::task::RawWakerVTable> {
        None
    }
    /// The gate of `callee`, if proxies may enter it inline (`None`: every
    /// entry goes through [`enter_raw`](Self::enter_raw)). Asked once per
    /// entry capability, when the name service makes it
    /// ([`EntryCap::new`]). A proxy holding a gate enters with
    /// `cont::Gate::enter_raw` itself, on this crate's per-core words
    /// ([`crate::percpu`]: the running incarnation and the innermost
    /// frame), with the watchdog budget [`entry_budget`](Self::entry_budget)
    /// points at and a [`FaultRoom`] for the frame's payload, and reports
    /// a failed entry to [`entry_failed`](Self::entry_failed). The
    /// runtime's failure path writes its record into the innermost frame's
    /// payload and zeroes the frame's budget before it resumes the frame.
    /// Default: `None`.
    ///
    /// (The kernel's entry is exactly those steps plus a look-up of the
    /// domain by slot; made inline, a proxied call saves the indirect
    /// call into the runtime, its frame and the mapping of its result.)
    ///
    /// # Safety
    /// Only this crate calls it, for [`EntryCap::new`]: whoever holds a
    /// domain's gate can close it (kill the incarnation) or open it for an
    /// incarnation that is dead and reclaimed. (The runtime is handed to
    /// every domain, so this must not be safe to call.)
    unsafe fn gate(&self, callee: Owner) -> Option<&'static cont::Gate> {
        let _ = callee;
        None
    }
    /// The watchdog budget a proxy's inline entry gives the callee's frame
    /// (read on every entry; 0: none). Read once, when the runtime is
    /// installed. Default: `None` (no budget).
    ///
    /// # Safety
    /// Only this crate calls it, when the runtime is installed: whoever
    /// holds the word can change every entry's budget (0 switches the
    /// watchdog off).
    unsafe fn entry_budget(&self) -> Option<&'static AtomicU64> {
        None
    }
    /// A proxy's inline entry into `callee` failed: the failure path
    /// resumed its frame with its record of the failure in `fault`. The
    /// runtime does what a failed entry of its own does (the kernel
    /// poisons the incarnation). Called once per failure, back in the
    /// caller, with the caller's incarnation current again and the failed
    /// frame still the innermost: the runtime's failure path zeroes a
    /// frame's budget before it resumes it, so that neither the watchdog
    /// nor anything else striking at a tick unwinds the caller before
    /// this report (which would leave the callee alive after its
    /// failure). Default: nothing.
    ///
    /// # Safety
    /// `fault` is the payload of a frame the runtime's failure path
    /// resumed (it wrote its record there first).
    unsafe fn entry_failed(&self, callee: Owner, fault: &FaultRoom) {
        let _ = (callee, fault);
    }
    /// A caller's task is suspended on a call into `callee`: wake it if
    /// `callee` dies (so it sees the error). Default: nothing.
    fn suspended(&self, callee: Owner, waker: &core::task::Waker) {
        let _ = (callee, waker);
    }
    /// A proxied call is pending in `parked.callee` on behalf of
    /// `parked.caller`. If the caller dies before [`unpark`](Self::unpark),
    /// the kernel must run `(parked.drop)(parked.cell)` inside the callee
    /// once the caller's tasks are purged and before its memory and `RRef`s
    /// are reclaimed: that drops the callee's future where it belongs
    /// (otherwise whatever it holds, a driver's queue for one, stays held).
    /// Default: nothing (a host runtime whose callers never die).
    ///
    /// # Safety
    /// `parked.drop` must be safe to run on `parked.cell` inside the callee
    /// once the caller is dead, until `unpark` is called with `cell`.
    /// Returns false if the runtime keeps no more registrations for this
    /// caller (it bounds them: the call then goes unregistered).
    unsafe fn park(&self, parked: Parked) -> bool {
        let _ = parked;
        false
    }
    /// Ends a registration made by [`park`](Self::park).
    ///
    /// # Safety
    /// `caller` and `cell` are those of a registration made by `park`.
    unsafe fn unpark(&self, caller: Owner, cell: *mut ()) {
        let _ = (caller, cell);
    }
}

/// Room for the runtime's record of a failure in the frame a proxy's
/// inline entry links (the payload of its `cont::Frame`): the kernel's
/// failure path writes its fault record there before it resumes the frame,
/// and asserts at compile time that the record fits.
#[repr(C)]
pub struct FaultRoom(pub [core::mem::MaybeUninit<u64>; FAULT_ROOM_WORDS]);

/// Words in a [`FaultRoom`].
pub const FAULT_ROOM_WORDS: usize = 32;

/// A pending proxied call, registered with the runtime ([`Runtime::park`]).
#[derive(Clone, Copy, Debug)]
pub struct Parked {
    /// The domain incarnation whose task holds the call's future.
    pub caller: Owner,
    /// The domain incarnation the call is in.
    pub callee: Owner,
    /// The proxied `RpcFuture`, pinned in the caller's memory.
    pub cell: *mut (),
    /// Drops the callee's part of `cell`; run inside the callee.
    pub drop: unsafe fn(*mut ()),
}

// SAFETY: plain addresses and a function pointer, used by the kernel on
// whichever core reclaims the caller (with the caller gone, nothing else
// uses `cell`).
unsafe impl Send for Parked {}

/// See [`Runtime::park`].
///
/// # Safety
/// As for [`Runtime::park`].
pub(crate) unsafe fn park(parked: Parked) -> bool {
    // SAFETY: forwarded.
    unsafe { runtime().park(parked) }
}

/// See [`Runtime::unpark`].
///
/// # Safety
/// As for [`Runtime::unpark`].
pub(crate) unsafe fn unpark(caller: Owner, cell: *mut ()) {
    // SAFETY: forwarded.
    unsafe { runtime().unpark(caller, cell) }
}

/// Implemented by `#[interface]` for `dyn Trait + Send + Sync`: how to wrap
/// an exported object in the trait's generated proxy. The name service
/// uses it to hand out proxies by type.
///
/// # Safety
/// Only the IDL compiler implements it. `FINGERPRINT` must identify the
/// trait's definition (the name service turns an exported object back into
/// `Arc<Self>` by fingerprint alone, so a forged one would be a type
/// confusion), and `proxy` must only wrap the object with the capability
/// in a generated proxy (one that enters the callee for nothing but calls
/// of the object's own methods).
pub unsafe trait Interface: Send + Sync + 'static {
    /// The generated proxy (`<Trait>Proxy`).
    type Proxy: Send + Sync;
    /// The trait's name (for messages).
    const NAME: &'static str;
    /// A hash of the trait's whole definition (name, methods, types, in
    /// order), computed by the IDL compiler: two copies of an interface
    /// built separately (a kernel and a domain image) match exactly when
    /// their definitions do, which is what makes an object exported by one
    /// usable through the other's proxy.
    const FINGERPRINT: u64;
    /// Wraps `object`, exported by the incarnation `entry` enters.
    fn proxy(object: alloc::sync::Arc<Self>, entry: EntryCap) -> Self::Proxy;
}

/// The right to run code as one domain incarnation, held by a generated
/// proxy (in a private field) for the domain whose object it wraps. It is
/// made only by the name service (`unsafe` to make), so code outside the
/// trusted base never holds one: a domain cannot enter another except by
/// calling an object that domain exported.
pub struct EntryCap {
    callee: Owner,
    /// The callee's gate, if the runtime lets proxies enter it inline
    /// ([`Runtime::gate`]).
    gate: Option<&'static cont::Gate>,
}

impl EntryCap {
    /// The capability to enter `callee` (with its gate, if the installed
    /// runtime hands one out: [`Runtime::gate`]).
    ///
    /// # Safety
    /// Whoever holds it can run closures as `callee` ([`call`]): it must go
    /// straight into the generated proxy of an object `callee` exported
    /// (through [`Interface::proxy`]) and nowhere else.
    pub unsafe fn new(callee: Owner) -> EntryCap {
        EntryCap {
            callee,
            // SAFETY: the gate stays in the capability's private field
            // (and the futures of its proxy's calls).
            gate: unsafe { runtime().gate(callee) },
        }
    }

    /// Whether calls through it enter the callee inline (through its gate)
    /// rather than through the runtime.
    pub fn is_inline(&self) -> bool {
        self.gate.is_some()
    }

    /// The callee's gate, for this crate's futures (which keep it with
    /// the callee).
    #[inline]
    pub(crate) fn gate(&self) -> Option<&'static cont::Gate> {
        self.gate
    }

    /// The incarnation it enters.
    #[inline]
    pub fn callee(&self) -> Owner {
        self.callee
    }

    /// Gives `RRef`s to the callee (the arguments of a call it makes).
    #[inline]
    pub fn transfer(&self) -> crate::Transfer {
        // SAFETY: only proxies hold entry capabilities, and they move what
        // they give: a call's arguments, passed by value.
        unsafe { crate::Transfer::new(self.callee) }
    }
}

/// The callee's object inside a generated proxy: an `Arc` to it (in the
/// callee's heap) plus its address, so a call reaches the object without
/// recomputing where an `Arc<dyn Trait>`'s value sits from its vtable.
///
/// The `Arc` is held until the proxy's `Drop` takes it (once, as the
/// proxy goes): until then `object` points to its live value, with no
/// test on every call.
pub struct Object<T: ?Sized> {
    arc: core::mem::ManuallyDrop<alloc::sync::Arc<T>>,
    object: *const T,
}

// SAFETY: `object` points into the `Arc` it travels with; sending or
// sharing it is sending or sharing the `Arc`.
unsafe impl<T: ?Sized + Send + Sync> Send for Object<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for Object<T> {}

impl<T: ?Sized> Object<T> {
    pub fn new(arc: alloc::sync::Arc<T>) -> Object<T> {
        let object = alloc::sync::Arc::as_ptr(&arc);
        Object {
            arc: core::mem::ManuallyDrop::new(arc),
            object,
        }
    }

    /// The object.
    #[inline]
    pub fn get(&self) -> &T {
        // SAFETY: the `Arc` is held (`take`'s contract: nothing calls this
        // after it), so `object` points to its live value.
        unsafe { &*self.object }
    }

    /// Takes the `Arc` out (to drop it inside the callee). If never taken,
    /// the `Arc` is leaked, never dropped in the wrong domain.
    ///
    /// # Safety
    /// Called at most once, after which the `Object` is not used again
    /// (what a proxy's `Drop` does).
    pub unsafe fn take(&mut self) -> alloc::sync::Arc<T> {
        // SAFETY: per the contract, taken once.
        unsafe { core::mem::ManuallyDrop::take(&mut self.arc) }
    }
}

/// The runtime installed (once) by [`install_runtime`].
static INSTALLED: Once<&'static dyn Runtime> = Once::new();

/// What proxies use until a runtime is installed: no domain is alive, so
/// no entry is made (what a missing runtime always meant).
struct NoRuntime;

// SAFETY: it never returns `Ok`.
unsafe impl Runtime for NoRuntime {
    fn current(&self) -> Owner {
        Owner::KERNEL
    }
    fn caller(&self) -> Owner {
        Owner::KERNEL
    }
    fn is_alive(&self, _: Owner) -> bool {
        false
    }
    unsafe fn enter(&self, _: Owner, _: &mut dyn FnMut()) -> Result<(), RpcError> {
        Err(RpcError::DomainNotAlive)
    }
    unsafe fn enter_raw(&self, _: Owner, _: *mut cont::RawCall) -> Result<(), RpcError> {
        Err(RpcError::DomainNotAlive)
    }
}

static NO_RUNTIME: &dyn Runtime = &NoRuntime;

/// The runtime every proxy call goes through: a thin pointer to either
/// [`NO_RUNTIME`] or the value inside [`INSTALLED`], so that finding it is
/// one load (a `spin::Once` also tests its state on every call). Both
/// targets are statics, never freed or changed once pointed to: whichever
/// pointer a reader sees, what it points to is a valid `&'static dyn
/// Runtime` (the store that publishes `INSTALLED`'s value comes after
/// `call_once` wrote it, with release ordering, and readers acquire).
static RUNTIME: AtomicPtr<&'static dyn Runtime> =
    AtomicPtr::new(&raw const NO_RUNTIME as *mut &'static dyn Runtime);

/// The installed runtime (or [`NoRuntime`]).
#[inline(always)]
fn runtime() -> &'static dyn Runtime {
    // SAFETY: `RUNTIME` always points to one of two statics holding a
    // `&'static dyn Runtime`, neither ever written again (see `RUNTIME`).
    unsafe { *RUNTIME.load(Ordering::Acquire) }
}

/// The watchdog budget of inline entries ([`Runtime::entry_budget`]);
/// until a runtime gives one, a word that stays 0 (no budget).
static BUDGET: AtomicPtr<AtomicU64> = AtomicPtr::new(&raw const NO_BUDGET as *mut AtomicU64);
static NO_BUDGET: AtomicU64 = AtomicU64::new(0);

/// [`Runtime::trusted_wakers`] of the installed runtime (null: none).
static TRUSTED_WAKERS: AtomicPtr<core::task::RawWakerVTable> = AtomicPtr::new(ptr::null_mut());

/// Installs the runtime (once; later calls are ignored).
pub fn install_runtime(runtime: &'static dyn Runtime) {
    let installed: &'static &'static dyn Runtime = INSTALLED.call_once(|| {
        if let Some(vtable) = runtime.trusted_wakers() {
            TRUSTED_WAKERS.store(ptr::from_ref(vtable).cast_mut(), Ordering::Release);
        }
        // SAFETY: the word stays in this crate (read by inline entries).
        if let Some(budget) = unsafe { runtime.entry_budget() } {
            BUDGET.store(ptr::from_ref(budget).cast_mut(), Ordering::Release);
        }
        runtime
    });
    RUNTIME.store(
        installed as *const &'static dyn Runtime as *mut &'static dyn Runtime,
        Ordering::Release,
    );
}

/// The running domain (0 without a runtime).
pub fn current() -> Owner {
    runtime().current()
}

/// Who called the method running now (see [`Runtime::caller`]; 0, the
/// kernel, without a runtime).
pub fn caller() -> Owner {
    runtime().caller()
}

/// Whether `owner` is a live incarnation (see [`Runtime::is_alive`]; the
/// kernel always is).
pub fn is_alive(owner: Owner) -> bool {
    owner == Owner::KERNEL || runtime().is_alive(owner)
}

/// Runs `f` as the incarnation `entry` enters: what a generated proxy
/// does to drop the callee's object (see [`Runtime::enter`]). If `f` does
/// not run (the callee is dead), it is forgotten, not dropped: what it
/// holds is the callee's.
#[inline]
pub fn call<R, F: FnOnce() -> R>(entry: &EntryCap, f: F) -> RpcResult<R> {
    call_in(
        entry.callee,
        entry.gate,
        move |_: Moved<'_>| f(),
        false,
        Ok,
        |error, _| Err(error),
    )
}

/// Runs the method call `f` as the incarnation `entry` enters: what a
/// generated proxy does for each synchronous method. `f` holds the caller's
/// arguments and moves them to the callee inside it, through the [`Moved`]
/// it is given, before anything else. Until then they are the caller's:
/// if the entry fails before (the callee is dead, or a fault strikes in
/// the few instructions between the entry and the move), `f` is dropped
/// here, in the caller, and nothing is given to a dead callee or lost.
///
/// The method's own `RpcResult` comes back as it is, with a failed entry's
/// error in its place (one `RpcResult`, not one inside another: the proxy
/// returns it without taking it apart and rebuilding it).
#[inline]
pub fn call_method<T, F: FnOnce(Moved<'_>) -> RpcResult<T>>(
    entry: &EntryCap,
    f: F,
) -> RpcResult<T> {
    call_in(
        entry.callee,
        entry.gate,
        f,
        true,
        |result| result,
        |error, _| Err(error),
    )
}

/// Given to a proxied call's closure: [`Moved::receive_all`] moves its
/// arguments to the callee and records, in the same critical section
/// (which no fault the kernel raises at a timer tick can interrupt), that
/// they are no longer the caller's to drop.
pub struct Moved<'a>(&'a core::cell::Cell<bool>);

impl<'a> Moved<'a> {
    pub(crate) fn new(flag: &'a core::cell::Cell<bool>) -> Moved<'a> {
        Moved(flag)
    }

    /// Runs `moves` (a [`receive_in`] of every argument) and marks the
    /// arguments moved, all in one critical section. With `plain` (no
    /// argument can hold an `RRef`: nothing to move), only marks them.
    #[inline]
    pub fn receive_all(self, plain: bool, moves: impl FnOnce(&InCritical)) {
        if plain {
            self.0.set(true);
            return;
        }
        let critical = InCritical::enter();
        moves(&critical);
        self.0.set(true);
    }
}

/// Proof of a registry critical section, for [`receive_in`].
pub struct InCritical(crate::registry::Critical);

impl InCritical {
    /// Enters a critical section.
    #[inline]
    pub(crate) fn enter() -> InCritical {
        InCritical(crate::registry::Critical::enter())
    }

    /// [`enter`](Self::enter), also returning the running domain.
    #[inline]
    pub(crate) fn enter_here() -> (InCritical, Owner) {
        let critical = crate::registry::Critical::enter();
        (InCritical(critical), crate::percpu::owner())
    }

    /// The core it runs on.
    #[inline]
    pub(crate) fn core(&self) -> usize {
        self.0.core
    }
}

/// [`receive`] inside a critical section already entered (by
/// [`Moved::receive_all`], for all of a call's arguments at once).
#[inline]
pub fn receive_in<T: crate::Exchangeable + ?Sized>(
    critical: &InCritical,
    entry: &EntryCap,
    value: &T,
) {
    if !T::PLAIN {
        // SAFETY: as in `receive`; `receive_in` runs inside the callee
        // (`Moved` is only handed to the closure running there), which is
        // what `entry` enters, and the transfer lives only for this move,
        // inside `critical`.
        value.move_roots(&unsafe { crate::Transfer::within(entry.callee, critical) });
    }
}

/// Gives every `RRef` in `value` to the running domain: what a proxy does
/// with a call's arguments once inside the callee, and with its result
/// once back in the caller. Requires the proxy's entry capability (no
/// other code holds one), since re-owning what one holds only by reference
/// would let one's death free it under its owner. The proxy checked
/// [`movable`] first.
#[inline]
pub fn receive<T: crate::Exchangeable + ?Sized>(entry: &EntryCap, value: &T) {
    let _ = entry;
    if !T::PLAIN {
        // The whole tree in one critical section: unwound half-way (the
        // watchdog, or any fault the kernel raises in the running domain
        // at a timer tick), a move would leave part of the tree with its
        // old owner. A root given to a callee that then dies would free
        // the root and strand the nested objects still listed under the
        // caller (a leak); a result half given back would leave nested
        // objects listed under the dead callee, freed by its reclaim
        // while the caller's root still points at them. The section is
        // bounded by the value's type (no `Exchangeable` type is
        // recursive) and the kernel resumes unwinding right after it.
        let (critical, here) = InCritical::enter_here();
        // SAFETY: proxies move what they hold by value: a call's arguments
        // (moved into the closure that runs in the callee) or its result;
        // the transfer lives only for these moves, inside `critical`.
        value.move_roots(&unsafe { crate::Transfer::within(here, &critical) });
    }
}

/// `Err(RpcError::Lent)` if some `RRef` in `value` is lent (to a call its
/// lender abandoned): such a value must not change hands, since the owner
/// it would get could free it while that call's callee still reads it.
#[inline]
pub fn movable<T: crate::Exchangeable + ?Sized>(value: &T) -> RpcResult<()> {
    if !T::PLAIN && value.any_lent() {
        return Err(RpcError::Lent);
    }
    Ok(())
}

/// What a generated proxy does with a synchronous method's result, back in
/// the caller (the entry restored it): the result's `RRef`s become the
/// caller's, unless one is lent (the callee abandoned a call lending it):
/// then it stays the callee's and the call fails with `Lent`. The callee's
/// `RpcResult` is returned as it is (for a plain value, nothing to do).
#[inline(always)]
pub fn returned<T: crate::Exchangeable>(entry: &EntryCap, result: RpcResult<T>) -> RpcResult<T> {
    if !T::PLAIN
        && let Ok(value) = &result
    {
        if value.any_lent() {
            core::mem::forget(result);
            return lent();
        }
        receive(entry, value);
    }
    result
}

/// `Err(RpcError::Lent)`, out of line (so that the error's value is not
/// made ready on the path that does not need it).
#[cold]
#[inline(never)]
fn lent<T>() -> RpcResult<T> {
    Err(RpcError::Lent)
}

/// The one body of every entry a proxy makes: runs `f` as `callee` from a
/// `cont::RawCall` slot. `f` reports through [`Moved`] when its arguments
/// became the callee's; with `drop_unmoved`, if the entry fails before
/// that, `f` (still holding them: its copy on the abandoned stack was
/// never dropped) is dropped here, in the caller. Otherwise, and always
/// once moved, it is never dropped: it may hold a dead callee's memory.
///
/// Always inlined, so that the closure is built right in the slot, by the
/// proxy method itself, and `run` finds it at a fixed offset (no pointer
/// to store and load). (Passed by value to a call that was not inlined,
/// the closure was once copied with 16-byte loads of what the caller had
/// just written with 8-byte stores: a store-to-load forwarding stall on
/// every call. `run` reads it where it is written.)
///
/// What it returns is `ok` of the closure's value, or `failed` of the
/// entry's error and whether the closure reported its arguments moved
/// (the two built apart, so that a caller wanting the
/// closure's own `RpcResult` back gets it as it is, not wrapped in another
/// and taken out again).
#[inline(always)]
fn call_in<R, F: FnOnce(Moved<'_>) -> R, O>(
    callee: Owner,
    gate: Option<&'static cont::Gate>,
    f: F,
    drop_unmoved: bool,
    ok: impl FnOnce(R) -> O,
    failed: impl FnOnce(RpcError, bool) -> O,
) -> O {
    // As in `call_as`, with the flag the closure sets once its arguments
    // are the callee's.
    #[repr(C)]
    struct Slot<F, R> {
        raw: cont::RawCall,
        /// Written by `run` once the closure returned: an `Ok(())` entry
        /// says it was (see `Runtime`'s contract).
        result: core::mem::MaybeUninit<R>,
        moved: core::cell::Cell<bool>,
        /// Moved out by `run` (or dropped here, see above).
        f: core::mem::ManuallyDrop<F>,
    }
    unsafe extern "C-unwind" fn run<F: FnOnce(Moved<'_>) -> R, R>(raw: *mut cont::RawCall) {
        // SAFETY: `raw` is the start of a `Slot<F, R>` (`repr(C)`), live
        // for the call, run at most once (the runtime's contract, see
        // `Runtime::enter_raw`): `f` is moved out once; `done` is called
        // from `run`, as it requires.
        unsafe {
            let slot = &mut *(raw as *mut Slot<F, R>);
            let f = core::mem::ManuallyDrop::take(&mut slot.f);
            slot.result.write(f(Moved::new(&slot.moved)));
            slot.raw.done();
        }
    }
    let mut slot = Slot::<F, R> {
        raw: cont::RawCall::new(run::<F, R>),
        result: core::mem::MaybeUninit::uninit(),
        moved: core::cell::Cell::new(false),
        f: core::mem::ManuallyDrop::new(f),
    };
    let entered = match gate {
        // SAFETY: the slot starts with its `RawCall`, lives across the
        // call, and `run` matches its types; the gate is the callee's, as
        // the runtime gave it for the capability (see `enter_inline`).
        Some(gate) => unsafe { enter_inline(gate, callee, &raw mut slot.raw) },
        None => {
            // Objects the kernel exports, and host runtimes without gates:
            // laid out of the way of the inline entry.
            core::hint::cold_path();
            // SAFETY: as above.
            unsafe { runtime().enter_raw(callee, &raw mut slot.raw) }
        }
    };
    let error = match entered {
        // SAFETY: an `Ok` entry means `run` returned (the contract of
        // `Runtime`, an unsafe trait), and `run` wrote the result.
        Ok(()) => return ok(unsafe { read_by_words(slot.result.as_ptr()) }),
        Err(error) => error,
    };
    if drop_unmoved && !slot.moved.get() {
        // The arguments are still the caller's: the closure never ran, or
        // its copy was abandoned, without drops, on a stack the failure
        // discarded before it moved them.
        // SAFETY: intact (see above), dropped once (`run` did not take it,
        // or took a copy that was abandoned undropped).
        unsafe { core::mem::ManuallyDrop::drop(&mut slot.f) };
    }
    // Otherwise the closure (and whatever it built) may hold the callee's
    // objects, a dead domain's memory: it is never dropped.
    failed(error, slot.moved.get())
}

/// A domain entry made by the proxy itself, through the callee's gate
/// ([`Runtime::gate`]): the gate checks that `callee` is its open
/// incarnation, makes it the running one (this crate's per-core owner
/// word), links a frame with the watchdog budget and room for the
/// runtime's fault record, runs `call` under `cont::call`, and restores
/// both words. The same steps as the kernel's own entry, without the
/// indirect call into the runtime: `Ok(())` only once `run` returned.
///
/// # Safety
/// As for [`Runtime::enter_raw`]; `gate` is the one the installed runtime
/// gave for `callee` (whose contract makes these steps a complete entry).
#[inline(always)]
unsafe fn enter_inline(
    gate: &'static cont::Gate,
    callee: Owner,
    call: *mut cont::RawCall,
) -> Result<(), RpcError> {
    // SAFETY: `BUDGET` always points at a static word.
    let budget = unsafe { &*BUDGET.load(Ordering::Acquire) }.load(Ordering::Relaxed);
    // SAFETY: forwarded; the failure path writes its record into the
    // frame's `FaultRoom` (the runtime's contract) before resuming it.
    unsafe {
        gate.enter_raw_with(
            &crate::percpu::ThisCore,
            callee,
            budget,
            call,
            not_alive,
            entry_failed,
        )
    }
}

/// A refused inline entry (out of line, off the path of a call that
/// returns).
#[cold]
#[inline(never)]
fn not_alive() -> RpcError {
    RpcError::DomainNotAlive
}

/// A failed inline entry: tells the runtime (out of line, as above).
#[cold]
#[inline(never)]
fn entry_failed(fault: &FaultRoom, callee: Owner) -> RpcError {
    // SAFETY: `fault` is the payload of the frame the failure resumed.
    unsafe { runtime().entry_failed(callee, fault) };
    RpcError::DomainCrashed
}

/// Reads a `T` that was just written, one 8-byte word at a time. The
/// callee's result reaches its slot as a register pair (two 8-byte
/// stores); the compiler copies it out with one 16-byte load, which
/// store-to-load forwarding cannot serve from two stores: the load waits
/// for both to reach the cache (tens of cycles on AMD Zen 4, seen as the
/// `RRef` round trip costing twice its instructions' worth). Word loads
/// are served from any store that covers them.
///
/// # Safety
/// As for `ptr::read`.
#[inline(always)]
pub(crate) unsafe fn read_by_words<T>(src: *const T) -> T {
    if !size_of::<T>().is_multiple_of(8) || align_of::<T>() < 8 || size_of::<T>() > 64 {
        // SAFETY: forwarded.
        return unsafe { src.read() };
    }
    let mut out = core::mem::MaybeUninit::<T>::uninit();
    let words = size_of::<T>() / 8;
    for i in 0..words {
        // SAFETY: within `T`, 8-byte aligned. Words are copied as
        // `MaybeUninit<u64>`, which may hold any bytes, padding included
        // (a plain `u64` read of padding would be undefined).
        unsafe {
            type Word = core::mem::MaybeUninit<u64>;
            let word = core::ptr::read_volatile((src as *const Word).add(i));
            (out.as_mut_ptr() as *mut Word).add(i).write(word);
        }
    }
    // SAFETY: every byte was copied from a valid `T`.
    unsafe { out.assume_init() }
}

/// [`call`] for this crate's own code, which keeps the callee of a call a
/// proxy started ([`crate::RpcFuture`]). The closure is never dropped
/// here, whether it ran or not (it may hold the callee's objects).
#[inline]
pub(crate) fn call_as<R, F: FnOnce() -> R>(
    callee: Owner,
    gate: Option<&'static cont::Gate>,
    f: F,
) -> RpcResult<R> {
    // (`call_in` never drops it without `drop_unmoved`.)
    call_in(
        callee,
        gate,
        move |_: Moved<'_>| f(),
        false,
        Ok,
        |error, _| Err(error),
    )
}

/// [`call_as`] for a closure that moves a call's arguments to the callee
/// (through the [`Moved`] it is given): a failed entry's error comes with
/// whether they were moved (if not, they are still the caller's). The
/// closure is never dropped here.
#[inline]
pub(crate) fn call_moving<R, F: FnOnce(Moved<'_>) -> R>(
    callee: Owner,
    gate: Option<&'static cont::Gate>,
    f: F,
) -> Result<R, (RpcError, bool)> {
    call_in(callee, gate, f, false, Ok, |error, moved| {
        Err((error, moved))
    })
}

/// Whether `waker` is one the runtime passes to callees as it is
/// ([`Runtime::trusted_wakers`]).
#[inline(always)]
pub(crate) fn waker_trusted(waker: &core::task::Waker) -> bool {
    // Relaxed: published before `RUNTIME` (release), which every proxy
    // call has read (acquire) before it polls; a stale null only means
    // asking the runtime.
    ptr::eq(waker.vtable(), TRUSTED_WAKERS.load(Ordering::Relaxed))
}

/// See [`Runtime::callee_waker`].
#[inline]
pub(crate) fn callee_waker(waker: &core::task::Waker) -> Option<core::task::Waker> {
    if waker_trusted(waker) {
        return None;
    }
    runtime().callee_waker(waker)
}

/// Tells the runtime that the running task is suspended on a call into
/// `callee` (so it is woken if `callee` dies).
pub(crate) fn suspended(callee: Owner, waker: &core::task::Waker) {
    runtime().suspended(callee, waker);
}
