//! The DMAR: the DMA-remapping (Intel VT-d IOMMU) hardware units.
//!
//! Only what the kernel uses is kept: each DMA-remapping hardware unit
//! definition (DRHD: its register block, its PCI segment, and whether it
//! covers every device of the segment). Other structures (reserved memory
//! regions, ATS, ...) are skipped, but their lengths are still checked, so
//! a malformed table is refused instead of walked past its end.

use super::{AcpiError, Sdt, Signature};
use crate::PhysMemory;
use crate::le::{u8_at, u16_at, u64_at};

/// Most remapping units kept.
pub const MAX_DMAR_UNITS: usize = 8;
/// Most PCI endpoints kept per unit's device scope.
pub const MAX_DMAR_ENDPOINTS: usize = 64;
/// Device scope entry types.
const SCOPE_ENDPOINT: u8 = 1;
const SCOPE_BRIDGE: u8 = 2;

/// The header (36 bytes) is followed by the host address width, flags and
/// 10 reserved bytes; the remapping structures start here.
const STRUCTURES_OFFSET: u32 = 48;
/// Type of a DMA-remapping hardware unit definition.
const DRHD: u16 = 0;
/// A DRHD's fixed part: type, length, flags, size, segment, base.
const DRHD_LEN: u16 = 16;
/// DRHD flag: the unit covers every PCI device of its segment not covered
/// by another unit.
const INCLUDE_PCI_ALL: u8 = 1;

/// One DMA-remapping hardware unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmarUnit {
    /// Physical address of its register block (4 KiB or more).
    pub register_base: u64,
    /// The PCI segment it serves.
    pub segment: u16,
    /// It covers every device of the segment not covered by another unit.
    pub include_all: bool,
    /// PCI endpoints its device scope names on their start bus
    /// (`bus << 8 | device << 3 | function`); endpoints behind bridges and
    /// bridge scopes are not resolved here, and are not counted as covered.
    endpoints: [u16; MAX_DMAR_ENDPOINTS],
    endpoint_count: usize,
    /// The scope named more than this keeps, or a bridge's whole
    /// hierarchy: coverage of devices other than `endpoints` is unknown.
    pub scope_incomplete: bool,
}

impl DmarUnit {
    const EMPTY: DmarUnit = DmarUnit {
        register_base: 0,
        segment: 0,
        include_all: false,
        endpoints: [0; MAX_DMAR_ENDPOINTS],
        endpoint_count: 0,
        scope_incomplete: false,
    };

    /// A unit for tests and callers that build one by hand.
    pub fn new(register_base: u64, segment: u16, include_all: bool) -> DmarUnit {
        DmarUnit {
            register_base,
            segment,
            include_all,
            ..DmarUnit::EMPTY
        }
    }

    /// The endpoints its device scope names (`bus << 8 | devfn`).
    pub fn endpoints(&self) -> &[u16] {
        self.endpoints
            .get(..self.endpoint_count)
            .unwrap_or_default()
    }

    /// Whether DMA from `bus:device.function` of its segment goes through
    /// this unit, as far as the table says.
    pub fn covers(&self, bus: u8, device: u8, function: u8) -> bool {
        let id = u16::from(bus) << 8 | u16::from(device) << 3 | u16::from(function);
        self.include_all || self.endpoints().contains(&id)
    }
}

/// The parsed DMAR.
#[derive(Debug, Clone)]
pub struct Dmar {
    /// Most physical address bits a device can address (the table's value
    /// plus one).
    pub host_address_width: u8,
    units: [DmarUnit; MAX_DMAR_UNITS],
    len: usize,
}

impl Dmar {
    pub(super) fn parse(mem: &impl PhysMemory, table: &Sdt) -> Result<Dmar, AcpiError> {
        const SIG: Signature = Signature::DMAR;
        let length = table.length;
        if length < STRUCTURES_OFFSET {
            return Err(AcpiError::BadLength {
                signature: SIG,
                length,
            });
        }
        let read = |offset: u32, len: usize| -> Result<[u8; 16], AcpiError> {
            let phys = table.phys + u64::from(offset);
            let mut raw = [0u8; 16];
            for (i, byte) in raw.iter_mut().take(len).enumerate() {
                *byte = mem.read_array::<1>(phys + i as u64).map_err(|error| {
                    AcpiError::Unreadable {
                        what: "DMAR",
                        phys,
                        error,
                    }
                })?[0];
            }
            Ok(raw)
        };
        let width = read(36, 1)?[0];
        let mut dmar = Dmar {
            host_address_width: width.saturating_add(1),
            units: [DmarUnit::EMPTY; MAX_DMAR_UNITS],
            len: 0,
        };
        let mut offset = STRUCTURES_OFFSET;
        while offset < length {
            let bad = AcpiError::BadEntry { table: SIG, offset };
            if length - offset < 4 {
                return Err(bad);
            }
            let head = read(offset, 4)?;
            let kind = u16_at(&head, 0).ok_or(bad)?;
            let len = u16_at(&head, 2).ok_or(bad)?;
            // A structure shorter than its own header would never end the
            // walk; one past the table's end reads someone else's memory.
            if len < 4 || u32::from(len) > length - offset {
                return Err(bad);
            }
            if kind == DRHD {
                if len < DRHD_LEN {
                    return Err(bad);
                }
                let raw = read(offset, usize::from(DRHD_LEN))?;
                let mut unit = DmarUnit::new(
                    u64_at(&raw, 8).ok_or(bad)?,
                    u16_at(&raw, 6).ok_or(bad)?,
                    u8_at(&raw, 4).ok_or(bad)? & INCLUDE_PCI_ALL != 0,
                );
                // Device scope entries follow the fixed part.
                let mut at = offset + u32::from(DRHD_LEN);
                let end = offset + u32::from(len);
                while at < end {
                    let bad = AcpiError::BadEntry {
                        table: SIG,
                        offset: at,
                    };
                    if end - at < 6 {
                        return Err(bad);
                    }
                    let head = read(at, 8.min((end - at) as usize))?;
                    let (kind, scope_len) = (head[0], head[1]);
                    if scope_len < 6 || u32::from(scope_len) > end - at || scope_len % 2 != 0 {
                        return Err(bad);
                    }
                    let path = (scope_len - 6) / 2;
                    match kind {
                        SCOPE_ENDPOINT if path == 1 => {
                            let id = u16::from(head[5]) << 8
                                | u16::from(head[6] & 0x1F) << 3
                                | u16::from(head[7] & 0x7);
                            match unit.endpoints.get_mut(unit.endpoint_count) {
                                Some(slot) => {
                                    *slot = id;
                                    unit.endpoint_count += 1;
                                }
                                None => unit.scope_incomplete = true,
                            }
                        }
                        SCOPE_ENDPOINT | SCOPE_BRIDGE => unit.scope_incomplete = true,
                        _ => {} // I/O APICs, HPETs, ACPI devices: no PCI DMA
                    }
                    at += u32::from(scope_len);
                }
                let slot = dmar
                    .units
                    .get_mut(dmar.len)
                    .ok_or(AcpiError::TooManyEntries {
                        table: SIG,
                        what: "remapping units",
                    })?;
                *slot = unit;
                dmar.len += 1;
            }
            offset += u32::from(len);
        }
        Ok(dmar)
    }

    /// The remapping units, in table order.
    pub fn units(&self) -> &[DmarUnit] {
        self.units.get(..self.len).unwrap_or_default()
    }
}
