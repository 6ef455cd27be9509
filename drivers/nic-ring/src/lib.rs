//! Receive and transmit rings in Intel's *advanced* descriptor format,
//! which the 82576 (igb) and the 82599 (ixgbe) share: the driver-side
//! state of one queue (which slots hold which buffer, where the next
//! completion is, when to write the tail register), with the descriptor
//! memory and the tail register behind traits, so that both drivers use
//! this one code and the host tests run it against simulated devices,
//! lying ones included.
//!
//! Batching is the caller's: it [`post`](RxRing::post)s (or
//! [`push`](TxRing::push)es) up to a batch of buffers and then
//! [`flush`](RxRing::flush)es, which writes the tail register once.
//!
//! What the device writes is never trusted: a completion is looked for
//! only in slots this side posted (a "done" bit anywhere else is never
//! read), a received length is checked against the buffer it claims to
//! fill, and a frame spread over several descriptors (which the drivers
//! never ask for: every buffer holds a whole frame) is refused. Each
//! problem comes back with the buffer, so the driver can recycle it and
//! count the drop (or give up on the device); nothing here indexes past a
//! ring or trusts a device-written index.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod nic;
pub mod queue;

use alloc::vec::Vec;

/// The descriptor memory of one ring (shared with the device): 16 bytes
/// per descriptor, as two little-endian 64-bit words.
pub trait Descriptors {
    fn read(&self, index: u16) -> [u64; 2];
    fn write(&self, index: u16, descriptor: [u64; 2]);
}

/// A ring's tail register (RDT or TDT).
pub trait Tail {
    fn write(&self, value: u32);
}

/// Why a ring refused a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSize(pub u16);

/// Entries a ring may have: a multiple of 8 (the descriptor ring's
/// length must be a multiple of 128 bytes) from 8 to 4096.
pub fn check_size(entries: u16) -> Result<(), BadSize> {
    if (8..=4096).contains(&entries) && entries.is_multiple_of(8) {
        Ok(())
    } else {
        Err(BadSize(entries))
    }
}

/// Receive write-back, second word: descriptor done.
pub const RX_DD: u64 = 1 << 0;
/// Receive write-back, second word: end of packet.
pub const RX_EOP: u64 = 1 << 1;
/// Receive write-back, second word: the extended error bits (20..31).
pub const RX_ERRORS: u64 = 0xFFF << 20;
/// Transmit data descriptor command bits (second word, bits 24..31):
/// end of packet, insert FCS, report status, extended descriptor.
pub const TX_CMD_EOP: u64 = 1 << 24;
pub const TX_CMD_IFCS: u64 = 1 << 25;
pub const TX_CMD_RS: u64 = 1 << 27;
pub const TX_CMD_DEXT: u64 = 1 << 29;
/// Transmit descriptor type "advanced data" (bits 20..23).
pub const TX_DTYP_DATA: u64 = 0x3 << 20;
/// Transmit write-back: descriptor done (status bits 32..35).
pub const TX_DD: u64 = 1 << 32;

/// What the device claimed about a received frame that cannot be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A length longer than the buffer posted in that slot.
    LengthBeyondBuffer { index: u16, len: u16, capacity: u16 },
    /// A frame that does not end in its one buffer (no end-of-packet).
    NotEndOfPacket { index: u16 },
    /// A zero length.
    Empty { index: u16 },
    /// The device flagged receive errors (CRC, length, ...).
    ReceiveErrors { index: u16, errors: u16 },
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Fault::LengthBeyondBuffer {
                index,
                len,
                capacity,
            } => write!(
                f,
                "descriptor {index}: {len} bytes written into a {capacity}-byte buffer"
            ),
            Fault::NotEndOfPacket { index } => {
                write!(f, "descriptor {index}: a frame longer than its buffer")
            }
            Fault::Empty { index } => write!(f, "descriptor {index}: an empty frame"),
            Fault::ReceiveErrors { index, errors } => {
                write!(f, "descriptor {index}: receive errors {errors:#x}")
            }
        }
    }
}

struct Posted<B> {
    buffer: B,
    capacity: u16,
}

/// One receive queue.
pub struct RxRing<B> {
    entries: u16,
    slots: Vec<Option<Posted<B>>>,
    /// Next slot to complete (the oldest posted).
    clean: u16,
    /// Next slot to post into.
    next: u16,
    posted: u16,
    /// `next` when the tail register was last written.
    flushed: u16,
}

impl<B> RxRing<B> {
    /// A ring of `entries` descriptors, nothing posted.
    pub fn new(entries: u16) -> Result<RxRing<B>, BadSize> {
        check_size(entries)?;
        Ok(RxRing {
            entries,
            slots: (0..entries).map(|_| None).collect(),
            clean: 0,
            next: 0,
            posted: 0,
            flushed: 0,
        })
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Buffers posted and not yet completed.
    pub fn posted(&self) -> u16 {
        self.posted
    }

    /// Buffers that can still be posted (one slot stays empty, so that a
    /// full ring and an empty one differ to the device: head == tail).
    pub fn room(&self) -> u16 {
        self.entries - 1 - self.posted
    }

    /// Posts `buffer` (whose device address is `address`, `capacity`
    /// bytes long) in the next slot; gives it back if the ring is full.
    /// The device sees it after the next [`flush`](Self::flush).
    pub fn post(
        &mut self,
        memory: &impl Descriptors,
        buffer: B,
        address: u64,
        capacity: u16,
    ) -> Result<(), B> {
        if self.room() == 0 {
            return Err(buffer);
        }
        // Read format: packet buffer address, header buffer address 0 (one
        // buffer per frame; its bit 0 is where "done" will appear).
        memory.write(self.next, [address, 0]);
        self.slots[usize::from(self.next)] = Some(Posted { buffer, capacity });
        self.next = (self.next + 1) % self.entries;
        self.posted += 1;
        Ok(())
    }

    /// Hands what was posted since the last flush to the device: one
    /// tail write (none if nothing new).
    pub fn flush(&mut self, tail: &impl Tail) {
        if self.next != self.flushed {
            tail.write(u32::from(self.next));
            self.flushed = self.next;
        }
    }

    /// Takes up to `max` completed frames, oldest first: `deliver` gets
    /// each buffer with its length, or with what was wrong with it (the
    /// buffer is the driver's again either way). Returns how many slots
    /// completed.
    pub fn harvest(
        &mut self,
        memory: &impl Descriptors,
        max: usize,
        mut deliver: impl FnMut(B, Result<u16, Fault>),
    ) -> usize {
        let mut done = 0;
        while done < max && self.posted > 0 {
            let index = self.clean;
            let [_, status] = memory.read(index);
            if status & RX_DD == 0 {
                break;
            }
            let Some(posted) = self.slots[usize::from(index)].take() else {
                break; // cannot happen: `posted` counts these slots
            };
            let len = (status >> 32) as u16;
            let errors = ((status & RX_ERRORS) >> 20) as u16;
            let result = if status & RX_EOP == 0 {
                Err(Fault::NotEndOfPacket { index })
            } else if len > posted.capacity {
                Err(Fault::LengthBeyondBuffer {
                    index,
                    len,
                    capacity: posted.capacity,
                })
            } else if len == 0 {
                Err(Fault::Empty { index })
            } else if errors != 0 {
                Err(Fault::ReceiveErrors { index, errors })
            } else {
                Ok(len)
            };
            // Cleared, so that a stale "done" is never read again.
            memory.write(index, [0, 0]);
            self.clean = (index + 1) % self.entries;
            self.posted -= 1;
            done += 1;
            deliver(posted.buffer, result);
        }
        done
    }

    /// Takes every posted buffer back (the device is stopped: a reset or
    /// a driver going away), oldest first.
    pub fn drain(&mut self, mut take: impl FnMut(B)) {
        while self.posted > 0 {
            if let Some(posted) = self.slots[usize::from(self.clean)].take() {
                take(posted.buffer);
            }
            self.clean = (self.clean + 1) % self.entries;
            self.posted -= 1;
        }
        self.next = self.clean;
        self.flushed = self.clean;
    }
}

/// One transmit queue.
pub struct TxRing<B> {
    entries: u16,
    slots: Vec<Option<B>>,
    clean: u16,
    next: u16,
    queued: u16,
    flushed: u16,
}

impl<B> TxRing<B> {
    pub fn new(entries: u16) -> Result<TxRing<B>, BadSize> {
        check_size(entries)?;
        Ok(TxRing {
            entries,
            slots: (0..entries).map(|_| None).collect(),
            clean: 0,
            next: 0,
            queued: 0,
            flushed: 0,
        })
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Frames queued and not yet cleaned.
    pub fn queued(&self) -> u16 {
        self.queued
    }

    pub fn room(&self) -> u16 {
        self.entries - 1 - self.queued
    }

    /// Queues the frame in `buffer` (`len` bytes at device address
    /// `address`, FCS added by the device); gives the buffer back if the
    /// ring is full or `len` is 0. The device sends it after the next
    /// [`flush`](Self::flush).
    pub fn push(
        &mut self,
        memory: &impl Descriptors,
        buffer: B,
        address: u64,
        len: u16,
    ) -> Result<(), B> {
        if self.room() == 0 || len == 0 {
            return Err(buffer);
        }
        let command = TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS | TX_CMD_DEXT | TX_DTYP_DATA;
        // Second word: length, type, command; payload length (46..63).
        memory.write(
            self.next,
            [address, u64::from(len) | command | u64::from(len) << 46],
        );
        self.slots[usize::from(self.next)] = Some(buffer);
        self.next = (self.next + 1) % self.entries;
        self.queued += 1;
        Ok(())
    }

    /// One tail write for everything pushed since the last flush.
    pub fn flush(&mut self, tail: &impl Tail) {
        if self.next != self.flushed {
            tail.write(u32::from(self.next));
            self.flushed = self.next;
        }
    }

    /// Gives back the buffers of up to `max` sent frames, oldest first (a
    /// frame is sent when the device marked its descriptor done). Returns
    /// how many.
    pub fn clean(
        &mut self,
        memory: &impl Descriptors,
        max: usize,
        mut sent: impl FnMut(B),
    ) -> usize {
        let mut done = 0;
        while self.queued > 0 && done < max {
            let index = self.clean;
            let [_, status] = memory.read(index);
            if status & TX_DD == 0 {
                break;
            }
            if let Some(buffer) = self.slots[usize::from(index)].take() {
                sent(buffer);
            }
            memory.write(index, [0, 0]);
            self.clean = (index + 1) % self.entries;
            self.queued -= 1;
            done += 1;
        }
        done
    }

    /// Takes every queued buffer back (the device is stopped).
    pub fn drain(&mut self, mut take: impl FnMut(B)) {
        while self.queued > 0 {
            if let Some(buffer) = self.slots[usize::from(self.clean)].take() {
                take(buffer);
            }
            self.clean = (self.clean + 1) % self.entries;
            self.queued -= 1;
        }
        self.next = self.clean;
        self.flushed = self.clean;
    }
}

#[cfg(test)]
mod tests;
