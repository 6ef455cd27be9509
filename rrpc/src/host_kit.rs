//! The host test kit: what the kernel provides `rrpc` (a [`Backend`] for
//! the shared heap, a proxy [`Runtime`] for domain entries), modelled on
//! the host for tests of `rrpc` and of the crates that use it.
//!
//! - [`HostHeap`]: the shared heap over the system allocator; the running
//!   domain and core are per-thread ([`set_current`], [`set_core`]).
//! - [`HostRuntime`]: domain entry that contains panics the way the kernel
//!   contains crashes: a panic inside a callee marks that incarnation dead
//!   ([`RpcError::DomainCrashed`]), and later calls into it fail with
//!   [`RpcError::DomainNotAlive`] without running it. It counts entries
//!   per slot and keeps pending calls as the kernel does ([`Runtime::park`]).
//! - [`install`]: installs both (and makes this thread run as `caller`);
//!   [`cap`] makes the entry capability a generated proxy needs;
//!   [`block_on`] / [`poll_once`] drive `RpcFuture`s.
//!
//! Compiled for `rrpc`'s own tests and with the `host-kit` feature, which
//! only tests and host tools enable (as a dev-dependency): it needs `std`
//! and it forges entry capabilities ([`cap`]), which only the kernel's name
//! service may do in a real system.
//!
//! The registry is global: tests that run in parallel use their own owner
//! slots (see [`owner`]).

extern crate std;

use core::alloc::Layout;
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll, Waker};
use std::boxed::Box;
use std::cell::Cell;
use std::sync::Mutex;
use std::vec::Vec;

use crate::proxy::{EntryCap, Parked, Runtime, install_runtime};
use crate::{Backend, Owner, RpcError, install_backend};

std::thread_local! {
    /// Who entered the domain this thread runs as (the innermost entry).
    static CALLER: Cell<Owner> = const { Cell::new(Owner::KERNEL) };
}

/// How deep in critical sections this thread is now.
pub fn critical_depth() -> usize {
    crate::percpu::section_depth() as usize
}

/// Owner slots the runtime counts entries for.
pub const SLOTS: usize = 64;

/// The owner id of incarnation `generation` of slot `slot`.
pub const fn owner(slot: u32, generation: u32) -> Owner {
    Owner::new(slot as usize, generation)
}

/// The domain this thread runs as.
pub fn current() -> Owner {
    crate::percpu::owner()
}

/// Who entered the domain this thread runs as (see `Runtime::caller`).
pub fn caller() -> Owner {
    CALLER.with(|c| c.get())
}

/// Makes this thread run as `owner` (what a domain entry does).
pub fn set_current(owner: Owner) {
    crate::percpu::set_owner(owner);
}

/// Makes this thread play core `core` (for the registry's per-core batches;
/// 0 unless a test picks one; tests that hold batches pick indices no other
/// test uses).
pub fn set_core(core: usize) {
    crate::percpu::set_core(core);
}

/// The shared heap over the system allocator.
pub struct HostHeap;

impl Backend for HostHeap {
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: non-zero size (every RRef has a header).
        NonNull::new(unsafe { std::alloc::alloc(layout) })
    }
    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { std::alloc::dealloc(pointer.as_ptr(), layout) }
    }
    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        // No IOMMU on the host: a simulated device "DMAs" to the address
        // itself (tests of drivers check what they program with it).
        Some(pointer as u64)
    }
}

/// Domain entry on the host: runs the call as the callee on this thread and
/// contains its panics.
pub struct HostRuntime {
    /// Incarnations that crashed (or were killed).
    dead: Mutex<Vec<Owner>>,
    /// Entries per callee slot (tests run in parallel, each with its own).
    entries: [AtomicU32; SLOTS],
    /// Pending proxied calls registered by `park`, as the kernel keeps them.
    parked: Mutex<Vec<Parked>>,
}

impl HostRuntime {
    const fn new() -> HostRuntime {
        HostRuntime {
            dead: Mutex::new(Vec::new()),
            entries: [const { AtomicU32::new(0) }; SLOTS],
            parked: Mutex::new(Vec::new()),
        }
    }

    /// Entries into any incarnation of `slot` so far.
    pub fn entries(&self, slot: u32) -> u32 {
        self.entries[slot as usize].load(Ordering::SeqCst)
    }

    /// Whether `owner` crashed or was killed.
    pub fn is_dead(&self, owner: Owner) -> bool {
        self.dead.lock().unwrap().contains(&owner)
    }

    /// Marks `owner` dead (what killing a domain does): later calls into
    /// it fail without running it.
    pub fn kill(&self, owner: Owner) {
        let mut dead = self.dead.lock().unwrap();
        if !dead.contains(&owner) {
            dead.push(owner);
        }
    }

    /// The calls `caller` has pending.
    pub fn parked_by(&self, caller: Owner) -> Vec<Parked> {
        let parked = self.parked.lock().unwrap();
        parked
            .iter()
            .filter(|p| p.caller == caller)
            .copied()
            .collect()
    }

    /// What the kernel does once `caller` is dead and its tasks are gone:
    /// drops each of its pending calls' callee futures inside the callee.
    pub fn caller_died(&self, caller: Owner) {
        let orphans = {
            let mut parked = self.parked.lock().unwrap();
            let (orphans, rest) = parked.drain(..).partition(|p| p.caller == caller);
            *parked = rest;
            orphans
        };
        for orphan in orphans {
            // SAFETY: the registration's contract; nothing else uses the
            // caller's future any more.
            let _ = unsafe { self.enter(orphan.callee, &mut || (orphan.drop)(orphan.cell)) };
        }
    }
}

// SAFETY: `enter` returns `Ok` only when `catch_unwind` says `f` returned;
// `enter_raw` is the default (through `enter`).
unsafe impl Runtime for HostRuntime {
    // As the kernel's: the "executor's" wakers ([`task_waker`]) reach
    // callees as they are; any other is replaced with one of them.
    fn trusted_wakers(&self) -> Option<&'static core::task::RawWakerVTable> {
        Some(&TASK_WAKER)
    }
    fn callee_waker(&self, waker: &Waker) -> Option<Waker> {
        (!core::ptr::eq(waker.vtable(), &TASK_WAKER)).then(|| task_waker(0))
    }
    fn current(&self) -> Owner {
        current()
    }
    fn caller(&self) -> Owner {
        caller()
    }
    fn is_alive(&self, owner: Owner) -> bool {
        !self.is_dead(owner)
    }
    unsafe fn enter(&self, callee: Owner, f: &mut dyn FnMut()) -> Result<(), RpcError> {
        if self.is_dead(callee) {
            return Err(RpcError::DomainNotAlive);
        }
        self.entries[callee.slot() % SLOTS].fetch_add(1, Ordering::SeqCst);
        let previous = current();
        set_current(callee);
        let previous_caller = CALLER.with(|c| c.replace(previous));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        CALLER.with(|c| c.set(previous_caller));
        set_current(previous);
        result.map_err(|_| {
            self.kill(callee);
            RpcError::DomainCrashed
        })
    }
    unsafe fn park(&self, parked: Parked) -> bool {
        self.parked.lock().unwrap().push(parked);
        true
    }
    unsafe fn unpark(&self, caller: Owner, cell: *mut ()) {
        self.parked
            .lock()
            .unwrap()
            .retain(|p| !(p.caller == caller && p.cell == cell));
    }
}

/// The heap [`install`] installs.
pub static HEAP: HostHeap = HostHeap;
/// The runtime [`install`] installs.
pub static RUNTIME: HostRuntime = HostRuntime::new();

/// Installs [`HEAP`] and [`RUNTIME`] (once per process; later calls only
/// set the thread's domain) and makes this thread run as `caller`.
pub fn install(caller: Owner) {
    install_backend(&HEAP);
    install_runtime(&RUNTIME);
    set_current(caller);
}

/// The capability to enter `callee` (what the kernel's name service makes),
/// for a generated proxy's `new`.
pub fn cap(callee: Owner) -> EntryCap {
    // SAFETY: host tests only (this module is not built for domains): the
    // capability goes into a proxy for `callee`'s object, entered through
    // `RUNTIME`, which checks that `callee` is alive.
    unsafe { EntryCap::new(callee) }
}

/// The host's stand-in for the kernel executor's wakers: a task id, no
/// allocation; waking does nothing.
static TASK_WAKER: core::task::RawWakerVTable = core::task::RawWakerVTable::new(
    |data| core::task::RawWaker::new(data, &TASK_WAKER),
    |_| {},
    |_| {},
    |_| {},
);

/// The waker of host "task" `id` (one [`RUNTIME`] trusts).
pub fn task_waker(id: usize) -> Waker {
    // SAFETY: the vtable's functions do nothing with the data pointer (an
    // id, never dereferenced), and cloning makes the same waker.
    unsafe { Waker::from_raw(core::task::RawWaker::new(id as *const (), &TASK_WAKER)) }
}

/// Polls `future` once with the waker of task 0 (see [`task_waker`]).
pub fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(&task_waker(0)))
}

/// Polls `future` until it completes (at most `polls` times; panics after).
pub fn block_on<F: Future>(future: F, polls: usize) -> F::Output {
    let mut future = Box::pin(future);
    for _ in 0..polls {
        if let Poll::Ready(output) = poll_once(future.as_mut()) {
            return output;
        }
    }
    panic!("the future did not complete in {polls} polls");
}
