//! ACPI tables: the RSDP, the root table (XSDT or RSDT), and the tables the
//! kernel needs (MADT for CPUs and interrupt controllers, FADT for power
//! management, MCFG for PCI Express configuration space, and the `\_S5_`
//! sleep type from the DSDT's AML for power-off).
//!
//! [`Acpi::parse`] fails only when the RSDP or the root table is broken.
//! Every other table is validated (readable, sane length, checksum) and
//! parsed on its own, so one bad table does not hide the others: its
//! accessor returns the error that table had.

mod aml;
mod dmar;
mod fadt;
mod madt;
mod mcfg;
mod spcr;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod testfw;
#[cfg(test)]
mod tests;

use core::fmt;

pub use aml::SleepType;
pub use dmar::{Dmar, DmarUnit, MAX_DMAR_ENDPOINTS, MAX_DMAR_UNITS};
pub use fadt::{
    AcpiPowerOff, FADT_HW_REDUCED_ACPI, FADT_RESET_REG_SUP, Fadt, GenericAddress, SCI_EN, SLP_EN,
};
pub use madt::{
    InterruptOverride, IoApic, LocalApicNmi, MAX_IOAPICS, MAX_NMIS, MAX_OVERRIDES, MAX_PROCESSORS,
    Madt, Polarity, Processor, Trigger,
};
pub use mcfg::{MAX_MCFG_ENTRIES, Mcfg, McfgEntry};
pub use spcr::Spcr;

use crate::le::{u32_at, u64_at};
use crate::phys::byte_sum;
use crate::{MemError, PhysMemory};

/// Most tables the root table may list.
pub const MAX_TABLES: usize = 64;
/// Longest table accepted, in bytes (large DSDTs are a few hundred KiB).
pub const MAX_TABLE_LEN: u32 = 4 << 20;
/// Size of the common table header.
pub const SDT_HEADER_LEN: u32 = 36;
/// Longest RSDP accepted (ACPI 2.0+ defines 36 bytes).
const MAX_RSDP_LEN: u32 = 1024;

/// A four-byte table signature such as `APIC`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// Multiple APIC Description Table.
    pub const MADT: Signature = Signature(*b"APIC");
    /// Fixed ACPI Description Table.
    pub const FADT: Signature = Signature(*b"FACP");
    /// PCI Express memory-mapped configuration table.
    pub const MCFG: Signature = Signature(*b"MCFG");
    /// DMA remapping table (Intel VT-d IOMMU).
    pub const DMAR: Signature = Signature(*b"DMAR");
    /// Serial Port Console Redirection table.
    pub const SPCR: Signature = Signature(*b"SPCR");
    /// Differentiated System Description Table (AML).
    pub const DSDT: Signature = Signature(*b"DSDT");
    /// Extended (64-bit) root table.
    pub const XSDT: Signature = Signature(*b"XSDT");
    /// 32-bit root table.
    pub const RSDT: Signature = Signature(*b"RSDT");
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why ACPI data could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// Memory the tables point to could not be read.
    Unreadable {
        /// What was being read.
        what: &'static str,
        /// Where.
        phys: u64,
        /// Why the read failed.
        error: MemError,
    },
    /// No `RSD PTR ` signature at the given address.
    BadRsdpSignature,
    /// The first 20 bytes of the RSDP do not sum to zero.
    BadRsdpChecksum,
    /// The whole (ACPI 2.0+) RSDP does not sum to zero.
    BadRsdpExtendedChecksum,
    /// The RSDP's length field is out of bounds.
    BadRsdpLength(u32),
    /// The RSDP points to no root table.
    NoRootTable,
    /// A table has the wrong signature.
    BadSignature {
        /// What was expected.
        expected: Signature,
        /// What was found.
        found: Signature,
    },
    /// A table's length is too short, too long, or runs past the address space.
    BadLength {
        /// The table.
        signature: Signature,
        /// Its length field.
        length: u32,
    },
    /// A table's bytes do not sum to zero.
    BadChecksum(Signature),
    /// The root table lists more than [`MAX_TABLES`] tables.
    TooManyTables(usize),
    /// No table with this signature.
    MissingTable(Signature),
    /// A table holds more entries of one kind than we keep.
    TooManyEntries {
        /// The table.
        table: Signature,
        /// The kind of entry.
        what: &'static str,
    },
    /// A table entry is malformed.
    BadEntry {
        /// The table.
        table: Signature,
        /// Byte offset of the entry in the table.
        offset: u32,
    },
    /// The DSDT has no `\_S5_` package.
    S5NotFound,
    /// The `\_S5_` package is malformed.
    BadS5(&'static str),
    /// A register address does not fit an I/O port (or is absent).
    BadPort {
        /// Which register.
        what: &'static str,
        /// The value found.
        value: u64,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::Unreadable { what, phys, error } => {
                write!(f, "cannot read {what} at {phys:#x}: {error}")
            }
            AcpiError::BadRsdpSignature => f.write_str("no RSDP signature"),
            AcpiError::BadRsdpChecksum => f.write_str("bad RSDP checksum"),
            AcpiError::BadRsdpExtendedChecksum => f.write_str("bad RSDP extended checksum"),
            AcpiError::BadRsdpLength(len) => write!(f, "bad RSDP length {len}"),
            AcpiError::NoRootTable => f.write_str("RSDP gives no XSDT or RSDT address"),
            AcpiError::BadSignature { expected, found } => {
                write!(f, "expected table {expected}, found {found}")
            }
            AcpiError::BadLength { signature, length } => {
                write!(f, "table {signature} has bad length {length}")
            }
            AcpiError::BadChecksum(sig) => write!(f, "table {sig} has a bad checksum"),
            AcpiError::TooManyTables(n) => write!(
                f,
                "root table lists {n} tables (at most {MAX_TABLES} supported)"
            ),
            AcpiError::MissingTable(sig) => write!(f, "no {sig} table"),
            AcpiError::TooManyEntries { table, what } => {
                write!(f, "table {table} lists too many {what}")
            }
            AcpiError::BadEntry { table, offset } => {
                write!(f, "table {table} has a malformed entry at offset {offset}")
            }
            AcpiError::S5NotFound => f.write_str("DSDT has no \\_S5_ package"),
            AcpiError::BadS5(why) => write!(f, "malformed \\_S5_ package: {why}"),
            AcpiError::BadPort { what, value } => {
                write!(f, "{what} {value:#x} is not a usable I/O port")
            }
        }
    }
}

/// A table whose header, length and checksum have been validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sdt {
    /// Its signature.
    pub signature: Signature,
    /// Physical address of its header.
    pub phys: u64,
    /// Length in bytes, header included; `phys + length` does not overflow.
    pub length: u32,
    /// Its revision field.
    pub revision: u8,
}

impl Sdt {
    /// Reads and validates the table at `phys`; `expected`, if given, is the
    /// signature it must have.
    pub fn validate(
        mem: &impl PhysMemory,
        phys: u64,
        expected: Option<Signature>,
    ) -> Result<Sdt, AcpiError> {
        let header: [u8; SDT_HEADER_LEN as usize] = read(mem, "table header", phys)?;
        let signature = Signature([header[0], header[1], header[2], header[3]]);
        if let Some(expected) = expected.filter(|&e| e != signature) {
            return Err(AcpiError::BadSignature {
                expected,
                found: signature,
            });
        }
        let length = u32_at(&header, 4).unwrap_or(0);
        let fits = phys.checked_add(u64::from(length)).is_some();
        if !(SDT_HEADER_LEN..=MAX_TABLE_LEN).contains(&length) || !fits {
            return Err(AcpiError::BadLength { signature, length });
        }
        let sum =
            byte_sum(mem, phys, u64::from(length)).map_err(|error| AcpiError::Unreadable {
                what: "table",
                phys,
                error,
            })?;
        if sum != 0 {
            return Err(AcpiError::BadChecksum(signature));
        }
        Ok(Sdt {
            signature,
            phys,
            length,
            revision: header[8],
        })
    }

    /// Address of the first byte after the header.
    pub fn body(&self) -> u64 {
        self.phys + u64::from(SDT_HEADER_LEN)
    }

    /// One past the last byte of the table.
    pub fn end(&self) -> u64 {
        self.phys + u64::from(self.length)
    }
}

/// A root-table entry: the table, or why it is unusable. The signature is
/// kept whenever the header could be read, so lookups report the right error.
#[derive(Debug, Clone, Copy)]
struct TableSlot {
    signature: Option<Signature>,
    table: Result<Sdt, AcpiError>,
}

/// Filler for unused slots (never visible: only `table_count` are read).
const EMPTY_SLOT: TableSlot = TableSlot {
    signature: None,
    table: Err(AcpiError::NoRootTable),
};

/// The parsed ACPI tables.
#[derive(Debug, Clone)]
pub struct Acpi {
    revision: u8,
    oem_id: [u8; 6],
    root: Sdt,
    tables: [TableSlot; MAX_TABLES],
    table_count: usize,
    fadt: Result<Fadt, AcpiError>,
    madt: Result<Madt, AcpiError>,
    mcfg: Result<Mcfg, AcpiError>,
    dmar: Result<Dmar, AcpiError>,
    spcr: Result<Spcr, AcpiError>,
    s5: Result<SleepType, AcpiError>,
}

impl Acpi {
    /// Validates the RSDP at `rsdp_phys` and the root table, then validates
    /// and parses every table it lists.
    pub fn parse(mem: &impl PhysMemory, rsdp_phys: u64) -> Result<Acpi, AcpiError> {
        let rsdp: [u8; 20] = read(mem, "RSDP", rsdp_phys)?;
        if &rsdp[..8] != b"RSD PTR " {
            return Err(AcpiError::BadRsdpSignature);
        }
        if rsdp.iter().fold(0u8, |s, &b| s.wrapping_add(b)) != 0 {
            return Err(AcpiError::BadRsdpChecksum);
        }
        let revision = rsdp[15];
        let oem_id = [rsdp[9], rsdp[10], rsdp[11], rsdp[12], rsdp[13], rsdp[14]];
        let rsdt = u64::from(u32_at(&rsdp, 16).unwrap_or(0));
        let mut xsdt = 0;
        if revision >= 2 {
            let v2: [u8; 36] = read(mem, "RSDP", rsdp_phys)?;
            let length = u32_at(&v2, 20).unwrap_or(0);
            if !(36..=MAX_RSDP_LEN).contains(&length) {
                return Err(AcpiError::BadRsdpLength(length));
            }
            let sum = byte_sum(mem, rsdp_phys, u64::from(length)).map_err(|error| {
                AcpiError::Unreadable {
                    what: "RSDP",
                    phys: rsdp_phys,
                    error,
                }
            })?;
            if sum != 0 {
                return Err(AcpiError::BadRsdpExtendedChecksum);
            }
            xsdt = u64_at(&v2, 24).unwrap_or(0);
        }
        let (root_phys, root_sig, entry_size) = match (xsdt, rsdt) {
            (0, 0) => return Err(AcpiError::NoRootTable),
            (0, rsdt) => (rsdt, Signature::RSDT, 4),
            (xsdt, _) => (xsdt, Signature::XSDT, 8),
        };
        let root = Sdt::validate(mem, root_phys, Some(root_sig))?;
        let body_len = root.length - SDT_HEADER_LEN;
        if !body_len.is_multiple_of(entry_size) {
            return Err(AcpiError::BadLength {
                signature: root_sig,
                length: root.length,
            });
        }
        let count = (body_len / entry_size) as usize;
        if count > MAX_TABLES {
            return Err(AcpiError::TooManyTables(count));
        }
        let mut acpi = Acpi {
            revision,
            oem_id,
            root,
            tables: [EMPTY_SLOT; MAX_TABLES],
            table_count: 0,
            fadt: Err(AcpiError::MissingTable(Signature::FADT)),
            madt: Err(AcpiError::MissingTable(Signature::MADT)),
            mcfg: Err(AcpiError::MissingTable(Signature::MCFG)),
            dmar: Err(AcpiError::MissingTable(Signature::DMAR)),
            spcr: Err(AcpiError::MissingTable(Signature::SPCR)),
            s5: Err(AcpiError::MissingTable(Signature::DSDT)),
        };
        for i in 0..count {
            let at = root.body() + i as u64 * u64::from(entry_size);
            let phys = match entry_size {
                4 => mem.read_u32(at).map(u64::from),
                _ => mem.read_u64(at),
            };
            let phys = phys.map_err(|error| AcpiError::Unreadable {
                what: "root table",
                phys: at,
                error,
            })?;
            if phys == 0 {
                continue; // Some firmware leaves null entries; they name no table.
            }
            let signature = mem.read_array::<4>(phys).ok().map(Signature);
            if let Some(slot) = acpi.tables.get_mut(acpi.table_count) {
                *slot = TableSlot {
                    signature,
                    table: Sdt::validate(mem, phys, None),
                };
                acpi.table_count += 1;
            }
        }
        acpi.fadt = acpi
            .find_table(Signature::FADT)
            .and_then(|t| Fadt::parse(mem, &t));
        acpi.madt = acpi
            .find_table(Signature::MADT)
            .and_then(|t| Madt::parse(mem, &t));
        acpi.mcfg = acpi
            .find_table(Signature::MCFG)
            .and_then(|t| Mcfg::parse(mem, &t));
        acpi.dmar = acpi
            .find_table(Signature::DMAR)
            .and_then(|t| Dmar::parse(mem, &t));
        acpi.spcr = acpi
            .find_table(Signature::SPCR)
            .and_then(|t| Spcr::parse(mem, &t));
        acpi.s5 = match &acpi.fadt {
            Ok(fadt) if fadt.dsdt != 0 => Sdt::validate(mem, fadt.dsdt, Some(Signature::DSDT))
                .and_then(|t| aml::find_s5(mem, &t)),
            Ok(_) => Err(AcpiError::MissingTable(Signature::DSDT)),
            Err(e) => Err(*e),
        };
        Ok(acpi)
    }

    /// The RSDP revision (0 for ACPI 1.0, 2 for 2.0 and later).
    pub fn revision(&self) -> u8 {
        self.revision
    }

    /// The OEM id from the RSDP.
    pub fn oem_id(&self) -> [u8; 6] {
        self.oem_id
    }

    /// The root table (XSDT, or RSDT for ACPI 1.0).
    pub fn root(&self) -> Sdt {
        self.root
    }

    /// Every table the root lists, in order: validated, or why not.
    pub fn tables(&self) -> impl Iterator<Item = Result<Sdt, AcpiError>> + '_ {
        self.tables
            .iter()
            .take(self.table_count)
            .map(|slot| slot.table)
    }

    /// The first listed table with this signature.
    pub fn find_table(&self, signature: Signature) -> Result<Sdt, AcpiError> {
        self.tables
            .iter()
            .take(self.table_count)
            .find(|slot| slot.signature == Some(signature))
            .map_or(Err(AcpiError::MissingTable(signature)), |slot| slot.table)
    }

    /// The MADT: CPUs and interrupt controllers.
    pub fn madt(&self) -> Result<&Madt, AcpiError> {
        self.madt.as_ref().map_err(|e| *e)
    }

    /// The FADT: fixed power-management hardware.
    pub fn fadt(&self) -> Result<&Fadt, AcpiError> {
        self.fadt.as_ref().map_err(|e| *e)
    }

    /// The MCFG: PCI Express configuration-space windows.
    pub fn mcfg(&self) -> Result<&Mcfg, AcpiError> {
        self.mcfg.as_ref().map_err(|e| *e)
    }

    /// The DMAR: DMA-remapping (IOMMU) units, if the machine has one.
    pub fn dmar(&self) -> Result<&Dmar, AcpiError> {
        self.dmar.as_ref().map_err(|e| *e)
    }

    /// The SPCR: the firmware's serial console, if it describes one.
    pub fn spcr(&self) -> Result<&Spcr, AcpiError> {
        self.spcr.as_ref().map_err(|e| *e)
    }

    /// The sleep type values for S5 (soft off), from the DSDT.
    pub fn s5(&self) -> Result<SleepType, AcpiError> {
        self.s5
    }

    /// What to write where to power the machine off.
    pub fn poweroff(&self) -> Result<AcpiPowerOff, AcpiError> {
        AcpiPowerOff::new(self.fadt()?, self.s5()?)
    }
}

fn read<const N: usize>(
    mem: &impl PhysMemory,
    what: &'static str,
    phys: u64,
) -> Result<[u8; N], AcpiError> {
    mem.read_array(phys)
        .map_err(|error| AcpiError::Unreadable { what, phys, error })
}
