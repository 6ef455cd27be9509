//! The 82599's initialisation (datasheet section 4.6.3), through the
//! device capability: each step, what it waits for, and what it
//! programs. A step that waits too long fails the bring-up, saying which.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use domain_sdk::{Device, now_ns, sleep};
use interfaces::net::FRAME;
use nic_ring::nic::{read, write};
use nic_ring::queue::{ENTRIES, QueuePair, QueueRegisters, page_address};

use crate::regs::*;

/// What a started device is.
pub struct Up {
    pub mac: [u8; 6],
    /// Mb/s.
    pub speed: u32,
    pub queue: QueuePair,
}

/// How long each wait may take.
pub const RESET_WAIT_NS: u64 = 100_000_000;
pub const EEPROM_WAIT_NS: u64 = 500_000_000;
pub const DMA_WAIT_NS: u64 = 500_000_000;
pub const LINK_WAIT_NS: u64 = 5_000_000_000;
pub const QUEUE_WAIT_NS: u64 = 100_000_000;

fn set(device: &dyn Device, offset: u64, bits: u32) -> Result<(), String> {
    write(device, offset, read(device, offset)? | bits)
}

fn clear(device: &dyn Device, offset: u64, bits: u32) -> Result<(), String> {
    write(device, offset, read(device, offset)? & !bits)
}

/// Waits (1 ms at a time) until `offset`'s `bits` are all set (or, with
/// `clear`, all clear), at most `timeout_ns`.
async fn wait_for(
    device: &dyn Device,
    offset: u64,
    bits: u32,
    cleared: bool,
    timeout_ns: u64,
    what: &str,
) -> Result<(), String> {
    let deadline = now_ns() + timeout_ns;
    loop {
        let value = read(device, offset)?;
        let done = if cleared {
            value & bits == 0
        } else {
            value & bits == bits
        };
        if done {
            return Ok(());
        }
        if now_ns() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        sleep(Duration::from_millis(1)).await;
    }
}

/// Link state and speed (Mb/s) from LINKS.
pub fn link(device: &dyn Device) -> Result<(bool, u32), String> {
    let links = read(device, LINKS)?;
    if links & LINKS_UP == 0 {
        return Ok((false, 0));
    }
    let speed = match (links >> LINKS_SPEED_SHIFT) & 3 {
        3 => 10_000,
        2 => 1_000,
        1 => 100,
        _ => 0,
    };
    Ok((true, speed))
}

/// Brings the device up; see the module doc.
pub async fn start(device: &dyn Device) -> Result<Up, String> {
    // 4.6.3.1: interrupts off, global reset (with link reset), off again.
    write(device, EIMC, EIMC_ALL)?;
    set(device, CTRL, CTRL_RST | CTRL_LRST)?;
    wait_for(device, CTRL, CTRL_RST, true, RESET_WAIT_NS, "the reset").await?;
    sleep(Duration::from_millis(10)).await;
    write(device, EIMC, EIMC_ALL)?;
    // 4.6.3: the EEPROM's auto-read, then the DMA's initialisation.
    wait_for(
        device,
        EEC,
        EEC_AUTO_RD,
        false,
        EEPROM_WAIT_NS,
        "the EEPROM auto-read",
    )
    .await?;
    wait_for(
        device,
        RDRXCTL,
        RDRXCTL_DMAIDONE,
        false,
        DMA_WAIT_NS,
        "the DMA initialisation",
    )
    .await?;
    // 4.6.4: link. The link mode (AUTOC.LMS) is the EEPROM's, for the
    // module fitted; restarting auto-negotiation brings it up.
    set(device, AUTOC, AUTOC_RESTART_AN)?;
    // The MAC the EEPROM loaded into receive address 0.
    let (low, high) = (read(device, RAL0)?, read(device, RAH0)?);
    if high & RAH_AV == 0 {
        return Err(String::from("no MAC address in RAL0/RAH0"));
    }
    let [a, b, c, d] = low.to_le_bytes();
    let [e, f, _, _] = high.to_le_bytes();
    let mac = [a, b, c, d, e, f];
    // Statistics are clear-on-read: start from zero.
    let _ = (read(device, GPRC)?, read(device, GPTC)?);

    // 4.6.7: receive. Off while configuring; CRC stripped (HLREG0 and
    // RDRXCTL must agree), broadcast and promiscuous.
    clear(device, RXCTRL, RXCTRL_RXEN)?;
    set(
        device,
        HLREG0,
        HLREG0_RXCRCSTRP | HLREG0_TXCRCEN | HLREG0_TXPADEN,
    )?;
    set(device, RDRXCTL, RDRXCTL_CRCSTRIP)?;
    set(device, FCTRL, FCTRL_BAM | FCTRL_UPE | FCTRL_MPE)?;
    let mut queue = QueuePair::new(QueueRegisters { rdt: RDT, tdt: TDT })?;
    let rx = page_address(&queue.rx_memory)?;
    let tx = page_address(&queue.tx_memory)?;
    device.set_bus_master(true);
    write(device, RDBAL, rx as u32)?;
    write(device, RDBAH, (rx >> 32) as u32)?;
    write(device, RDLEN, u32::from(ENTRIES) * 16)?;
    write(
        device,
        SRRCTL,
        (FRAME / 1024) as u32 | SRRCTL_DESCTYPE_ADV_ONEBUF | SRRCTL_DROP_EN,
    )?;
    write(device, RDH, 0)?;
    write(device, RDT, 0)?;
    set(device, RXDCTL, QUEUE_ENABLE)?;
    wait_for(
        device,
        RXDCTL,
        QUEUE_ENABLE,
        false,
        QUEUE_WAIT_NS,
        "receive queue 0",
    )
    .await?;
    queue.fill(device)?;
    set(device, RXCTRL, RXCTRL_RXEN)?;

    // 4.6.8: transmit. The arbiter off while the queue is set up; the
    // transmit path on before the queue is enabled.
    set(device, RTTDCS, RTTDCS_ARBDIS)?;
    write(device, TDBAL, tx as u32)?;
    write(device, TDBAH, (tx >> 32) as u32)?;
    write(device, TDLEN, u32::from(ENTRIES) * 16)?;
    write(device, TDH, 0)?;
    write(device, TDT, 0)?;
    clear(device, RTTDCS, RTTDCS_ARBDIS)?;
    set(device, DMATXCTL, DMATXCTL_TE)?;
    set(device, TXDCTL, QUEUE_ENABLE)?;
    wait_for(
        device,
        TXDCTL,
        QUEUE_ENABLE,
        false,
        QUEUE_WAIT_NS,
        "transmit queue 0",
    )
    .await?;

    wait_for(device, LINKS, LINKS_UP, false, LINK_WAIT_NS, "the link").await?;
    let (_, speed) = link(device)?;
    Ok(Up { mac, speed, queue })
}
