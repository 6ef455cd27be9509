//! The shared heap: memory that belongs to no domain's private heap.
//!
//! It is where `RRef` objects live (passed between domains without
//! copying, with ownership tracked by the RRef registry) and where drivers
//! find buffers a device can reach: every allocation has a device
//! (physical) address. Slabs and page runs are backed by physically
//! contiguous frames, so an object never straddles a physical
//! discontinuity and one address describes all of it.
//!
//! Allocations come from here whichever domain is running (the global
//! allocator is not involved). The heap sits behind one lock, with a
//! per-core cache of free small objects (`kcore::domheap::CoreCache`) in
//! front of it, so the common allocate/free pair takes no lock.
//!
//! Each growth step is one physically contiguous allocation of frames, but
//! consecutive steps are not contiguous with each other, so the heap is a
//! `DomainHeap::new_contiguous`: freed page runs never merge across a step,
//! and no object can span two (an object that did would have a device
//! address valid for its first part only: a device would read or write
//! someone else's memory past it).

use core::alloc::Layout;
use core::ptr::NonNull;

use kcore::domheap::{DomainHeap, PageSource};
use spin::Mutex;

use crate::cpu;
use crate::mem::layout::SHARED_HEAP;
use crate::mem::{PAGE_SIZE, frames, paging};

static HEAP: Mutex<Option<DomainHeap>> = Mutex::new(None);
/// Frees the heap refused (double frees, foreign addresses): always 0
/// unless the registry has a bug (the isolation tests check it).
static BAD_FREES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Frees refused since boot (see [`BAD_FREES`]).
#[cfg(feature = "ktest")]
pub fn bad_frees() -> u64 {
    BAD_FREES.load(core::sync::atomic::Ordering::Relaxed)
}

/// Maps physically contiguous frames for each growth step.
struct ContiguousMapper;

impl PageSource for ContiguousMapper {
    fn map(&mut self, at: u64, pages: usize) -> bool {
        let Some(first) = frames::alloc_contiguous_zeroed(pages) else {
            return false;
        };
        let mapped = paging::with_kernel(|pt| {
            for i in 0..pages as u64 {
                pt.map_4k(
                    at + i * PAGE_SIZE,
                    first + i * PAGE_SIZE,
                    paging::WRITABLE | paging::NO_EXECUTE,
                )?;
            }
            Ok::<(), paging::MapError>(())
        });
        // Devices reach the shared heap through the IOMMU (if there is
        // one): its new frames must be mapped there too.
        let mapped = mapped.and_then(|()| {
            if crate::iommu::shared_heap_grew(first, pages) {
                Ok(())
            } else {
                Err(paging::MapError::OutOfFrames)
            }
        });
        if mapped.is_err() {
            for i in 0..pages as u64 {
                let _ = paging::with_kernel(|pt| pt.unmap_4k(at + i * PAGE_SIZE));
                frames::free(first + i * PAGE_SIZE);
            }
            return false;
        }
        true
    }
}

pub fn init() {
    *HEAP.lock() = Some(DomainHeap::new_contiguous(
        SHARED_HEAP.start,
        SHARED_HEAP.end(),
    ));
    rrpc::install_backend(&RREF_BACKEND);
    rrpc::proxy::install_runtime(crate::domain::proxy_runtime());
    domain_sdk::install(&crate::domain::SERVICES);
}

/// `RRef`s live here.
struct RRefBackend;

static RREF_BACKEND: RRefBackend = RRefBackend;

impl rrpc::Backend for RRefBackend {
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // A domain may own at most its quota of the shared heap (the same
        // as its private heap's): past it, its allocations fail
        // (`RpcError::OutOfMemory`), and the others still get theirs.
        let owner = cpu::current_owner();
        if owner != rrpc::Owner::KERNEL
            && rrpc::registry::owned_bytes(owner).saturating_add(layout.size())
                > crate::domain::heap::quota() as usize
        {
            return None;
        }
        alloc(layout)
    }

    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout) {
        free(pointer, layout)
    }

    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        device_address(pointer)
    }

    unsafe fn free_reclaimed(&self, pointer: NonNull<u8>, layout: Layout) {
        free_to_heap(pointer, layout)
    }
}

/// The tag of shared-heap objects in the per-core caches (they have one
/// owner: the shared heap; 0 would mean "no owner").
const CACHE_TAG: u32 = 1;

/// This core's shared-heap cache. Only called inside kernel sections on
/// this core (no interrupt handler allocates), so the reference is
/// exclusive.
fn with_cache<R>(f: impl FnOnce(&mut kcore::domheap::CoreCache) -> R) -> R {
    // SAFETY: see above: one user at a time, on its own core.
    let cache = unsafe { &mut *cpu::current().shared_cache.get() };
    if cache.owner() != CACHE_TAG {
        cache.drain(CACHE_TAG, |_, _, _, _| {}); // empty: just tags it
    }
    f(cache)
}

/// Counts `delta` bytes on this core's share of [`usage`].
fn account(delta: i64) {
    let counter = &cpu::current().shared_bytes;
    // Only this core writes its counter: no read-modify-write needed.
    counter.store(
        counter.load(core::sync::atomic::Ordering::Relaxed) + delta,
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// Allocates `layout` on the shared heap.
pub fn alloc(layout: Layout) -> Option<NonNull<u8>> {
    let (size, align) = (layout.size().max(1), layout.align());
    cpu::kernel_section(|| {
        let address = match with_cache(|cache| cache.alloc(CACHE_TAG, size, align)) {
            Some(address) => address,
            None => HEAP
                .lock()
                .as_mut()?
                .alloc(size, align, &mut ContiguousMapper)?,
        };
        account(size as i64);
        NonNull::new(address as *mut u8)
    })
}

/// Frees an allocation made by [`alloc`] with the same layout.
pub fn free(pointer: NonNull<u8>, layout: Layout) {
    let (size, align) = (layout.size().max(1), layout.align());
    let address = pointer.as_ptr() as u64;
    cpu::kernel_section(|| {
        if !SHARED_HEAP.contains(address) {
            BAD_FREES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            crate::warn!("shared heap: free of {address:#x} outside the heap");
            return;
        }
        if with_cache(|cache| cache.free(CACHE_TAG, address, size, align)) {
            account(-(size as i64));
            return;
        }
        let mut heap = HEAP.lock();
        if let Some(heap) = heap.as_mut() {
            match heap.free(address, size, align) {
                Ok(()) => account(-(size as i64)),
                Err(e) => {
                    BAD_FREES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    crate::warn!("shared heap: bad free of {address:#x}: {e}")
                }
            }
        }
    });
}

/// Frees like [`free`], but straight to the heap, past this core's cache
/// (for bulk releases such as a dead domain's objects, so the memory is at
/// once available to every core).
pub fn free_to_heap(pointer: NonNull<u8>, layout: Layout) {
    let (size, align) = (layout.size().max(1), layout.align());
    let address = pointer.as_ptr() as u64;
    cpu::kernel_section(|| {
        let mut heap = HEAP.lock();
        if let Some(heap) = heap.as_mut() {
            match heap.free(address, size, align) {
                Ok(()) => account(-(size as i64)),
                Err(e) => {
                    BAD_FREES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    crate::warn!("shared heap: bad free of {address:#x}: {e}")
                }
            }
        }
    });
}

/// The address a device uses for `pointer` (its physical address), if it
/// is in the shared heap.
pub fn device_address(pointer: *const u8) -> Option<u64> {
    let address = pointer as u64;
    if !SHARED_HEAP.contains(address) {
        return None;
    }
    paging::translate(address).map(|(physical, _)| physical)
}

/// (bytes in use, pages mapped). Bytes in use are what callers hold
/// (objects in the per-core caches are free); pages are what the heap has
/// mapped.
/// Frees that other cores queued for a busy core are applied first, so
/// the numbers are exact (this waits for every core's current batch).
/// Kernel-heap bytes that the shared heap's pool bookkeeping holds (its
/// page and slab tables, and the IOMMU's record of its growth steps):
/// like the pool's pages, they grow with the most the pool ever held and
/// are kept for reuse.
pub fn bookkeeping_bytes() -> u64 {
    cpu::kernel_section(|| {
        let heap = HEAP
            .lock()
            .as_ref()
            .map_or(0, DomainHeap::bookkeeping_bytes);
        (heap + crate::iommu::bookkeeping_bytes()) as u64
    })
}

pub fn usage() -> (u64, u64) {
    rrpc::registry::quiesce();
    let bytes: i64 = cpu::all()
        .map(|cpu| cpu.shared_bytes.load(core::sync::atomic::Ordering::Relaxed))
        .sum();
    let pages = cpu::kernel_section(|| {
        HEAP.lock()
            .as_ref()
            .map_or(0, |heap| heap.stats().mapped_pages as u64)
    });
    (bytes.max(0) as u64, pages)
}
