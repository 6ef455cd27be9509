//! `ixgbe`: the driver domain of the Intel 82599 10 GbE controller. It
//! claims the first 82599 function through the kernel's device
//! capability, brings it up by the datasheet's initialisation sequence
//! ([`bringup::start`]: interrupts masked, global reset, EEPROM auto-read
//! and DMA initialisation awaited, link through AUTOC/LINKS, MAC from
//! RAL0/RAH0, CRC stripped, broadcast and promiscuous receive, one
//! receive and one transmit ring of advanced descriptors) and exports
//! [`Net`] as "net" and `Control` as "control". The rings, their batching
//! and buffer recycling are `nic-ring`'s, the same code the 82576 driver
//! runs in QEMU (no emulator has an 82599): this driver's bring-up and
//! register programming are tested on the host against a register-level
//! model of the device (`tests/model.rs`).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bringup;
pub mod regs;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use domain_sdk::{Device, Exports, Kernel, Mutex, Once, RRef, RpcResult, log, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{Net, NetCounters, NetInfo, Packets};
use nic_ring::queue::QueuePair;

/// PCI class of an Ethernet controller, and 82599 device ids (SFI/SFP+,
/// KX4, KR, CX4, and the T3 backplane).
const CLASS: (u8, u8, u8) = (0x02, 0x00, 0x00);
pub const VENDOR: u16 = 0x8086;
pub const DEVICES: [u16; 6] = [0x10fb, 0x10f7, 0x10fc, 0x1517, 0x10f8, 0x151c];

struct Driver {
    device: Box<dyn Device>,
    mac: Once<[u8; 6]>,
    failed: Once<String>,
    queue: Mutex<Option<QueuePair>>,
    ready: AtomicBool,
}

impl Net for Driver {
    fn info(&self) -> RpcResult<NetInfo> {
        let (link_up, speed) = if self.ready.load(Ordering::Acquire) {
            bringup::link(&*self.device).unwrap_or((false, 0))
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
            None => Ok(buffers),
        }
    }

    fn transmit(&self, queue: u16, packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queue.lock();
        match guard.as_mut().filter(|_| queue == 0) {
            Some(q) => Ok(q.transmit(&*self.device, packets)),
            None => Ok(packets),
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
                "0: 1 if the link is up\n1: frames received\n2: frames sent\n3: received frames refused\n4: 1 if the device failed to start",
            ),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let device =
        domain_sdk::claim_device(CLASS, 0).map_err(|e| format!("no Ethernet controller: {e}"))?;
    let (vendor, id) = device.id();
    if vendor != VENDOR || !DEVICES.contains(&id) {
        return Err(format!(
            "the first Ethernet controller is {vendor:04x}:{id:04x}, not an Intel 82599"
        ));
    }
    let driver = Arc::new(Driver {
        device,
        mac: Once::new(),
        failed: Once::new(),
        queue: Mutex::new(None),
        ready: AtomicBool::new(false),
    });
    let starting = driver.clone();
    spawn(async move {
        match bringup::start(&*starting.device).await {
            Ok(up) => {
                starting.mac.call_once(|| up.mac);
                *starting.queue.lock() = Some(up.queue);
                starting.ready.store(true, Ordering::Release);
                let m = up.mac;
                log(&format!(
                    "82599 {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}: link up at {} Mb/s",
                    m[0], m[1], m[2], m[3], m[4], m[5], up.speed
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
