//! Boot-time memory set-up: frame allocator from the PVH memory map, the
//! kernel's own page tables, then the heap.

use kcore::frames::FrameAllocator;
use kcore::pvh::BootInfo;

use super::layout::PHYS_MAP;
use super::paging::{self, GLOBAL, NO_CACHE, NO_EXECUTE, PageTables, WRITABLE, WRITE_THROUGH};
use super::{PAGE_SIZE, align_down, align_up, frames, heap, phys_to_virt, set_phys_base};

unsafe extern "C" {
    static __kernel_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

fn sym(s: *const u8) -> u64 {
    s as u64
}

pub struct MemorySummary {
    pub usable_bytes: u64,
    pub highest_address: u64,
    pub heap_bytes: u64,
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Sets up frames, page tables and heap. Runs on the BSP under the boot
/// identity map (which covers the first 4 GiB).
pub fn init(boot: &BootInfo) -> MemorySummary {
    let kernel_start = sym(&raw const __kernel_start);
    let kernel_end = sym(&raw const __kernel_end);

    let highest = boot.memory_map().usable().map(|r| r.end).max().unwrap_or(0);
    let usable_bytes: u64 = boot.memory_map().usable().map(|r| r.end - r.start).sum();
    let bitmap_bytes = align_up(
        FrameAllocator::storage_words(0, highest) as u64 * 8,
        PAGE_SIZE,
    );

    // The bitmap goes in the first usable stretch above the kernel and
    // below 4 GiB (the boot map covers no more) that fits it.
    let bitmap_phys = boot
        .memory_map()
        .usable()
        .filter_map(|r| {
            let start = align_up(r.start.max(kernel_end).max(MIB), PAGE_SIZE);
            (start + bitmap_bytes <= r.end && start + bitmap_bytes <= 4 * GIB).then_some(start)
        })
        .next()
        .expect("no room for the frame bitmap");

    // SAFETY: the bitmap range is usable RAM that we reserve below, so the
    // allocator never hands it out and nothing else refers to it.
    let storage: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(bitmap_phys as *mut u64, (bitmap_bytes / 8) as usize)
    };
    let mut allocator = FrameAllocator::new(storage, 0, highest).expect("frame allocator range");
    for region in boot.memory_map().usable() {
        allocator
            .add_free_region(region.start, region.end)
            .expect("usable region within range");
    }
    // Low 1 MiB (real-mode structures, the AP trampoline at 0x8000), the
    // kernel image, the bitmap, and everything the loader handed us.
    let mut reserve = |start: u64, end: u64| {
        let end = end.min(highest);
        if start < end {
            allocator
                .reserve(
                    align_down(start, PAGE_SIZE),
                    align_up(end, PAGE_SIZE).min(highest),
                )
                .expect("reserved range within range");
        }
    };
    reserve(0, MIB);
    reserve(kernel_start, kernel_end);
    reserve(bitmap_phys, bitmap_phys + bitmap_bytes);
    for range in boot.reserved_ranges() {
        reserve(range.start, range.end);
    }
    frames::install(allocator);

    // The bitmap keeps the (identity) address it was created with, so the
    // new tables map it there too.
    build_kernel_tables(highest, (bitmap_phys, bitmap_phys + bitmap_bytes));

    // The heap: 1/16 of RAM, at least 4 MiB and at most 256 MiB.
    let heap_bytes = align_up((usable_bytes / 16).clamp(4 * MIB, 256 * MIB), PAGE_SIZE);
    heap::init(heap_bytes);

    MemorySummary {
        usable_bytes,
        highest_address: highest,
        heap_bytes,
    }
}

fn build_kernel_tables(highest: u64, bitmap: (u64, u64)) {
    let mut pt = PageTables::new().expect("no memory for page tables");

    // Kernel image, identity mapped with W^X.
    let text = sym(&raw const __kernel_start);
    let rodata = sym(&raw const __rodata_start);
    let data = sym(&raw const __data_start);
    let end = sym(&raw const __kernel_end);
    let mut map_range = |from: u64, to: u64, flags: u64| {
        let mut page = align_down(from, PAGE_SIZE);
        while page < to {
            pt.map_4k(page, page, flags | GLOBAL)
                .expect("kernel image mapping");
            page += PAGE_SIZE;
        }
    };
    map_range(text, rodata, 0);
    map_range(rodata, data, NO_EXECUTE);
    map_range(data, end, WRITABLE | NO_EXECUTE);
    map_range(bitmap.0, bitmap.1, WRITABLE | NO_EXECUTE);

    // All physical memory (and the 32-bit MMIO hole) at `PHYS_MAP`.
    let limit = align_up(highest.max(4 * GIB), 2 * MIB);
    let mut phys = 0;
    while phys < limit {
        let mut flags = WRITABLE | NO_EXECUTE | GLOBAL;
        if (3 * GIB..4 * GIB).contains(&phys) {
            flags |= NO_CACHE | WRITE_THROUGH; // device registers live here
        }
        pt.map_2m(PHYS_MAP.start + phys, phys, flags)
            .expect("physical map");
        phys += 2 * MIB;
    }

    let root = pt.root();
    *paging::KERNEL.lock() = Some(pt);
    load(root);
    set_phys_base(PHYS_MAP.start);
    let _ = phys_to_virt(0);
}

/// Loads the kernel page tables on this core.
pub fn load(root: u64) {
    // SAFETY: `root` is the kernel's PML4, which maps the running code
    // (identity, kernel image), the stack in use (boot stack in .bss or a
    // stack in the stacks region) and the physical map.
    unsafe {
        x86_64::registers::control::Cr3::write(
            x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(root)),
            x86_64::registers::control::Cr3Flags::empty(),
        );
    }
}
