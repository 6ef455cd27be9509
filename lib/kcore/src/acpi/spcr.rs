//! The SPCR (Serial Port Console Redirection table, Microsoft's): which
//! UART the firmware's serial console, and so the machine's serial-over-LAN,
//! is on. The kernel moves its console there when it is a 16550 on an
//! I/O port (the PC's COM ports, and most BMCs' virtual UARTs).

use super::{AcpiError, GenericAddress, Sdt, Signature, read};
use crate::PhysMemory;
use crate::le::u32_at;

/// The fields used end at the baud rate (byte 58); revisions 1 and 2 are
/// 80 bytes.
const SPCR_MIN_LEN: u32 = 80;

/// The SPCR's description of the console's UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spcr {
    /// Interface type (0: full 16550, 1: 16450, 0x12: 16550-compatible
    /// described by the address; others are ARM and other UARTs).
    pub interface_type: u8,
    /// Where its registers are.
    pub base: GenericAddress,
    /// Bit 0: a PC-AT (8259) IRQ; bit 1: an I/O APIC GSI.
    pub interrupt_type: u8,
    /// The PC-AT IRQ (with bit 0 of `interrupt_type`).
    pub irq: u8,
    /// The global system interrupt (with bit 1).
    pub gsi: u32,
    /// Bits per second, if the table gives a rate (else: as the firmware
    /// left it).
    pub baud: Option<u32>,
}

impl Spcr {
    pub(super) fn parse(mem: &impl PhysMemory, table: &Sdt) -> Result<Spcr, AcpiError> {
        if table.length < SPCR_MIN_LEN {
            return Err(AcpiError::BadLength {
                signature: Signature::SPCR,
                length: table.length,
            });
        }
        let raw: [u8; SPCR_MIN_LEN as usize] = read(mem, "SPCR", table.phys)?;
        let mut gas = [0u8; 12];
        gas.copy_from_slice(&raw[40..52]);
        Ok(Spcr {
            interface_type: raw[36],
            base: GenericAddress::decode(gas),
            interrupt_type: raw[52],
            irq: raw[53],
            gsi: u32_at(&raw, 54).unwrap_or(0),
            baud: match raw[58] {
                3 => Some(9600),
                4 => Some(19200),
                6 => Some(57600),
                7 => Some(115_200),
                _ => None,
            },
        })
    }

    /// The I/O port of a 16550-compatible UART, if that is what it
    /// describes (never port 0).
    pub fn io_port_16550(&self) -> Option<u16> {
        let uart = matches!(self.interface_type, 0 | 1 | 0x12);
        let io = self.base.address_space == GenericAddress::SYSTEM_IO;
        u16::try_from(self.base.address)
            .ok()
            .filter(|&port| uart && io && port != 0)
    }

    /// Its PC-AT IRQ, if it names one.
    pub fn pc_at_irq(&self) -> Option<u8> {
        (self.interrupt_type & 1 != 0 && self.irq < 16).then_some(self.irq)
    }
}
