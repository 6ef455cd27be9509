//! The 82599 bring-up against a register-level model of the device,
//! written from the datasheet (sections 4.6.3 to 4.6.8 and 8.2.3): the
//! reset bit clears itself, the EEPROM's auto-read and the DMA's
//! initialisation report done after a reset, restarting auto-negotiation
//! brings LINKS up at 10 Gb/s a few reads later, and a transmit queue
//! only enables once the transmit path (DMATXCTL.TE) is on. The tests
//! run the driver's real `bringup::start` on the host test kit's kernel
//! (virtual time) and check what it programmed, and in which order, and
//! what it says when the device does not cooperate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use domain_sdk::{Device, DeviceError, testing};
use driver_ixgbe::bringup;
use driver_ixgbe::regs::*;

const MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc];

#[derive(Default)]
struct Model {
    registers: Mutex<HashMap<u64, u32>>,
    /// Every write, in order.
    writes: Mutex<Vec<(u64, u32)>>,
    reset_pending: AtomicBool,
    link_reads: AtomicU32,
    bus_master: AtomicBool,
    // What the device will not do.
    eeprom_stuck: bool,
    link_stuck: bool,
    unreachable: bool,
}

impl Model {
    fn new() -> Model {
        let model = Model::default();
        model.power_on();
        model
    }

    /// Register values after power-on or a reset (only what the bring-up
    /// reads matters).
    fn power_on(&self) {
        let mut r = self.registers.lock().unwrap();
        r.clear();
        r.insert(
            EEC,
            if self.eeprom_stuck {
                1 << 8
            } else {
                (1 << 8) | EEC_AUTO_RD
            },
        );
        r.insert(RDRXCTL, RDRXCTL_DMAIDONE);
        r.insert(RAL0, u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]]));
        r.insert(RAH0, u32::from(MAC[4]) | u32::from(MAC[5]) << 8 | RAH_AV);
        r.insert(AUTOC, 0b011 << 13);
        self.link_reads.store(0, Ordering::Relaxed);
    }

    fn get(&self, offset: u64) -> u32 {
        *self.registers.lock().unwrap().get(&offset).unwrap_or(&0)
    }

    fn first_write(&self, offset: u64, bits: u32) -> Option<usize> {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .position(|&(o, v)| o == offset && v & bits == bits)
    }
}

impl Device for Model {
    fn id(&self) -> (u16, u16) {
        (0x8086, 0x10fb)
    }
    fn bar_size(&self, bar: usize) -> u64 {
        if bar == 0 { 512 << 10 } else { 0 }
    }
    fn read32(&self, bar: usize, offset: u64) -> Result<u32, DeviceError> {
        if self.unreachable || bar != 0 || offset >= 512 << 10 || !offset.is_multiple_of(4) {
            return Err(DeviceError::OutOfBounds);
        }
        match offset {
            CTRL if self.reset_pending.swap(false, Ordering::Relaxed) => {
                // The reset completes: registers back to their defaults.
                self.power_on();
                Ok(0)
            }
            LINKS => {
                let restarted = self.get(AUTOC) & AUTOC_RESTART_AN != 0;
                let reads = self.link_reads.fetch_add(1, Ordering::Relaxed);
                Ok(if restarted && reads >= 3 && !self.link_stuck {
                    LINKS_UP | 3 << LINKS_SPEED_SHIFT
                } else {
                    0
                })
            }
            _ => Ok(self.get(offset)),
        }
    }
    fn write32(&self, bar: usize, offset: u64, value: u32) -> Result<(), DeviceError> {
        if self.unreachable || bar != 0 || offset >= 512 << 10 || !offset.is_multiple_of(4) {
            return Err(DeviceError::OutOfBounds);
        }
        self.writes.lock().unwrap().push((offset, value));
        let mut stored = value;
        match offset {
            CTRL if value & CTRL_RST != 0 => self.reset_pending.store(true, Ordering::Relaxed),
            // A transmit queue enables only with the transmit path on.
            o if (TXDCTL..TXDCTL + 0x40 * 64).contains(&o)
                && (o - TXDCTL).is_multiple_of(0x40)
                && self.get(DMATXCTL) & DMATXCTL_TE == 0 =>
            {
                stored &= !QUEUE_ENABLE
            }
            _ => {}
        }
        self.registers.lock().unwrap().insert(offset, stored);
        Ok(())
    }
    fn read64(&self, _bar: usize, _offset: u64) -> Result<u64, DeviceError> {
        Err(DeviceError::OutOfBounds)
    }
    fn write64(&self, _bar: usize, _offset: u64, _value: u64) -> Result<(), DeviceError> {
        Err(DeviceError::OutOfBounds)
    }
    fn config_read32(&self, _offset: u16) -> Result<u32, DeviceError> {
        Ok(0)
    }
    fn set_bus_master(&self, on: bool) {
        self.bus_master.store(on, Ordering::Relaxed);
    }
}

fn start(model: &Model) -> Result<bringup::Up, String> {
    start_with(model, 1)
}

fn start_with(model: &Model, queues: usize) -> Result<bringup::Up, String> {
    testing::kernel()
        .block_on(bringup::start(model, queues), Duration::from_secs(60))
        .expect("the bring-up finishes within a minute of virtual time")
}

#[test]
fn bring_up_programs_the_device_as_the_datasheet_says() {
    let model = Model::new();
    let up = start(&model).expect("bring-up");
    assert_eq!(up.mac, MAC);
    assert_eq!(up.speed, 10_000);
    // Interrupts masked before the reset and after it.
    let eimc: Vec<usize> = model
        .writes
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, (o, v))| *o == EIMC && *v == EIMC_ALL)
        .map(|(i, _)| i)
        .collect();
    let reset = model.first_write(CTRL, CTRL_RST).expect("a global reset");
    assert!(
        eimc.len() >= 2 && eimc[0] < reset && eimc[1] > reset,
        "{eimc:?} around {reset}"
    );
    // CRC stripped, consistently; broadcast and promiscuous.
    assert_eq!(
        model.get(HLREG0) & (HLREG0_RXCRCSTRP | HLREG0_TXCRCEN),
        HLREG0_RXCRCSTRP | HLREG0_TXCRCEN
    );
    assert_ne!(model.get(RDRXCTL) & RDRXCTL_CRCSTRIP, 0);
    assert_eq!(model.get(FCTRL), FCTRL_BAM | FCTRL_UPE | FCTRL_MPE);
    // Rings: 256 descriptors each, 2 KiB one-buffer advanced receive
    // descriptors that drop when full, every receive slot but one posted.
    assert_eq!(model.get(RDLEN), 4096);
    assert_eq!(model.get(TDLEN), 4096);
    assert_eq!(
        model.get(SRRCTL),
        2 | SRRCTL_DESCTYPE_ADV_ONEBUF | SRRCTL_DROP_EN
    );
    let rx_ring = u64::from(model.get(RDBAL)) | u64::from(model.get(RDBAH)) << 32;
    let tx_ring = u64::from(model.get(TDBAL)) | u64::from(model.get(TDBAH)) << 32;
    assert!(rx_ring != 0 && tx_ring != 0 && rx_ring != tx_ring);
    assert_eq!(rx_ring % 128, 0, "rings 128-byte aligned");
    assert_eq!(model.get(RDT), 255);
    assert_eq!(up.queues.len(), 1);
    assert_eq!(up.queues[0].rx.posted(), 255);
    // One queue: no receive-side scaling.
    assert_eq!(model.get(MRQC), 0);
    // Receive on only after its queue; transmit path before its queue.
    let rxen_off = model
        .writes
        .lock()
        .unwrap()
        .iter()
        .position(|&(o, v)| o == RXCTRL && v & RXCTRL_RXEN == 0);
    let ring_programmed = model.first_write(RDLEN, 0).unwrap();
    let rx_queue_on = model.first_write(RXDCTL, QUEUE_ENABLE).unwrap();
    let rxen_on = model.first_write(RXCTRL, RXCTRL_RXEN).unwrap();
    assert!(rxen_off.unwrap() < ring_programmed && rx_queue_on < rxen_on);
    let te = model.first_write(DMATXCTL, DMATXCTL_TE).unwrap();
    let tx_queue_on = model.first_write(TXDCTL, QUEUE_ENABLE).unwrap();
    assert!(te < tx_queue_on);
    assert_ne!(model.get(TXDCTL) & QUEUE_ENABLE, 0);
    assert_eq!(model.get(RTTDCS) & RTTDCS_ARBDIS, 0, "the arbiter back on");
    assert!(model.bus_master.load(Ordering::Relaxed));
    // Auto-negotiation restarted, the EEPROM's link mode kept.
    assert_eq!(model.get(AUTOC), 0b011 << 13 | AUTOC_RESTART_AN);
}

#[test]
fn an_eeprom_that_never_finishes_fails_the_bring_up_saying_so() {
    let model = Model {
        eeprom_stuck: true,
        ..Model::default()
    };
    model.power_on();
    let error = start(&model).err().expect("refused");
    assert!(error.contains("EEPROM auto-read"), "{error}");
}

#[test]
fn a_link_that_never_comes_up_fails_the_bring_up_saying_so() {
    let model = Model {
        link_stuck: true,
        ..Model::default()
    };
    model.power_on();
    let error = start(&model).err().expect("refused");
    assert!(error.contains("the link"), "{error}");
}

#[test]
fn registers_out_of_reach_fail_the_bring_up_saying_so() {
    let model = Model {
        unreachable: true,
        ..Model::default()
    };
    let error = start(&model).err().expect("refused");
    assert!(error.starts_with("register access"), "{error}");
}

#[test]
fn four_queue_pairs_each_get_rings_and_rss_spreads_flows_over_them() {
    let model = Model::new();
    let up = start_with(&model, 4).expect("bring-up");
    assert_eq!(up.queues.len(), 4);
    let mut rings = Vec::new();
    for n in 0..4 {
        // Each queue's rings programmed and enabled at its own registers,
        // every receive slot but one posted.
        assert_eq!(model.get(queue(RDLEN, n)), 4096, "queue {n}");
        assert_eq!(model.get(queue(TDLEN, n)), 4096, "queue {n}");
        assert_eq!(model.get(queue(RDT, n)), 255, "queue {n}");
        assert_ne!(model.get(queue(RXDCTL, n)) & QUEUE_ENABLE, 0, "queue {n}");
        assert_ne!(model.get(queue(TXDCTL, n)) & QUEUE_ENABLE, 0, "queue {n}");
        assert_eq!(up.queues[n].rx.posted(), 255);
        for ring in [RDBAL, TDBAL] {
            rings.push(
                u64::from(model.get(queue(ring, n)))
                    | u64::from(model.get(queue(ring + 4, n))) << 32,
            );
        }
    }
    rings.sort_unstable();
    rings.dedup();
    assert_eq!(rings.len(), 8, "eight distinct rings");
    assert!(rings.iter().all(|&r| r != 0));
    // RSS: on for TCP, UDP and other IPv4; the hash where the checksum
    // would be; the 128 redirection entries spread over the four queues
    // (32 each, give or take one); a key; all before receive goes on.
    assert_eq!(
        model.get(MRQC),
        MRQC_RSS | MRQC_HASH_TCP_IPV4 | MRQC_HASH_IPV4 | MRQC_HASH_UDP_IPV4
    );
    assert_ne!(model.get(RXCSUM) & RXCSUM_PCSD, 0);
    let mut per_queue = [0; 4];
    for entry in 0..128u64 {
        let register = model.get(RETA + 4 * (entry / 4));
        let queue = (register >> (8 * (entry % 4))) & 0xff;
        assert_eq!(
            queue,
            nic_ring::nic::reta_entry(entry as u32, 4),
            "entry {entry}"
        );
        per_queue[queue as usize] += 1;
    }
    assert!(
        per_queue.iter().all(|&n| (31..=33).contains(&n)),
        "entries per queue {per_queue:?}"
    );
    assert!((0..10).all(|i| model.get(RSSRK + 4 * i) != 0));
    let mrqc = model.first_write(MRQC, MRQC_RSS).unwrap();
    let rxen_on = model.first_write(RXCTRL, RXCTRL_RXEN).unwrap();
    assert!(mrqc < rxen_on);
    // The transmit path before any transmit queue.
    let te = model.first_write(DMATXCTL, DMATXCTL_TE).unwrap();
    for n in 0..4 {
        assert!(te < model.first_write(queue(TXDCTL, n), QUEUE_ENABLE).unwrap());
    }
}

#[test]
fn a_queue_count_the_device_cannot_have_is_refused() {
    let model = Model::new();
    for count in [0, 17] {
        let error = start_with(&model, count).err().expect("refused");
        assert!(error.contains("queue pairs"), "{error}");
    }
}
