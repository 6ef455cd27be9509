//! The global allocator: routes every allocation to the heap of the domain
//! whose code is running (see `domain::heap`), or to the kernel heap.
//!
//! The kernel heap is a linked-list allocator over pages mapped at
//! `layout::KERNEL_HEAP`; it serves the kernel's own bookkeeping and is
//! not on a hot path (domains have their own slab heaps, the executor
//! preallocates).
//! A free goes to the heap that owns the address, whoever frees it.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicI64, Ordering};

use linked_list_allocator::LockedHeap;

use super::layout;
use super::{PAGE_SIZE, frames, paging};
use crate::{cpu, domain};

static KERNEL_HEAP: LockedHeap = LockedHeap::empty();

struct Router;

#[global_allocator]
static ROUTER: Router = Router;

// SAFETY: each request is forwarded whole to exactly one allocator, chosen
// for `alloc` by the running domain and for `dealloc` by the address, which
// identifies the allocator that produced it.
unsafe impl GlobalAlloc for Router {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match cpu::current_owner() {
            executor::OwnerId::KERNEL => {
                // SAFETY: forwarded with the caller's obligations.
                let ptr = unsafe { KERNEL_HEAP.alloc(layout) };
                if !ptr.is_null() {
                    LIVE_BY_SIZE[size_class(layout.size())].fetch_add(1, Ordering::Relaxed);
                }
                ptr
            }
            owner => domain::heap::alloc(owner, layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if domain::heap::in_region(ptr as u64) {
            domain::heap::free(ptr as u64, layout);
        } else {
            LIVE_BY_SIZE[size_class(layout.size())].fetch_sub(1, Ordering::Relaxed);
            // SAFETY: `ptr` came from the kernel heap (not a domain region).
            unsafe { KERNEL_HEAP.dealloc(ptr, layout) }
        }
    }
}

/// Live kernel-heap allocations by size class (16-byte steps; the last
/// class holds everything from 1 KiB up): what an exact account of the
/// kernel heap (the fault campaign's) names when the bytes differ.
pub static LIVE_BY_SIZE: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];
pub const CLASSES: usize = 65;

/// The class of an allocation of `size` bytes (classes of 16 bytes).
pub fn size_class(size: usize) -> usize {
    (size / 16).min(CLASSES - 1)
}

static SIZE: spin::Once<u64> = spin::Once::new();

/// Maps `size` bytes at `layout::KERNEL_HEAP` and hands them to the kernel heap.
pub fn init(size: u64) {
    let pages = size / PAGE_SIZE;
    paging::with_kernel(|pt| {
        for i in 0..pages {
            let frame = frames::alloc().expect("no memory for the kernel heap");
            pt.map_4k(
                layout::KERNEL_HEAP.start + i * PAGE_SIZE,
                frame,
                paging::WRITABLE | paging::NO_EXECUTE | paging::GLOBAL,
            )
            .expect("heap mapping");
        }
    });
    SIZE.call_once(|| {
        // SAFETY: the range was just mapped, is used by nothing else, and
        // `init` runs once (guarded by `SIZE`).
        unsafe {
            KERNEL_HEAP.lock().init(
                layout::KERNEL_HEAP.start as *mut u8,
                (pages * PAGE_SIZE) as usize,
            )
        };
        pages * PAGE_SIZE
    });
}

/// (used, total) bytes of the kernel heap.
pub fn usage() -> (u64, u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let heap = KERNEL_HEAP.lock();
        (heap.used() as u64, heap.size() as u64)
    })
}
