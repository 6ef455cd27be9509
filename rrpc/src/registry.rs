//! The shared-heap registry: which domain owns each `RRef`.
//!
//! Every `RRef` allocation starts with a [`Header`] (owner, borrow count,
//! drop glue, list links). Headers of objects owned by a domain sit on the
//! list of that domain's slot (`owner >> 16`), so everything one domain
//! owns is enumerated without scanning the heap. Objects nested inside
//! another `RRef` are on no list (owner [`NESTED`]): they belong to their
//! root.
//!
//! Moving an object between domains relinks its header under the two
//! lists' locks. Reclaiming a dead incarnation walks its slot's list. Both
//! are correct when several cores move objects at once; a move costs two
//! lock round-trips, which a later version can batch per core.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, Ordering};

use spin::{Mutex, Once};

use crate::Owner;

/// The owner of an object that lives inside another `RRef`.
pub const NESTED: Owner = u32::MAX;
const SLOTS: usize = 256;

/// Where shared-heap memory comes from (the kernel's shared heap; on the
/// host, the system allocator).
pub trait Backend: Sync {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>>;
    /// # Safety
    /// `pointer` came from `alloc` with this `layout` and is not used after.
    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout);
    /// The domain incarnation running now (new objects belong to it).
    fn current_owner(&self) -> Owner;
    /// The address a device uses for `pointer`, if it has one.
    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        let _ = pointer;
        None
    }
}

static BACKEND: Once<&'static dyn Backend> = Once::new();

/// Installs the shared heap (once; later calls are ignored).
pub fn install_backend(backend: &'static dyn Backend) {
    BACKEND.call_once(|| backend);
}

pub(crate) fn backend() -> &'static dyn Backend {
    *BACKEND.get().expect("rrpc: no shared heap installed")
}

/// Precedes every `RRef` value in its allocation.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) owner: AtomicU32,
    pub(crate) borrows: AtomicU32,
    /// Links on the owner slot's list; only touched under that list's lock.
    links: UnsafeCell<(*mut Header, *mut Header)>,
    pub(crate) layout: Layout,
    /// Drops the value and frees the allocation.
    pub(crate) destroy: unsafe fn(NonNull<Header>),
}

impl Header {
    pub(crate) fn new(owner: Owner, layout: Layout, destroy: unsafe fn(NonNull<Header>)) -> Header {
        Header {
            owner: AtomicU32::new(owner),
            borrows: AtomicU32::new(0),
            links: UnsafeCell::new((ptr::null_mut(), ptr::null_mut())),
            layout,
            destroy,
        }
    }
}

struct List {
    head: *mut Header,
    count: usize,
    bytes: usize,
}

// SAFETY: the raw pointers are only followed under the list's lock, and
// the headers they reach stay allocated while linked.
unsafe impl Send for List {}

static LISTS: [Mutex<List>; SLOTS] = [const {
    Mutex::new(List {
        head: ptr::null_mut(),
        count: 0,
        bytes: 0,
    })
}; SLOTS];

fn slot(owner: Owner) -> usize {
    (owner >> 16) as usize % SLOTS
}

/// Links `header` on `owner`'s list (nothing for `NESTED`).
///
/// # Safety
/// `header` is a live header on no list.
pub(crate) unsafe fn link(header: NonNull<Header>, owner: Owner) {
    if owner == NESTED {
        return;
    }
    let raw = header.as_ptr();
    let mut list = LISTS[slot(owner)].lock();
    // SAFETY: under the list lock; `raw` and the old head are live.
    unsafe {
        *(*raw).links.get() = (ptr::null_mut(), list.head);
        if !list.head.is_null() {
            (*(*list.head).links.get()).0 = raw;
        }
        list.count += 1;
        list.bytes += (*raw).layout.size();
    }
    list.head = raw;
}

/// Takes `raw` out of `list`, whose lock the caller holds.
///
/// # Safety
/// `raw` is live and a member of `list`.
unsafe fn detach(list: &mut List, raw: *mut Header) {
    // SAFETY: the caller holds the lock; neighbours are live list members.
    unsafe {
        let (prev, next) = *(*raw).links.get();
        if prev.is_null() {
            list.head = next;
        } else {
            (*(*prev).links.get()).1 = next;
        }
        if !next.is_null() {
            (*(*next).links.get()).0 = prev;
        }
        *(*raw).links.get() = (ptr::null_mut(), ptr::null_mut());
        list.count -= 1;
        list.bytes -= (*raw).layout.size();
    }
}

/// Removes `header` from the list of `owner` (nothing for `NESTED`).
///
/// # Safety
/// `header` is live and on `owner`'s list.
pub(crate) unsafe fn unlink(header: NonNull<Header>, owner: Owner) {
    if owner == NESTED {
        return;
    }
    let mut list = LISTS[slot(owner)].lock();
    // SAFETY: the caller guarantees membership; we hold the lock.
    unsafe { detach(&mut list, header.as_ptr()) };
}

/// Gives `header` to `owner`.
///
/// # Safety
/// `header` is a live root header (its current owner's list holds it).
pub(crate) unsafe fn transfer(header: NonNull<Header>, owner: Owner) {
    // SAFETY: `header` is live.
    let current = unsafe { header.as_ref() }.owner.load(Ordering::Acquire);
    if current == owner {
        return;
    }
    if slot(current) == slot(owner) && current != NESTED && owner != NESTED {
        // Same list (another incarnation of the same slot): no relink.
        // SAFETY: as above.
        unsafe { header.as_ref() }
            .owner
            .store(owner, Ordering::Release);
        return;
    }
    // SAFETY: the caller guarantees the list membership.
    unsafe {
        unlink(header, current);
        header.as_ref().owner.store(owner, Ordering::Release);
        link(header, owner);
    }
}

/// (objects, bytes) of `RRef` roots owned by `owner`'s slot.
pub fn owned_by(owner: Owner) -> (usize, usize) {
    let list = LISTS[slot(owner)].lock();
    (list.count, list.bytes)
}

/// Frees every `RRef` root owned by the dead incarnation `owner` (and
/// everything nested in them). Returns (roots, bytes) freed. The caller
/// guarantees no code of `owner` runs any more (the kernel calls this after
/// the domain's grace period).
pub fn reclaim(owner: Owner) -> (usize, usize) {
    let mut doomed: *mut Header = ptr::null_mut();
    let (mut roots, mut bytes) = (0, 0);
    {
        let mut list = LISTS[slot(owner)].lock();
        let mut cursor = list.head;
        while !cursor.is_null() {
            // SAFETY: under the lock, list members are live.
            unsafe {
                let next = (*(*cursor).links.get()).1;
                if (*cursor).owner.load(Ordering::Acquire) == owner {
                    detach(&mut list, cursor);
                    roots += 1;
                    bytes += (*cursor).layout.size();
                    // Chain the doomed through their `next` link.
                    *(*cursor).links.get() = (ptr::null_mut(), doomed);
                    doomed = cursor;
                }
                cursor = next;
            }
        }
    }
    // Destroy outside the lock: dropping a value frees its nested RRefs.
    while let Some(header) = NonNull::new(doomed) {
        // SAFETY: unlinked above, so nobody else reaches it; `destroy` is
        // the header's own drop glue.
        unsafe {
            doomed = (*header.as_ref().links.get()).1;
            header.as_ref().owner.store(NESTED, Ordering::Release);
            (header.as_ref().destroy)(header);
        }
    }
    (roots, bytes)
}
