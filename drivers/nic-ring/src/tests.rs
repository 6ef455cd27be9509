//! The rings against simulated devices: a well-behaved one (RX write-back
//! and TX completion as the 82576/82599 datasheets describe them) and
//! lying ones.

extern crate std;

use super::*;
use core::cell::{Cell, RefCell};
use std::vec;
use std::vec::Vec;

/// Descriptor memory and a tail register, with the device's side.
struct Device {
    memory: RefCell<Vec<[u64; 2]>>,
    tail: Cell<u32>,
    tail_writes: Cell<usize>,
    /// Next descriptor the device will use.
    head: Cell<u16>,
}

impl Device {
    fn new(entries: u16) -> Device {
        Device {
            memory: RefCell::new(vec![[0, 0]; usize::from(entries)]),
            tail: Cell::new(0),
            tail_writes: Cell::new(0),
            head: Cell::new(0),
        }
    }

    fn entries(&self) -> u16 {
        self.memory.borrow().len() as u16
    }

    /// Receives `lengths` frames into posted buffers (head to tail), as
    /// the hardware writes back: done, end of packet, length. Returns how
    /// many fit.
    fn receive(&self, lengths: &[u16]) -> usize {
        let mut count = 0;
        for &len in lengths {
            let head = self.head.get();
            if u32::from(head) == self.tail.get() {
                break; // no posted buffer left
            }
            self.memory.borrow_mut()[usize::from(head)] =
                [0, RX_DD | RX_EOP | u64::from(len) << 32];
            self.head.set((head + 1) % self.entries());
            count += 1;
        }
        count
    }

    /// Sends every frame up to the tail; returns (address, length) of each.
    fn send(&self) -> Vec<(u64, u16)> {
        let mut sent = Vec::new();
        while u32::from(self.head.get()) != self.tail.get() {
            let head = self.head.get();
            let [address, command] = self.memory.borrow()[usize::from(head)];
            assert_ne!(command & TX_CMD_EOP, 0);
            assert_ne!(command & TX_CMD_RS, 0);
            assert_eq!(command & (0xF << 20), TX_DTYP_DATA);
            assert_eq!(command >> 46, command & 0xFFFF, "payload length");
            sent.push((address, (command & 0xFFFF) as u16));
            self.memory.borrow_mut()[usize::from(head)][1] |= TX_DD;
            self.head.set((head + 1) % self.entries());
        }
        sent
    }
}

impl Descriptors for Device {
    fn read(&self, index: u16) -> [u64; 2] {
        self.memory.borrow()[usize::from(index)]
    }
    fn write(&self, index: u16, descriptor: [u64; 2]) {
        self.memory.borrow_mut()[usize::from(index)] = descriptor;
    }
}

impl Tail for Device {
    fn write(&self, value: u32) {
        assert!(value < u32::from(self.entries()), "tail inside the ring");
        self.tail.set(value);
        self.tail_writes.set(self.tail_writes.get() + 1);
    }
}

fn harvest_all(ring: &mut RxRing<u32>, device: &Device) -> Vec<(u32, Result<u16, Fault>)> {
    let mut out = Vec::new();
    ring.harvest(device, usize::MAX, |buffer, result| {
        out.push((buffer, result))
    });
    out
}

#[test]
fn sizes_are_checked() {
    assert_eq!(check_size(7), Err(BadSize(7)));
    assert_eq!(check_size(12), Err(BadSize(12)));
    assert_eq!(check_size(4104), Err(BadSize(4104)));
    assert!(check_size(8).is_ok() && check_size(4096).is_ok());
    assert!(RxRing::<u32>::new(0).is_err());
}

#[test]
fn receive_refills_in_batches_and_wraps_in_order() {
    let device = Device::new(8);
    let mut ring = RxRing::new(8).unwrap();
    for id in 0..7 {
        ring.post(&device, id, 0x1000 * u64::from(id), 2048)
            .unwrap();
    }
    assert_eq!(
        ring.post(&device, 99, 0, 2048),
        Err(99),
        "one slot stays empty"
    );
    ring.flush(&device);
    ring.flush(&device); // nothing new: no second write
    assert_eq!((device.tail.get(), device.tail_writes.get()), (7, 1));
    assert_eq!(device.memory.borrow()[3], [0x3000, 0]);

    assert_eq!(device.receive(&[60, 61, 62, 63, 64]), 5);
    let got = harvest_all(&mut ring, &device);
    assert_eq!(
        got,
        [
            (0, Ok(60)),
            (1, Ok(61)),
            (2, Ok(62)),
            (3, Ok(63)),
            (4, Ok(64))
        ]
    );
    assert_eq!(ring.posted(), 2);

    // Refill across the end of the ring, one tail write for the batch.
    for id in 10..15 {
        ring.post(&device, id, 0, 2048).unwrap();
    }
    ring.flush(&device);
    assert_eq!((device.tail.get(), device.tail_writes.get()), (4, 2));
    assert_eq!(device.receive(&[100; 10]), 7);
    let got: Vec<u32> = harvest_all(&mut ring, &device)
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(got, [5, 6, 10, 11, 12, 13, 14]);
    assert_eq!(ring.posted(), 0);
}

#[test]
fn harvest_stops_at_its_budget_and_at_the_first_slot_not_done() {
    let device = Device::new(16);
    let mut ring = RxRing::new(16).unwrap();
    for id in 0..10 {
        ring.post(&device, id, 0, 2048).unwrap();
    }
    ring.flush(&device);
    device.receive(&[64; 6]);
    let mut first = Vec::new();
    assert_eq!(ring.harvest(&device, 4, |b, _| first.push(b)), 4);
    assert_eq!(first, [0, 1, 2, 3]);
    let mut rest = Vec::new();
    assert_eq!(ring.harvest(&device, 32, |b, _| rest.push(b)), 2);
    assert_eq!(rest, [4, 5]);
    assert_eq!(ring.posted(), 4);
}

#[test]
fn transmit_batches_cleans_in_order_and_wraps() {
    let device = Device::new(8);
    let mut ring = TxRing::new(8).unwrap();
    for round in 0..3u64 {
        for i in 0..5u64 {
            let id = (round * 10 + i) as u32;
            ring.push(&device, id, 0x10_0000 + u64::from(id), 60 + i as u16)
                .unwrap();
        }
        ring.flush(&device);
        let sent = device.send();
        assert_eq!(sent.len(), 5);
        assert_eq!(sent[4], (0x10_0000 + round * 10 + 4, 64));
        let mut cleaned = Vec::new();
        assert_eq!(ring.clean(&device, usize::MAX, |b| cleaned.push(b)), 5);
        let want: Vec<u32> = (0..5).map(|i| (round * 10 + i) as u32).collect();
        assert_eq!(cleaned, want);
    }
    assert_eq!(device.tail_writes.get(), 3, "one tail write per batch");
    // Full ring and an empty frame give the buffer back.
    for id in 0..7 {
        ring.push(&device, id, 0, 60).unwrap();
    }
    assert_eq!(ring.push(&device, 77, 0, 60), Err(77));
    let mut other = TxRing::<u32>::new(8).unwrap();
    assert_eq!(other.push(&device, 5, 0, 0), Err(5));
}

#[test]
fn clean_stops_at_its_budget() {
    let device = Device::new(8);
    let mut ring = TxRing::new(8).unwrap();
    for id in 0..5 {
        ring.push(&device, id, 0, 60).unwrap();
    }
    ring.flush(&device);
    device.send();
    let mut cleaned = Vec::new();
    assert_eq!(ring.clean(&device, 3, |b| cleaned.push(b)), 3);
    assert_eq!(ring.clean(&device, 3, |b| cleaned.push(b)), 2);
    assert_eq!(cleaned, [0, 1, 2, 3, 4]);
}

#[test]
fn nothing_is_cleaned_before_the_device_says_done() {
    let device = Device::new(8);
    let mut ring = TxRing::new(8).unwrap();
    ring.push(&device, 1, 0, 60).unwrap();
    ring.flush(&device);
    assert_eq!(ring.clean(&device, 32, |_| panic!("not sent yet")), 0);
    let mut drained = Vec::new();
    ring.drain(|b| drained.push(b));
    assert_eq!((drained, ring.queued()), (vec![1], 0));
}

// ---- lying devices ----------------------------------------------------------

#[test]
fn a_length_beyond_the_buffer_is_refused_and_the_buffer_comes_back() {
    let device = Device::new(8);
    let mut ring = RxRing::new(8).unwrap();
    ring.post(&device, 1, 0, 2048).unwrap();
    ring.post(&device, 2, 0, 128).unwrap();
    ring.flush(&device);
    device.receive(&[2048, 129]);
    let got = harvest_all(&mut ring, &device);
    assert_eq!(got[0], (1, Ok(2048)));
    assert_eq!(
        got[1],
        (
            2,
            Err(Fault::LengthBeyondBuffer {
                index: 1,
                len: 129,
                capacity: 128
            })
        )
    );
}

#[test]
fn done_bits_in_slots_never_posted_are_never_read() {
    let device = Device::new(8);
    let mut ring = RxRing::<u32>::new(8).unwrap();
    // The device marks every descriptor done before anything is posted.
    for slot in device.memory.borrow_mut().iter_mut() {
        *slot = [0, RX_DD | RX_EOP | 64 << 32];
    }
    assert!(harvest_all(&mut ring, &device).is_empty());
    // Two posted (posting rewrites their descriptors): the device lies
    // again, marking all eight done; only the two posted come back.
    ring.post(&device, 1, 0, 2048).unwrap();
    ring.post(&device, 2, 0, 2048).unwrap();
    ring.flush(&device);
    for slot in device.memory.borrow_mut().iter_mut() {
        *slot = [0, RX_DD | RX_EOP | 64 << 32];
    }
    let got = harvest_all(&mut ring, &device);
    assert_eq!(got, [(1, Ok(64)), (2, Ok(64))]);
    assert!(harvest_all(&mut ring, &device).is_empty());
}

#[test]
fn split_empty_and_errored_frames_are_refused() {
    let device = Device::new(8);
    let mut ring = RxRing::new(8).unwrap();
    for id in 0..3 {
        ring.post(&device, id, 0, 2048).unwrap();
    }
    ring.flush(&device);
    {
        let mut memory = device.memory.borrow_mut();
        memory[0] = [0, RX_DD | 100 << 32]; // no end of packet
        memory[1] = [0, RX_DD | RX_EOP]; // zero length
        memory[2] = [0, RX_DD | RX_EOP | 1 << 29 | 60 << 32]; // an error bit
    }
    let got = harvest_all(&mut ring, &device);
    assert_eq!(got[0].1, Err(Fault::NotEndOfPacket { index: 0 }));
    assert_eq!(got[1].1, Err(Fault::Empty { index: 1 }));
    assert_eq!(
        got[2].1,
        Err(Fault::ReceiveErrors {
            index: 2,
            errors: 0x200
        })
    );
    // A harvested descriptor is cleared: its stale "done" is gone.
    assert_eq!(device.memory.borrow()[0], [0, 0]);
    assert!(std::format!("{}", got[0].1.unwrap_err()).contains("longer than its buffer"));
}

#[test]
fn drain_gives_every_posted_buffer_back_and_the_ring_starts_over() {
    let device = Device::new(8);
    let mut ring = RxRing::new(8).unwrap();
    for id in 0..5 {
        ring.post(&device, id, 0, 2048).unwrap();
    }
    ring.flush(&device);
    let mut back = Vec::new();
    ring.drain(|b| back.push(b));
    assert_eq!(back, [0, 1, 2, 3, 4]);
    assert_eq!((ring.posted(), ring.room()), (0, 7));
    ring.post(&device, 9, 0, 2048).unwrap();
    assert_eq!(ring.posted(), 1);
}

#[test]
fn rss_redirection_entries_cover_every_queue_evenly() {
    for queues in 1..=16usize {
        let mut per = vec![0u32; queues];
        for index in 0..128u32 {
            per[crate::nic::reta_entry(index, queues) as usize] += 1;
        }
        let (min, max) = (per.iter().min().unwrap(), per.iter().max().unwrap());
        assert!(max - min <= 1, "{queues} queues: {per:?}");
    }
    // The two lowest hash bits alone do not decide: entries that agree
    // on them still go to different queues of four.
    let low_bits_alike: std::collections::HashSet<u32> = (0..128u32)
        .filter(|i| i & 3 == 3)
        .map(|i| crate::nic::reta_entry(i, 4))
        .collect();
    assert_eq!(low_bits_alike.len(), 4);
}
