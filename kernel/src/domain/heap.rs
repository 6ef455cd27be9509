//! Private domain heaps.
//!
//! Every domain slot owns a 4 GiB window of virtual address space at
//! `REGION_BASE + slot * SLOT_SIZE`. Its heap is a size-class slab
//! allocator (`kcore::slab`) that grows by mapping fresh, zeroed frames at
//! the end of the window. An address therefore tells which heap it belongs
//! to, so a free goes back to the right heap whoever does it, and reclaiming
//! a dead domain's heap is one sweep over its window: unmap every page,
//! return every frame. No destructor of the dead domain runs.
//!
//! Each heap has its own lock (no global lock on the allocation path); the
//! allocator's own bookkeeping runs as a kernel section (kernel heap, no
//! watchdog, faults fatal).

use core::alloc::Layout;

use kcore::domheap::{DomainHeap, PageSource};
use spin::Mutex;

use crate::cpu;
use crate::mem::{PAGE_SIZE, frames, paging};

pub const REGION_BASE: u64 = 0xFFFF_B000_0000_0000;
pub const SLOT_SIZE: u64 = 1 << 32;
pub const MAX_SLOTS: usize = 256;

static HEAPS: [Mutex<Option<DomainHeap>>; MAX_SLOTS] = [const { Mutex::new(None) }; MAX_SLOTS];

pub fn in_region(address: u64) -> bool {
    (REGION_BASE..REGION_BASE + SLOT_SIZE * MAX_SLOTS as u64).contains(&address)
}

fn slot_of(address: u64) -> usize {
    ((address - REGION_BASE) / SLOT_SIZE) as usize
}

fn window(slot: usize) -> (u64, u64) {
    let base = REGION_BASE + slot as u64 * SLOT_SIZE;
    (base, base + SLOT_SIZE)
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

/// Creates an empty heap for `slot` (replacing nothing: the slot must have
/// been reclaimed).
pub fn create(slot: usize) {
    let (base, limit) = window(slot);
    cpu::kernel_section(|| {
        let mut heap = HEAPS[slot].lock();
        assert!(heap.is_none(), "domain heap slot {slot} still in use");
        *heap = Some(DomainHeap::new(base, limit));
    });
}

/// Allocation on behalf of domain incarnation `owner`.
pub fn alloc(owner: u32, layout: Layout) -> *mut u8 {
    let slot = (owner >> 16) as usize;
    cpu::kernel_section(|| {
        let mut guard = HEAPS.get(slot).map(|h| h.lock());
        match guard.as_mut().and_then(|g| g.as_mut()) {
            Some(heap) => heap
                .alloc(layout.size().max(1), layout.align(), &mut FrameMapper)
                .map_or(core::ptr::null_mut(), |a| a as *mut u8),
            None => core::ptr::null_mut(),
        }
    })
}

pub fn free(address: u64, layout: Layout) {
    let slot = slot_of(address);
    cpu::kernel_section(|| {
        let mut guard = HEAPS[slot].lock();
        let result = match guard.as_mut() {
            Some(heap) => heap
                .free(address, layout.size().max(1), layout.align())
                .map_err(|e| alloc::string::ToString::to_string(&e)),
            None => Err(alloc::string::String::from("heap already reclaimed")),
        };
        if let Err(e) = result {
            crate::warn!("domain heap {slot}: bad free of {address:#x}: {e}");
        }
    });
}

/// (bytes in use, pages mapped) of a slot's heap.
pub fn usage(slot: usize) -> (u64, u64) {
    match HEAPS
        .get(slot)
        .and_then(|h| h.lock().as_ref().map(|heap| heap.stats()))
    {
        Some(stats) => (stats.bytes_in_use as u64, stats.mapped_pages as u64),
        None => (0, 0),
    }
}

/// Drops the heap wholesale: unmaps every page of its window and returns
/// the frames. Returns the number of pages returned.
pub fn reclaim(slot: usize) -> u64 {
    cpu::kernel_section(|| {
        let Some(heap) = HEAPS[slot].lock().take() else {
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
