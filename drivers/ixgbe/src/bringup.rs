//! The 82599's initialisation (datasheet section 4.6.3), through the
//! device capability: each step, what it waits for, and what it
//! programs. A step that waits too long fails the bring-up, saying which.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
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
    /// Queue pair `n` is `queues[n]`.
    pub queues: Vec<QueuePair>,
}

/// Queue pairs at most: RSS's redirection entries (four bits) reach 16.
pub const MAX_QUEUES: usize = 16;

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

/// Brings the device up with `count` queue pairs (1 to [`MAX_QUEUES`];
/// more than one: receive-side scaling spreads IPv4 TCP and UDP flows
/// over them, everything else to queue 0); see the module doc.
pub async fn start(device: &dyn Device, count: usize) -> Result<Up, String> {
    if !(1..=MAX_QUEUES).contains(&count) {
        return Err(format!(
            "{count} queue pairs: 1 to {MAX_QUEUES} are possible"
        ));
    }
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
    let mac = nic_ring::nic::eeprom_mac(device, RAL0)?;
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
    let mut queues = Vec::with_capacity(count);
    let mut tx_rings = Vec::with_capacity(count);
    device.set_bus_master(true);
    for n in 0..count {
        let mut pair = QueuePair::new(QueueRegisters {
            rdt: queue(RDT, n),
            tdt: queue(TDT, n),
        })?;
        let rx = page_address(&pair.rx_memory)?;
        tx_rings.push(page_address(&pair.tx_memory)?);
        write(device, queue(RDBAL, n), rx as u32)?;
        write(device, queue(RDBAH, n), (rx >> 32) as u32)?;
        write(device, queue(RDLEN, n), u32::from(ENTRIES) * 16)?;
        write(
            device,
            queue(SRRCTL, n),
            (FRAME / 1024) as u32 | SRRCTL_DESCTYPE_ADV_ONEBUF | SRRCTL_DROP_EN,
        )?;
        write(device, queue(RDH, n), 0)?;
        write(device, queue(RDT, n), 0)?;
        set(device, queue(RXDCTL, n), QUEUE_ENABLE)?;
        wait_for(
            device,
            queue(RXDCTL, n),
            QUEUE_ENABLE,
            false,
            QUEUE_WAIT_NS,
            &format!("receive queue {n}"),
        )
        .await?;
        pair.fill(device)?;
        queues.push(pair);
    }
    // Several queues: RSS (7.1.2.8) before receive goes on.
    if count > 1 {
        nic_ring::nic::write_rss_tables(device, RSSRK, RETA, count)?;
        set(device, RXCSUM, RXCSUM_PCSD)?;
        write(
            device,
            MRQC,
            MRQC_RSS | MRQC_HASH_TCP_IPV4 | MRQC_HASH_IPV4 | MRQC_HASH_UDP_IPV4,
        )?;
    } else {
        write(device, MRQC, 0)?;
    }
    set(device, RXCTRL, RXCTRL_RXEN)?;

    // 4.6.8: transmit. The arbiter off while the queues are set up; the
    // transmit path on before they are enabled.
    set(device, RTTDCS, RTTDCS_ARBDIS)?;
    for (n, &tx) in tx_rings.iter().enumerate() {
        write(device, queue(TDBAL, n), tx as u32)?;
        write(device, queue(TDBAH, n), (tx >> 32) as u32)?;
        write(device, queue(TDLEN, n), u32::from(ENTRIES) * 16)?;
        write(device, queue(TDH, n), 0)?;
        write(device, queue(TDT, n), 0)?;
    }
    clear(device, RTTDCS, RTTDCS_ARBDIS)?;
    set(device, DMATXCTL, DMATXCTL_TE)?;
    for n in 0..count {
        set(device, queue(TXDCTL, n), QUEUE_ENABLE)?;
        wait_for(
            device,
            queue(TXDCTL, n),
            QUEUE_ENABLE,
            false,
            QUEUE_WAIT_NS,
            &format!("transmit queue {n}"),
        )
        .await?;
    }

    wait_for(device, LINKS, LINKS_UP, false, LINK_WAIT_NS, "the link").await?;
    let (_, speed) = link(device)?;
    Ok(Up { mac, speed, queues })
}
