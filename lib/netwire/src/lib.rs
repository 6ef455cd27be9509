//! `netwire`: smoltcp's [`Device`] over queues of frame buffers, for the
//! TCP/IP domain (`domains/netstack`).
//!
//! smoltcp hands a device's frames to the stack through tokens whose
//! `consume` takes a closure over a byte slice (`F: FnOnce(&[u8]) -> R`).
//! That bound is implicitly higher-ranked, one of the shapes through which
//! known compiler soundness bugs let safe code transmute, so the vet
//! (`tools/vet`) refuses it in a domain's source. This crate is the
//! adapter, outside the domain and small enough to read in a minute: the
//! domain moves its packet buffers in and out of the [`Wire`]'s queues
//! and never spells the closure bound itself. It has no unsafe code.
//!
//! A frame buffer is anything that implements [`Frame`] (the domain's
//! shared-heap packets; plain byte vectors in tests).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// A buffer that holds one Ethernet frame.
pub trait Frame: Sized {
    /// A new, empty buffer (None if none can be had: memory is short).
    fn fresh() -> Option<Self>;
    /// The frame it holds.
    fn bytes(&self) -> &[u8];
    /// Makes it hold a frame of `len` bytes (at most its capacity) and
    /// returns those bytes to be written.
    fn fill(&mut self, len: usize) -> &mut [u8];
    /// Makes it empty.
    fn clear(&mut self);
}

/// Frames between a smoltcp interface and a NIC: those received and
/// waiting for the stack, empty buffers, those the stack sent.
pub struct Wire<F: Frame> {
    received: VecDeque<F>,
    free: RefCell<Vec<F>>,
    outgoing: RefCell<VecDeque<F>>,
    mtu: usize,
    burst: usize,
    /// Frames the stack sent while no buffer could be had (dropped).
    dropped: RefCell<u64>,
}

impl<F: Frame> Wire<F> {
    /// A wire for Ethernet frames of up to `mtu` bytes (header included),
    /// received and sent in batches of up to `burst`.
    pub fn new(mtu: usize, burst: usize) -> Wire<F> {
        Wire {
            received: VecDeque::new(),
            free: RefCell::new(Vec::new()),
            outgoing: RefCell::new(VecDeque::new()),
            mtu,
            burst,
            dropped: RefCell::new(0),
        }
    }

    /// A received frame, for the stack.
    pub fn deliver(&mut self, frame: F) {
        self.received.push_back(frame);
    }

    /// Received frames the stack has not taken yet.
    pub fn waiting(&self) -> usize {
        self.received.len()
    }

    /// An empty buffer: a recycled one, else a fresh one.
    pub fn buffer(&self) -> Option<F> {
        if let Some(frame) = self.free.borrow_mut().pop() {
            return Some(frame);
        }
        F::fresh()
    }

    /// Returns a buffer for reuse.
    pub fn recycle(&self, mut frame: F) {
        frame.clear();
        self.free.borrow_mut().push(frame);
    }

    /// The oldest frame the stack sent, to go to the NIC.
    pub fn next_outgoing(&self) -> Option<F> {
        self.outgoing.borrow_mut().pop_front()
    }

    /// Puts back a frame the NIC had no room for: it goes first next time.
    pub fn retry_outgoing(&self, frame: F) {
        self.outgoing.borrow_mut().push_front(frame);
    }

    /// Frames the stack sent that wait for the NIC.
    pub fn outgoing(&self) -> usize {
        self.outgoing.borrow().len()
    }

    /// Frames dropped because no buffer could be had.
    pub fn dropped(&self) -> u64 {
        *self.dropped.borrow()
    }
}

/// A received frame, lent to the stack.
pub struct Rx<'a, F: Frame> {
    frame: F,
    wire: &'a Wire<F>,
}

/// Room for one frame the stack sends.
pub struct Tx<'a, F: Frame> {
    wire: &'a Wire<F>,
}

impl<F: Frame> phy::RxToken for Rx<'_, F> {
    fn consume<R, G: FnOnce(&[u8]) -> R>(self, f: G) -> R {
        let result = f(self.frame.bytes());
        self.wire.recycle(self.frame);
        result
    }
}

impl<F: Frame> phy::TxToken for Tx<'_, F> {
    fn consume<R, G: FnOnce(&mut [u8]) -> R>(self, len: usize, f: G) -> R {
        match self.wire.buffer() {
            Some(mut frame) => {
                let result = f(frame.fill(len));
                self.wire.outgoing.borrow_mut().push_back(frame);
                result
            }
            None => {
                // Dropped, as a full ring would (TCP sends it again).
                *self.wire.dropped.borrow_mut() += 1;
                f(&mut vec![0u8; len])
            }
        }
    }
}

impl<F: Frame> Device for Wire<F> {
    type RxToken<'a>
        = Rx<'a, F>
    where
        F: 'a;
    type TxToken<'a>
        = Tx<'a, F>
    where
        F: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_, F>, Tx<'_, F>)> {
        let frame = self.received.pop_front()?;
        Some((Rx { frame, wire: self }, Tx { wire: self }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_, F>> {
        Some(Tx { wire: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = Some(self.burst);
        caps
    }
}

impl Frame for Vec<u8> {
    fn fresh() -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    fn bytes(&self) -> &[u8] {
        self
    }

    fn fill(&mut self, len: usize) -> &mut [u8] {
        self.clear();
        self.resize(len, 0);
        self
    }

    fn clear(&mut self) {
        Vec::clear(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken, TxToken};

    #[test]
    fn frames_go_through_and_buffers_are_reused() {
        let mut wire: Wire<Vec<u8>> = Wire::new(1514, 32);
        wire.deliver(vec![1, 2, 3]);
        let (rx, tx) = wire.receive(Instant::from_millis(0)).unwrap();
        assert_eq!(rx.consume(|bytes| bytes.to_vec()), vec![1, 2, 3]);
        tx.consume(4, |bytes| bytes.copy_from_slice(&[9, 8, 7, 6]));
        assert!(wire.receive(Instant::from_millis(0)).is_none());
        assert_eq!(wire.outgoing(), 1);
        let sent = wire.next_outgoing().unwrap();
        assert_eq!(sent, vec![9, 8, 7, 6]);
        wire.retry_outgoing(sent);
        assert_eq!(wire.next_outgoing().unwrap(), vec![9, 8, 7, 6]);
        // The received frame's buffer came back empty, for reuse.
        assert_eq!(wire.buffer(), Some(Vec::new()));
        assert_eq!(wire.capabilities().max_transmission_unit, 1514);
    }
}
