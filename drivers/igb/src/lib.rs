//! `igb`: the driver domain of the Intel 82576 (8086:10c9), the NIC QEMU
//! emulates with advanced descriptors. It claims the first such function
//! through the kernel's device capability, brings it up in a task of its
//! own (reset, link through the PHY's auto-negotiation, MAC from RAL0/
//! RAH0, a queue pair per core, up to 16, each a receive and a transmit
//! ring of 256 advanced descriptors, with RSS spreading flows over them,
//! CRC stripped, broadcast and promiscuous receive), and exports [`Net`]
//! as "net" (and `Control` as "control"). Frames move in [`Packet`]
//! buffers on the shared heap, which the device reads and writes by DMA:
//! never copied. The rings are `nic-ring`'s, shared with the 82599 driver.
//!
//! What QEMU's 82576 model needs (from its source, `hw/net/igb_core.c`):
//! it never sets EEPROM auto-read done (so this driver does not wait for
//! it), its link comes up only after the driver sets CTRL.SLU and
//! restarts auto-negotiation through MDIC (about 500 ms, also after every
//! reset: why a restarted driver does not reset the device, see
//! [`start`]), and it receives
//! only with link up, RCTL.EN, bus mastering, RXDCTL enabled, RDLEN set and
//! RDT inside the ring.
//!
//! `call igb help` lists the console operations.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod regs;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use domain_sdk::{Device, Exports, Kernel, spawn};
use interfaces::control::Control;
use interfaces::net::{FRAME, Net};
use nic_ring::nic::{Nic, Started, queue_count, read, register_error, wait, write};
use nic_ring::queue::{ENTRIES, QueuePair, QueueRegisters, page_address};

/// PCI class of an Ethernet controller, and the 82576's ids.
const CLASS: (u8, u8, u8) = (0x02, 0x00, 0x00);
const IDS: (u16, u16) = (0x8086, 0x10c9);
/// How long the link may take to come up.
const LINK_WAIT_NS: u64 = 5_000_000_000;
/// Queue pairs at most: the 82576 has 16, and RSS's redirection entries
/// (four bits) reach all 16.
pub const MAX_QUEUES: usize = 16;

/// RCTL as this driver programs it: receive everything (promiscuous,
/// broadcast), CRC stripped.
const RCTL_OURS: u32 =
    regs::RCTL_EN | regs::RCTL_UPE | regs::RCTL_MPE | regs::RCTL_BAM | regs::RCTL_SECRC;
/// TCTL as this driver programs it.
const TCTL_OURS: u32 = regs::TCTL_EN | regs::TCTL_PSP;
/// SRRCTL as this driver programs it: advanced one-buffer descriptors,
/// buffers of `FRAME` bytes.
const SRRCTL_OURS: u32 = (FRAME / 1024) as u32 | regs::SRRCTL_DESCTYPE_ADV_ONEBUF;

/// Whether the device is as an earlier incarnation of this driver left
/// it, with its link up: then a restart (after a crash, by the shadow)
/// need not reset it.
fn left_by_this_driver(device: &dyn Device, count: usize) -> Result<bool, String> {
    use regs::*;
    let ring = u32::from(ENTRIES) * 16;
    if read(device, STATUS)? & STATUS_LU == 0
        || read(device, RCTL)? != RCTL_OURS
        || read(device, TCTL)? != TCTL_OURS
        || read(device, MRQC)? != mrqc(count)
    {
        return Ok(false);
    }
    for n in 0..count {
        if read(device, queue(SRRCTL, n))? != SRRCTL_OURS
            || read(device, queue(RDLEN, n))? != ring
            || read(device, queue(TDLEN, n))? != ring
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// MRQC as this driver programs it for `count` queue pairs: RSS when
/// there are several.
fn mrqc(count: usize) -> u32 {
    use regs::*;
    if count > 1 {
        MRQC_RSS | MRQC_HASH_TCP_IPV4 | MRQC_HASH_IPV4 | MRQC_HASH_UDP_IPV4
    } else {
        0
    }
}

/// Stops receive and transmit and disables both queues without a reset
/// (the datasheet's dynamic queue disable: clear RXDCTL/TXDCTL.ENABLE,
/// then read it back clear), so that the rings can be programmed anew
/// while the link stays up. Frames that arrive meanwhile wait in the
/// device (in QEMU's model: in its queue) instead of being lost.
async fn stop_queues(device: &dyn Device, count: usize) -> Result<(), String> {
    use regs::*;
    write(device, RCTL, 0)?;
    write(device, TCTL, 0)?;
    for n in 0..count {
        let (rx, tx) = (queue(RXDCTL, n), queue(TXDCTL, n));
        write(device, rx, read(device, rx)? & !QUEUE_ENABLE)?;
        write(device, tx, read(device, tx)? & !QUEUE_ENABLE)?;
    }
    wait(10_000_000, "the queues to stop", || {
        for n in 0..count {
            if read(device, queue(RXDCTL, n))? & QUEUE_ENABLE != 0
                || read(device, queue(TXDCTL, n))? & QUEUE_ENABLE != 0
            {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Reset, link, MAC, rings: the datasheet's initialisation (section 4.5)
/// as far as QEMU's model and this driver need it. A restart of this
/// driver (its earlier incarnation crashed) finds the device as that one
/// left it, link up, and skips the reset: on the 82576 (QEMU's model
/// included) a reset takes the link down for auto-negotiation, about
/// 500 ms during which nothing is received, where stopping the queues
/// and programming them again takes a few milliseconds. Everything the
/// data path depends on (the rings, their registers, RCTL, TCTL, SRRCTL)
/// is programmed again either way; if the queues do not stop, the device
/// is reset after all.
pub async fn start(device: &dyn Device) -> Result<Started, String> {
    use regs::*;
    write(device, IMC, u32::MAX)?;
    let count = queue_count(MAX_QUEUES);
    let warm = left_by_this_driver(device, count)? && stop_queues(device, count).await.is_ok();
    if !warm {
        reset(device).await?;
    }
    // The MAC the EEPROM loaded into receive address 0.
    let mac = nic_ring::nic::eeprom_mac(device, RAL0)?;

    // Rings and their buffers: one queue pair per core.
    device.set_bus_master(true);
    let mut queues = Vec::with_capacity(count);
    for n in 0..count {
        let mut pair = QueuePair::new(QueueRegisters {
            rdt: queue(RDT, n),
            tdt: queue(TDT, n),
        })?;
        let rx_address = page_address(&pair.rx_memory)?;
        let tx_address = page_address(&pair.tx_memory)?;
        write(device, queue(RDBAL, n), rx_address as u32)?;
        write(device, queue(RDBAH, n), (rx_address >> 32) as u32)?;
        write(device, queue(RDLEN, n), u32::from(ENTRIES) * 16)?;
        write(device, queue(SRRCTL, n), SRRCTL_OURS)?;
        write(device, queue(RDH, n), 0)?;
        write(device, queue(RDT, n), 0)?;
        let rxdctl = queue(RXDCTL, n);
        write(device, rxdctl, read(device, rxdctl)? | QUEUE_ENABLE)?;
        write(device, queue(TDBAL, n), tx_address as u32)?;
        write(device, queue(TDBAH, n), (tx_address >> 32) as u32)?;
        write(device, queue(TDLEN, n), u32::from(ENTRIES) * 16)?;
        write(device, queue(TDH, n), 0)?;
        write(device, queue(TDT, n), 0)?;
        let txdctl = queue(TXDCTL, n);
        write(device, txdctl, read(device, txdctl)? | QUEUE_ENABLE)?;
        // Every receive slot gets a buffer of the driver's own to start.
        pair.fill(device)?;
        queues.push(pair);
    }
    // Several queues: receive-side scaling spreads the frames of IPv4
    // TCP and UDP flows over them by a hash of addresses and ports (each
    // flow always to the same queue); everything else goes to queue 0.
    let rxcsum = read(device, RXCSUM)? | RXCSUM_IPOFLD | RXCSUM_TUOFLD;
    if count > 1 {
        nic_ring::nic::write_rss_tables(device, RSSRK, RETA, count)?;
        write(device, RXCSUM, rxcsum | RXCSUM_PCSD)?;
    } else {
        write(device, RXCSUM, rxcsum & !RXCSUM_PCSD)?;
    }
    write(device, MRQC, mrqc(count))?;
    // Receive everything (promiscuous, broadcast), CRC stripped; send.
    write(device, RCTL, RCTL_OURS)?;
    write(device, TCTL, TCTL_OURS)?;
    wait(LINK_WAIT_NS, "the link", || {
        Ok(read(device, STATUS)? & STATUS_LU != 0)
    })
    .await?;
    Ok(Started { mac, queues })
}

/// A full reset, then the link: set link up (and clear link reset), and
/// restart the PHY's auto-negotiation through MDIC unless the link is
/// already up.
async fn reset(device: &dyn Device) -> Result<(), String> {
    use regs::*;
    write(device, CTRL, read(device, CTRL)? | CTRL_RST)?;
    wait(100_000_000, "the reset", || {
        Ok(read(device, CTRL)? & CTRL_RST == 0)
    })
    .await?;
    write(device, IMC, u32::MAX)?;
    write(device, CTRL, (read(device, CTRL)? | CTRL_SLU) & !CTRL_LRST)?;
    if read(device, STATUS)? & STATUS_LU != 0 {
        return Ok(());
    }
    write(
        device,
        MDIC,
        (PHY_CTRL_AN_ENABLE | PHY_CTRL_AN_RESTART)
            | PHY_CTRL << MDIC_REG_SHIFT
            | PHY_ADDRESS << MDIC_PHY_SHIFT
            | MDIC_OP_WRITE,
    )?;
    let mut mdic = 0;
    wait(100_000_000, "the PHY", || {
        mdic = read(device, MDIC)?;
        Ok(mdic & MDIC_READY != 0)
    })
    .await?;
    if mdic & MDIC_ERROR != 0 {
        return Err(String::from("the PHY refused the auto-negotiation restart"));
    }
    Ok(())
}

/// Link state and speed from STATUS.
pub fn link(device: &dyn Device) -> Result<(bool, u32), String> {
    let status = read(device, regs::STATUS)?;
    if status & regs::STATUS_LU == 0 {
        return Ok((false, 0));
    }
    let speed = match (status >> regs::STATUS_SPEED_SHIFT) & 3 {
        0 => 10,
        1 => 100,
        _ => 1000,
    };
    Ok((true, speed))
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let device =
        domain_sdk::claim_device(CLASS, 0).map_err(|e| format!("no Ethernet controller: {e}"))?;
    if device.id() != IDS {
        let (vendor, id) = device.id();
        return Err(format!(
            "the first Ethernet controller is {vendor:04x}:{id:04x}, not an Intel 82576 ({:04x}:{:04x})",
            IDS.0, IDS.1
        ));
    }
    // A controller whose registers cannot be reached never starts: fail the
    // load now, saying why.
    device
        .read32(0, regs::STATUS)
        .map_err(|e| format!("the NIC did not start: {}", register_error(e)))?;
    let nic = Arc::new(Nic::new(device, "82576", alloc::boxed::Box::new(Link)));
    let starting = nic.clone();
    spawn(async move {
        let result = start(starting.device()).await;
        starting.started(result);
    })
    .map_err(|e| format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Net + Send + Sync>("net", nic.clone())
        .with::<dyn interfaces::net::NetExerciser + Send + Sync>("exerciser", nic.clone())
        .with::<dyn Control + Send + Sync>("control", nic))
}

/// The 82576's link, for the shared `Nic`.
struct Link;

impl nic_ring::nic::LinkReader for Link {
    fn link(&self, device: &dyn Device) -> Result<(bool, u32), String> {
        link(device)
    }
}
