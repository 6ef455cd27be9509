//! `ixgbe`: the driver domain of the Intel 82599 10 GbE controller. It
//! claims the first 82599 function through the kernel's device
//! capability, brings it up by the datasheet's initialisation sequence
//! ([`bringup::start`]: interrupts masked, global reset, EEPROM auto-read
//! and DMA initialisation awaited, link through AUTOC/LINKS, MAC from
//! RAL0/RAH0, CRC stripped, broadcast and promiscuous receive, a queue
//! pair of advanced-descriptor rings per core, up to 16, with RSS
//! spreading flows over them) and exports
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

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use domain_sdk::{Exports, Kernel, spawn};
use interfaces::control::Control;
use interfaces::net::Net;
use nic_ring::nic::{Nic, Started};

/// PCI class of an Ethernet controller, and 82599 device ids (SFI/SFP+,
/// KX4, KR, CX4, and the T3 backplane).
const CLASS: (u8, u8, u8) = (0x02, 0x00, 0x00);
pub const VENDOR: u16 = 0x8086;
pub const DEVICES: [u16; 6] = [0x10fb, 0x10f7, 0x10fc, 0x1517, 0x10f8, 0x151c];

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let device =
        domain_sdk::claim_device(CLASS, 0).map_err(|e| format!("no Ethernet controller: {e}"))?;
    let (vendor, id) = device.id();
    if vendor != VENDOR || !DEVICES.contains(&id) {
        return Err(format!(
            "the first Ethernet controller is {vendor:04x}:{id:04x}, not an Intel 82599"
        ));
    }
    let nic = Arc::new(Nic::new(device, "82599", alloc::boxed::Box::new(Link)));
    let starting = nic.clone();
    spawn(async move {
        let count = nic_ring::nic::queue_count(bringup::MAX_QUEUES);
        let result = bringup::start(starting.device(), count)
            .await
            .map(|up| Started {
                mac: up.mac,
                queues: up.queues,
            });
        starting.started(result);
    })
    .map_err(|e| format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Net + Send + Sync>("net", nic.clone())
        .with::<dyn interfaces::net::NetExerciser + Send + Sync>("exerciser", nic.clone())
        .with::<dyn Control + Send + Sync>("control", nic))
}

/// The 82599's link, for the shared `Nic`.
struct Link;

impl nic_ring::nic::LinkReader for Link {
    fn link(&self, device: &dyn domain_sdk::Device) -> Result<(bool, u32), String> {
        bringup::link(device)
    }
}
