//! The MADT ("APIC"): local APICs (CPUs), I/O APICs, interrupt source
//! overrides and local APIC NMI wiring.

use super::{AcpiError, Sdt, Signature};
use crate::PhysMemory;
use crate::le::{u8_at, u16_at, u32_at, u64_at};

/// Most CPUs (local APIC and x2APIC entries together) kept.
pub const MAX_PROCESSORS: usize = 256;
/// Most I/O APICs kept.
pub const MAX_IOAPICS: usize = 16;
/// Most interrupt source overrides kept.
pub const MAX_OVERRIDES: usize = 32;
/// Most local APIC NMI entries kept.
pub const MAX_NMIS: usize = 32;

/// Offset of the first interrupt-controller structure.
const ENTRIES_OFFSET: u32 = 44;
/// Longest entry we decode; longer entries are legal, the rest is ignored.
const MAX_ENTRY_DECODE: usize = 16;

/// One CPU's local APIC (MADT type 0) or local x2APIC (type 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processor {
    /// ACPI processor UID.
    pub acpi_uid: u32,
    /// Local APIC id (x2APIC id for type 9).
    pub apic_id: u32,
    /// The CPU is ready to use.
    pub enabled: bool,
    /// The CPU is off but may be brought online (ACPI 6.3+).
    pub online_capable: bool,
    /// Listed as an x2APIC entry.
    pub x2apic: bool,
}

/// An I/O APIC (MADT type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// Its I/O APIC id.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u32,
    /// First global system interrupt it handles.
    pub gsi_base: u32,
}

/// Interrupt polarity from MPS INTI flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// As the bus specifies (ISA: active high).
    Conforming,
    /// Active high.
    ActiveHigh,
    /// Reserved encoding.
    Reserved,
    /// Active low.
    ActiveLow,
}

/// Interrupt trigger mode from MPS INTI flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// As the bus specifies (ISA: edge).
    Conforming,
    /// Edge-triggered.
    Edge,
    /// Reserved encoding.
    Reserved,
    /// Level-triggered.
    Level,
}

fn polarity(flags: u16) -> Polarity {
    match flags & 3 {
        0 => Polarity::Conforming,
        1 => Polarity::ActiveHigh,
        2 => Polarity::Reserved,
        _ => Polarity::ActiveLow,
    }
}

fn trigger(flags: u16) -> Trigger {
    match (flags >> 2) & 3 {
        0 => Trigger::Conforming,
        1 => Trigger::Edge,
        2 => Trigger::Reserved,
        _ => Trigger::Level,
    }
}

/// An interrupt source override (MADT type 2): ISA IRQ `source_irq` is
/// wired to `gsi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptOverride {
    /// Bus (0 = ISA).
    pub bus: u8,
    /// Bus-relative IRQ.
    pub source_irq: u8,
    /// Global system interrupt it arrives on.
    pub gsi: u32,
    /// MPS INTI flags (polarity and trigger).
    pub flags: u16,
}

impl InterruptOverride {
    /// Decoded polarity.
    pub fn polarity(&self) -> Polarity {
        polarity(self.flags)
    }

    /// Decoded trigger mode.
    pub fn trigger(&self) -> Trigger {
        trigger(self.flags)
    }

    /// Whether the line is active low (ISA default: active high).
    pub fn active_low(&self) -> bool {
        self.polarity() == Polarity::ActiveLow
    }

    /// Whether the line is level-triggered (ISA default: edge).
    pub fn level_triggered(&self) -> bool {
        self.trigger() == Trigger::Level
    }
}

/// Which LINT pin of which CPUs carries NMI (MADT types 4 and 0xA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalApicNmi {
    /// ACPI processor UID, or `None` for all processors.
    pub acpi_uid: Option<u32>,
    /// MPS INTI flags.
    pub flags: u16,
    /// LINT pin (0 or 1).
    pub lint: u8,
}

/// The parsed MADT.
#[derive(Debug, Clone)]
pub struct Madt {
    local_apic_address: u64,
    flags: u32,
    processors: Fixed<Processor, MAX_PROCESSORS>,
    ioapics: Fixed<IoApic, MAX_IOAPICS>,
    overrides: Fixed<InterruptOverride, MAX_OVERRIDES>,
    nmis: Fixed<LocalApicNmi, MAX_NMIS>,
}

impl Madt {
    pub(super) fn parse(mem: &impl PhysMemory, table: &Sdt) -> Result<Madt, AcpiError> {
        const SIG: Signature = Signature::MADT;
        if table.length < ENTRIES_OFFSET {
            return Err(AcpiError::BadLength {
                signature: SIG,
                length: table.length,
            });
        }
        let unreadable = |phys, error| AcpiError::Unreadable {
            what: "MADT",
            phys,
            error,
        };
        let local_apic = mem
            .read_u32(table.body())
            .map_err(|e| unreadable(table.body(), e))?;
        let flags = mem
            .read_u32(table.body() + 4)
            .map_err(|e| unreadable(table.body() + 4, e))?;
        let mut madt = Madt {
            local_apic_address: u64::from(local_apic),
            flags,
            processors: Fixed::new(Processor {
                acpi_uid: 0,
                apic_id: 0,
                enabled: false,
                online_capable: false,
                x2apic: false,
            }),
            ioapics: Fixed::new(IoApic {
                id: 0,
                address: 0,
                gsi_base: 0,
            }),
            overrides: Fixed::new(InterruptOverride {
                bus: 0,
                source_irq: 0,
                gsi: 0,
                flags: 0,
            }),
            nmis: Fixed::new(LocalApicNmi {
                acpi_uid: None,
                flags: 0,
                lint: 0,
            }),
        };
        let mut offset = ENTRIES_OFFSET;
        while offset < table.length {
            let bad = AcpiError::BadEntry { table: SIG, offset };
            let phys = table.phys + u64::from(offset);
            let header = mem.read_array::<2>(phys).map_err(|e| unreadable(phys, e))?;
            let (kind, len) = (header[0], u32::from(header[1]));
            if len < 2 || len > table.length - offset {
                return Err(bad);
            }
            let mut raw = [0u8; MAX_ENTRY_DECODE];
            let entry = raw
                .get_mut(..(len as usize).min(MAX_ENTRY_DECODE))
                .unwrap_or_default();
            mem.read(phys, entry).map_err(|e| unreadable(phys, e))?;
            madt.add_entry(kind, entry).ok_or(bad)??;
            offset += len;
        }
        Ok(madt)
    }

    /// Decodes one entry. `None`: too short for its type; `Some(Err)`: no room.
    fn add_entry(&mut self, kind: u8, e: &[u8]) -> Option<Result<(), AcpiError>> {
        let full = |what| AcpiError::TooManyEntries {
            table: Signature::MADT,
            what,
        };
        let pushed = match kind {
            0 => {
                let flags = u32_at(e, 4)?;
                let cpu = Processor {
                    acpi_uid: u32::from(u8_at(e, 2)?),
                    apic_id: u32::from(u8_at(e, 3)?),
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                    x2apic: false,
                };
                self.processors.push(cpu).ok_or(full("processors"))
            }
            9 => {
                let flags = u32_at(e, 8)?;
                let cpu = Processor {
                    acpi_uid: u32_at(e, 12)?,
                    apic_id: u32_at(e, 4)?,
                    enabled: flags & 1 != 0,
                    online_capable: flags & 2 != 0,
                    x2apic: true,
                };
                self.processors.push(cpu).ok_or(full("processors"))
            }
            1 => {
                let io = IoApic {
                    id: u8_at(e, 2)?,
                    address: u32_at(e, 4)?,
                    gsi_base: u32_at(e, 8)?,
                };
                self.ioapics.push(io).ok_or(full("I/O APICs"))
            }
            2 => {
                let iso = InterruptOverride {
                    bus: u8_at(e, 2)?,
                    source_irq: u8_at(e, 3)?,
                    gsi: u32_at(e, 4)?,
                    flags: u16_at(e, 8)?,
                };
                self.overrides
                    .push(iso)
                    .ok_or(full("interrupt source overrides"))
            }
            4 => {
                let uid = u8_at(e, 2)?;
                let nmi = LocalApicNmi {
                    acpi_uid: (uid != 0xff).then_some(u32::from(uid)),
                    flags: u16_at(e, 3)?,
                    lint: u8_at(e, 5)?,
                };
                self.nmis.push(nmi).ok_or(full("local APIC NMIs"))
            }
            0xa => {
                let uid = u32_at(e, 4)?;
                let nmi = LocalApicNmi {
                    acpi_uid: (uid != u32::MAX).then_some(uid),
                    flags: u16_at(e, 2)?,
                    lint: u8_at(e, 8)?,
                };
                self.nmis.push(nmi).ok_or(full("local APIC NMIs"))
            }
            5 => {
                self.local_apic_address = u64_at(e, 4)?;
                Ok(())
            }
            _ => Ok(()), // Types we do not use (GIC, SAPIC, ...) are skipped.
        };
        Some(pushed)
    }

    /// Physical address of the local APIC registers (the type-5 override
    /// applied).
    pub fn local_apic_address(&self) -> u64 {
        self.local_apic_address
    }

    /// Whether the machine also has dual 8259 PICs (which must be masked).
    pub fn pcat_compat(&self) -> bool {
        self.flags & 1 != 0
    }

    /// Every CPU listed, enabled or not, in table order.
    pub fn processors(&self) -> core::slice::Iter<'_, Processor> {
        self.processors.as_slice().iter()
    }

    /// APIC ids of the CPUs that are enabled now.
    pub fn enabled_apic_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.processors().filter(|p| p.enabled).map(|p| p.apic_id)
    }

    /// The I/O APICs.
    pub fn ioapics(&self) -> core::slice::Iter<'_, IoApic> {
        self.ioapics.as_slice().iter()
    }

    /// The interrupt source overrides.
    pub fn overrides(&self) -> core::slice::Iter<'_, InterruptOverride> {
        self.overrides.as_slice().iter()
    }

    /// The local APIC NMI entries.
    pub fn nmis(&self) -> core::slice::Iter<'_, LocalApicNmi> {
        self.nmis.as_slice().iter()
    }

    /// Where ISA IRQ `irq` arrives: its GSI, polarity and trigger mode
    /// (identity-mapped, active high, edge unless overridden).
    pub fn isa_irq(&self, irq: u8) -> (u32, Polarity, Trigger) {
        match self.overrides().find(|o| o.bus == 0 && o.source_irq == irq) {
            Some(o) => {
                let pol = match o.polarity() {
                    Polarity::Conforming => Polarity::ActiveHigh,
                    p => p,
                };
                let trig = match o.trigger() {
                    Trigger::Conforming => Trigger::Edge,
                    t => t,
                };
                (o.gsi, pol, trig)
            }
            None => (u32::from(irq), Polarity::ActiveHigh, Trigger::Edge),
        }
    }
}

/// A fixed-capacity list.
#[derive(Debug, Clone)]
struct Fixed<T: Copy, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy, const N: usize> Fixed<T, N> {
    fn new(fill: T) -> Self {
        Fixed {
            items: [fill; N],
            len: 0,
        }
    }

    /// `None` when full.
    fn push(&mut self, item: T) -> Option<()> {
        *self.items.get_mut(self.len)? = item;
        self.len += 1;
        Some(())
    }

    fn as_slice(&self) -> &[T] {
        self.items.get(..self.len).unwrap_or_default()
    }
}
