//! Private domain heaps.
//!
//! Every domain slot owns a 4 GiB window of virtual address space at
//! `DOMAIN_HEAPS.start + slot * DOMAIN_HEAP_SIZE` (see `mem::layout`). Its heap is a size-class slab
//! allocator (`kcore::slab`) that grows by mapping fresh, zeroed frames at
//! the end of the window. An address therefore tells which heap it belongs
//! to, so a free goes back to the right heap whoever does it, and reclaiming
//! a dead domain's heap is one sweep over its window: unmap every page,
//! return every frame. No destructor of the dead domain runs.
//!
//! Each heap has its own lock (no global lock on the allocation path), and
//! each core keeps small caches of free objects in front of the heaps, one
//! per domain for up to four domains at once (`kcore::domheap::CoreCaches`:
//! a caller and its callee allocating in turn each keep theirs), so most
//! allocations and frees take no lock at all. Cached objects count as in use in the heap's statistics. A
//! heap is tagged with the incarnation that owns it, so objects cached for a
//! dead incarnation are dropped, never freed into its successor's heap. The
//! allocator's own bookkeeping runs as a kernel section (kernel heap, no
//! watchdog, faults fatal).

use core::alloc::Layout;

use executor::OwnerId;
use kcore::domheap::{DomainHeap, PageSource};
use spin::Mutex;

use crate::cpu;
use crate::mem::layout::{DOMAIN_HEAP_SIZE, DOMAIN_HEAPS};
use crate::mem::{PAGE_SIZE, frames, paging};

pub const MAX_SLOTS: usize = 256;

/// Each slot's heap and the incarnation (owner id) it belongs to.
static HEAPS: [Mutex<Option<(OwnerId, DomainHeap)>>; MAX_SLOTS] =
    [const { Mutex::new(None) }; MAX_SLOTS];

/// The most heap one domain incarnation may map (`domain_heap=` on the
/// kernel command line). Past it, its allocations fail, which panics the
/// domain (contained), instead of letting it take the memory the kernel
/// and other domains need.
static QUOTA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Sets the per-domain heap quota (bytes, rounded down to pages).
pub fn set_quota(bytes: u64) {
    QUOTA.store(
        bytes / PAGE_SIZE * PAGE_SIZE,
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// The per-domain heap quota in bytes.
pub fn quota() -> u64 {
    match QUOTA.load(core::sync::atomic::Ordering::Relaxed) {
        0 => DOMAIN_HEAP_SIZE,
        q => q,
    }
}

pub fn in_region(address: u64) -> bool {
    DOMAIN_HEAPS.contains(address)
}

fn slot_of(address: u64) -> usize {
    ((address - DOMAIN_HEAPS.start) / DOMAIN_HEAP_SIZE) as usize
}

fn window(slot: usize) -> (u64, u64) {
    let base = DOMAIN_HEAPS.start + slot as u64 * DOMAIN_HEAP_SIZE;
    (base, base + DOMAIN_HEAP_SIZE)
}

/// Maps zeroed frames for a heap (zeroed so no data leaks between domains).
struct FrameMapper;

impl PageSource for FrameMapper {
    fn map(&mut self, at: u64, pages: usize) -> bool {
        for i in 0..pages as u64 {
            let Some(frame) = frames::alloc_zeroed() else {
                // Undo this call's pages; the heap stays as it was.
                for j in 0..i {
                    if let Some(f) = paging::with_kernel(|pt| pt.unmap_4k(at + j * PAGE_SIZE)) {
                        frames::free(f);
                    }
                }
                return false;
            };
            let mapped = paging::with_kernel(|pt| {
                pt.map_4k(
                    at + i * PAGE_SIZE,
                    frame,
                    paging::WRITABLE | paging::NO_EXECUTE,
                )
            });
            if mapped.is_err() {
                frames::free(frame);
                return false;
            }
        }
        true
    }
}

/// Creates an empty heap for `slot`, owned by incarnation `owner`
/// (replacing nothing: the slot must have been reclaimed).
pub fn create(slot: usize, owner: OwnerId) {
    let (base, window_end) = window(slot);
    let limit = base + quota().min(window_end - base);
    cpu::kernel_section(|| {
        let mut heap = HEAPS[slot].lock();
        assert!(heap.is_none(), "domain heap slot {slot} still in use");
        *heap = Some((owner, DomainHeap::new(base, limit)));
    });
}

/// This core's object cache. Only called inside kernel sections on this
/// core (no interrupt handler allocates), so the reference is exclusive.
fn with_cache<R>(f: impl FnOnce(&mut kcore::domheap::CoreCaches) -> R) -> R {
    // SAFETY: see above: one user at a time, on its own core.
    f(unsafe { &mut *cpu::current().heap_cache.get() })
}

/// Frees to `owner`'s heap under its lock; false if that heap is gone or
/// belongs to another incarnation (the object died with its owner).
fn free_locked(
    owner: OwnerId,
    address: u64,
    size: usize,
    align: usize,
) -> Result<bool, kcore::domheap::HeapError> {
    let slot = slot_of(address);
    let mut guard = HEAPS[slot].lock();
    match guard.as_mut() {
        Some((heap_owner, heap)) if *heap_owner == owner || owner == OwnerId::KERNEL => {
            heap.free(address, size, align).map(|()| true)
        }
        _ => Ok(false),
    }
}

/// Allocation on behalf of domain incarnation `owner`.
pub fn alloc(owner: OwnerId, layout: Layout) -> *mut u8 {
    let slot = owner.slot();
    let (size, align) = (layout.size().max(1), layout.align());
    cpu::kernel_section(|| {
        if let Some(address) = with_cache(|cache| cache.alloc(owner.to_bits(), size, align)) {
            return address as *mut u8;
        }
        let mut guard = HEAPS.get(slot).map(|h| h.lock());
        match guard.as_mut().and_then(|g| g.as_mut()) {
            Some((heap_owner, heap)) if *heap_owner == owner => heap
                .alloc(size, align, &mut FrameMapper)
                .map_or(core::ptr::null_mut(), |a| a as *mut u8),
            _ => core::ptr::null_mut(),
        }
    })
}

pub fn free(address: u64, layout: Layout) {
    let slot = slot_of(address);
    let (size, align) = (layout.size().max(1), layout.align());
    cpu::kernel_section(|| {
        let Some(owner) = crate::domain::get(slot).map(|d| d.owner()) else {
            return;
        };
        // A way of this core's cache for `owner`; an empty way, or one of
        // a domain incarnation no longer alive, may be taken over.
        let cached = with_cache(|cache| {
            // The cache (in `kcore`) keeps owners in their packed form.
            cache.free(owner.to_bits(), address, size, align, |holder| {
                let holder = OwnerId::from_bits(holder);
                crate::domain::get(holder.slot()).is_some_and(|d| {
                    d.owner() == holder && d.state() == crate::domain::State::Alive
                })
            })
        });
        if cached {
            return;
        }
        match free_locked(owner, address, size, align) {
            Ok(_) => {}
            Err(e) => crate::warn!("domain heap {slot}: bad free of {address:#x}: {e}"),
        }
    });
}

/// (bytes in use, pages mapped) of a slot's heap.
pub fn usage(slot: usize) -> (u64, u64) {
    match HEAPS
        .get(slot)
        .and_then(|h| h.lock().as_ref().map(|(_, heap)| heap.stats()))
    {
        Some(stats) => (stats.bytes_in_use as u64, stats.mapped_pages as u64),
        None => (0, 0),
    }
}

/// Drops the heap wholesale: unmaps every page of its window and returns
/// the frames. Returns the number of pages returned.
pub fn reclaim(slot: usize) -> u64 {
    cpu::kernel_section(|| {
        let Some((_, heap)) = HEAPS[slot].lock().take() else {
            return 0;
        };
        let (start, end) = heap.mapped_range();
        let mut freed = alloc::vec::Vec::new();
        let mut page = start;
        while page < end {
            if let Some(frame) = paging::with_kernel(|pt| pt.unmap_4k(page)) {
                freed.push(frame);
            }
            page += PAGE_SIZE;
        }
        // Other cores may still cache translations of these pages: flush
        // everyone before the frames can be handed to someone else.
        crate::apic::flush_tlb_everywhere();
        for frame in &freed {
            frames::free(*frame);
        }
        freed.len() as u64
    })
}
