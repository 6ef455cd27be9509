//! A split virtqueue (virtio 1.x, section 2.7), the driver's side: the
//! descriptor table, the available ring it fills and the used ring the
//! device fills, behind [`QueueMemory`] so the host tests run it against a
//! simulated device (a lying one included).
//!
//! Every buffer is a fixed pair of descriptors: `2i` the 12-byte
//! virtio-net header, `2i + 1` the frame, chained. Posting takes a free
//! pair and publishes its head in the available ring; [`flush`]
//! (SplitQueue::flush) publishes the new index once per batch. Reaping
//! reads the used ring up to the device's index, checking every entry:
//! an id that is not the head of a pair this side made available, a
//! length beyond what was posted, or a used index that runs past what is
//! outstanding is a [`Fault`], never an out-of-bounds access.

use alloc::vec::Vec;

/// Descriptor flags.
pub const DESC_NEXT: u16 = 1;
pub const DESC_WRITE: u16 = 2;
/// Bytes of the virtio-net header (with VERSION_1).
pub const HEADER: u32 = 12;

/// The three areas of a queue, shared with the device, as little-endian
/// 32-bit words (`area` 0: descriptors, 1: available ring, 2: used ring).
pub trait QueueMemory {
    fn read(&self, area: usize, word: usize) -> u32;
    fn write(&self, area: usize, word: usize, value: u32);
}

/// What the device claimed that cannot be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The used index moved past the buffers outstanding.
    UsedIndexJump { outstanding: u16, claimed: u16 },
    /// A used entry names a descriptor that is not an outstanding head.
    NotOutstanding { id: u32 },
    /// A used length beyond the buffer posted.
    LengthBeyondBuffer { id: u32, len: u32, capacity: u32 },
    /// A used length too short to hold the header.
    ShorterThanHeader { id: u32, len: u32 },
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Fault::UsedIndexJump {
                outstanding,
                claimed,
            } => write!(
                f,
                "used index moved by {claimed} with {outstanding} buffers outstanding"
            ),
            Fault::NotOutstanding { id } => {
                write!(
                    f,
                    "used entry for descriptor {id}, which was not made available"
                )
            }
            Fault::LengthBeyondBuffer { id, len, capacity } => write!(
                f,
                "descriptor {id}: {len} bytes used of a {capacity}-byte buffer"
            ),
            Fault::ShorterThanHeader { id, len } => {
                write!(f, "descriptor {id}: {len} bytes, shorter than the header")
            }
        }
    }
}

struct Outstanding<B> {
    buffer: B,
    /// Bytes of frame the buffer holds (receive) or carries (transmit).
    capacity: u32,
}

/// One split virtqueue of `size` descriptors (`size / 2` buffers).
pub struct SplitQueue<B> {
    size: u16,
    free: Vec<u16>,
    slots: Vec<Option<Outstanding<B>>>,
    /// Next available-ring index (free running).
    avail: u16,
    /// Index last published to the device.
    published: u16,
    /// Next used-ring entry to read (free running).
    used: u16,
    outstanding: u16,
    /// Whether the device writes the buffers (receive) or reads them.
    device_writes: bool,
    /// Pair `i`'s header is at `header_base + header_stride * i` (a
    /// stride of 0: one header shared by all, for transmit).
    header_base: u64,
    header_stride: u64,
}

impl<B> SplitQueue<B> {
    /// `size` a power of two from 4 to 32768 (the device's maximum is the
    /// caller's to respect); pair `i`'s header at device address
    /// `header_base + header_stride * i`.
    pub fn new(
        size: u16,
        device_writes: bool,
        header_base: u64,
        header_stride: u64,
    ) -> Option<SplitQueue<B>> {
        if !size.is_power_of_two() || !(4..=32768).contains(&size) {
            return None;
        }
        let pairs = size / 2;
        Some(SplitQueue {
            size,
            free: (0..pairs).rev().collect(),
            slots: (0..pairs).map(|_| None).collect(),
            avail: 0,
            published: 0,
            used: 0,
            outstanding: 0,
            device_writes,
            header_base,
            header_stride,
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Buffers that can still be posted.
    pub fn room(&self) -> usize {
        self.free.len()
    }

    pub fn outstanding(&self) -> u16 {
        self.outstanding
    }

    fn write_descriptor(
        &self,
        memory: &impl QueueMemory,
        index: u16,
        address: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let word = usize::from(index) * 4;
        memory.write(0, word, address as u32);
        memory.write(0, word + 1, (address >> 32) as u32);
        memory.write(0, word + 2, len);
        memory.write(0, word + 3, u32::from(flags) | u32::from(next) << 16);
    }

    /// Posts `buffer`: its frame at device address `data`, `len` bytes
    /// (the capacity to receive into, or the frame's length to send), its
    /// pair's header before it. Gives it back if no pair is free.
    pub fn post(
        &mut self,
        memory: &impl QueueMemory,
        buffer: B,
        data: u64,
        len: u32,
    ) -> Result<(), B> {
        let Some(pair) = self.free.pop() else {
            return Err(buffer);
        };
        let header = self.header_base + self.header_stride * u64::from(pair);
        let write = if self.device_writes { DESC_WRITE } else { 0 };
        let head = pair * 2;
        self.write_descriptor(memory, head, header, HEADER, DESC_NEXT | write, head + 1);
        self.write_descriptor(memory, head + 1, data, len, write, 0);
        // Available ring entry `avail % size`: ring[k] is the 16-bit half
        // of word 1 + k / 2 (after flags and idx).
        let k = usize::from(self.avail % self.size);
        let word = 1 + k / 2;
        let old = memory.read(1, word);
        let value = if k % 2 == 0 {
            (old & 0xFFFF_0000) | u32::from(head)
        } else {
            (old & 0x0000_FFFF) | u32::from(head) << 16
        };
        memory.write(1, word, value);
        self.avail = self.avail.wrapping_add(1);
        self.slots[usize::from(pair)] = Some(Outstanding {
            buffer,
            capacity: len,
        });
        self.outstanding += 1;
        Ok(())
    }

    /// Publishes what was posted since the last flush (the available
    /// ring's index); true if there was something (then notify the device).
    pub fn flush(&mut self, memory: &impl QueueMemory) -> bool {
        if self.avail == self.published {
            return false;
        }
        // flags 0 (interrupts are not used anyway), idx.
        memory.write(1, 0, u32::from(self.avail) << 16);
        self.published = self.avail;
        true
    }

    /// Takes up to `max` used buffers, oldest first: `deliver` gets each
    /// with the bytes of frame the device wrote or read (the header not
    /// counted), or what was wrong with the entry (its buffer is the
    /// driver's again). `Err` if the device's used index cannot be right:
    /// the queue is then not to be trusted any more.
    pub fn reap(
        &mut self,
        memory: &impl QueueMemory,
        max: usize,
        mut deliver: impl FnMut(B, Result<u32, Fault>),
    ) -> Result<usize, Fault> {
        let device_idx = (memory.read(2, 0) >> 16) as u16;
        let new = device_idx.wrapping_sub(self.used);
        if new > self.outstanding {
            return Err(Fault::UsedIndexJump {
                outstanding: self.outstanding,
                claimed: new,
            });
        }
        let mut done = 0;
        while done < max && self.used != device_idx {
            let k = usize::from(self.used % self.size);
            let id = memory.read(2, 1 + k * 2);
            let len = memory.read(2, 2 + k * 2);
            self.used = self.used.wrapping_add(1);
            done += 1;
            if !id.is_multiple_of(2) || id >= u32::from(self.size) {
                deliver_nothing(id);
                continue;
            }
            let pair = (id / 2) as u16;
            let Some(out) = self.slots[usize::from(pair)].take() else {
                // Not outstanding: nothing to give back, nothing to free.
                continue;
            };
            self.free.push(pair);
            self.outstanding -= 1;
            let result = if len < HEADER && self.device_writes {
                Err(Fault::ShorterThanHeader { id, len })
            } else if self.device_writes && len - HEADER > out.capacity {
                Err(Fault::LengthBeyondBuffer {
                    id,
                    len,
                    capacity: out.capacity,
                })
            } else if self.device_writes {
                Ok(len - HEADER)
            } else {
                Ok(out.capacity)
            };
            deliver(out.buffer, result);
        }
        Ok(done)
    }

    /// Takes every outstanding buffer back (the device is reset).
    pub fn drain(&mut self, mut take: impl FnMut(B)) {
        for (pair, slot) in self.slots.iter_mut().enumerate() {
            if let Some(out) = slot.take() {
                take(out.buffer);
                self.free.push(pair as u16);
            }
        }
        self.outstanding = 0;
    }
}

/// An entry naming no pair head: ignored (kept for a breakpoint, and so
/// the reason is written down).
fn deliver_nothing(_id: u32) {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec;

    /// Three areas of words and a device that uses what was made available.
    struct Device {
        areas: RefCell<[Vec<u32>; 3]>,
        /// Next available entry the device takes (free running).
        taken: core::cell::Cell<u16>,
        size: u16,
    }

    impl Device {
        fn new(size: u16) -> Device {
            Device {
                areas: RefCell::new([vec![0; 1024], vec![0; 1024], vec![0; 1024]]),
                taken: core::cell::Cell::new(0),
                size,
            }
        }

        /// Uses the next available buffer: writes `len` (header included
        /// for receive) into a used entry. False if none is available.
        fn use_next(&self, len: u32) -> bool {
            let avail_idx = (self.areas.borrow()[1][0] >> 16) as u16;
            let taken = self.taken.get();
            if taken == avail_idx {
                return false;
            }
            let k = usize::from(taken % self.size);
            let word = self.areas.borrow()[1][1 + k / 2];
            let head = if k % 2 == 0 {
                word & 0xFFFF
            } else {
                word >> 16
            };
            // The chain: header then data.
            let flags = self.areas.borrow()[0][head as usize * 4 + 3] & 0xFFFF;
            assert_ne!(flags as u16 & DESC_NEXT, 0);
            let used_idx = (self.areas.borrow()[2][0] >> 16) as u16;
            let u = usize::from(used_idx % self.size);
            let mut areas = self.areas.borrow_mut();
            areas[2][1 + u * 2] = head;
            areas[2][2 + u * 2] = len;
            areas[2][0] = u32::from(used_idx.wrapping_add(1)) << 16;
            self.taken.set(taken.wrapping_add(1));
            true
        }
    }

    impl QueueMemory for Device {
        fn read(&self, area: usize, word: usize) -> u32 {
            self.areas.borrow()[area][word]
        }
        fn write(&self, area: usize, word: usize, value: u32) {
            self.areas.borrow_mut()[area][word] = value;
        }
    }

    fn reap_all(queue: &mut SplitQueue<u32>, device: &Device) -> Vec<(u32, Result<u32, Fault>)> {
        let mut out = Vec::new();
        queue
            .reap(device, usize::MAX, |b, r| out.push((b, r)))
            .unwrap();
        out
    }

    #[test]
    fn sizes_are_checked() {
        assert!(SplitQueue::<u32>::new(6, true, 0, 12).is_none());
        assert!(SplitQueue::<u32>::new(2, true, 0, 12).is_none());
        assert_eq!(SplitQueue::<u32>::new(8, true, 0, 12).unwrap().room(), 4);
    }

    #[test]
    fn receive_posts_pairs_publishes_once_and_reaps_in_order_across_the_wrap() {
        let device = Device::new(8); // 4 buffers
        let mut queue = SplitQueue::new(8, true, 0x100, 12).unwrap();
        for round in 0..5u32 {
            for i in 0..4 {
                queue.post(&device, round * 10 + i, 0x1000, 2048).unwrap();
            }
            assert_eq!(queue.post(&device, 99, 0, 2048), Err(99));
            assert!(queue.flush(&device));
            assert!(!queue.flush(&device), "nothing new");
            for len in [60, 72, 1526, 13] {
                assert!(device.use_next(len));
            }
            let got = reap_all(&mut queue, &device);
            let want: Vec<(u32, Result<u32, Fault>)> = vec![
                (round * 10, Ok(48)),
                (round * 10 + 1, Ok(60)),
                (round * 10 + 2, Ok(1514)),
                (round * 10 + 3, Ok(1)),
            ];
            assert_eq!(got, want);
        }
        // The descriptors: header writable and chained, frame writable.
        let areas = device.areas.borrow();
        assert_eq!(areas[0][2], HEADER);
        assert_eq!(areas[0][3] & 0xFFFF, u32::from(DESC_NEXT | DESC_WRITE));
        assert_eq!(areas[0][4 + 2], 2048);
    }

    #[test]
    fn transmit_gives_back_what_was_sent() {
        let device = Device::new(8);
        let mut queue = SplitQueue::new(8, false, 0x100, 0).unwrap();
        queue.post(&device, 7, 0x2000, 60).unwrap();
        queue.flush(&device);
        assert_eq!(device.areas.borrow()[0][3] & 0xFFFF, u32::from(DESC_NEXT));
        assert!(device.use_next(0));
        assert_eq!(reap_all(&mut queue, &device), [(7, Ok(60))]);
    }

    #[test]
    fn a_used_index_past_what_is_outstanding_is_a_fault() {
        let device = Device::new(8);
        let mut queue = SplitQueue::<u32>::new(8, true, 0x100, 12).unwrap();
        queue.post(&device, 1, 0, 2048).unwrap();
        queue.flush(&device);
        device.areas.borrow_mut()[2][0] = 5 << 16;
        assert_eq!(
            queue.reap(&device, 32, |_, _| {}),
            Err(Fault::UsedIndexJump {
                outstanding: 1,
                claimed: 5
            })
        );
    }

    #[test]
    fn lying_entries_are_refused_without_harm() {
        let device = Device::new(8);
        let mut queue = SplitQueue::new(8, true, 0x100, 12).unwrap();
        for i in 0..3 {
            queue.post(&device, i, 0, 2048).unwrap();
        }
        queue.flush(&device);
        {
            let mut areas = device.areas.borrow_mut();
            // Entry 0: an odd id (not a head); 1: a pair never posted;
            // 2: past the table; 3: too long; 4: shorter than the header.
            let entries = [(3, 100), (6, 100), (4000, 100), (0, 12 + 4096), (2, 5)];
            for (k, (id, len)) in entries.iter().enumerate() {
                areas[2][1 + k * 2] = *id;
                areas[2][2 + k * 2] = *len;
            }
            areas[2][0] = 3 << 16; // three outstanding: only three entries read
        }
        let got = reap_all(&mut queue, &device);
        assert!(
            got.is_empty(),
            "no entry named an outstanding head: {got:?}"
        );
        assert_eq!(queue.outstanding(), 3);
        {
            let mut areas = device.areas.borrow_mut();
            areas[2][0] = 5 << 16;
        }
        let got = reap_all(&mut queue, &device);
        assert_eq!(
            got,
            [
                (
                    0,
                    Err(Fault::LengthBeyondBuffer {
                        id: 0,
                        len: 4108,
                        capacity: 2048
                    })
                ),
                (1, Err(Fault::ShorterThanHeader { id: 2, len: 5 }))
            ]
        );
    }

    #[test]
    fn drain_gives_everything_back() {
        let device = Device::new(8);
        let mut queue = SplitQueue::new(8, true, 0x100, 12).unwrap();
        for i in 0..4 {
            queue.post(&device, i, 0, 2048).unwrap();
        }
        let mut back = Vec::new();
        queue.drain(|b| back.push(b));
        back.sort();
        assert_eq!(back, [0, 1, 2, 3]);
        assert_eq!((queue.room(), queue.outstanding()), (4, 0));
    }
}
