//! PCI configuration space: the standard header and base address
//! registers (BARs), over any [`ConfigSpace`] (the kernel's ECAM window, or
//! a model in the tests). No hardware access here.

/// One function's 4 KiB configuration space.
pub trait ConfigSpace {
    /// The 32-bit register at `offset` (a multiple of 4, below 4096).
    fn read32(&self, offset: u16) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: u16, value: u32);
}

/// Offsets of the header registers.
pub mod reg {
    /// Vendor id (low 16 bits) and device id.
    pub const ID: u16 = 0x00;
    /// Command (low 16 bits) and status.
    pub const COMMAND: u16 = 0x04;
    /// Revision, programming interface, subclass, class.
    pub const CLASS: u16 = 0x08;
    /// Cache line, latency, header type, BIST.
    pub const HEADER: u16 = 0x0C;
    /// The first BAR.
    pub const BAR0: u16 = 0x10;
    /// Capabilities pointer.
    pub const CAPABILITIES: u16 = 0x34;
}

/// Command register bits.
pub mod command {
    /// Respond to I/O space accesses.
    pub const IO: u16 = 1 << 0;
    /// Respond to memory space accesses.
    pub const MEMORY: u16 = 1 << 1;
    /// May master the bus (DMA).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// Legacy INTx interrupts disabled.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// What identifies a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Base class.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Revision.
    pub revision: u8,
    /// Header layout (0: endpoint, 1: PCI bridge), without the
    /// multifunction bit.
    pub header_type: u8,
    /// Whether functions 1-7 of the device may exist.
    pub multifunction: bool,
}

impl Header {
    /// Reads the header; `None` if no function is there (vendor 0xFFFF).
    pub fn read(config: &impl ConfigSpace) -> Option<Header> {
        let id = config.read32(reg::ID);
        let vendor = id as u16;
        if vendor == 0xFFFF || vendor == 0 {
            return None;
        }
        let class = config.read32(reg::CLASS);
        let header = config.read32(reg::HEADER);
        Some(Header {
            vendor,
            device: (id >> 16) as u16,
            class: (class >> 24) as u8,
            subclass: (class >> 16) as u8,
            prog_if: (class >> 8) as u8,
            revision: class as u8,
            header_type: ((header >> 16) & 0x7F) as u8,
            multifunction: header & (1 << 23) != 0,
        })
    }

    /// A short human description of the class.
    pub fn class_name(&self) -> &'static str {
        match (self.class, self.subclass, self.prog_if) {
            (0x01, 0x08, 0x02) => "NVMe controller",
            (0x01, 0x01, _) => "IDE controller",
            (0x01, 0x06, _) => "SATA controller",
            (0x01, _, _) => "storage controller",
            (0x02, 0x00, _) => "Ethernet controller",
            (0x02, _, _) => "network controller",
            (0x03, _, _) => "display controller",
            (0x06, 0x00, _) => "host bridge",
            (0x06, 0x01, _) => "ISA bridge",
            (0x06, 0x04, _) => "PCI bridge",
            (0x06, _, _) => "bridge",
            (0x0C, 0x05, _) => "SMBus controller",
            (0x0C, 0x03, _) => "USB controller",
            _ => "device",
        }
    }
}

/// A decoded base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// Not implemented (or the upper half of a 64-bit BAR).
    None,
    /// Memory space: physical address, size in bytes, 64-bit, prefetchable.
    Memory {
        /// Physical address.
        address: u64,
        /// Size in bytes (a power of two).
        size: u64,
        /// A 64-bit BAR (it used the next register too).
        wide: bool,
        /// Prefetchable.
        prefetchable: bool,
    },
    /// I/O space: port, size in ports.
    Io {
        /// First port.
        port: u32,
        /// Number of ports.
        size: u32,
    },
}

/// Reads and sizes the six BARs of an endpoint (header type 0): memory
/// and I/O decoding are turned off while each BAR is probed with all ones,
/// then everything is restored.
pub fn probe_bars(config: &mut impl ConfigSpace) -> [Bar; 6] {
    let mut bars = [Bar::None; 6];
    let command = config.read32(reg::COMMAND);
    config.write32(
        reg::COMMAND,
        command & !u32::from(command::MEMORY | command::IO),
    );
    let mut i = 0;
    while i < 6 {
        let offset = reg::BAR0 + 4 * i as u16;
        let original = config.read32(offset);
        config.write32(offset, u32::MAX);
        let mask = config.read32(offset);
        config.write32(offset, original);
        if original & 1 == 1 {
            let size_mask = mask & !0x3;
            if size_mask != 0 {
                bars[i] = Bar::Io {
                    port: original & !0x3,
                    size: (!size_mask).wrapping_add(1) & 0xFFFF,
                };
            }
            i += 1;
            continue;
        }
        let wide = (original >> 1) & 0x3 == 0x2;
        let prefetchable = original & 0x8 != 0;
        let mut address = u64::from(original & !0xF);
        let mut size_mask = u64::from(mask & !0xF);
        if wide && i < 5 {
            let high_offset = offset + 4;
            let high = config.read32(high_offset);
            config.write32(high_offset, u32::MAX);
            let high_mask = config.read32(high_offset);
            config.write32(high_offset, high);
            address |= u64::from(high) << 32;
            size_mask |= u64::from(high_mask) << 32;
        } else {
            size_mask |= 0xFFFF_FFFF_0000_0000;
        }
        if size_mask & 0xFFFF_FFFF != 0 || (wide && size_mask != 0) {
            let size = (!size_mask).wrapping_add(1);
            if size != 0 {
                bars[i] = Bar::Memory {
                    address,
                    size,
                    wide,
                    prefetchable,
                };
            }
        }
        i += if wide { 2 } else { 1 };
    }
    config.write32(reg::COMMAND, command);
    bars
}

#[cfg(test)]
mod tests;
