//! One queue pair of an Intel NIC with advanced descriptors (82576,
//! 82599), as a driver domain runs it: the rings in DMA pages, the
//! buffers as `Packet`s on the shared heap, the tail registers behind the
//! device capability, and the `Net` interface's batch semantics
//! ([`QueuePair::receive`], [`QueuePair::transmit`]). The two drivers
//! differ in bring-up and register offsets, not here.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use domain_sdk::{Device, RRef};
use interfaces::bdev::DmaPage;
use interfaces::net::{BATCH, FRAME, NetCounters, Packet, Packets};

use crate::{Descriptors, RxRing, Tail, TxRing};

/// Descriptors per ring: one 4 KiB page of 16-byte descriptors.
pub const ENTRIES: u16 = 256;

/// A ring's descriptor memory: one DMA page, descriptor `i` its words
/// `4i..4i + 3` (little endian, as the device reads them).
pub struct Memory<'a>(pub &'a DmaPage);

impl Descriptors for Memory<'_> {
    fn read(&self, index: u16) -> [u64; 2] {
        let base = usize::from(index) * 4;
        let words = &self.0.0;
        // The status word the device writes back is read first (acquire),
        // so the rest is seen as the device left it.
        let status = u64::from(words[base + 2].load(Ordering::Acquire))
            | u64::from(words[base + 3].load(Ordering::Acquire)) << 32;
        let address = u64::from(words[base].load(Ordering::Relaxed))
            | u64::from(words[base + 1].load(Ordering::Relaxed)) << 32;
        [address, status]
    }

    fn write(&self, index: u16, descriptor: [u64; 2]) {
        let base = usize::from(index) * 4;
        let words = &self.0.0;
        words[base].store(descriptor[0] as u32, Ordering::Relaxed);
        words[base + 1].store((descriptor[0] >> 32) as u32, Ordering::Relaxed);
        words[base + 2].store(descriptor[1] as u32, Ordering::Relaxed);
        words[base + 3].store((descriptor[1] >> 32) as u32, Ordering::Release);
    }
}

/// A tail register of BAR 0.
pub struct TailRegister<'a> {
    pub device: &'a dyn Device,
    pub offset: u64,
}

impl Tail for TailRegister<'_> {
    fn write(&self, value: u32) {
        // A failing write means the claim was revoked (the domain is going
        // away): nothing to do.
        let _ = self.device.write32(0, self.offset, value);
    }
}

/// The registers of one queue pair (offsets into BAR 0).
#[derive(Clone, Copy, Debug)]
pub struct QueueRegisters {
    pub rdt: u64,
    pub tdt: u64,
}

/// One receive and one transmit ring with their memory and counters.
pub struct QueuePair {
    pub rx: RxRing<RRef<Packet>>,
    pub tx: TxRing<RRef<Packet>>,
    pub rx_memory: RRef<DmaPage>,
    pub tx_memory: RRef<DmaPage>,
    pub registers: QueueRegisters,
    pub counters: NetCounters,
}

fn no_address() -> String {
    String::from("the shared heap gave no device address")
}

/// A ring page's device address, or why not.
pub fn page_address(page: &RRef<DmaPage>) -> Result<u64, String> {
    page.device_address().ok_or_else(no_address)
}

impl QueuePair {
    /// The rings' memory and state, nothing posted yet.
    pub fn new(registers: QueueRegisters) -> Result<QueuePair, String> {
        let page = || RRef::try_new(DmaPage::new()).map_err(|e| format!("ring memory: {e}"));
        Ok(QueuePair {
            rx: RxRing::new(ENTRIES).map_err(|e| format!("ring size {}", e.0))?,
            tx: TxRing::new(ENTRIES).map_err(|e| format!("ring size {}", e.0))?,
            rx_memory: page()?,
            tx_memory: page()?,
            registers,
            counters: NetCounters::default(),
        })
    }

    /// Posts a buffer of the driver's own in every free receive slot, and
    /// hands them to the device (one tail write).
    pub fn fill(&mut self, device: &dyn Device) -> Result<(), String> {
        while self.rx.room() > 0 {
            let buffer =
                RRef::try_new(Packet::empty()).map_err(|e| format!("receive buffers: {e}"))?;
            let at = buffer.device_address().ok_or_else(no_address)?;
            if self
                .rx
                .post(&Memory(&self.rx_memory), buffer, at, FRAME as u16)
                .is_err()
            {
                break;
            }
        }
        self.rx.flush(&TailRegister {
            device,
            offset: self.registers.rdt,
        });
        Ok(())
    }

    /// `Net::receive`: the frames that arrived (a batch at most), then the
    /// caller's buffers the ring had no room for; the caller's buffers go
    /// on the ring (each frame freed a slot, so frames and leftovers never
    /// exceed a batch); a refused frame's buffer is posted again.
    pub fn receive(&mut self, device: &dyn Device, mut buffers: RRef<Packets>) -> RRef<Packets> {
        let memory = Memory(&self.rx_memory);
        let mut out = Packets::new();
        let mut refused = Vec::new();
        let counters = &mut self.counters;
        self.rx
            .harvest(&memory, BATCH, |mut buffer, result| match result {
                Ok(len) => {
                    buffer.len = len;
                    counters.rx_packets += 1;
                    counters.rx_bytes += u64::from(len);
                    let _ = out.push_back(buffer);
                }
                Err(_fault) => {
                    counters.rx_dropped += 1;
                    refused.push(buffer);
                }
            });
        let mut leftover = Packets::new();
        let mut post = |rx: &mut RxRing<RRef<Packet>>, buffer: RRef<Packet>| {
            // A full ring takes nothing: no need for the buffer's address
            // (a call into the kernel, which walks the page tables).
            let at = match rx.room() {
                0 => None,
                _ => buffer.device_address(),
            };
            match at {
                Some(at) => {
                    if let Err(buffer) = rx.post(&memory, buffer, at, FRAME as u16) {
                        let _ = leftover.push_back(buffer);
                    }
                }
                None => {
                    let _ = leftover.push_back(buffer);
                }
            }
        };
        for buffer in refused {
            post(&mut self.rx, buffer);
        }
        while let Some(mut buffer) = buffers.pop_front() {
            buffer.len = 0;
            post(&mut self.rx, buffer);
        }
        self.rx.flush(&TailRegister {
            device,
            offset: self.registers.rdt,
        });
        while let Some(buffer) = leftover.pop_front() {
            let _ = out.push_back(buffer);
        }
        *buffers = out;
        buffers
    }

    /// `Net::transmit`: queues the frames (one tail write), then gives
    /// back buffers of sent frames (`len` 0) as room allows, and the frames
    /// it had no room for or refused, as they were.
    pub fn transmit(&mut self, device: &dyn Device, mut packets: RRef<Packets>) -> RRef<Packets> {
        let memory = Memory(&self.tx_memory);
        // Sent buffers come off the ring first: with the ring full and a
        // whole batch refused, cleaning afterwards (only as many as the
        // reply has room for) would clean none, and the queue would stall
        // for good.
        let mut sent = alloc::vec::Vec::new();
        self.tx.clean(&memory, BATCH, |mut buffer| {
            buffer.len = 0;
            sent.push(buffer);
        });
        let mut unsent = Packets::new();
        while let Some(packet) = packets.pop_front() {
            let len = packet.len;
            match packet.device_address() {
                Some(at) if len > 0 && usize::from(len) <= FRAME => {
                    match self.tx.push(&memory, packet, at, len) {
                        Ok(()) => {
                            self.counters.tx_packets += 1;
                            self.counters.tx_bytes += u64::from(len);
                        }
                        Err(packet) => {
                            let _ = unsent.push_back(packet);
                        }
                    }
                }
                _ => {
                    self.counters.tx_dropped += 1;
                    let _ = unsent.push_back(packet);
                }
            }
        }
        self.tx.flush(&TailRegister {
            device,
            offset: self.registers.tdt,
        });
        // The reply: the sent buffers it has room for (the rest are freed),
        // then the refused frames.
        let mut out = Packets::new();
        let room = BATCH - unsent.len();
        for buffer in sent.into_iter().take(room) {
            let _ = out.push_back(buffer);
        }
        while let Some(packet) = unsent.pop_front() {
            let _ = out.push_back(packet);
        }
        *packets = out;
        packets
    }
}
