//! The IOMMU (Intel VT-d): every device's DMA confined to the shared heap.
//!
//! Without it, a driver domain programs its device with physical addresses
//! as plain numbers, and the device reads and writes wherever they point:
//! the kernel image, page tables, other domains' private heaps. With it,
//! each claimed PCI function gets a context entry that translates its DMA
//! through one second-level page table mapping exactly the shared heap's
//! frames, at their physical addresses (so `RRef::device_address` stays
//! what the driver writes). A function nobody has claimed, or whose driver
//! has died, has no context entry: its DMA is blocked (and recorded as a
//! fault), whatever its bus-master bit says.
//!
//! What remains (see `docs/threat-model.md`): the shared heap is one
//! address space for every device, so a malicious driver can still make
//! its device read or write other domains' `RRef`s (never kernel memory or
//! private heaps). Per-driver page tables that follow `RRef` ownership
//! would close that, at the cost of a mapping change and an IOTLB
//! invalidation on every call that moves a buffer.
//!
//! Bring-up follows the VT-d specification (chapter 10, register
//! descriptions; chapter 9, root/context entries and second-level paging):
//! root table, context tables per bus, global invalidation of the context
//! cache and the IOTLB, then translation on. Only a unit that covers every
//! device of segment 0 (`INCLUDE_PCI_ALL`, what QEMU's `intel-iommu`
//! describes) is used; a machine with device-scoped units runs without.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use kcore::acpi::DmarUnit;
use spin::Mutex;

use crate::mem::{PAGE_SIZE, frames, phys_to_virt};

// Register offsets (VT-d spec, section 10.4).
const CAP: usize = 0x08;
const ECAP: usize = 0x10;
const GCMD: usize = 0x18;
const GSTS: usize = 0x1C;
const RTADDR: usize = 0x20;
const CCMD: usize = 0x28;
#[cfg(feature = "ktest")]
const FSTS: usize = 0x34;

// Global command / status bits.
const TE: u32 = 1 << 31;
const SRTP: u32 = 1 << 30;
const WBF: u32 = 1 << 27;
/// Status bits that mirror persistent commands (the one-shot ones masked
/// out), to be written back with each new command.
const PERSISTENT: u32 = 0x96FF_FFFF;

// Context command: invalidate the context cache, globally.
const CCMD_ICC: u64 = 1 << 63;
const CCMD_GLOBAL: u64 = 1 << 61;
// IOTLB invalidate: globally, draining reads and writes.
const IOTLB_IVT: u64 = 1 << 63;
const IOTLB_GLOBAL: u64 = 1 << 60;
const IOTLB_DRAIN: u64 = 3 << 48;

// Second-level paging entries: read, write.
const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
const ADDRESS: u64 = 0x000F_FFFF_FFFF_F000;

/// The domain id every context entry uses (one address space: the
/// shared heap).
const DOMAIN_ID: u64 = 1;

struct Unit {
    registers: *mut u8,
    /// Paging levels of the second-level table (3: 39-bit, 4: 48-bit).
    levels: u32,
    /// The address-width field of a context entry for `levels`.
    aw: u64,
    /// Where the IOTLB registers are (ECAP.IRO * 16).
    iotlb: usize,
    /// Page walks do not snoop the caches: table writes are flushed.
    flush_tables: bool,
    /// Writes must be flushed from the write buffer before invalidations.
    write_buffer_flush: bool,
    root: u64,
    /// What the firmware says the unit covers.
    scope: DmarUnit,
    /// The second-level table's root (one for every device).
    table: u64,
    /// Context table of each bus (0: not allocated yet).
    contexts: [u64; 256],
}

// SAFETY: the register pointer is the direct-map address of the unit's
// MMIO block; all use is under `UNIT`'s lock.
unsafe impl Send for Unit {}

static UNIT: Mutex<Option<Unit>> = Mutex::new(None);
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Shared-heap growth steps (physical start, pages), kept so that a unit
/// brought up later maps them too.
static SHARED: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());

/// Whether device DMA is confined (an IOMMU is on).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

impl Unit {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: an aligned register inside the unit's MMIO block.
        unsafe { core::ptr::read_volatile(self.registers.add(offset) as *const u32) }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(self.registers.add(offset) as *mut u32, value) }
    }

    fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as above.
        unsafe { core::ptr::read_volatile(self.registers.add(offset) as *const u64) }
    }

    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(self.registers.add(offset) as *mut u64, value) }
    }

    /// Issues a global command and waits for its status bit (`set`: the
    /// bit must become 1, else 0).
    fn command(&self, bit: u32, set: bool) -> Result<(), &'static str> {
        let status = self.read32(GSTS) & PERSISTENT;
        self.write32(GCMD, if set { status | bit } else { status & !bit });
        self.wait(|| (self.read32(GSTS) & bit != 0) == set)
    }

    fn wait(&self, mut done: impl FnMut() -> bool) -> Result<(), &'static str> {
        let deadline = crate::time::now_ns() + 100_000_000;
        while !done() {
            if crate::time::now_ns() > deadline {
                return Err("the IOMMU did not answer within 100 ms");
            }
            core::hint::spin_loop();
        }
        Ok(())
    }

    /// Makes table writes visible to the unit's page walks.
    fn flush(&self, phys: u64, len: usize) {
        if !self.flush_tables {
            return;
        }
        let start = phys_to_virt(phys) as usize;
        for line in (start..start + len).step_by(64) {
            // SAFETY: `line` is inside a mapped table frame; flushing a
            // cache line has no other effect.
            unsafe { core::arch::x86_64::_mm_clflush(line as *const u8) };
        }
    }

    /// Invalidates every cached context entry and translation.
    fn invalidate(&self) -> Result<(), &'static str> {
        if self.write_buffer_flush {
            let status = self.read32(GSTS) & PERSISTENT;
            self.write32(GCMD, status | WBF);
            self.wait(|| self.read32(GSTS) & WBF == 0)?;
        }
        self.write64(CCMD, CCMD_ICC | CCMD_GLOBAL);
        self.wait(|| self.read64(CCMD) & CCMD_ICC == 0)?;
        self.write64(self.iotlb + 8, IOTLB_IVT | IOTLB_GLOBAL | IOTLB_DRAIN);
        self.wait(|| self.read64(self.iotlb + 8) & IOTLB_IVT == 0)
    }

    /// Maps `pages` pages from `phys` at the same address in the shared
    /// table (a page not mapped before needs no invalidation).
    fn map(&mut self, phys: u64, pages: usize) -> Result<(), &'static str> {
        for page in 0..pages as u64 {
            let address = phys + page * PAGE_SIZE;
            let mut table = self.table;
            for level in (1..self.levels).rev() {
                let index = (address >> (12 + 9 * level)) as usize & 511;
                let entry = table_entry(table, index);
                // SAFETY: `entry` points into a table frame we own.
                let value = unsafe { entry.read_volatile() };
                table = if value & READ != 0 {
                    value & ADDRESS
                } else {
                    let next = frames::alloc_table().ok_or("no memory for IOMMU tables")?;
                    // SAFETY: as above.
                    unsafe { entry.write_volatile(next | READ | WRITE) };
                    self.flush(table + index as u64 * 8, 8);
                    next
                };
            }
            let index = (address >> 12) as usize & 511;
            // SAFETY: as above.
            unsafe { table_entry(table, index).write_volatile(address | READ | WRITE) };
            self.flush(table + index as u64 * 8, 8);
        }
        Ok(())
    }

    /// Sets (or clears) the context entry of `bus:device.function`.
    fn set_context(&mut self, bus: u8, devfn: u8, present: bool) -> Result<(), &'static str> {
        let mut context = self.contexts[usize::from(bus)];
        if context == 0 {
            if !present {
                return Ok(());
            }
            context = frames::alloc_table().ok_or("no memory for IOMMU tables")?;
            self.contexts[usize::from(bus)] = context;
            // Root entry: the context table, present.
            // SAFETY: the root table frame is ours; entry `bus` is 16 bytes.
            unsafe { table_entry(self.root, usize::from(bus) * 2).write_volatile(context | 1) };
            self.flush(self.root + u64::from(bus) * 16, 16);
        }
        let low = table_entry(context, usize::from(devfn) * 2);
        let high = table_entry(context, usize::from(devfn) * 2 + 1);
        // SAFETY: the context table frame is ours; entry `devfn` is 16
        // bytes (written high half first, present bit last).
        unsafe {
            if present {
                high.write_volatile(self.aw | DOMAIN_ID << 8);
                low.write_volatile(self.table | 1); // translation type 0: untranslated requests
            } else {
                low.write_volatile(0);
                high.write_volatile(0);
            }
        }
        self.flush(context + u64::from(devfn) * 16, 16);
        self.invalidate()
    }
}

/// The `index`th 8-byte word of the table at physical `table`.
fn table_entry(table: u64, index: usize) -> *mut u64 {
    // SAFETY: callers pass frames they own and indices inside them.
    unsafe { (phys_to_virt(table) as *mut u64).add(index) }
}

/// Brings up the remapping unit of segment 0, maps the shared heap, and
/// turns translation on: from now on, no device the unit covers can DMA
/// until a driver claims it, and then only into the shared heap. (One unit:
/// machines with several per segment keep the others off, and the devices
/// only those cover are not confined.)
pub fn init(units: &[DmarUnit]) {
    let Some(unit) = units.iter().find(|u| u.segment == 0) else {
        crate::warn!("iommu: no remapping unit for PCI segment 0; device DMA is not confined");
        return;
    };
    if units.iter().filter(|u| u.segment == 0).count() > 1 {
        crate::warn!("iommu: several remapping units; only the first is used");
    }
    if unit.register_base >= 4 << 30 || unit.register_base % PAGE_SIZE != 0 {
        crate::warn!(
            "iommu: register block at {:#x} is not usable here; device DMA is not confined",
            unit.register_base
        );
        return;
    }
    match bring_up(unit) {
        Ok(levels) => {
            ENABLED.store(true, Ordering::Release);
            crate::info!(
                "iommu: VT-d at {:#x}, {}-level tables: device DMA confined to the shared heap",
                unit.register_base,
                levels
            );
        }
        Err(e) => crate::warn!("iommu: {e}; device DMA is not confined"),
    }
}

fn bring_up(scope: &DmarUnit) -> Result<u32, &'static str> {
    let registers = phys_to_virt(scope.register_base);
    let probe = Unit {
        registers,
        levels: 0,
        aw: 0,
        iotlb: 0,
        flush_tables: true,
        write_buffer_flush: false,
        root: 0,
        scope: *scope,
        table: 0,
        contexts: [0; 256],
    };
    let cap = probe.read64(CAP);
    let ecap = probe.read64(ECAP);
    let sagaw = (cap >> 8) & 0x1F;
    let (levels, aw) = if sagaw & 0b100 != 0 {
        (4, 2)
    } else if sagaw & 0b010 != 0 {
        (3, 1)
    } else {
        return Err("no supported page-table depth (SAGAW)");
    };
    let root = frames::alloc_table().ok_or("no memory for IOMMU tables")?;
    let table = frames::alloc_table().ok_or("no memory for IOMMU tables")?;
    let mut unit = Unit {
        levels,
        aw,
        iotlb: (((ecap >> 8) & 0x3FF) * 16) as usize,
        flush_tables: ecap & 1 == 0,
        write_buffer_flush: cap & (1 << 4) != 0,
        root,
        table,
        ..probe
    };
    for &(phys, pages) in SHARED.lock().iter() {
        unit.map(phys, pages)?;
    }
    unit.flush(root, PAGE_SIZE as usize);
    unit.write64(RTADDR, root);
    unit.command(SRTP, true)?;
    unit.invalidate()?;
    unit.command(TE, true)?;
    *UNIT.lock() = Some(unit);
    Ok(levels)
}

/// The shared heap grew by `pages` frames from `phys`: devices may reach
/// them.
/// Returns false if the unit could not map them (no memory for its
/// tables): the growth must then fail, or devices would fault on it.
/// Kernel-heap bytes the record of the shared heap's growth steps holds
/// (grows with the shared heap's pool, and is kept with it).
pub fn bookkeeping_bytes() -> usize {
    SHARED.lock().capacity() * core::mem::size_of::<(u64, usize)>()
}

pub fn shared_heap_grew(phys: u64, pages: usize) -> bool {
    let mut unit = UNIT.lock();
    if let Some(unit) = unit.as_mut()
        && let Err(e) = unit.map(phys, pages)
    {
        crate::warn!("iommu: shared heap growth not mapped: {e}");
        return false;
    }
    SHARED.lock().push((phys, pages));
    true
}

/// A driver claimed `bus:device.function`: its DMA reaches the shared heap.
/// Returns whether its DMA is confined (false: no IOMMU, or one that does
/// not cover the device).
pub fn attach(bus: u8, device: u8, function: u8) -> Result<bool, &'static str> {
    match UNIT.lock().as_mut() {
        Some(unit) if unit.scope.covers(bus, device, function) => unit
            .set_context(bus, device << 3 | function, true)
            .map(|()| true),
        _ => Ok(false),
    }
}

/// Its driver is gone: the function's DMA is blocked.
pub fn detach(bus: u8, device: u8, function: u8) {
    if let Some(unit) = UNIT.lock().as_mut()
        && let Err(e) = unit.set_context(bus, device << 3 | function, false)
    {
        crate::warn!("iommu: detaching {bus:02x}:{device:02x}.{function}: {e}");
    }
}

/// Whether the unit has recorded DMA faults (blocked accesses) since boot
/// (the fault status register's primary pending / overflow bits).
#[cfg(feature = "ktest")]
pub fn faults_recorded() -> bool {
    UNIT.lock()
        .as_ref()
        .is_some_and(|unit| unit.read32(FSTS) & 0b11 != 0)
}
