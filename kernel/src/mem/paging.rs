//! Our own 4-level page tables.
//!
//! The kernel builds one set of tables at boot (`build_kernel_tables`) and
//! every core loads it. Table frames are reached through the physical map,
//! so this code works both under the boot identity map and afterwards.

use core::fmt;

use spin::Mutex;

use super::{PAGE_SIZE, frames, phys_to_virt};

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const WRITE_THROUGH: u64 = 1 << 3;
pub const NO_CACHE: u64 = 1 << 4;
pub const HUGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;

const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const HUGE_2M: u64 = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    OutOfFrames,
    AlreadyMapped(u64),
    /// The address is covered by a 2 MiB mapping and cannot be split here.
    InsideHugePage(u64),
    Misaligned(u64),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::OutOfFrames => write!(f, "out of physical frames for page tables"),
            MapError::AlreadyMapped(v) => write!(f, "{v:#x} is already mapped"),
            MapError::InsideHugePage(v) => write!(f, "{v:#x} lies inside a 2 MiB page"),
            MapError::Misaligned(v) => write!(f, "{v:#x} is not aligned"),
        }
    }
}

/// A 4-level page table hierarchy identified by its PML4 frame.
pub struct PageTables {
    pml4: u64,
}

fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: `phys` is a page-table frame owned by a `PageTables`, mapped
    // through the physical map; the global lock in `KERNEL` (or exclusive
    // ownership during boot) serialises all access.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1FF) as usize
}

impl PageTables {
    pub fn new() -> Result<PageTables, MapError> {
        Ok(PageTables {
            pml4: frames::alloc_table().ok_or(MapError::OutOfFrames)?,
        })
    }

    pub fn root(&self) -> u64 {
        self.pml4
    }

    /// The entry at `level` (1 = page table) for `virt`, creating the
    /// intermediate tables on the way down.
    fn entry(&mut self, virt: u64, level: u32) -> Result<&'static mut u64, MapError> {
        let mut current = self.pml4;
        for l in (level + 1..=4).rev() {
            let entry = &mut table(current)[index(virt, l)];
            if *entry & PRESENT == 0 {
                let frame = frames::alloc_table().ok_or(MapError::OutOfFrames)?;
                // Intermediate entries are permissive; leaf entries decide.
                *entry = frame | PRESENT | WRITABLE;
            } else if *entry & HUGE != 0 {
                return Err(MapError::InsideHugePage(virt));
            }
            current = *entry & ADDR_MASK;
        }
        Ok(&mut table(current)[index(virt, level)])
    }

    pub fn map_4k(&mut self, virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
        if !virt.is_multiple_of(PAGE_SIZE) || !phys.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Misaligned(virt | phys));
        }
        let entry = self.entry(virt, 1)?;
        if *entry & PRESENT != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        *entry = phys | flags | PRESENT;
        Ok(())
    }

    pub fn map_2m(&mut self, virt: u64, phys: u64, flags: u64) -> Result<(), MapError> {
        if !virt.is_multiple_of(HUGE_2M) || !phys.is_multiple_of(HUGE_2M) {
            return Err(MapError::Misaligned(virt | phys));
        }
        let entry = self.entry(virt, 2)?;
        if *entry & PRESENT != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        *entry = phys | flags | PRESENT | HUGE;
        Ok(())
    }

    /// Removes a 4 KiB mapping and flushes it from this core's TLB.
    /// Returns the frame it pointed to.
    pub fn unmap_4k(&mut self, virt: u64) -> Option<u64> {
        let mut current = self.pml4;
        for l in (2..=4).rev() {
            let entry = table(current)[index(virt, l)];
            if entry & PRESENT == 0 || entry & HUGE != 0 {
                return None;
            }
            current = entry & ADDR_MASK;
        }
        let entry = &mut table(current)[index(virt, 1)];
        if *entry & PRESENT == 0 {
            return None;
        }
        let phys = *entry & ADDR_MASK;
        *entry = 0;
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(virt));
        Some(phys)
    }

    /// Physical address and leaf flags for `virt`, if mapped.
    pub fn translate(&self, virt: u64) -> Option<(u64, u64)> {
        walk(self.pml4, virt)
    }
}

fn walk(pml4: u64, virt: u64) -> Option<(u64, u64)> {
    {
        let mut current = pml4;
        for l in (1..=4).rev() {
            let entry = table(current)[index(virt, l)];
            if entry & PRESENT == 0 {
                return None;
            }
            if l == 1 || entry & HUGE != 0 {
                let page = 1u64 << (12 + 9 * (l - 1));
                let flags = entry & !ADDR_MASK;
                let base = entry & ADDR_MASK & !(page - 1);
                return Some((base + (virt & (page - 1)), flags));
            }
            current = entry & ADDR_MASK;
        }
        None
    }
}

/// The one set of kernel page tables, shared by all cores.
pub static KERNEL: Mutex<Option<PageTables>> = Mutex::new(None);

/// Runs `f` on the kernel page tables with interrupts off.
pub fn with_kernel<R>(f: impl FnOnce(&mut PageTables) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = KERNEL.lock();
        f(guard.as_mut().expect("kernel page tables not built"))
    })
}

pub fn translate(virt: u64) -> Option<(u64, u64)> {
    with_kernel(|pt| pt.translate(virt))
}

/// Like [`translate`] but without taking the lock, through the tables this
/// core has loaded: for fault handlers, which must not wait for a lock the
/// faulting code may hold. Only reads.
pub fn translate_current(virt: u64) -> Option<(u64, u64)> {
    let (frame, _) = x86_64::registers::control::Cr3::read();
    walk(frame.start_address().as_u64(), virt)
}

/// The end of the direct map's boot-time part: physical memory below it
/// (RAM, and the 32-bit MMIO hole, uncached) is mapped at boot.
pub fn direct_map_limit(highest: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    (highest.max(4 * GIB)).next_multiple_of(HUGE_2M)
}

/// Maps device memory `phys..phys + size` that lies above the boot-time
/// direct map (a 64-bit BAR the firmware placed high, a configuration
/// window) into the direct map at its usual place (`phys_to_virt(phys)`),
/// uncached and not executable, with 2 MiB pages where the range allows
/// and 4 KiB pages at its edges. Parts already mapped are left as they
/// are. Returns false (and maps nothing more) if a page table could not
/// be allocated.
pub fn map_device_memory(phys: u64, size: u64) -> bool {
    let flags = WRITABLE | NO_EXECUTE | GLOBAL | NO_CACHE | WRITE_THROUGH;
    let start = phys & !(PAGE_SIZE - 1);
    let end = phys.saturating_add(size).next_multiple_of(PAGE_SIZE);
    with_kernel(|pt| {
        let mut at = start;
        while at < end {
            let virt = super::layout::PHYS_MAP.start + at;
            let (step, result) = if at.is_multiple_of(HUGE_2M) && end - at >= HUGE_2M {
                (HUGE_2M, pt.map_2m(virt, at, flags))
            } else {
                (PAGE_SIZE, pt.map_4k(virt, at, flags))
            };
            match result {
                Ok(()) | Err(MapError::AlreadyMapped(_)) | Err(MapError::InsideHugePage(_)) => {}
                Err(_) => return false,
            }
            at += step;
        }
        true
    })
}
