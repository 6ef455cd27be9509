//! The global physical frame allocator: kcore's bitmap allocator behind a
//! lock, set up from the PVH memory map.

use spin::Mutex;

use super::{PAGE_SIZE, phys_to_virt};
use kcore::frames::FrameAllocator;

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// Installs the allocator. `bitmap` must be memory nobody else uses.
pub fn install(allocator: FrameAllocator<'static>) {
    *FRAMES.lock() = Some(allocator);
}

fn with<R>(f: impl FnOnce(&mut FrameAllocator<'static>) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = FRAMES.lock();
        f(guard.as_mut().expect("frame allocator not initialised"))
    })
}

/// One zeroed 4 KiB frame, or `None` when memory is exhausted.
pub fn alloc_zeroed() -> Option<u64> {
    let frame = with(|a| a.alloc())?;
    // SAFETY: the frame was just handed out to us, so nothing else uses it,
    // and it is mapped at `phys_to_virt`.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame), 0, PAGE_SIZE as usize) };
    Some(frame)
}

/// One frame, contents undefined.
pub fn alloc() -> Option<u64> {
    with(|a| a.alloc())
}

/// Returns a frame. Freeing a frame twice or one we never handed out is a
/// kernel bug and is reported as such.
pub fn free(frame: u64) {
    if let Err(e) = with(|a| a.free(frame)) {
        panic!("frame free of {frame:#x}: {e}");
    }
}

/// Frames holding page tables (the CPU's and the IOMMU's), which are
/// never freed: kept so that an exact account of memory can tell them
/// from a leak (see `storm`).
static TABLE_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A zeroed frame for a page table (counted in [`table_count`]).
pub fn alloc_table() -> Option<u64> {
    let frame = alloc_zeroed()?;
    TABLE_FRAMES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    Some(frame)
}

/// Frames given out by [`alloc_table`] so far.
pub fn table_count() -> u64 {
    TABLE_FRAMES.load(core::sync::atomic::Ordering::Relaxed)
}

pub fn free_count() -> u64 {
    with(|a| a.free_count() as u64)
}

pub fn total_count() -> u64 {
    with(|a| a.total_count() as u64)
}

/// `count` physically contiguous, zeroed frames (for memory a device may
/// reach by DMA), or `None`.
pub fn alloc_contiguous_zeroed(count: usize) -> Option<u64> {
    let first = with(|a| a.alloc_contiguous(count, 1))?;
    // SAFETY: the frames were just handed out to us and are mapped through
    // the physical map.
    unsafe { core::ptr::write_bytes(phys_to_virt(first), 0, count * PAGE_SIZE as usize) };
    Some(first)
}
