//! Kernel stacks, each sitting above an unmapped guard page so that an
//! overflow faults instead of corrupting memory below it.

use core::sync::atomic::{AtomicU64, Ordering};

use super::layout::STACKS;
use super::{PAGE_SIZE, frames, paging};

/// Next free virtual address in the stacks region (bump; virtual space is
/// plentiful, frames are what gets returned).
static NEXT: AtomicU64 = AtomicU64::new(STACKS.start);

#[derive(Debug)]
pub struct Stack {
    /// Lowest mapped address (the guard page is the page below it).
    pub bottom: u64,
    /// Initial stack pointer (exclusive top).
    pub top: u64,
}

impl Stack {
    #[cfg(feature = "ktest")]
    pub fn guard_page(&self) -> u64 {
        self.bottom - PAGE_SIZE
    }
}

/// Allocates a stack of `size` bytes (rounded up to pages) plus its guard.
pub fn alloc(size: u64) -> Option<Stack> {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let guard = NEXT.fetch_add((pages + 1) * PAGE_SIZE, Ordering::Relaxed);
    let bottom = guard + PAGE_SIZE;
    let ok = paging::with_kernel(|pt| {
        for i in 0..pages {
            let Some(frame) = frames::alloc_zeroed() else {
                for j in 0..i {
                    if let Some(f) = pt.unmap_4k(bottom + j * PAGE_SIZE) {
                        frames::free(f);
                    }
                }
                return false;
            };
            pt.map_4k(
                bottom + i * PAGE_SIZE,
                frame,
                paging::WRITABLE | paging::NO_EXECUTE,
            )
            .expect("stack region is never reused");
        }
        true
    });
    ok.then(|| Stack {
        bottom,
        top: bottom + pages * PAGE_SIZE,
    })
}

/// Returns a stack's frames. The caller guarantees nothing runs on it.
pub fn free(stack: Stack) {
    paging::with_kernel(|pt| {
        let mut page = stack.bottom;
        while page < stack.top {
            if let Some(frame) = pt.unmap_4k(page) {
                frames::free(frame);
            }
            page += PAGE_SIZE;
        }
    });
}

/// True if `addr` is in the stacks region but not mapped (a guard page or
/// beyond): a fault there is a stack overflow.
pub fn is_guard_hit(addr: u64) -> bool {
    (STACKS.start..NEXT.load(Ordering::Relaxed)).contains(&addr)
        && paging::translate_current(addr).is_none()
}
