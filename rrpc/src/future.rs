//! [`RpcFuture`]: what every `async fn` of an `#[interface]` trait returns,
//! whether the object behind the trait is the implementation itself or a
//! generated proxy for it.

use alloc::boxed::Box;
use core::future::Future;
use core::marker::PhantomPinned;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::{Exchangeable, Owner, RpcError, RpcResult};

/// The callee's own future, boxed on its heap.
pub type BoxedFuture<'a, T> = Pin<Box<dyn Future<Output = RpcResult<T>> + Send + 'a>>;

/// The future of one `async fn` call on an interface.
///
/// An implementation makes one with [`RpcFuture::new`] (which boxes its
/// future, on its own heap) or [`RpcFuture::failed`]. A generated proxy
/// returns one that holds the call itself (the callee's object and the
/// arguments, a few words kept inline: no allocation) and is marked with
/// the callee. Each poll of it is one entry into the callee: the first
/// calls the implementation's method there and polls the future it
/// returns, and the poll that finds that future ready also drops it there.
/// So a proxied call whose callee is ready at once costs one entry and one
/// box (the callee's, as without a proxy). If the callee dies, the future
/// completes with the error, and the callee's future (or the call not yet
/// started) is forgotten: never polled or dropped again (its memory went
/// with the callee's heap). Dropping a proxied future that is still
/// running drops the callee's part inside the callee.
///
/// It is `!Unpin`: `.await` it, or pin it (`core::pin::pin!`, `Box::pin`)
/// to poll it by hand. The first time a proxied call is left pending, the
/// callee's future moves into a *cell* on the callee's heap, and the cell
/// is registered with the runtime on behalf of the calling domain
/// ([`Runtime::park`]), so that if that domain dies mid-call the kernel can
/// still drop the callee's future inside the callee. The registration names
/// only callee memory: whatever the caller does with its own memory
/// (forget the future, pin it on a stack it then abandons by crashing),
/// the kernel never touches it on the caller's behalf.
///
/// [`Runtime::park`]: crate::proxy::Runtime::park
// `repr(C)`: an `RpcFuture` made by one separately built image is read by
// another's copy of this crate, so its layout must not depend on the build.
#[must_use = "futures do nothing unless you `.await` or poll them"]
#[repr(C)]
pub struct RpcFuture<'a, T> {
    /// The callee's future, once started and until it completes.
    future: Option<BoxedFuture<'a, T>>,
    /// 0: the future is polled as it is (the caller is its domain); else
    /// the domain incarnation every poll and the drop enter.
    callee: Owner,
    /// Why the call failed before it had a future (0: it did not).
    error: u16,
    /// [`IN_CELL`]: the callee's future lives in a cell on the callee's
    /// heap (its address in `words[1]`), not in `future`; [`REGISTERED`]:
    /// the cell is registered with the runtime (the caller's owner id in
    /// `words[0]`), see [`Runtime::park`].
    ///
    /// [`Runtime::park`]: crate::proxy::Runtime::park
    cell: u8,
    /// The callee's gate, if its entries are made inline (see
    /// `EntryCap::new`).
    gate: Option<&'static cont::Gate>,
    /// A proxied call not started yet: moves the closure out of `words`
    /// and runs it. (Kept as separate fields, read in place: copying the
    /// future whole right after it was written field by field stalls
    /// store-to-load forwarding.)
    run: Option<unsafe fn(*mut Words, crate::proxy::Moved<'_>) -> RpcFuture<'a, T>>,
    /// Moves the closure out of `words` and drops it, in the caller: a
    /// call that never started holds only the caller's arguments (they
    /// move to the callee when it starts, inside the callee) and a
    /// reference to the proxy. A no-op if nothing is deferred.
    discard: unsafe fn(*mut Words),
    /// The deferred call: the callee's object and the arguments, a
    /// type-erased `FnOnce() -> RpcFuture<'a, T>` (`Send`: [`start`] only
    /// stores `Send` closures, which is what makes `RpcFuture` `Send`).
    words: Words,
    /// A proxied future's address is registered while it is pending.
    _pinned: PhantomPinned,
}

/// Words of a deferred call (the callee's object and the arguments) kept
/// inline; a larger call is boxed, and the box kept here.
const INLINE: usize = 3;

type Words = [MaybeUninit<usize>; INLINE];

const EMPTY: Words = [MaybeUninit::uninit(); INLINE];

/// See [`RpcFuture::cell`].
const IN_CELL: u8 = 1;
const REGISTERED: u8 = 2;
/// Registration was tried (the runtime may refuse it: its bound).
const TRIED: u8 = 4;

/// Where a parked callee future lives: on the callee's heap.
type Cell<'a, T> = BoxedFuture<'a, T>;

/// `discard` when nothing is deferred.
unsafe fn nothing(_: *mut Words) {}

impl<'a, T> RpcFuture<'a, T> {
    /// Boxes `future` (on the running domain's heap).
    #[inline]
    pub fn new(future: impl Future<Output = RpcResult<T>> + Send + 'a) -> Self {
        Self::from(Box::pin(future) as BoxedFuture<'a, T>)
    }

    /// A call that failed before it started: the first poll returns `error`.
    pub const fn failed(error: RpcError) -> Self {
        RpcFuture {
            future: None,
            callee: Owner::KERNEL,
            error: encode(error),
            cell: 0,
            gate: None,
            run: None,
            discard: nothing,
            words: EMPTY,
            _pinned: PhantomPinned,
        }
    }

    /// The domain incarnation polls enter (0: none, polled in place).
    pub fn callee(&self) -> Owner {
        self.callee
    }

    /// The cell's address (see [`cell`](Self::cell)).
    fn cell_ptr(&self) -> *mut Cell<'a, T> {
        // SAFETY: written when the cell was made (`IN_CELL` is set).
        unsafe { self.words[1].assume_init() as *mut Cell<'a, T> }
    }

    /// Ends the cell's registration, if any (from any domain's context: it
    /// names the caller and the cell).
    fn unregister(&mut self) {
        if self.cell & REGISTERED != 0 {
            self.cell &= !REGISTERED;
            // SAFETY: `words[0]` holds the caller written at registration.
            let caller = Owner::from_bits(unsafe { self.words[0].assume_init() } as u32);
            // SAFETY: this is the registration `register` made.
            unsafe { crate::proxy::unpark(caller, self.cell_ptr() as *mut ()) };
        }
    }

    /// The slow part of dropping: something is left, and it belongs to the
    /// callee.
    #[cold]
    #[inline(never)]
    fn drop_slow(&mut self) {
        let future = self.future.take();
        if self.callee == Owner::KERNEL {
            drop(future); // an implementation's own future (never deferred)
            return;
        }
        if self.run.take().is_some() {
            // Never started: the arguments are still the caller's.
            // SAFETY: the closure is still in `words` (not run) and is
            // moved out once.
            unsafe { (self.discard)(&raw mut self.words) };
        }
        // Dropping the callee's future runs the callee's code: an entry,
        // forgotten if the callee is dead. A cell is unregistered inside
        // the entry before it is freed, so that a death of the caller
        // after the entry never leaves the kernel a freed cell to drop.
        let in_cell = self.cell & IN_CELL != 0;
        if future.is_some() || in_cell {
            let this = &mut *self;
            let entered = crate::proxy::call_as(this.callee, this.gate, || {
                drop(future);
                if in_cell {
                    this.unregister();
                    // SAFETY: the cell is on the callee's heap (we are
                    // inside it) and freed once (`IN_CELL` cleared).
                    drop(unsafe { Box::from_raw(this.cell_ptr()) });
                    this.cell = 0;
                }
            });
            if entered.is_err() {
                // The callee is dead: its memory went with it.
                self.unregister();
                self.cell = 0;
            }
        }
    }
}

impl<'a, T> From<BoxedFuture<'a, T>> for RpcFuture<'a, T> {
    #[inline]
    fn from(future: BoxedFuture<'a, T>) -> Self {
        RpcFuture {
            future: Some(future),
            callee: Owner::KERNEL,
            error: 0,
            cell: 0,
            gate: None,
            run: None,
            discard: nothing,
            words: EMPTY,
            _pinned: PhantomPinned,
        }
    }
}

const fn encode(error: RpcError) -> u16 {
    match error {
        RpcError::DomainCrashed => 1,
        RpcError::DomainNotAlive => 2,
        RpcError::OutOfMemory => 3,
        RpcError::NoSuchDomain => 4,
        RpcError::NoSuchInterface => 5,
        RpcError::Lent => 6,
    }
}

fn decode(code: u16) -> RpcError {
    match code {
        1 => RpcError::DomainCrashed,
        3 => RpcError::OutOfMemory,
        4 => RpcError::NoSuchDomain,
        5 => RpcError::NoSuchInterface,
        6 => RpcError::Lent,
        // Not alive, or polled again after it completed.
        _ => RpcError::DomainNotAlive,
    }
}

impl<'a, T: Exchangeable + 'a> Future for RpcFuture<'a, T> {
    type Output = RpcResult<T>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RpcResult<T>> {
        // SAFETY: nothing is moved out of the pinned value: the callee's
        // future is pinned in its own box, and a deferred call is moved out
        // of `words` (never pinned) to run. The address stays put while
        // pinned, which is what `park` registers.
        let this = unsafe { self.get_unchecked_mut() };
        if this.callee != Owner::KERNEL {
            return this.poll_proxied(cx);
        }
        let Some(future) = this.future.as_mut() else {
            return Poll::Ready(Err(decode(this.error)));
        };
        let polled = future.as_mut().poll(cx);
        if polled.is_ready() {
            this.future = None;
        }
        polled
    }
}

impl<'a, T: Exchangeable + 'a> RpcFuture<'a, T> {
    /// One entry into the callee: start the call if it is deferred, poll
    /// the callee's future and, if it is ready, drop it there too. (Out of
    /// line: it keeps `poll`, whose direct path every implementation's own
    /// future takes, small enough to inline.)
    #[inline(never)]
    fn poll_proxied(&mut self, cx: &mut Context<'_>) -> Poll<RpcResult<T>> {
        if self.future.is_none() && self.run.is_none() && self.cell & IN_CELL == 0 {
            return Poll::Ready(Err(decode(self.error)));
        }
        // Only wakers the runtime vouches for reach the callee (see
        // `Runtime::callee_waker`): the executor's pass as they are (one
        // comparison), any other is replaced, on a path of its own.
        if !crate::proxy::waker_trusted(cx.waker()) {
            return self.poll_replacing(cx.waker());
        }
        self.poll_with(cx.waker())
    }

    /// [`poll_proxied`](Self::poll_proxied) with a waker the runtime may
    /// replace.
    #[cold]
    #[inline(never)]
    fn poll_replacing(&mut self, waker: &core::task::Waker) -> Poll<RpcResult<T>> {
        let replaced = crate::proxy::callee_waker(waker);
        self.poll_with(replaced.as_ref().unwrap_or(waker))
    }

    /// One entry into the callee, polling with `waker` (one the runtime
    /// vouches for).
    #[inline(always)]
    fn poll_with(&mut self, waker: &core::task::Waker) -> Poll<RpcResult<T>> {
        let (callee, gate) = (self.callee, self.gate);
        let this = &mut *self;
        // What belongs to the callee stays where a crash leaves it to be
        // forgotten: the callee's future is in `future`, in its cell or (on
        // its first poll) in a local of this closure while it is polled,
        // and a failed entry abandons the closure's frame (with anything
        // it was building) without dropping anything. The entry's `Moved`
        // is set (in one critical section with the moves) once the
        // deferred call's arguments are the callee's; until then a failed
        // entry leaves them to the caller, in `words`.
        let polled = crate::proxy::call_moving(callee, gate, |moved| {
            let in_cell = this.cell & IN_CELL != 0;
            let mut cx = Context::from_waker(waker);
            if in_cell {
                // SAFETY: the cell is on the callee's heap, and we are
                // inside the (alive) callee.
                let future = unsafe { &mut *this.cell_ptr() };
                let result = ready(future.as_mut().poll(&mut cx))?;
                // Unregistered before it is freed (see `drop_slow`).
                this.unregister();
                // SAFETY: freed once, inside the callee.
                drop(unsafe { Box::from_raw(this.cell_ptr()) });
                this.cell = 0;
                return Some(result);
            }
            let Some(run) = this.run else {
                let future = this.future.as_mut()?;
                let result = ready(future.as_mut().poll(&mut cx));
                if result.is_some() {
                    this.future = None;
                } else {
                    // Left pending for the first time (it was started
                    // while the caller's copy was inside an entry of its
                    // own, see `Deferred`): into a cell, as below.
                    let future = this.future.take();
                    this.park_in_cell(future);
                }
                return result;
            };
            // SAFETY: the closure is in `words`, moved out once: `run` is
            // cleared as soon as it returns, and a failure before leaves
            // the closure (if it did not move the arguments) to `discard`.
            // Built in place: a copy of the returned future would read
            // wide what was just written narrow (a store-to-load
            // forwarding stall).
            let mut started = ManuallyDrop::new(unsafe { run(&mut this.words, moved) });
            this.run = None;
            if started.callee != Owner::KERNEL
                && (started.future.is_some() || started.run.is_some())
            {
                started = forwarded(started);
            }
            // Only `future` can be left in `started` (it is polled in
            // place), so it needs no drop.
            let Some(mut future) = started.future.take() else {
                return Some(Err(decode(started.error)));
            };
            match future.as_mut().poll(&mut cx) {
                // Ready at once: dropped here, inside the callee, never
                // stored in `self`.
                Poll::Ready(result) => Some(result),
                Poll::Pending => {
                    this.park_in_cell(Some(future));
                    None
                }
            }
        });
        match polled {
            Ok(Some(result)) => {
                if let Ok(value) = &result
                    && !T::PLAIN
                {
                    if value.any_lent() {
                        // Lent to a call the callee abandoned: it stays
                        // the callee's (see `proxy::movable`).
                        core::mem::forget(result);
                        self.error = encode(RpcError::Lent);
                        return Poll::Ready(Err(RpcError::Lent));
                    }
                    // Back in the caller: the result is the caller's,
                    // the whole tree at once (see `proxy::receive`).
                    let (critical, here) = crate::proxy::InCritical::enter_here();
                    // SAFETY: the future holds the result by value.
                    value.move_roots(&unsafe { crate::Transfer::within(here, &critical) });
                }
                Poll::Ready(result)
            }
            Ok(None) => {
                crate::proxy::suspended(callee, waker);
                if self.cell & (IN_CELL | TRIED) == IN_CELL {
                    self.register();
                }
                Poll::Pending
            }
            Err((error, moved)) => {
                self.unregister();
                // What is left belongs to a dead domain: never touch it.
                core::mem::forget(self.future.take());
                self.cell = 0;
                if self.run.take().is_some() && !moved {
                    // Never started, or failed before its arguments were
                    // moved (the copy it read was abandoned without
                    // drops): the call, and its arguments, are still the
                    // caller's.
                    // SAFETY: the call is still in `words`, moved out once.
                    unsafe { (self.discard)(&raw mut self.words) };
                }
                self.error = encode(error);
                Poll::Ready(Err(error))
            }
        }
    }

    /// Moves the callee's future, left pending for the first time, to a
    /// cell on the callee's heap (it runs inside the callee), which is
    /// what gets registered.
    fn park_in_cell(&mut self, future: Option<BoxedFuture<'a, T>>) {
        if let Some(future) = future {
            let cell = Box::into_raw(Box::new(future));
            self.words[1] = MaybeUninit::new(cell as usize);
            self.cell = IN_CELL;
        }
    }

    /// Registers the cell of this pending call with the runtime on behalf
    /// of the running domain, so that if that domain dies (its tasks are
    /// then never polled or dropped again) the kernel drops the callee's
    /// future inside the callee instead of leaving whatever it holds held.
    /// The registration names the cell, on the callee's heap, never the
    /// caller's memory. The kernel (owner 0) never dies and registers
    /// nothing. Tried once per call.
    #[cold]
    #[inline(never)]
    fn register(&mut self) {
        self.cell |= TRIED;
        let caller = crate::proxy::current();
        if caller == Owner::KERNEL {
            return;
        }
        /// What the kernel runs inside the callee once the caller is dead.
        ///
        /// # Safety
        /// `cell` is a registered cell (a `Box<Cell<'_, T>>` on the callee's
        /// heap), not freed yet (it is unregistered before it is freed).
        unsafe fn drop_cell<T>(cell: *mut ()) {
            // SAFETY: see above.
            drop(unsafe { Box::from_raw(cell as *mut Cell<'_, T>) });
        }
        self.words[0] = MaybeUninit::new(caller.to_bits() as usize);
        let parked = crate::proxy::Parked {
            caller,
            callee: self.callee,
            cell: self.cell_ptr() as *mut (),
            drop: drop_cell::<T>,
        };
        // SAFETY: the cell stays allocated until it is unregistered (every
        // path that frees it unregisters it first), and `drop_cell`
        // matches its type.
        if unsafe { crate::proxy::park(parked) } {
            self.cell |= REGISTERED;
        }
    }
}

/// `Some` of a ready poll's value.
#[inline(always)]
fn ready<R>(poll: Poll<R>) -> Option<R> {
    match poll {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

/// A callee's method returned a future that is itself proxied (it forwarded
/// another domain's call): boxed here, on the callee's heap, so polling it
/// in place still enters the next domain from here.
#[cold]
#[inline(never)]
fn forwarded<'a, T: Exchangeable + 'a>(
    mut started: ManuallyDrop<RpcFuture<'a, T>>,
) -> ManuallyDrop<RpcFuture<'a, T>> {
    // SAFETY: taken once; the husk is never used again.
    ManuallyDrop::new(RpcFuture::new(unsafe { ManuallyDrop::take(&mut started) }))
}

impl<T> Drop for RpcFuture<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.future.is_some() || self.run.is_some() || self.cell != 0 {
            self.drop_slow();
        }
    }
}

/// A call kept in an [`RpcFuture`] until its first poll.
trait Deferred<'a, T>: Sized {
    /// Runs it (inside the callee); it reports through `moved` when its
    /// arguments became the callee's.
    fn call(self, moved: crate::proxy::Moved<'_>) -> RpcFuture<'a, T>;
}

/// A call small enough to keep in the future's words.
struct Inline<F>(F);

impl<'a, T, F: FnOnce(crate::proxy::Moved<'_>) -> RpcFuture<'a, T>> Deferred<'a, T> for Inline<F> {
    fn call(self, moved: crate::proxy::Moved<'_>) -> RpcFuture<'a, T> {
        (self.0)(moved)
    }
}

/// A larger call, boxed on the caller's heap (one allocation, so that every
/// proxied call starts at its first poll whatever its arguments).
struct Boxed<F>(Box<F>);

impl<'a, T, F: FnOnce(crate::proxy::Moved<'_>) -> RpcFuture<'a, T>> Deferred<'a, T> for Boxed<F> {
    fn call(self, moved: crate::proxy::Moved<'_>) -> RpcFuture<'a, T> {
        // The box is freed before the call runs (and might crash with it
        // still allocated).
        let call = *self.0;
        call(moved)
    }
}

/// A proxied `async fn` call into the incarnation `entry` enters: `method`
/// calls the implementation's method, which runs inside the callee at the
/// first poll, like an `async` block's body. A `method` of at most three
/// words (the proxy's object slot and two words of arguments) is kept in the
/// future; a larger one is boxed on the caller's heap.
#[doc(hidden)]
#[inline]
pub fn start<'a, T, F>(entry: &crate::proxy::EntryCap, method: F) -> RpcFuture<'a, T>
where
    T: Exchangeable + 'a,
    F: FnOnce(crate::proxy::Moved<'_>) -> RpcFuture<'a, T> + Send + 'a,
{
    if size_of::<F>() <= size_of::<Words>() && align_of::<F>() <= align_of::<Words>() {
        deferred(entry, Inline(method))
    } else {
        deferred(entry, Boxed(Box::new(method)))
    }
}

#[inline]
fn deferred<'a, T, D: Deferred<'a, T> + Send>(
    entry: &crate::proxy::EntryCap,
    call: D,
) -> RpcFuture<'a, T> {
    const { assert!(align_of::<Words>() == align_of::<usize>()) };
    // Checked at run time (folded away): `start` picks `Inline` only for
    // calls that fit, but both of its branches are compiled for every call.
    assert!(size_of::<D>() <= size_of::<Words>() && align_of::<D>() <= align_of::<Words>());
    unsafe fn run<'a, T, D: Deferred<'a, T>>(
        words: *mut Words,
        moved: crate::proxy::Moved<'_>,
    ) -> RpcFuture<'a, T> {
        // SAFETY: `words` holds a `D` (written by `deferred`), moved out
        // once by the caller's contract.
        unsafe { (words as *mut D).read() }.call(moved)
    }
    unsafe fn discard<D>(words: *mut Words) {
        // SAFETY: as above.
        drop(unsafe { (words as *mut D).read() });
    }
    let mut future = RpcFuture {
        future: None,
        callee: entry.callee(),
        error: 0,
        cell: 0,
        gate: entry.gate(),
        run: Some(run::<T, D>),
        discard: discard::<D>,
        words: EMPTY,
        _pinned: PhantomPinned,
    };
    // SAFETY: `D` fits in `words` (checked above).
    unsafe { (&raw mut future.words as *mut D).write(call) };
    future
}
