//! Memory: physical frames, the kernel's own 4-level page tables, the
//! kernel heap and guarded stacks.
//!
//! The virtual layout (one address space shared by every core and domain)
//! is one table, in [`layout`].

pub mod frames;
pub mod heap;
pub mod init;
pub mod layout;
pub mod paging;
pub mod stacks;

use core::sync::atomic::{AtomicU64, Ordering};

pub const PAGE_SIZE: u64 = 4096;

/// Offset to add to a physical address to reach it: 0 while the boot
/// identity map is active, `layout::PHYS_MAP.start` afterwards.
static PHYS_BASE: AtomicU64 = AtomicU64::new(0);

/// Virtual address through which physical address `phys` can be accessed.
pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (phys + PHYS_BASE.load(Ordering::Relaxed)) as *mut u8
}

pub(crate) fn set_phys_base(base: u64) {
    PHYS_BASE.store(base, Ordering::Relaxed);
}

/// `PhysMemory` for kcore's parsers (PVH start info, ACPI tables): copies
/// out of physical memory, refusing addresses beyond what is mapped.
pub struct KernelPhys {
    /// Highest physical address (exclusive) that is mapped and may be read.
    pub limit: u64,
}

impl kcore::PhysMemory for KernelPhys {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), kcore::MemError> {
        let end = phys
            .checked_add(buf.len() as u64)
            .ok_or(kcore::MemError::OutOfRange)?;
        if end > self.limit {
            return Err(kcore::MemError::OutOfRange);
        }
        // SAFETY: [phys, end) lies below `limit`, which the caller set to the
        // extent of the current physical mapping, and we only read.
        unsafe {
            core::ptr::copy_nonoverlapping(phys_to_virt(phys), buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }
}

pub fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

pub fn align_down(value: u64, align: u64) -> u64 {
    value / align * align
}
