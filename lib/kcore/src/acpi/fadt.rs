//! The FADT ("FACP"): fixed power-management hardware, the DSDT address and
//! the reset register; and the power-off recipe built from it.

use super::{AcpiError, Sdt, Signature, SleepType};
use crate::PhysMemory;
use crate::le::{array_at, u8_at, u16_at, u32_at, u64_at};

/// The ACPI 1.0 FADT is 116 bytes; every field below `flags` is required.
const FADT_MIN_LEN: u32 = 116;
/// Bytes of the FADT we look at (through ACPI 6.x; longer tables are fine).
const FADT_READ_LEN: usize = 276;
const RESET_REG_OFFSET: usize = 116;
const X_DSDT_OFFSET: usize = 140;

/// FADT flag: the reset register is supported.
pub const FADT_RESET_REG_SUP: u32 = 1 << 10;
/// FADT flag: hardware-reduced ACPI (no PM1 blocks, no SMI_CMD).
pub const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;

/// An ACPI Generic Address Structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenericAddress {
    /// 0 = system memory, 1 = system I/O, 2 = PCI configuration space, ...
    pub address_space: u8,
    /// Register width in bits.
    pub bit_width: u8,
    /// Bit offset of the register.
    pub bit_offset: u8,
    /// Access size (0 undefined, 1 byte, 2 word, 3 dword, 4 qword).
    pub access_size: u8,
    /// The address within its space.
    pub address: u64,
}

impl GenericAddress {
    /// Address space id of system memory.
    pub const SYSTEM_MEMORY: u8 = 0;
    /// Address space id of system I/O ports.
    pub const SYSTEM_IO: u8 = 1;
    /// Address space id of PCI configuration space.
    pub const PCI_CONFIG: u8 = 2;

    pub(super) fn decode(raw: [u8; 12]) -> GenericAddress {
        GenericAddress {
            address_space: raw[0],
            bit_width: raw[1],
            bit_offset: raw[2],
            access_size: raw[3],
            address: u64_at(&raw, 4).unwrap_or(0),
        }
    }
}

/// The FADT fields the kernel uses. Port fields are raw 32-bit values; zero
/// means "not present".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fadt {
    /// Table revision.
    pub revision: u8,
    /// Physical address of the DSDT (`X_DSDT` when present and non-zero).
    pub dsdt: u64,
    /// Interrupt (ISA IRQ / GSI) of the SCI.
    pub sci_int: u16,
    /// Port to write `acpi_enable` to in order to switch to ACPI mode.
    pub smi_cmd: u32,
    /// Value that enables ACPI mode through `smi_cmd`.
    pub acpi_enable: u8,
    /// Value that disables ACPI mode through `smi_cmd`.
    pub acpi_disable: u8,
    /// PM1a event block port.
    pub pm1a_evt_blk: u32,
    /// PM1b event block port.
    pub pm1b_evt_blk: u32,
    /// PM1a control block port.
    pub pm1a_cnt_blk: u32,
    /// PM1b control block port.
    pub pm1b_cnt_blk: u32,
    /// ACPI PM timer port (3.579545 MHz counter).
    pub pm_tmr_blk: u32,
    /// Length of the PM1 control block in bytes.
    pub pm1_cnt_len: u8,
    /// Length of the PM timer block in bytes (4 when present).
    pub pm_tmr_len: u8,
    /// CMOS RTC index of the century byte (0 if none).
    pub century: u8,
    /// IA-PC boot architecture flags (legacy devices, 8042, VGA, MSI, ...).
    pub iapc_boot_arch: u16,
    /// Fixed feature flags.
    pub flags: u32,
    /// The reset register, if the table is long enough to have one.
    pub reset_reg: Option<GenericAddress>,
    /// Value to write to the reset register.
    pub reset_value: u8,
}

impl Fadt {
    pub(super) fn parse(mem: &impl PhysMemory, table: &Sdt) -> Result<Fadt, AcpiError> {
        let length = table.length;
        if length < FADT_MIN_LEN {
            return Err(AcpiError::BadLength {
                signature: Signature::FADT,
                length,
            });
        }
        let mut raw = [0u8; FADT_READ_LEN];
        let n = (length as usize).min(FADT_READ_LEN);
        let buf = raw.get_mut(..n).unwrap_or_default();
        mem.read(table.phys, buf)
            .map_err(|error| AcpiError::Unreadable {
                what: "FADT",
                phys: table.phys,
                error,
            })?;
        // Fields past the table's end read as zero: `raw` was zeroed.
        let raw = &raw;
        let b = |off| u8_at(raw, off).unwrap_or(0);
        let w = |off| u16_at(raw, off).unwrap_or(0);
        let d = |off| u32_at(raw, off).unwrap_or(0);
        let x_dsdt = if n >= X_DSDT_OFFSET + 8 {
            u64_at(raw, X_DSDT_OFFSET).unwrap_or(0)
        } else {
            0
        };
        let reset_reg = if n > RESET_REG_OFFSET + 12 {
            array_at(raw, RESET_REG_OFFSET).map(GenericAddress::decode)
        } else {
            None
        };
        Ok(Fadt {
            revision: table.revision,
            dsdt: if x_dsdt != 0 {
                x_dsdt
            } else {
                u64::from(d(40))
            },
            sci_int: w(46),
            smi_cmd: d(48),
            acpi_enable: b(52),
            acpi_disable: b(53),
            pm1a_evt_blk: d(56),
            pm1b_evt_blk: d(60),
            pm1a_cnt_blk: d(64),
            pm1b_cnt_blk: d(68),
            pm_tmr_blk: d(76),
            pm1_cnt_len: b(89),
            pm_tmr_len: b(91),
            century: b(108),
            iapc_boot_arch: w(109),
            flags: d(112),
            reset_reg,
            reset_value: b(128),
        })
    }

    /// The reset register and the value to write there, if the firmware
    /// says resetting through it works.
    pub fn reset(&self) -> Option<(GenericAddress, u8)> {
        let reg = self.reset_reg.filter(|r| r.address != 0)?;
        (self.flags & FADT_RESET_REG_SUP != 0).then_some((reg, self.reset_value))
    }

    /// Whether this is a hardware-reduced ACPI platform.
    pub fn hardware_reduced(&self) -> bool {
        self.flags & FADT_HW_REDUCED_ACPI != 0
    }
}

/// PM1 control register: SLP_EN.
pub const SLP_EN: u16 = 1 << 13;
/// PM1 control register: SCI_EN (set once the OS owns ACPI).
pub const SCI_EN: u16 = 1;

/// The port writes that enter S5 (soft off), checked to be real I/O ports.
///
/// Sequence: if `needs_acpi_enable(read(pm1a_cnt))`, write `acpi_enable` to
/// `smi_cmd` and wait for SCI_EN; then write `sleep_value_a()` to `pm1a_cnt`
/// and, if present, `sleep_value_b()` to `pm1b_cnt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiPowerOff {
    /// PM1a control port.
    pub pm1a_cnt: u16,
    /// PM1b control port, if the platform has one.
    pub pm1b_cnt: Option<u16>,
    /// SLP_TYP for PM1a (3 bits).
    pub slp_typ_a: u16,
    /// SLP_TYP for PM1b (3 bits).
    pub slp_typ_b: u16,
    /// SMI command port (0: ACPI mode needs no switch).
    pub smi_cmd: u16,
    /// Value to write to `smi_cmd` to enter ACPI mode.
    pub acpi_enable: u8,
}

impl AcpiPowerOff {
    /// Combines the FADT's ports with the DSDT's `\_S5_` values.
    pub fn new(fadt: &Fadt, s5: SleepType) -> Result<AcpiPowerOff, AcpiError> {
        let port = |what, value: u32| {
            u16::try_from(value).map_err(|_| AcpiError::BadPort {
                what,
                value: u64::from(value),
            })
        };
        let pm1a_cnt = port("PM1a_CNT_BLK", fadt.pm1a_cnt_blk)?;
        if pm1a_cnt == 0 {
            return Err(AcpiError::BadPort {
                what: "PM1a_CNT_BLK",
                value: 0,
            });
        }
        let pm1b_cnt = port("PM1b_CNT_BLK", fadt.pm1b_cnt_blk)?;
        Ok(AcpiPowerOff {
            pm1a_cnt,
            pm1b_cnt: (pm1b_cnt != 0).then_some(pm1b_cnt),
            slp_typ_a: s5.slp_typ_a,
            slp_typ_b: s5.slp_typ_b,
            smi_cmd: port("SMI_CMD", fadt.smi_cmd)?,
            acpi_enable: fadt.acpi_enable,
        })
    }

    /// Value for PM1a control: `SLP_TYPa << 10 | SLP_EN`.
    pub fn sleep_value_a(&self) -> u16 {
        (self.slp_typ_a & 7) << 10 | SLP_EN
    }

    /// Value for PM1b control: `SLP_TYPb << 10 | SLP_EN`.
    pub fn sleep_value_b(&self) -> u16 {
        (self.slp_typ_b & 7) << 10 | SLP_EN
    }

    /// Whether ACPI mode must first be enabled through `smi_cmd`, given the
    /// current value of the PM1a control register.
    pub fn needs_acpi_enable(&self, pm1a_cnt_value: u16) -> bool {
        pm1a_cnt_value & SCI_EN == 0 && self.smi_cmd != 0 && self.acpi_enable != 0
    }
}
