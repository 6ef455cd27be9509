//! The kernel's virtual address space: every region, in one table.
//!
//! One address space is shared by every core and every domain. Each
//! region below is a constant here; the code that maps it uses that
//! constant, and a compile-time check refuses regions that overlap.
//!
//! | region            | start                   | size                       | what                                                    |
//! |-------------------|-------------------------|----------------------------|---------------------------------------------------------|
//! | (kernel image)    | `0x0000_0000_0010_0000` | to `__kernel_end`          | kernel image, identity mapped, W^X (`linker.ld`)        |
//! | [`PHYS_MAP`]      | `0xFFFF_8000_0000_0000` | 16 TiB                     | all physical memory (2 MiB pages, NX; 3-4 GiB uncached) |
//! | [`KERNEL_HEAP`]   | `0xFFFF_9000_0000_0000` | 16 TiB (mapped: boot size) | kernel heap (4 KiB pages)                               |
//! | [`STACKS`]        | `0xFFFF_A000_0000_0000` | 16 TiB (bump allocated)    | kernel stacks, each above an unmapped guard page        |
//! | [`DOMAIN_HEAPS`]  | `0xFFFF_B000_0000_0000` | 1 TiB: 256 slots × 4 GiB   | private domain heaps (`domain::heap`)                   |
//! | [`TEST_PAGE`]     | `0xFFFF_C000_0000_0000` | 4 KiB                      | a page the paging test maps and unmaps (test kernel)    |
//! | [`SHARED_HEAP`]   | `0xFFFF_C800_0000_0000` | 64 GiB                     | `RRef`s and DMA buffers (`shared_heap`)                 |
//! | [`IMAGE_WINDOWS`] | `0xFFFF_D000_0000_0000` | 16 GiB: 256 slots × 64 MiB | archive images, one window per slot (`domain::loaded`)  |
//!
//! Page 0 and the rest of the low 1 MiB are left unmapped so that null and
//! near-null dereferences fault.

use crate::domain::MAX_SLOTS;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// A range of virtual addresses: `start..start + size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub size: u64,
}

impl Region {
    /// The first address past the region.
    pub const fn end(&self) -> u64 {
        self.start + self.size
    }

    pub const fn contains(&self, address: u64) -> bool {
        address >= self.start && address - self.start < self.size
    }

    /// Whether the two regions share an address.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

/// All physical memory (and the 32-bit MMIO hole), once the kernel's page
/// tables are live: physical address `p` is at `PHYS_MAP.start + p`.
pub const PHYS_MAP: Region = Region {
    start: 0xFFFF_8000_0000_0000,
    size: 16 * TIB,
};

/// The kernel heap (its size is chosen at boot; this is the room for it).
pub const KERNEL_HEAP: Region = Region {
    start: 0xFFFF_9000_0000_0000,
    size: 16 * TIB,
};

/// Kernel stacks, handed out upwards, each above an unmapped guard page.
pub const STACKS: Region = Region {
    start: 0xFFFF_A000_0000_0000,
    size: 16 * TIB,
};

/// Each domain slot's private heap window.
pub const DOMAIN_HEAP_SIZE: u64 = 4 * GIB;

/// Private domain heaps: slot `s` has `DOMAIN_HEAP_SIZE` bytes at
/// `DOMAIN_HEAPS.start + s * DOMAIN_HEAP_SIZE`.
pub const DOMAIN_HEAPS: Region = Region {
    start: 0xFFFF_B000_0000_0000,
    size: DOMAIN_HEAP_SIZE * MAX_SLOTS as u64,
};

/// One page the test kernel's paging test maps, writes and unmaps.
pub const TEST_PAGE: Region = Region {
    start: 0xFFFF_C000_0000_0000,
    size: 4 * KIB,
};

/// The shared heap (`RRef`s, buffers devices reach).
pub const SHARED_HEAP: Region = Region {
    start: 0xFFFF_C800_0000_0000,
    size: 64 * GIB,
};

/// Each domain slot's image window (the most an image may span).
pub const IMAGE_WINDOW_SIZE: u64 = 64 * MIB;

/// Domain images from the boot archive: slot `s`'s image is mapped in
/// `IMAGE_WINDOW_SIZE` bytes at `IMAGE_WINDOWS.start + s * IMAGE_WINDOW_SIZE`.
pub const IMAGE_WINDOWS: Region = Region {
    start: 0xFFFF_D000_0000_0000,
    size: IMAGE_WINDOW_SIZE * MAX_SLOTS as u64,
};

/// Every region of the higher half (the table above).
pub const ALL: [Region; 7] = [
    PHYS_MAP,
    KERNEL_HEAP,
    STACKS,
    DOMAIN_HEAPS,
    TEST_PAGE,
    SHARED_HEAP,
    IMAGE_WINDOWS,
];

// The table is sound: every region lies in the canonical higher half
// without wrapping around, and no two share an address.
const _: () = {
    let mut i = 0;
    while i < ALL.len() {
        let region = ALL[i];
        assert!(region.start >= 0xFFFF_8000_0000_0000 && region.size > 0);
        assert!(
            region.start.checked_add(region.size).is_some(),
            "a region wraps around"
        );
        let mut j = i + 1;
        while j < ALL.len() {
            assert!(
                !region.overlaps(&ALL[j]),
                "two virtual-address regions overlap"
            );
            j += 1;
        }
        i += 1;
    }
};
