//! The kernel heap: a linked-list allocator over pages mapped at
//! `HEAP_BASE`. It serves the kernel's own bookkeeping; it is not on a hot
//! path (domains get their own heaps, and the executor preallocates).

use linked_list_allocator::LockedHeap;

use super::{HEAP_BASE, PAGE_SIZE, frames, paging};

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

static SIZE: spin::Once<u64> = spin::Once::new();

/// Maps `size` bytes at `HEAP_BASE` and hands them to the allocator.
pub fn init(size: u64) {
    let pages = size / PAGE_SIZE;
    paging::with_kernel(|pt| {
        for i in 0..pages {
            let frame = frames::alloc().expect("no memory for the kernel heap");
            pt.map_4k(
                HEAP_BASE + i * PAGE_SIZE,
                frame,
                paging::WRITABLE | paging::NO_EXECUTE | paging::GLOBAL,
            )
            .expect("heap mapping");
        }
    });
    // SAFETY: the range was just mapped, is used by nothing else, and
    // `init` runs once (guarded by `SIZE`).
    SIZE.call_once(|| {
        unsafe {
            HEAP.lock()
                .init(HEAP_BASE as *mut u8, (pages * PAGE_SIZE) as usize)
        };
        pages * PAGE_SIZE
    });
}

/// (used, total) bytes of the kernel heap.
pub fn usage() -> (u64, u64) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let heap = HEAP.lock();
        (heap.used() as u64, heap.size() as u64)
    })
}
