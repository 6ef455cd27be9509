//! `igb`: the driver domain of the Intel 82576 (8086:10c9), the NIC QEMU
//! emulates with advanced descriptors. It claims the first such function
//! through the kernel's device capability, brings it up in a task of its
//! own (reset, link through the PHY's auto-negotiation, MAC from RAL0/
//! RAH0, one receive and one transmit ring of 256 advanced descriptors,
//! CRC stripped, broadcast and promiscuous receive), and exports [`Net`]
//! as "net" (and `Control` as "control"). Frames move in [`Packet`]
//! buffers on the shared heap, which the device reads and writes by DMA:
//! never copied. The rings are `nic-ring`'s, shared with the 82599 driver.
//!
//! What QEMU's 82576 model needs (from its source, `hw/net/igb_core.c`):
//! it never sets EEPROM auto-read done (so this driver does not wait for
//! it), its link comes up only after the driver sets CTRL.SLU and
//! restarts auto-negotiation through MDIC (about 500 ms), and it receives
//! only with link up, RCTL.EN, bus mastering, RXDCTL enabled, RDLEN set and
//! RDT inside the ring.
//!
//! `call igb help` lists the console operations.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod regs;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use domain_sdk::{
    Device, Exports, Kernel, Mutex, Once, RRef, RpcResult, log, now_ns, sleep, spawn,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{FRAME, Net, NetCounters, NetInfo, Packets};
use nic_ring::queue::{ENTRIES, QueuePair, QueueRegisters, page_address};

/// PCI class of an Ethernet controller, and the 82576's ids.
const CLASS: (u8, u8, u8) = (0x02, 0x00, 0x00);
const IDS: (u16, u16) = (0x8086, 0x10c9);
/// How long the link may take to come up.
const LINK_WAIT_NS: u64 = 5_000_000_000;

struct Driver {
    device: Box<dyn Device>,
    mac: Once<[u8; 6]>,
    failed: Once<String>,
    queue: Mutex<Option<QueuePair>>,
    ready: AtomicBool,
}

fn register_error(e: domain_sdk::DeviceError) -> String {
    format!("register access: {e}")
}

impl Driver {
    fn read(&self, offset: u64) -> Result<u32, String> {
        self.device.read32(0, offset).map_err(register_error)
    }

    fn write(&self, offset: u64, value: u32) -> Result<(), String> {
        self.device
            .write32(0, offset, value)
            .map_err(register_error)
    }

    /// Waits (sleeping 1 ms at a time) until `done` or `timeout_ns`.
    async fn wait(
        &self,
        timeout_ns: u64,
        what: &str,
        mut done: impl FnMut() -> Result<bool, String>,
    ) -> Result<(), String> {
        let deadline = now_ns() + timeout_ns;
        loop {
            if done()? {
                return Ok(());
            }
            if now_ns() > deadline {
                return Err(format!("timed out waiting for {what}"));
            }
            sleep(Duration::from_millis(1)).await;
        }
    }

    /// Reset, link, MAC, rings: the datasheet's initialisation (section
    /// 4.5) as far as QEMU's model and this driver need it.
    async fn start(&self) -> Result<([u8; 6], QueuePair), String> {
        use regs::*;
        self.write(IMC, u32::MAX)?;
        self.write(CTRL, self.read(CTRL)? | CTRL_RST)?;
        self.wait(100_000_000, "the reset", || {
            Ok(self.read(CTRL)? & CTRL_RST == 0)
        })
        .await?;
        self.write(IMC, u32::MAX)?;
        // Link: set link up (and clear link reset), then restart the PHY's
        // auto-negotiation through MDIC.
        self.write(CTRL, (self.read(CTRL)? | CTRL_SLU) & !CTRL_LRST)?;
        self.write(
            MDIC,
            (PHY_CTRL_AN_ENABLE | PHY_CTRL_AN_RESTART)
                | PHY_CTRL << MDIC_REG_SHIFT
                | PHY_ADDRESS << MDIC_PHY_SHIFT
                | MDIC_OP_WRITE,
        )?;
        let mut mdic = 0;
        self.wait(100_000_000, "the PHY", || {
            mdic = self.read(MDIC)?;
            Ok(mdic & MDIC_READY != 0)
        })
        .await?;
        if mdic & MDIC_ERROR != 0 {
            return Err(String::from("the PHY refused the auto-negotiation restart"));
        }
        // The MAC the EEPROM loaded into receive address 0.
        let (low, high) = (self.read(RAL0)?, self.read(RAH0)?);
        if high & RAH_AV == 0 {
            return Err(String::from("no MAC address in RAL0/RAH0"));
        }
        let [a, b, c, d] = low.to_le_bytes();
        let [e, f, _, _] = high.to_le_bytes();
        let mac = [a, b, c, d, e, f];

        // Rings and their buffers.
        let mut queue = QueuePair::new(QueueRegisters { rdt: RDT, tdt: TDT })?;
        let rx_address = page_address(&queue.rx_memory)?;
        let tx_address = page_address(&queue.tx_memory)?;
        self.device.set_bus_master(true);
        self.write(RDBAL, rx_address as u32)?;
        self.write(RDBAH, (rx_address >> 32) as u32)?;
        self.write(RDLEN, u32::from(ENTRIES) * 16)?;
        self.write(SRRCTL, (FRAME / 1024) as u32 | SRRCTL_DESCTYPE_ADV_ONEBUF)?;
        self.write(RDH, 0)?;
        self.write(RDT, 0)?;
        self.write(RXDCTL, self.read(RXDCTL)? | QUEUE_ENABLE)?;
        self.write(TDBAL, tx_address as u32)?;
        self.write(TDBAH, (tx_address >> 32) as u32)?;
        self.write(TDLEN, u32::from(ENTRIES) * 16)?;
        self.write(TDH, 0)?;
        self.write(TDT, 0)?;
        self.write(TXDCTL, self.read(TXDCTL)? | QUEUE_ENABLE)?;
        // Every receive slot gets a buffer of the driver's own to start.
        queue.fill(&*self.device)?;
        // Receive everything (promiscuous, broadcast), CRC stripped; send.
        self.write(RCTL, RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_SECRC)?;
        self.write(TCTL, TCTL_EN | TCTL_PSP)?;
        self.wait(LINK_WAIT_NS, "the link", || {
            Ok(self.read(STATUS)? & STATUS_LU != 0)
        })
        .await?;
        Ok((mac, queue))
    }

    fn link(&self) -> (bool, u32) {
        match self.read(regs::STATUS) {
            Ok(status) if status & regs::STATUS_LU != 0 => {
                let speed = match (status >> regs::STATUS_SPEED_SHIFT) & 3 {
                    0 => 10,
                    1 => 100,
                    _ => 1000,
                };
                (true, speed)
            }
            _ => (false, 0),
        }
    }
}

impl Net for Driver {
    fn info(&self) -> RpcResult<NetInfo> {
        let (link_up, speed) = if self.ready.load(Ordering::Acquire) {
            self.link()
        } else {
            (false, 0)
        };
        Ok(NetInfo {
            mac: self.mac.get().copied().unwrap_or([0; 6]),
            link_up,
            speed,
            queues: 1,
        })
    }

    fn receive(&self, queue: u16, buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queue.lock();
        match guard.as_mut().filter(|_| queue == 0) {
            Some(q) => Ok(q.receive(&*self.device, buffers)),
            None => Ok(buffers), // not up (or no such queue): nothing arrived
        }
    }

    fn transmit(&self, queue: u16, packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queue.lock();
        match guard.as_mut().filter(|_| queue == 0) {
            Some(q) => Ok(q.transmit(&*self.device, packets)),
            None => Ok(packets), // not up: nothing sent, all given back
        }
    }

    fn counters(&self, queue: u16) -> RpcResult<NetCounters> {
        let guard = self.queue.lock();
        Ok(guard
            .as_ref()
            .filter(|_| queue == 0)
            .map(|q| q.counters)
            .unwrap_or_default())
    }
}

impl Control for Driver {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        let counters = self.counters(0)?;
        Ok(match op {
            0 => u64::from(self.info()?.link_up),
            1 => counters.rx_packets,
            2 => counters.tx_packets,
            3 => counters.rx_dropped,
            _ => u64::from(self.failed.get().is_some()),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: 1 if the link is up\n1: frames received\n2: frames sent\n3: received frames refused\n4: 1 if the device failed to start\n5: the NIC, in words",
            ),
            5 => {
                let info = self.info()?;
                let m = info.mac;
                let state = match (self.failed.get(), self.ready.load(Ordering::Acquire)) {
                    (Some(reason), _) => format!("failed: {reason}"),
                    (None, true) => format!(
                        "link {}{}",
                        if info.link_up { "up" } else { "down" },
                        if info.link_up {
                            format!(" at {} Mb/s", info.speed)
                        } else {
                            String::new()
                        }
                    ),
                    (None, false) => String::from("starting"),
                };
                Text::answer(&format!(
                    "82576 {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {state}, {} queue pair",
                    m[0], m[1], m[2], m[3], m[4], m[5], info.queues
                ))
            }
            _ => Ok(None),
        }
    }
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
    let driver = Arc::new(Driver {
        device,
        mac: Once::new(),
        failed: Once::new(),
        queue: Mutex::new(None),
        ready: AtomicBool::new(false),
    });
    let starting = driver.clone();
    spawn(async move {
        match starting.start().await {
            Ok((mac, queue)) => {
                starting.mac.call_once(|| mac);
                *starting.queue.lock() = Some(queue);
                starting.ready.store(true, Ordering::Release);
                log(&format!(
                    "82576 {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}: link up, {} receive buffers posted",
                    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], ENTRIES - 1
                ));
            }
            Err(reason) => {
                log(&format!("the NIC did not start: {reason}"));
                starting.failed.call_once(|| reason);
            }
        }
    })
    .map_err(|e| format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Net + Send + Sync>("net", driver.clone())
        .with::<dyn Control + Send + Sync>("control", driver))
}
