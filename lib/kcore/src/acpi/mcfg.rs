//! The MCFG: where each PCI segment's memory-mapped (ECAM) configuration
//! space lives.

use super::{AcpiError, Sdt, Signature};
use crate::PhysMemory;
use crate::le::{u8_at, u16_at, u64_at};

/// Most MCFG entries kept.
pub const MAX_MCFG_ENTRIES: usize = 16;

/// The header is followed by 8 reserved bytes, then the entries.
const ENTRIES_OFFSET: u32 = 44;
const ENTRY_LEN: u32 = 16;

/// One configuration-space window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McfgEntry {
    /// Physical address of the window (bus `start_bus` at offset 0).
    pub base_address: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded (inclusive, `>= start_bus`).
    pub end_bus: u8,
}

impl McfgEntry {
    const EMPTY: McfgEntry = McfgEntry {
        base_address: 0,
        segment: 0,
        start_bus: 0,
        end_bus: 0,
    };

    /// Physical address of the 4 KiB configuration space of
    /// `bus:device.function`, if this window covers it.
    pub fn config_address(&self, bus: u8, device: u8, function: u8) -> Option<u64> {
        if !(self.start_bus..=self.end_bus).contains(&bus) || device >= 32 || function >= 8 {
            return None;
        }
        let offset = u64::from(bus - self.start_bus) << 20
            | u64::from(device) << 15
            | u64::from(function) << 12;
        self.base_address.checked_add(offset)
    }
}

/// The parsed MCFG.
#[derive(Debug, Clone)]
pub struct Mcfg {
    entries: [McfgEntry; MAX_MCFG_ENTRIES],
    len: usize,
}

impl Mcfg {
    pub(super) fn parse(mem: &impl PhysMemory, table: &Sdt) -> Result<Mcfg, AcpiError> {
        const SIG: Signature = Signature::MCFG;
        let length = table.length;
        if length < ENTRIES_OFFSET || !(length - ENTRIES_OFFSET).is_multiple_of(ENTRY_LEN) {
            return Err(AcpiError::BadLength {
                signature: SIG,
                length,
            });
        }
        let count = ((length - ENTRIES_OFFSET) / ENTRY_LEN) as usize;
        if count > MAX_MCFG_ENTRIES {
            return Err(AcpiError::TooManyEntries {
                table: SIG,
                what: "configuration windows",
            });
        }
        let mut mcfg = Mcfg {
            entries: [McfgEntry::EMPTY; MAX_MCFG_ENTRIES],
            len: 0,
        };
        for (i, slot) in mcfg.entries.iter_mut().take(count).enumerate() {
            let offset = ENTRIES_OFFSET + i as u32 * ENTRY_LEN;
            let phys = table.phys + u64::from(offset);
            let raw: [u8; ENTRY_LEN as usize] =
                mem.read_array(phys)
                    .map_err(|error| AcpiError::Unreadable {
                        what: "MCFG",
                        phys,
                        error,
                    })?;
            let bad = AcpiError::BadEntry { table: SIG, offset };
            let entry = McfgEntry {
                base_address: u64_at(&raw, 0).ok_or(bad)?,
                segment: u16_at(&raw, 8).ok_or(bad)?,
                start_bus: u8_at(&raw, 10).ok_or(bad)?,
                end_bus: u8_at(&raw, 11).ok_or(bad)?,
            };
            if entry.start_bus > entry.end_bus {
                return Err(bad);
            }
            *slot = entry;
        }
        mcfg.len = count;
        Ok(mcfg)
    }

    /// The windows, in table order.
    pub fn entries(&self) -> &[McfgEntry] {
        self.entries.get(..self.len).unwrap_or_default()
    }

    /// The window covering `bus` of `segment`.
    pub fn find(&self, segment: u16, bus: u8) -> Option<&McfgEntry> {
        self.entries()
            .iter()
            .find(|e| e.segment == segment && (e.start_bus..=e.end_bus).contains(&bus))
    }
}
