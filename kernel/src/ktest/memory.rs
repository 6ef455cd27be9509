//! Page tables, the frame allocator and the heap.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{KTest, TestFn, TestResult};
use crate::catch::{FaultKind, catch};
use crate::mem::{PAGE_SIZE, frames, heap, paging, phys_to_virt};

pub static TESTS: &[KTest] = &[
    KTest {
        name: "mem_page_table_map_translate_unmap",
        run: TestFn::Sync(map_translate_unmap),
    },
    KTest {
        name: "mem_kernel_image_is_w_xor_x",
        run: TestFn::Sync(kernel_image_w_xor_x),
    },
    KTest {
        name: "mem_null_page_unmapped",
        run: TestFn::Sync(null_page_unmapped),
    },
    KTest {
        name: "mem_frames_exhaustion_and_reuse",
        run: TestFn::Sync(frames_exhaustion_and_reuse),
    },
    KTest {
        name: "mem_heap_alloc_free",
        run: TestFn::Sync(heap_alloc_free),
    },
    KTest {
        name: "mem_shared_heap_is_contiguous_and_outlives_domains",
        run: TestFn::Sync(shared_heap),
    },
];

/// A virtual page nobody else uses (see `mem::layout`).
const TEST_PAGE: u64 = crate::mem::layout::TEST_PAGE.start;

fn map_translate_unmap() -> TestResult {
    let frame = frames::alloc_zeroed().ok_or("out of frames")?;
    paging::with_kernel(|pt| pt.map_4k(TEST_PAGE, frame, paging::WRITABLE | paging::NO_EXECUTE))
        .map_err(|e| alloc::format!("map: {e}"))?;
    let (phys, flags) =
        paging::translate(TEST_PAGE + 0x123).ok_or("mapped page does not translate")?;
    ensure!(
        phys == frame + 0x123,
        "translated to {phys:#x}, expected {:#x}",
        frame + 0x123
    );
    ensure!(
        flags & paging::WRITABLE != 0 && flags & paging::NO_EXECUTE != 0,
        "flags {flags:#x}"
    );
    // SAFETY: TEST_PAGE was mapped just above to a frame we own.
    unsafe { (TEST_PAGE as *mut u64).add(3).write_volatile(0xDEAD_BEEF) };
    // SAFETY: the same frame through the physical map.
    let seen = unsafe { (phys_to_virt(frame) as *const u64).add(3).read_volatile() };
    ensure!(
        seen == 0xDEAD_BEEF,
        "write through the new mapping not visible in the physical map"
    );
    let double = paging::with_kernel(|pt| pt.map_4k(TEST_PAGE, frame, paging::WRITABLE));
    ensure!(double.is_err(), "mapping a mapped page succeeded");
    let unmapped = paging::with_kernel(|pt| pt.unmap_4k(TEST_PAGE));
    ensure!(unmapped == Some(frame), "unmap returned {unmapped:?}");
    ensure!(
        paging::translate(TEST_PAGE).is_none(),
        "unmapped page still translates"
    );
    // SAFETY: deliberately touches the now-unmapped page under `catch`.
    let fault = catch(|| unsafe { (TEST_PAGE as *const u64).read_volatile() })
        .err()
        .ok_or("no fault after unmap")?;
    ensure!(
        fault.kind == FaultKind::Exception(14) && fault.address == TEST_PAGE,
        "wrong fault: {fault}"
    );
    frames::free(frame);
    Ok(())
}

fn kernel_image_w_xor_x() -> TestResult {
    let code = kernel_image_w_xor_x as *const () as u64;
    let (_, flags) = paging::translate(code).ok_or("kernel text not mapped")?;
    ensure!(
        flags & paging::WRITABLE == 0 && flags & paging::NO_EXECUTE == 0,
        "text flags {flags:#x}"
    );
    static DATA: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let (_, flags) = paging::translate(&DATA as *const _ as u64).ok_or("kernel data not mapped")?;
    ensure!(
        flags & paging::WRITABLE != 0 && flags & paging::NO_EXECUTE != 0,
        "data flags {flags:#x}"
    );
    let (_, flags) =
        paging::translate(crate::mem::layout::PHYS_MAP.start).ok_or("physical map missing")?;
    ensure!(
        flags & paging::NO_EXECUTE != 0,
        "physical map is executable"
    );
    Ok(())
}

fn null_page_unmapped() -> TestResult {
    ensure!(paging::translate(0).is_none(), "page 0 is mapped");
    Ok(())
}

/// Allocates every free frame (chaining them through their own first word,
/// so the test needs no memory of its own), checks the allocator then
/// refuses, frees them all and checks the count is back and frames are
/// handed out again.
fn frames_exhaustion_and_reuse() -> TestResult {
    let free_before = frames::free_count();
    let mut head = 0u64;
    let mut count = 0u64;
    while let Some(frame) = frames::alloc() {
        // SAFETY: the frame is ours until freed below.
        unsafe { (phys_to_virt(frame) as *mut u64).write(head) };
        head = frame;
        count += 1;
    }
    let exhausted_free = frames::free_count();
    let refused = frames::alloc().is_none();
    let mut last = 0;
    while head != 0 {
        // SAFETY: `head` is a frame from the chain built above.
        let next = unsafe { (phys_to_virt(head) as *const u64).read() };
        frames::free(head);
        last = head;
        head = next;
    }
    ensure!(
        count == free_before,
        "allocated {count} frames, {free_before} were free"
    );
    ensure!(
        exhausted_free == 0 && refused,
        "allocator did not report exhaustion"
    );
    ensure!(
        frames::free_count() == free_before,
        "free count {} != {free_before}",
        frames::free_count()
    );
    let again = frames::alloc().ok_or("no frame after freeing all")?;
    frames::free(again);
    ensure!(last != 0, "no frames at all");
    ensure!(
        count * PAGE_SIZE >= 16 << 20,
        "suspiciously little memory: {count} frames"
    );
    Ok(())
}

fn heap_alloc_free() -> TestResult {
    let (used_before, _) = heap::usage();
    {
        let mut vectors: Vec<Vec<u64>> = Vec::new();
        for i in 0..200u64 {
            vectors.push((0..i * 7).collect());
        }
        for (i, v) in vectors.iter().enumerate() {
            ensure!(
                v.len() == i * 7 && v.iter().copied().eq(0..i as u64 * 7),
                "vector {i} corrupted"
            );
        }
        let mut map = BTreeMap::new();
        for i in 0..5000u32 {
            map.insert(i.wrapping_mul(2_654_435_761), i);
        }
        ensure!(map.len() == 5000, "map lost entries");
        let big = alloc::vec![0xA5u8; 1 << 20];
        ensure!(big.iter().all(|&b| b == 0xA5), "1 MiB allocation corrupted");
        #[repr(align(4096))]
        struct Page([u8; 4096]);
        let page = Box::new(Page([1; 4096]));
        ensure!(
            (&*page as *const Page as usize).is_multiple_of(4096),
            "4 KiB alignment not honoured"
        );
        ensure!(
            page.0.iter().all(|&b| b == 1),
            "aligned allocation corrupted"
        );
    }
    let (used_after, _) = heap::usage();
    ensure!(
        used_after <= used_before + 1024,
        "heap grew from {used_before} to {used_after} bytes"
    );
    Ok(())
}

/// Shared-heap objects have one device address (physically contiguous),
/// come from the shared region whichever domain allocates them, and stay
/// valid after that domain dies.
fn shared_heap() -> TestResult {
    use crate::shared_heap;
    use core::alloc::Layout;
    let (bytes_before, _) = shared_heap::usage();
    let mut objects = Vec::new();
    for size in [1usize, 64, 1500, 2048, 4096, 9000, 65536] {
        let layout = Layout::from_size_align(size, 64).map_err(|e| alloc::format!("{e}"))?;
        let pointer = shared_heap::alloc(layout).ok_or("shared heap exhausted")?;
        let base = shared_heap::device_address(pointer.as_ptr()).ok_or("no device address")?;
        let mut offset = 0;
        while offset < size {
            // SAFETY: `offset` is within the allocation.
            let here = shared_heap::device_address(unsafe { pointer.as_ptr().add(offset) })
                .ok_or("unmapped")?;
            ensure!(
                here == base + offset as u64,
                "size {size}: not contiguous at offset {offset}"
            );
            offset += 4096;
        }
        // SAFETY: the allocation is `size` bytes, ours.
        unsafe { core::ptr::write_bytes(pointer.as_ptr(), size as u8, size) };
        objects.push((pointer, layout));
    }
    ensure!(
        shared_heap::device_address(&objects as *const _ as *const u8).is_none(),
        "kernel stack has a device address"
    );
    // Allocated inside a domain, still shared; survives the domain.
    let d = crate::domain::create_from(
        crate::domain::Source::Archive(alloc::string::String::from("idle")),
        "shared-test",
    )
    .map_err(|e| alloc::format!("create: {e}"))?;
    let layout = Layout::from_size_align(256, 8).map_err(|e| alloc::format!("{e}"))?;
    let from_domain = crate::domain::enter(d.owner(), || {
        let p = shared_heap::alloc(layout).expect("shared alloc");
        // SAFETY: 256 bytes, ours.
        unsafe { core::ptr::write_bytes(p.as_ptr(), 0x5A, 256) };
        p
    })
    .map_err(|e| alloc::format!("enter: {e}"))?;
    ensure!(
        !crate::domain::heap::in_region(from_domain.as_ptr() as u64),
        "shared object in a domain heap"
    );
    crate::domain::kill(d, "test");
    // SAFETY: the object is on the shared heap, not the dead domain's.
    let intact = unsafe { core::slice::from_raw_parts(from_domain.as_ptr(), 256) }
        .iter()
        .all(|&b| b == 0x5A);
    ensure!(
        intact,
        "shared object changed when its allocating domain died"
    );
    shared_heap::free(from_domain, layout);
    for (pointer, layout) in objects {
        shared_heap::free(pointer, layout);
    }
    // Freed page runs of different growth steps (separate frame
    // allocations) must not merge into one object: every large object of a
    // churn of allocations and frees is still one piece of physical memory.
    // A frame taken between allocations keeps consecutive growth steps
    // apart in physical memory, as a long-running system's would be.
    let mut spacers = Vec::new();
    let mut live: Vec<(core::ptr::NonNull<u8>, Layout)> = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..600 {
        if let Some(frame) = crate::mem::frames::alloc() {
            spacers.push(frame);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.len() > 12 || (round % 3 == 2 && !live.is_empty()) {
            let (pointer, layout) = live.swap_remove((x >> 8) as usize % live.len());
            shared_heap::free(pointer, layout);
            continue;
        }
        let size = ((x >> 16) % (20 * 4096) + 4096) as usize;
        let layout = Layout::from_size_align(size, 4096).map_err(|e| alloc::format!("{e}"))?;
        let pointer = shared_heap::alloc(layout).ok_or("shared heap exhausted")?;
        let base = shared_heap::device_address(pointer.as_ptr()).ok_or("no device address")?;
        for offset in (0..size).step_by(4096) {
            // SAFETY: `offset` is within the allocation.
            let here = shared_heap::device_address(unsafe { pointer.as_ptr().add(offset) })
                .ok_or("unmapped")?;
            if here != base + offset as u64 {
                shared_heap::free(pointer, layout);
                for (pointer, layout) in live {
                    shared_heap::free(pointer, layout);
                }
                spacers.into_iter().for_each(crate::mem::frames::free);
                return Err(alloc::format!(
                    "round {round}: {size} bytes not contiguous at offset {offset}"
                ));
            }
        }
        live.push((pointer, layout));
    }
    for (pointer, layout) in live {
        shared_heap::free(pointer, layout);
    }
    spacers.into_iter().for_each(crate::mem::frames::free);
    ensure!(
        shared_heap::usage().0 == bytes_before,
        "shared heap bytes not back: {:?}",
        shared_heap::usage()
    );
    Ok(())
}
