//! The shared-heap registry: which domain owns each `RRef`.
//!
//! Every `RRef` allocation starts with a [`Header`] (owner, borrow count,
//! list links, home shard). Every object, whether a root or nested inside
//! another `RRef`'s value, sits on the list of its owner's slot
//! (`owner.slot()`) in its *home shard*, so everything one domain owns is
//! found without scanning the heap: walk that slot's list in every shard.
//! Nested objects have their root's owner (a call moves a whole tree, see
//! `Exchangeable`), so a dead domain's objects are freed by walking its
//! list, as memory: no drop glue, no code of any domain, runs in
//! [`reclaim`], and no header keeps a pointer into any image.
//!
//! **Shards belong to cores.** An object's home shard is the core that
//! allocated it. A core's executor holds its own shard's lock for the
//! whole of each batch of task polls ([`enter_batch`] / [`leave_batch`]),
//! so inside tasks, registry work on objects homed on the running core
//! (allocation, a proxy moving an argument into a call and the result
//! back, drop) touches plain memory: no atomic read-modify-write, which
//! costs more than the whole rest of a move. Work on an object homed on
//! another core takes that shard's lock if it is free, and otherwise
//! leaves a request on the shard's lock-free queue (the owner word is
//! already right; the list position and any free wait for the next holder
//! of the lock, who drains the queue first). Whoever needs a consistent
//! view of every shard ([`owned_by`], [`reclaim`]) locks each in turn,
//! which waits for that core's batch to end: a grace period, as for the
//! executors' purge.
//!
//! The registry's fast paths run inside critical sections (see
//! [`percpu`](crate::percpu)): the kernel must not unwind a domain (its
//! watchdog) while that domain's core is half-way through a list update.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU16, AtomicU32, AtomicUsize, Ordering};

use spin::Once;

use crate::Owner;
use crate::exchangeable::NOT_IN_CRITICAL;
use owner::AtomicOwnerId;

const SLOTS: usize = 256;
/// The largest `RRef` allocation (header and value).
pub const MAX_OBJECT: usize = u32::MAX as usize;
/// Shards: one per core (cores beyond this many share shards and never
/// hold one; they take the slow path, still correct).
pub const SHARDS: usize = 64;

/// Where shared-heap memory comes from (the kernel's shared heap; on the
/// host, the system allocator), and what the registry needs from the
/// machine.
///
/// Every method that could leave memory untracked or stop the kernel from
/// unwinding a domain is `unsafe`: the kernel hands its backend to every
/// domain image (through `Kernel::rrpc_registry`), and only this crate,
/// trusted, may call them.
pub trait Backend: Sync {
    /// Memory for one object.
    ///
    /// # Safety
    /// The caller links what it gets to an owner's list before the running
    /// domain can be unwound (inside one critical section), or frees it: an
    /// allocation the registry does not know would outlive every domain.
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<u8>>;
    /// # Safety
    /// `pointer` came from `alloc` with this `layout` and is not used after.
    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout);
    /// Frees memory of a dead domain's object ([`reclaim`]): a bulk
    /// release that a backend with per-core caches should return to the
    /// shared pool at once. Default: [`free`](Self::free).
    ///
    /// # Safety
    /// As for [`free`](Self::free).
    unsafe fn free_reclaimed(&self, pointer: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { self.free(pointer, layout) }
    }
    /// The address a device uses for `pointer`, if it has one.
    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        let _ = pointer;
        None
    }
}

/// The backend installed (once) by [`install_backend`] or
/// [`install_remote`].
static INSTALLED: Once<&'static dyn Backend> = Once::new();

/// What [`backend`] gives before one is installed: every use is a bug
/// (what `backend()` always reported).
struct NoBackend;

impl Backend for NoBackend {
    unsafe fn alloc(&self, _: Layout) -> Option<NonNull<u8>> {
        no_backend()
    }
    unsafe fn free(&self, _: NonNull<u8>, _: Layout) {
        no_backend()
    }
}

#[cold]
fn no_backend() -> ! {
    panic!("rrpc: no shared heap installed")
}

static NO_BACKEND: &dyn Backend = &NoBackend;

/// The backend every registry operation uses: a thin pointer to either
/// [`NO_BACKEND`] or the value inside [`INSTALLED`], so that finding it is
/// one load (a `spin::Once` also tests its state on every use, twice per
/// proxied call that moves an `RRef`). Both targets are statics, never
/// written again once pointed to: whichever pointer a reader sees, what it
/// points to is a valid `&'static dyn Backend` (the release store that
/// publishes `INSTALLED`'s value comes after `call_once` wrote it;
/// readers acquire).
static BACKEND: AtomicPtr<&'static dyn Backend> =
    AtomicPtr::new(&raw const NO_BACKEND as *mut &'static dyn Backend);

/// Installs `backend` unless one is (once; later calls are ignored).
fn install(backend: &'static dyn Backend) {
    let installed: &'static &'static dyn Backend = INSTALLED.call_once(|| backend);
    BACKEND.store(
        installed as *const &'static dyn Backend as *mut &'static dyn Backend,
        Ordering::Release,
    );
}

/// Installs the shared heap (once; later calls are ignored).
pub fn install_backend(backend: &'static dyn Backend) {
    install(backend);
}

/// The registry as another copy of this crate reaches it: a separately
/// built domain image links its own copy of `rrpc`, whose statics (the
/// shards) are not the kernel's. The image's copy forwards every registry
/// update to the kernel's copy through this (see [`install_remote`]); the
/// kernel hands images [`LOCAL`].
pub trait Remote: Backend {
    /// Applies registry operation `op` ([`Remote`] codes are private to
    /// this crate: both sides are the same source) to the object at
    /// `header`.
    ///
    /// # Safety
    /// As for the operation: the caller holds the object, `header` is a
    /// live object header laid out by this crate's source.
    unsafe fn apply(&self, header: NonNull<u8>, op: u8);
}

static REMOTE: Once<&'static dyn Remote> = Once::new();

/// Makes this copy of the crate a client of another copy's registry and
/// shared heap (in a separately built domain image, the kernel's). Once;
/// later calls are ignored.
pub fn install_remote(remote: &'static dyn Remote) {
    REMOTE.call_once(|| remote);
    install(remote);
}

/// This copy's registry, for other copies ([`install_remote`]).
pub struct Local;

/// See [`Local`].
pub static LOCAL: Local = Local;

impl Backend for Local {
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded.
        unsafe { backend().alloc(layout) }
    }
    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { backend().free(pointer, layout) }
    }
    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        backend().device_address(pointer)
    }
}

impl Remote for Local {
    unsafe fn apply(&self, header: NonNull<u8>, op: u8) {
        let op = match op {
            0 => Op::Link,
            1 => Op::Sync,
            _ => Op::Free,
        };
        // SAFETY: forwarded; the other copy laid the header out from the
        // same source.
        unsafe { apply_here(header.cast(), op) }
    }
}

#[inline(always)]
pub(crate) fn backend() -> &'static dyn Backend {
    // SAFETY: `BACKEND` always points to one of two statics holding a
    // `&'static dyn Backend`, neither written again (see `BACKEND`).
    unsafe { *BACKEND.load(Ordering::Acquire) }
}

/// A registry critical section (see [`percpu::Section`](crate::percpu)).
pub(crate) type Critical = crate::percpu::Section;

/// Precedes every `RRef` value in its allocation.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) owner: AtomicOwnerId,
    pub(crate) borrows: AtomicU32,
    /// [`PENDING`] / [`FREE`]: requests on the home shard's queue.
    requests: AtomicU16,
    /// The shard whose lists hold it (fixed at allocation).
    home: u8,
    /// Links on a list of the home shard, and which slot's list
    /// ([`UNLISTED`] if none); only touched by the holder of the home
    /// shard's lock.
    listed: UnsafeCell<u16>,
    links: UnsafeCell<(*mut Header, *mut Header)>,
    /// [`CLEAN`], [`DIRTY`] or [`DIRTY_FREE`]: on the home shard's dirty
    /// chain (through `dirty_next`); only touched by the holder of the
    /// home shard's lock.
    dirty: UnsafeCell<u8>,
    dirty_next: UnsafeCell<*mut Header>,
    /// Next request on the home shard's queue.
    queued_next: AtomicPtr<Header>,
    /// The allocation's size and alignment.
    size: u32,
    align: u32,
}

// One cache line: the value that follows starts 64-byte aligned in a
// 64-byte-aligned allocation (what the docs promise drivers).
const _: () = assert!(core::mem::size_of::<Header>() == 64);

const PENDING: u16 = 1;
const FREE: u16 = 2;
const UNLISTED: u16 = u16::MAX;
const CLEAN: u8 = 0;
const DIRTY: u8 = 1;
/// Dirty, and freed by its holder: the flush frees the memory.
const DIRTY_FREE: u8 = 2;
/// Freed dirty objects a shard keeps before it flushes in the middle of a
/// batch (bounds the memory they hold). Objects that only moved do not
/// count: their flush is at the batch's end, once each, however often
/// they moved (a batch of 32 packets moved to a driver and back was
/// flushed every two calls when they counted).
const DIRTY_MAX: usize = 64;

impl Header {
    /// A header for an object owned by `owner`, homed on core `core`, on
    /// no list yet (see [`relink`]). The caller checked that `layout`'s
    /// size fits in 32 bits ([`MAX_OBJECT`]).
    pub(crate) fn new(owner: Owner, layout: Layout, core: usize) -> Header {
        Header {
            owner: AtomicOwnerId::new(owner),
            borrows: AtomicU32::new(0),
            requests: AtomicU16::new(0),
            home: (core % SHARDS) as u8,
            listed: UnsafeCell::new(UNLISTED),
            links: UnsafeCell::new((ptr::null_mut(), ptr::null_mut())),
            dirty: UnsafeCell::new(CLEAN),
            dirty_next: UnsafeCell::new(ptr::null_mut()),
            queued_next: AtomicPtr::new(ptr::null_mut()),
            size: layout.size() as u32,
            align: layout.align() as u32,
        }
    }
}

/// `count` and `bytes` are kept apart (`repr(C)`, `head` between them):
/// adjacent, the compiler updated both with one 16-byte load and store in
/// `detach`, which store-to-load forwarding cannot serve from the two
/// 8-byte stores `attach` had just made (an object allocated and freed in
/// one batch paid that stall every time).
#[derive(Clone, Copy)]
#[repr(C)]
struct List {
    count: usize,
    head: *mut Header,
    bytes: usize,
}

impl List {
    const EMPTY: List = List {
        count: 0,
        head: ptr::null_mut(),
        bytes: 0,
    };

    /// Puts `raw` at the head.
    ///
    /// # Safety
    /// The caller holds the shard lock; `raw` is live and on no list.
    unsafe fn attach(&mut self, raw: *mut Header) {
        // SAFETY: per the contract; the old head is a live member.
        unsafe {
            *(*raw).links.get() = (ptr::null_mut(), self.head);
            if !self.head.is_null() {
                (*(*self.head).links.get()).0 = raw;
            }
            self.count += 1;
            self.bytes += (*raw).size as usize;
        }
        self.head = raw;
    }

    /// Takes `raw` out.
    ///
    /// # Safety
    /// The caller holds the shard lock; `raw` is live and a member.
    unsafe fn detach(&mut self, raw: *mut Header) {
        // SAFETY: per the contract; neighbours are live members.
        unsafe {
            let (prev, next) = *(*raw).links.get();
            if prev.is_null() {
                self.head = next;
            } else {
                (*(*prev).links.get()).1 = next;
            }
            if !next.is_null() {
                (*(*next).links.get()).0 = prev;
            }
            *(*raw).links.get() = (ptr::null_mut(), ptr::null_mut());
            self.count -= 1;
            self.bytes -= (*raw).size as usize;
        }
    }
}

/// One core's share of the registry.
struct Shard {
    locked: AtomicBool,
    /// Cores waiting in [`Shard::lock`]: the shard's own core lets them
    /// go first before its next batch.
    waiting: AtomicU32,
    /// Requests from other cores (a stack through `queued_next`).
    queue: AtomicPtr<Header>,
    lists: UnsafeCell<[List; SLOTS]>,
    /// Objects whose list position lags behind their owner word (head, and
    /// how many of them are freed); only the lock holder touches it. See
    /// [`Shard::flush`].
    dirty: UnsafeCell<(*mut Header, usize)>,
}

// SAFETY: `lists` is only touched by the holder of `locked`; the rest is
// atomic.
unsafe impl Sync for Shard {}

/// Bytes on each slot's list of each shard, published by the shard's lock
/// holder after every change (plain stores: it is the only writer), so that
/// [`owned_bytes`] can sum them without taking any lock.
static PUBLISHED: [[AtomicUsize; SLOTS]; SHARDS] =
    [const { [const { AtomicUsize::new(0) }; SLOTS] }; SHARDS];
/// Shards that have held an object (one past the highest index).
static SHARDS_USED: AtomicUsize = AtomicUsize::new(0);

/// Per shard, set (by its own core only) while that core holds the lock
/// for a batch of task polls. Kept apart from the shards, one byte each,
/// so that the test every move makes ([`holds`]) indexes it directly.
static BATCH: [AtomicBool; SHARDS] = [const { AtomicBool::new(false) }; SHARDS];

static SHARD: [Shard; SHARDS] = [const {
    Shard {
        locked: AtomicBool::new(false),
        waiting: AtomicU32::new(0),
        queue: AtomicPtr::new(ptr::null_mut()),
        lists: UnsafeCell::new([List::EMPTY; SLOTS]),
        dirty: UnsafeCell::new((ptr::null_mut(), 0)),
    }
}; SHARDS];

impl Shard {
    /// This shard's index in [`SHARD`].
    fn index(&self) -> usize {
        (self as *const Shard as usize - SHARD.as_ptr() as usize) / core::mem::size_of::<Shard>()
    }

    /// Publishes the byte count of list `slot` (see [`PUBLISHED`]).
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn publish(&self, slot: usize) {
        // SAFETY: forwarded.
        unsafe { self.publish_as(self.index(), slot) }
    }

    /// [`publish`](Self::publish), given this shard's index (known to
    /// callers from an object's `home`, which saves computing it).
    ///
    /// # Safety
    /// The caller holds the lock; `index` is this shard's.
    #[inline]
    unsafe fn publish_as(&self, index: usize, slot: usize) {
        // SAFETY: per the contract.
        let bytes = unsafe { self.lists()[slot].bytes };
        // (In the copy that owns the registry: an image's copy forwards.)
        if SHARDS_USED.load(Ordering::Relaxed) <= index {
            SHARDS_USED.fetch_max(index + 1, Ordering::Relaxed);
        }
        PUBLISHED[index][slot].store(bytes, Ordering::Relaxed);
    }

    fn try_lock(&self) -> bool {
        !self.locked.load(Ordering::Relaxed)
            && self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Waits for the lock. A waiter is counted, so that the shard's own
    /// core, which takes the lock again a few instructions after letting
    /// go at the end of each batch, lets it have its turn first: without
    /// that, a core reclaiming a dead domain waited for another core's
    /// shard for minutes (under TCG, where the two virtual CPUs run as
    /// host threads that are rarely both running).
    fn lock(&self) {
        if self.try_lock() {
            return;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        while !self.try_lock() {
            core::hint::spin_loop();
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Lets go of the lock, then applies whatever was queued by cores
    /// that found it taken (so no request waits for a batch that may never
    /// come: a queuer retries the lock after queueing, and whoever lets go
    /// looks at the queue after letting go; with the fences one of the two
    /// sees the other).
    fn unlock(&self) {
        loop {
            self.locked.store(false, Ordering::Release);
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.queue.load(Ordering::Acquire).is_null() || !self.try_lock() {
                return;
            }
            // SAFETY: locked again.
            unsafe { self.drain() };
        }
    }

    /// The lists.
    ///
    /// # Safety
    /// The caller holds the lock and makes no other reference to them.
    #[allow(clippy::mut_from_ref)]
    unsafe fn lists(&self) -> &mut [List; SLOTS] {
        // SAFETY: per the contract.
        unsafe { &mut *self.lists.get() }
    }

    /// Applies every queued request.
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn drain(&self) {
        if self.queue.load(Ordering::Relaxed).is_null() {
            return;
        }
        let mut cursor = self.queue.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some(header) = NonNull::new(cursor) {
            // SAFETY: a queued header stays allocated until a drain frees
            // it (below); we hold the lock.
            unsafe {
                let object = header.as_ref();
                // Read the link before clearing the flags: once they are
                // clear, another core may queue it again.
                cursor = object.queued_next.load(Ordering::Acquire);
                let requests = object.requests.swap(0, Ordering::AcqRel);
                if requests & FREE == 0 {
                    self.sync(header);
                } else if *object.dirty.get() != CLEAN {
                    // Still on the dirty chain: the flush frees it.
                    *object.dirty.get() = DIRTY_FREE;
                } else {
                    self.unlist(header);
                    free_memory(header);
                }
            }
        }
    }

    /// Notes that `header`'s list position lags behind its owner word (or
    /// that it is freed, with `free`), to be fixed by [`flush`](Self::flush)
    /// before anyone else can look at the lists.
    ///
    /// # Safety
    /// The caller holds the lock for a batch; `header` is live, homed here.
    #[inline]
    unsafe fn mark_dirty(&self, header: NonNull<Header>, free: bool) {
        // SAFETY: per the contract.
        unsafe {
            let object = header.as_ref();
            let dirty = &mut *self.dirty.get();
            let state = *object.dirty.get();
            if state == CLEAN {
                *object.dirty_next.get() = dirty.0;
                dirty.0 = header.as_ptr();
            }
            if free && state != DIRTY_FREE {
                dirty.1 += 1; // freed objects on the chain
            }
            *object.dirty.get() = if free { DIRTY_FREE } else { DIRTY };
            if dirty.1 > DIRTY_MAX {
                self.flush();
            }
        }
    }

    /// Brings every dirty object's list position up to date (and frees
    /// the ones freed meanwhile).
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn flush(&self) {
        // SAFETY: per the contract; chained objects stay allocated until
        // this flush frees them.
        unsafe {
            let dirty = &mut *self.dirty.get();
            let mut cursor = dirty.0;
            *dirty = (ptr::null_mut(), 0);
            while let Some(header) = NonNull::new(cursor) {
                let object = header.as_ref();
                cursor = *object.dirty_next.get();
                let state = core::mem::replace(&mut *object.dirty.get(), CLEAN);
                if state == DIRTY_FREE {
                    self.unlist(header);
                    free_memory(header);
                } else {
                    self.sync(header);
                }
            }
        }
    }

    /// Puts `header` on the list its owner word says.
    ///
    /// # Safety
    /// The caller holds the lock; `header` is live and homed here.
    unsafe fn sync(&self, header: NonNull<Header>) {
        // SAFETY: per the contract.
        unsafe {
            let object = header.as_ref();
            let want = slot(object.owner.load(Ordering::Acquire)) as u16;
            let listed = &mut *object.listed.get();
            if *listed == want {
                return;
            }
            let lists = self.lists();
            let home = object.home as usize; // this shard's index
            if *listed != UNLISTED {
                lists[*listed as usize].detach(header.as_ptr());
                self.publish_as(home, *listed as usize);
            }
            if want != UNLISTED {
                lists[want as usize].attach(header.as_ptr());
                self.publish_as(home, want as usize);
            }
            *listed = want;
        }
    }

    /// Takes `header` off its list, if any.
    ///
    /// # Safety
    /// As for [`sync`](Self::sync).
    #[inline(always)]
    unsafe fn unlist(&self, header: NonNull<Header>) {
        // SAFETY: per the contract.
        unsafe {
            let listed = &mut *header.as_ref().listed.get();
            if *listed != UNLISTED {
                self.lists()[*listed as usize].detach(header.as_ptr());
                // (`home` is this shard's index.)
                self.publish_as(header.as_ref().home as usize, *listed as usize);
                *listed = UNLISTED;
            }
        }
    }
}

fn slot(owner: Owner) -> usize {
    owner.slot() % SLOTS
}

/// Returns an object's memory to the backend.
///
/// # Safety
/// Nobody references `header` any more; its value is dropped or moved out.
#[inline]
unsafe fn free_memory(header: NonNull<Header>) {
    // SAFETY: forwarded.
    unsafe { free_memory_with(header, false) }
}

/// [`free_memory`], as part of a reclaim if `reclaimed`.
///
/// # Safety
/// As for [`free_memory`].
#[inline]
unsafe fn free_memory_with(header: NonNull<Header>, reclaimed: bool) {
    // SAFETY: per the contract; the memory came from the backend with this
    // layout.
    unsafe {
        let object = header.as_ref();
        let layout = Layout::from_size_align_unchecked(object.size as usize, object.align as usize);
        core::ptr::drop_in_place(header.as_ptr());
        if reclaimed {
            backend().free_reclaimed(header.cast(), layout);
        } else {
            backend().free(header.cast(), layout);
        }
    }
}

/// Whether the running core (`core`) holds shard `home` for a batch.
#[inline]
fn holds(core: usize, home: usize) -> bool {
    core == home && BATCH[home].load(Ordering::Relaxed)
}

/// What to do with an object.
#[derive(Clone, Copy, PartialEq)]
#[repr(u8)]
enum Op {
    /// Put a new object on its owner's list.
    Link,
    /// Make its list position match its owner word (it just changed).
    Sync,
    /// Take it off its list and free its memory (the value is gone).
    Free,
}

/// Applies `op` to `header`: at once if the running core holds the home
/// shard or can lock it, else as a request on the home shard's queue.
///
/// # Safety
/// The caller holds the object (its handle, or the last reference to a
/// value being freed); `header` is live.
#[inline]
unsafe fn apply(header: NonNull<Header>, op: Op) {
    if let Some(remote) = REMOTE.get() {
        // SAFETY: forwarded to the copy that owns the registry.
        return unsafe { remote.apply(header.cast(), op as u8) };
    }
    // SAFETY: forwarded.
    unsafe { apply_here(header, op) }
}

/// [`apply`] on this copy's shards.
///
/// # Safety
/// As for [`apply`].
#[inline]
unsafe fn apply_here(header: NonNull<Header>, op: Op) {
    let critical = Critical::enter();
    // SAFETY: forwarded; inside `critical`.
    unsafe { apply_within(critical.core, header, op) }
}

/// [`apply_here`] inside a critical section the caller entered on core
/// `core`. The common case inline: a move (`Sync`) of an object homed on
/// the running core's shard while it holds it for a batch, which only
/// notes the object dirty (once per batch); the rest out of line.
///
/// # Safety
/// As for [`apply`]; the caller is in a critical section on core `core`.
#[inline(always)]
unsafe fn apply_within(core: usize, header: NonNull<Header>, op: Op) {
    // SAFETY: `header` is live.
    let object = unsafe { header.as_ref() };
    if holds(core, object.home as usize) {
        let home = &SHARD[object.home as usize];
        // SAFETY: we hold the shard for the batch (see `apply_slow`).
        unsafe {
            match op {
                // The holder of an object it moves never sees it freed
                // (`DIRTY_FREE`), so noting it dirty again is all there is
                // to do if it already is.
                Op::Sync => {
                    if *object.dirty.get() != DIRTY {
                        home.mark_dirty(header, false);
                    }
                    return;
                }
                Op::Link => return home.sync(header),
                Op::Free
                    if *object.dirty.get() == CLEAN
                        && object.requests.load(Ordering::Acquire) == 0 =>
                {
                    home.unlist(header);
                    return free_memory(header);
                }
                Op::Free => {}
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { apply_slow(core, header, op) }
}

/// [`apply_within`] for everything but a move in the running core's batch.
///
/// # Safety
/// As for [`apply_within`].
#[inline(never)]
unsafe fn apply_slow(core: usize, header: NonNull<Header>, op: Op) {
    // SAFETY: `header` is live.
    let object = unsafe { header.as_ref() };
    let home = &SHARD[object.home as usize];
    let held = holds(core, object.home as usize);
    if held {
        // Our own batch: nobody else looks at this shard's lists before we
        // flush (at the end of the batch at the latest), so only note it.
        // SAFETY: we hold the lock for the batch.
        unsafe {
            if op == Op::Free && object.requests.load(Ordering::Acquire) != 0 {
                // Queued by another core earlier: apply the queue first,
                // so the memory is never freed while queued.
                home.drain();
            }
            match op {
                // Cheap to do at once, and a clean object can be freed at
                // once (it is on no dirty chain).
                Op::Link => home.sync(header),
                Op::Free if *object.dirty.get() == CLEAN => {
                    home.unlist(header);
                    free_memory(header);
                }
                Op::Sync => home.mark_dirty(header, false),
                Op::Free => home.mark_dirty(header, true),
            }
        }
        return;
    }
    if home.try_lock() {
        // Nobody's batch: no dirty objects (batches flush as they end).
        // SAFETY: we hold the home shard's lock.
        unsafe {
            if op == Op::Free && object.requests.load(Ordering::Acquire) != 0 {
                home.drain();
            }
            match op {
                Op::Link | Op::Sync => home.sync(header),
                Op::Free => {
                    home.unlist(header);
                    free_memory(header);
                }
            }
        }
        home.unlock();
        return;
    }
    let flags = match op {
        Op::Link | Op::Sync => PENDING,
        Op::Free => PENDING | FREE,
    };
    if object.requests.fetch_or(flags, Ordering::AcqRel) & PENDING != 0 {
        return; // already queued: the drain reads the latest state
    }
    QUEUED.fetch_add(1, Ordering::Relaxed);
    let mut top = home.queue.load(Ordering::Relaxed);
    loop {
        object.queued_next.store(top, Ordering::Relaxed);
        match home.queue.compare_exchange_weak(
            top,
            header.as_ptr(),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => top = now,
        }
    }
    // The holder may have let go meanwhile (see `Shard::unlock`).
    core::sync::atomic::fence(Ordering::SeqCst);
    if home.try_lock() {
        // SAFETY: locked.
        unsafe { home.drain() };
        home.unlock();
    }
}

/// Puts the new object `header` on its owner's list, inside the critical
/// section the allocation entered (one section for both).
///
/// # Safety
/// The caller holds the object; `header` is live and on no list.
#[inline]
pub(crate) unsafe fn link_within(critical: &Critical, header: NonNull<Header>) {
    if let Some(remote) = REMOTE.get() {
        // SAFETY: forwarded to the copy that owns the registry.
        return unsafe { remote.apply(header.cast(), Op::Link as u8) };
    }
    // SAFETY: `header` is live.
    let object = unsafe { header.as_ref() };
    let home = object.home as usize;
    if holds(critical.core, home) {
        // The common case, inline: a new object (on no list) homed on the
        // shard this core holds for its batch goes on its owner's list.
        let want = slot(object.owner.load(Ordering::Relaxed));
        // SAFETY: we hold the shard; the object is new, on no list.
        unsafe {
            SHARD[home].lists()[want].attach(header.as_ptr());
            *object.listed.get() = want as u16;
            SHARD[home].publish_as(home, want);
        }
        return;
    }
    // SAFETY: forwarded; inside `critical`.
    unsafe { apply_within(critical.core, header, Op::Link) }
}

/// Takes the object off its list and frees its memory: its value is
/// already dropped or moved out.
///
/// # Safety
/// The caller holds the object's only handle and gives it up.
pub(crate) unsafe fn free(header: NonNull<Header>) {
    // SAFETY: forwarded.
    unsafe { apply(header, Op::Free) }
}

/// Notes a moved object dirty in its home shard, which the running core
/// holds for its batch: once per object and batch, out of line.
///
/// # Safety
/// As for [`Shard::mark_dirty`], on `SHARD[home]`.
#[inline(never)]
unsafe fn mark_moved(home: usize, header: NonNull<Header>) {
    // SAFETY: forwarded.
    unsafe { SHARD[home].mark_dirty(header, false) }
}

/// Gives `header` to `owner` (the caller moves the objects nested in its
/// value too). `critical_core` is the core of the registry critical
/// section the caller is in, or [`NOT_IN_CRITICAL`] (one is entered).
///
/// # Safety
/// `header` is a live header the caller holds; a `critical_core` other
/// than `NOT_IN_CRITICAL` is that of a section the caller is in.
#[inline(always)]
pub(crate) unsafe fn transfer(header: NonNull<Header>, owner: Owner, critical_core: usize) {
    // SAFETY: `header` is live.
    let object = unsafe { header.as_ref() };
    let current = object.owner.load(Ordering::Acquire);
    if current == owner {
        return;
    }
    object.owner.store(owner, Ordering::Release);
    if slot(current) == slot(owner) {
        return; // incarnations of one slot share a list
    }
    // The common case first, with no other test before it: a move inside
    // a section on the core that holds the object's home shard for its
    // batch (what `apply_within` does first, inline here). Neither test
    // below can matter when it holds: `NOT_IN_CRITICAL` is no shard's
    // index, and a copy of this crate that forwards to a remote registry
    // never holds a shard (`enter_batch` does nothing there).
    // (`home` is always below `SHARDS`: the modulo, one `and`, only
    // spares a bounds check.)
    let home = object.home as usize % SHARDS;
    if holds(critical_core, home) {
        // The holder of an object it moves never sees it freed
        // (`DIRTY_FREE`), so noting it dirty again is all there is to do
        // if it already is.
        // SAFETY: we hold the home shard for the batch, inside a section.
        unsafe {
            if *object.dirty.get() != DIRTY {
                mark_moved(home, header);
            }
        }
        return;
    }
    if critical_core == NOT_IN_CRITICAL {
        // SAFETY: forwarded.
        return unsafe { apply(header, Op::Sync) };
    }
    if let Some(remote) = REMOTE.get() {
        // SAFETY: forwarded to the copy that owns the registry.
        return unsafe { remote.apply(header.cast(), Op::Sync as u8) };
    }
    // SAFETY: forwarded; the caller is in a section on `critical_core`.
    unsafe { apply_slow(critical_core, header, Op::Sync) }
}

/// The running core takes its shard for a batch of task polls: until
/// [`leave_batch`], registry work on objects homed here takes no lock.
/// Applies what other cores queued meanwhile. Nothing for cores beyond
/// [`SHARDS`].
///
/// # Safety
/// Only the executor's loop may call it, at the start of a batch of task
/// polls on this core, pairing it with [`leave_batch`] (a domain that let
/// go of its core's shard in the middle of a batch would leave the batch's
/// unlocked registry work racing other cores).
pub unsafe fn enter_batch() {
    if INSTALLED.get().is_none() {
        return; // no shared heap yet: nothing to hold
    }
    if REMOTE.get().is_some() {
        // The registry is another copy's: this copy's shards hold nothing,
        // and are never held (which `transfer`'s fast path relies on).
        return;
    }
    let core = crate::percpu::core();
    if core >= SHARDS || BATCH[core].load(Ordering::Relaxed) {
        return;
    }
    let shard = &SHARD[core];
    let _critical = Critical::enter();
    // Cores waiting for this shard go first (see `Shard::lock`).
    while shard.waiting.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
    shard.lock();
    // SAFETY: locked.
    unsafe { shard.drain() };
    BATCH[core].store(true, Ordering::Relaxed);
}

/// Counts (or, with `false`, uncounts) a waiter for `core`'s shard, as
/// [`Shard::lock`] does (tests).
#[cfg(test)]
pub(crate) fn count_waiter(core: usize, waiting: bool) {
    if waiting {
        SHARD[core].waiting.fetch_add(1, Ordering::AcqRel);
    } else {
        SHARD[core].waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether `core` is in a batch (tests).
#[cfg(test)]
pub(crate) fn in_batch(core: usize) -> bool {
    BATCH[core].load(Ordering::Acquire)
}

/// Ends the running core's batch (see [`enter_batch`]).
///
/// # Safety
/// As for [`enter_batch`], at the end of the batch.
pub unsafe fn leave_batch() {
    if INSTALLED.get().is_none() {
        return;
    }
    let core = crate::percpu::core();
    if core >= SHARDS || !BATCH[core].load(Ordering::Relaxed) {
        return;
    }
    let shard = &SHARD[core];
    let _critical = Critical::enter();
    // SAFETY: we hold the lock for the batch.
    unsafe {
        shard.flush();
        shard.drain();
    }
    BATCH[core].store(false, Ordering::Relaxed);
    shard.unlock();
}

/// Requests waiting on `core`'s shard queue (diagnostics and tests; a
/// snapshot that is only exact while no core drains or queues).
pub fn queued_requests(core: usize) -> usize {
    let mut count = 0;
    let mut cursor = SHARD[core % SHARDS].queue.load(Ordering::Acquire);
    while let Some(header) = NonNull::new(cursor) {
        count += 1;
        // SAFETY: queued headers stay allocated until drained; the caller
        // accepts the snapshot's raciness (see above).
        cursor = unsafe { header.as_ref() }
            .queued_next
            .load(Ordering::Acquire);
    }
    count
}

/// Runs `f` on every shard in turn, locked and drained. The running core
/// lets go of its own batch meanwhile (so two cores doing this cannot wait
/// for each other).
fn each_shard(mut f: impl FnMut(&Shard)) {
    let core = crate::percpu::core();
    let was_held = core < SHARDS && holds(core, core);
    if was_held {
        // SAFETY: taken again below, before returning to the batch.
        unsafe { leave_batch() };
    }
    for shard in &SHARD {
        let _critical = Critical::enter();
        shard.lock();
        // SAFETY: locked.
        unsafe { shard.drain() };
        f(shard);
        shard.unlock();
    }
    if was_held {
        // SAFETY: given up above: the batch goes on holding its shard.
        unsafe { enter_batch() };
    }
}

static QUEUED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Requests queued for a busy home core since boot (diagnostics: how
/// often objects cross cores while their home is running a batch).
pub fn requests_queued() -> u64 {
    QUEUED.load(Ordering::Relaxed)
}

/// Applies every request still queued on any shard: afterwards every
/// object is on its owner's list and every freed one is back in the
/// backend. Waits for every core's current batch to end.
pub fn quiesce() {
    each_shard(|_| {});
}

/// (objects, bytes) of `RRef` roots owned by `owner`'s slot. Waits for
/// every core's current batch to end.
pub fn owned_by(owner: Owner) -> (usize, usize) {
    let (mut count, mut bytes) = (0, 0);
    each_shard(|shard| {
        // SAFETY: `each_shard` holds the lock.
        let list = unsafe { shard.lists() }[slot(owner)];
        count += list.count;
        bytes += list.bytes;
    });
    (count, bytes)
}

/// Frees every `RRef` object listed for `owner`'s slot (the dead
/// incarnation `owner`, and any older incarnation of the slot that still
/// had objects): memory only, with no drop glue, since no domain's code may
/// run on behalf of a dead one and exchangeable values need none (every
/// `RRef` nested in a value is listed under the same owner, so it is freed
/// here too). Returns (objects, bytes) freed. The caller guarantees that no
/// incarnation of the slot is alive and none of its code runs any more (the
/// kernel calls this after the domain's grace period, before a restart).
/// Waits for every core's current batch to end.
///
/// # Safety
/// No incarnation of `owner`'s slot is alive or runs code any more, and
/// nobody else holds an `RRef` listed under it (domains hold only their
/// own): every object listed under the slot is freed.
pub unsafe fn reclaim(owner: Owner) -> (usize, usize) {
    let (mut objects, mut bytes) = (0, 0);
    each_shard(|shard| {
        // SAFETY: `each_shard` holds the lock, so list members are live;
        // their owner is dead, so nobody else reaches them, and no request
        // is queued for them (the queue was drained, and only their dead
        // holder could queue one).
        unsafe {
            let list = &mut shard.lists()[slot(owner)];
            let mut cursor = list.head;
            while let Some(header) = NonNull::new(cursor) {
                cursor = (*header.as_ref().links.get()).1;
                list.detach(header.as_ptr());
                *header.as_ref().listed.get() = UNLISTED;
                objects += 1;
                bytes += header.as_ref().size as usize;
                free_memory_with(header, true);
            }
            shard.publish(slot(owner));
        }
    });
    (objects, bytes)
}

/// Bytes of `RRef` objects listed under `owner`'s slot, summed over every
/// shard without locks: what the kernel holds a domain's shared-heap quota
/// to. It lags behind moves still pending in a core's batch (at most a
/// few dozen objects per core) and is exact once every batch has ended.
pub fn owned_bytes(owner: Owner) -> usize {
    let used = SHARDS_USED.load(Ordering::Relaxed).min(SHARDS);
    PUBLISHED[..used]
        .iter()
        .map(|shard| shard[slot(owner)].load(Ordering::Relaxed))
        .sum()
}
