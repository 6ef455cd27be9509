//! PCI: enumeration over ECAM (the MCFG table's memory-mapped
//! configuration windows) at boot, BAR decoding (`kcore::pci`), and the
//! record of which domain has claimed which device.
//!
//! Configuration space and device registers are reached through the
//! kernel's direct map: the 32-bit MMIO hole is mapped uncached at boot,
//! and device memory the firmware placed above RAM (64-bit BARs, often
//! far above 4 GiB on machines with much memory) is mapped uncached at
//! enumeration, where the direct map would put it.

use alloc::vec::Vec;

use kcore::pci::{Bar, ConfigSpace, Header};
use spin::Once;

use crate::mem::phys_to_virt;
use executor::OwnerId;

/// One PCI function.
#[derive(Debug, Clone)]
pub struct Function {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub header: Header,
    pub bars: [Bar; 6],
    /// Which memory BARs the kernel reaches (uncached, through the direct
    /// map): those in the 32-bit MMIO hole, and those the firmware placed
    /// above the memory the direct map covers, mapped at enumeration.
    pub reachable: [bool; 6],
    /// Physical address of its 4 KiB configuration space.
    pub config: u64,
}

impl Function {
    /// `bb:dd.f`.
    pub fn address(&self) -> alloc::string::String {
        alloc::format!("{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }

    /// Its configuration space.
    pub fn config_space(&self) -> Ecam {
        Ecam {
            base: phys_to_virt(self.config) as *mut u32,
        }
    }
}

/// A function's configuration space through ECAM.
pub struct Ecam {
    base: *mut u32,
}

impl ConfigSpace for Ecam {
    fn read32(&self, offset: u16) -> u32 {
        let offset = usize::from(offset & 0xFFC);
        // SAFETY: `base` is the direct-map address of a 4 KiB ECAM window
        // (uncached); `offset` is aligned and inside it.
        unsafe { core::ptr::read_volatile(self.base.add(offset / 4)) }
    }

    fn write32(&mut self, offset: u16, value: u32) {
        let offset = usize::from(offset & 0xFFC);
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(self.base.add(offset / 4), value) }
    }
}

static FUNCTIONS: Once<Vec<Function>> = Once::new();

/// Where device memory at `address..address + size` is reachable: in the
/// 32-bit hole (mapped uncached at boot), or above the direct map's
/// boot-time part (`limit`), mapped now. Device memory between 4 GiB and
/// `limit` would sit inside the cacheable map of RAM: not used.
fn reach(address: u64, size: u64, limit: u64) -> bool {
    const GIB: u64 = 1 << 30;
    let Some(end) = address.checked_add(size) else {
        return false;
    };
    if (3 * GIB..=4 * GIB).contains(&address) && end <= 4 * GIB {
        return true;
    }
    address >= limit && crate::mem::paging::map_device_memory(address, size)
}

/// Enumerates every function the MCFG's windows cover (physical
/// addresses of the windows: `(base, first bus, last bus)`). `highest` is
/// the highest physical address of RAM (what the direct map covers).
pub fn init(windows: &[(u64, u8, u8)], highest: u64) {
    let limit = crate::mem::paging::direct_map_limit(highest);
    let mut found = Vec::new();
    for &(base, first, last) in windows {
        let size = (u64::from(last) - u64::from(first) + 1) << 20;
        // Below 4 GiB the direct map covers a window already (q35 puts it
        // at 0xB000_0000); above, it is mapped like a high BAR.
        let mapped = base.checked_add(size).is_some_and(|end| end <= 4 << 30);
        if !mapped && !reach(base, size, limit) {
            crate::warn!(
                "pci: ECAM window at {base:#x} ({} MiB) cannot be mapped; skipped",
                size >> 20
            );
            continue;
        }
        for bus in first..=last {
            for device in 0..32u8 {
                for function in 0..8u8 {
                    let config = base
                        + (u64::from(bus - first) << 20
                            | u64::from(device) << 15
                            | u64::from(function) << 12);
                    let mut space = Ecam {
                        base: phys_to_virt(config) as *mut u32,
                    };
                    let Some(header) = Header::read(&space) else {
                        if function == 0 {
                            break;
                        }
                        continue;
                    };
                    let bars = if header.header_type == 0 {
                        kcore::pci::probe_bars(&mut space)
                    } else {
                        [Bar::None; 6]
                    };
                    let mut reachable = [false; 6];
                    for (index, bar) in bars.iter().enumerate() {
                        if let Bar::Memory { address, size, .. } = *bar {
                            reachable[index] = reach(address, size, limit);
                            if !reachable[index] {
                                crate::warn!(
                                    "pci: {bus:02x}:{device:02x}.{function} BAR {index} at {address:#x} ({size:#x} bytes) cannot be mapped"
                                );
                            }
                        }
                    }
                    found.push(Function {
                        bus,
                        device,
                        function,
                        header,
                        bars,
                        reachable,
                        config,
                    });
                    if function == 0 && !header.multifunction {
                        break;
                    }
                }
            }
        }
    }
    crate::info!("pci: {} functions", found.len());
    FUNCTIONS.call_once(|| found);
}

/// Every function found at boot.
pub fn functions() -> &'static [Function] {
    FUNCTIONS.get().map_or(&[], |f| f.as_slice())
}

// ---- claims: the capability a driver domain gets -------------------------

/// Which domain incarnation holds each function (by index in
/// [`functions`]); 0: nobody.
static CLAIMS: spin::Mutex<Vec<OwnerId>> = spin::Mutex::new(Vec::new());

/// A claimed function, as a driver domain sees it (`domain_sdk::Device`).
/// Every access checks that the claim is still its owner's and that the
/// register lies inside the BAR.
pub struct Claimed {
    index: usize,
    owner: OwnerId,
}

impl Claimed {
    fn function(&self) -> &'static Function {
        &functions()[self.index]
    }

    fn valid(&self) -> Result<(), domain_sdk::DeviceError> {
        let holder = crate::cpu::kernel_section(|| CLAIMS.lock().get(self.index).copied());
        if holder == Some(self.owner) {
            Ok(())
        } else {
            Err(domain_sdk::DeviceError::Revoked)
        }
    }

    /// The register's virtual address, if `offset..offset + width` lies in
    /// memory BAR `bar` (one the kernel reaches: see `Function::reachable`)
    /// and is aligned.
    fn register(
        &self,
        bar: usize,
        offset: u64,
        width: u64,
    ) -> Result<u64, domain_sdk::DeviceError> {
        self.valid()?;
        let Some(Bar::Memory { address, size, .. }) = self.function().bars.get(bar).copied() else {
            return Err(domain_sdk::DeviceError::OutOfBounds);
        };
        let end = offset
            .checked_add(width)
            .ok_or(domain_sdk::DeviceError::OutOfBounds)?;
        if end > size
            || !offset.is_multiple_of(width)
            || !self.function().reachable.get(bar).copied().unwrap_or(false)
        {
            return Err(domain_sdk::DeviceError::OutOfBounds);
        }
        Ok(phys_to_virt(address + offset) as u64)
    }
}

impl domain_sdk::Device for Claimed {
    fn id(&self) -> (u16, u16) {
        let h = self.function().header;
        (h.vendor, h.device)
    }

    fn bar_size(&self, bar: usize) -> u64 {
        match self.function().bars.get(bar) {
            Some(Bar::Memory { size, .. }) => *size,
            _ => 0,
        }
    }

    fn read32(&self, bar: usize, offset: u64) -> Result<u32, domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 4)?;
        // SAFETY: `register` checked the claim, the bounds and the
        // alignment; the BAR is device memory mapped uncached.
        Ok(unsafe { core::ptr::read_volatile(at as *const u32) })
    }

    fn write32(&self, bar: usize, offset: u64, value: u32) -> Result<(), domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 4)?;
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(at as *mut u32, value) };
        Ok(())
    }

    fn read64(&self, bar: usize, offset: u64) -> Result<u64, domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 8)?;
        // SAFETY: as in `read32`.
        Ok(unsafe { core::ptr::read_volatile(at as *const u64) })
    }

    fn write64(&self, bar: usize, offset: u64, value: u64) -> Result<(), domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 8)?;
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(at as *mut u64, value) };
        Ok(())
    }

    fn read8(&self, bar: usize, offset: u64) -> Result<u8, domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 1)?;
        // SAFETY: as in `read32`.
        Ok(unsafe { core::ptr::read_volatile(at as *const u8) })
    }

    fn write8(&self, bar: usize, offset: u64, value: u8) -> Result<(), domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 1)?;
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(at as *mut u8, value) };
        Ok(())
    }

    fn read16(&self, bar: usize, offset: u64) -> Result<u16, domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 2)?;
        // SAFETY: as in `read32`.
        Ok(unsafe { core::ptr::read_volatile(at as *const u16) })
    }

    fn write16(&self, bar: usize, offset: u64, value: u16) -> Result<(), domain_sdk::DeviceError> {
        let at = self.register(bar, offset, 2)?;
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(at as *mut u16, value) };
        Ok(())
    }

    fn config_read32(&self, offset: u16) -> Result<u32, domain_sdk::DeviceError> {
        self.valid()?;
        if offset >= 4096 || !offset.is_multiple_of(4) {
            return Err(domain_sdk::DeviceError::OutOfBounds);
        }
        Ok(self.function().config_space().read32(offset))
    }

    fn set_bus_master(&self, on: bool) {
        if self.valid().is_ok() {
            set_bus_master(self.function(), on);
        }
    }
}

fn set_bus_master(function: &Function, on: bool) {
    use kcore::pci::{command, reg};
    let mut space = function.config_space();
    let value = space.read32(reg::COMMAND);
    let bits = u32::from(command::MEMORY | command::BUS_MASTER);
    space.write32(
        reg::COMMAND,
        if on {
            value | bits
        } else {
            value & !u32::from(command::BUS_MASTER)
        },
    );
}

/// Why [`claim`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    Device(domain_sdk::DeviceError),
    /// `permitted` refused the function's vendor (given).
    NotPermitted(u16),
}

impl From<domain_sdk::DeviceError> for ClaimError {
    fn from(error: domain_sdk::DeviceError) -> ClaimError {
        ClaimError::Device(error)
    }
}

/// Claims the `index`th function of `class` for domain incarnation
/// `owner` (a live holder keeps it; a dead holder's claim lapses), if
/// `permitted` allows the function's vendor (the owner's grants).
pub fn claim(
    class: (u8, u8, u8),
    index: usize,
    owner: OwnerId,
    permitted: &dyn Fn(u16) -> bool,
) -> Result<Claimed, ClaimError> {
    let (position, function) = functions()
        .iter()
        .enumerate()
        .filter(|(_, f)| (f.header.class, f.header.subclass, f.header.prog_if) == class)
        .nth(index)
        .ok_or(domain_sdk::DeviceError::NoDevice)?;
    if !permitted(function.header.vendor) {
        return Err(ClaimError::NotPermitted(function.header.vendor));
    }
    crate::cpu::kernel_section(|| {
        let mut claims = CLAIMS.lock();
        if claims.len() < functions().len() {
            claims.resize(functions().len(), OwnerId::KERNEL);
        }
        let holder = claims[position];
        let holder_alive = holder != OwnerId::KERNEL
            && crate::domain::get(holder.slot())
                .is_some_and(|d| d.owner() == holder && d.state() == crate::domain::State::Alive);
        if holder_alive && holder != owner {
            return Err(domain_sdk::DeviceError::Busy.into());
        }
        if !holder_alive {
            // A new holder: its device may DMA into the shared heap (only).
            let f = &functions()[position];
            match crate::iommu::attach(f.bus, f.device, f.function) {
                Ok(true) => {}
                Ok(false) => crate::debug!(
                    "pci {}: its DMA is not confined (no IOMMU covers it)",
                    f.address()
                ),
                Err(e) => {
                    crate::warn!("pci {}: cannot give it to the IOMMU: {e}", f.address());
                    return Err(domain_sdk::DeviceError::NoDevice.into());
                }
            }
        }
        claims[position] = owner;
        Ok(Claimed {
            index: position,
            owner,
        })
    })
}

/// A domain incarnation died: its devices stop DMA (bus mastering off)
/// before its memory is reclaimed, and its claims lapse. Returns how many.
pub fn release(owner: OwnerId) -> usize {
    crate::cpu::kernel_section(|| {
        let mut claims = CLAIMS.lock();
        let mut released = 0;
        for (position, holder) in claims.iter_mut().enumerate() {
            if *holder == owner {
                let f = &functions()[position];
                set_bus_master(f, false);
                // And whatever the device still does, it reaches nothing.
                crate::iommu::detach(f.bus, f.device, f.function);
                *holder = OwnerId::KERNEL;
                released += 1;
            }
        }
        released
    })
}

/// The holder of each claimed function, for `pci`.
pub fn holder(position: usize) -> OwnerId {
    crate::cpu::kernel_section(|| {
        CLAIMS
            .lock()
            .get(position)
            .copied()
            .unwrap_or(OwnerId::KERNEL)
    })
}
