//! A submission/completion queue pair, as the driver sees it: where the
//! next command goes, which completions are new (the phase bit), when to
//! ring which doorbell. The memory and the doorbells are behind traits, so
//! the host tests run this against a simulated controller.

use crate::spec::{Command, Completion};

/// The queues' memory (shared with the device).
pub trait Ring {
    fn write_sq(&self, index: u16, entry: [u32; 16]);
    fn read_cq(&self, index: u16) -> [u32; 4];
}

/// The queue pair's two doorbells.
pub trait Doorbells {
    fn sq_tail(&self, tail: u16);
    fn cq_head(&self, head: u16);
}

/// The submission queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Driver-side state of one queue pair of `entries` entries each.
#[derive(Debug)]
pub struct QueuePair {
    entries: u16,
    sq_tail: u16,
    /// Tail last written to the doorbell.
    rung: u16,
    cq_head: u16,
    phase: bool,
    in_flight: u16,
}

impl QueuePair {
    /// `entries` between 2 and 65536 (the controller's limit is the
    /// caller's to respect).
    pub fn new(entries: u16) -> QueuePair {
        assert!(entries >= 2);
        QueuePair {
            entries,
            sq_tail: 0,
            rung: 0,
            cq_head: 0,
            phase: true,
            in_flight: 0,
        }
    }

    /// Commands that can still be queued (one slot always stays empty, as
    /// the specification requires to tell full from empty).
    pub fn free(&self) -> u16 {
        self.entries - 1 - self.in_flight
    }

    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }

    /// Queues `command` (without ringing the doorbell).
    pub fn push(&mut self, ring: &impl Ring, command: &Command) -> Result<(), Full> {
        if self.free() == 0 {
            return Err(Full);
        }
        ring.write_sq(self.sq_tail, command.encode());
        self.sq_tail = (self.sq_tail + 1) % self.entries;
        self.in_flight += 1;
        Ok(())
    }

    /// Rings the submission doorbell once for everything queued since the
    /// last time (nothing if nothing is new).
    pub fn submit(&mut self, bells: &impl Doorbells) {
        if self.rung != self.sq_tail {
            bells.sq_tail(self.sq_tail);
            self.rung = self.sq_tail;
        }
    }

    /// Takes every new completion (phase bit matches), hands each to `f`,
    /// and rings the completion doorbell once if there were any. `f` says
    /// whether the completion was one of the driver's commands in flight;
    /// only those count as completed. Returns how many did.
    ///
    /// A completion `f` refuses (an id nobody waits for, a stale or a
    /// second one: the device is lying) is consumed but frees nothing, so
    /// that it cannot stand in for the real completion behind it, which is
    /// still taken. Never looks at more than one queue's worth of entries
    /// per call, and only while commands are in flight: a device that
    /// posts completions for nothing, or keeps flipping phase bits, cannot
    /// make the driver loop, nor make it believe submission slots are free
    /// that the device has not consumed.
    pub fn reap(
        &mut self,
        ring: &impl Ring,
        bells: &impl Doorbells,
        mut f: impl FnMut(Completion) -> bool,
    ) -> usize {
        let mut taken = 0;
        let mut consumed = 0;
        while self.in_flight > 0 && consumed < self.entries {
            let completion = Completion::decode(ring.read_cq(self.cq_head));
            if completion.phase != self.phase {
                break;
            }
            self.cq_head += 1;
            if self.cq_head == self.entries {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
            consumed += 1;
            if f(completion) {
                self.in_flight -= 1;
                taken += 1;
            }
        }
        if consumed > 0 {
            bells.cq_head(self.cq_head);
        }
        taken
    }
}

/// The requests of one use of a queue pair still waiting for their
/// completion, by request index (the low byte of the command id).
///
/// A completion counts only if its index is waiting: a device that
/// completes a command twice, or one that was never submitted, cannot make
/// the driver think it is done while a command (and the buffer it DMAs
/// into) is still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending([u64; 4]);

impl Pending {
    /// Request `index` was submitted.
    pub fn insert(&mut self, index: u8) {
        self.0[usize::from(index / 64)] |= 1 << (index % 64);
    }

    /// Request `index` completed: true if it was waiting (and no longer
    /// is), false for a completion nobody waits for.
    pub fn take(&mut self, index: u8) -> bool {
        let (word, bit) = (usize::from(index / 64), 1u64 << (index % 64));
        let waiting = self.0[word] & bit != 0;
        self.0[word] &= !bit;
        waiting
    }

    /// How many requests are waiting.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::vec;
    use std::vec::Vec;

    /// Queue memory plus a controller that consumes submissions up to the
    /// doorbell and posts completions with the phase bit, as a device does.
    struct Sim {
        entries: u16,
        sq: RefCell<Vec<[u32; 16]>>,
        cq: RefCell<Vec<[u32; 4]>>,
        sq_head: Cell<u16>,
        sq_doorbell: Cell<u16>,
        cq_tail: Cell<u16>,
        cq_doorbell: Cell<u16>,
        phase: Cell<bool>,
        sq_rings: Cell<usize>,
        cq_rings: Cell<usize>,
    }

    impl Sim {
        fn new(entries: u16) -> Sim {
            Sim {
                entries,
                sq: RefCell::new(vec![[0; 16]; entries as usize]),
                cq: RefCell::new(vec![[0; 4]; entries as usize]),
                sq_head: Cell::new(0),
                sq_doorbell: Cell::new(0),
                cq_tail: Cell::new(0),
                cq_doorbell: Cell::new(0),
                phase: Cell::new(true),
                sq_rings: Cell::new(0),
                cq_rings: Cell::new(0),
            }
        }

        /// Completes up to `budget` submitted commands, in order.
        fn process(&self, budget: usize) {
            for _ in 0..budget {
                let head = self.sq_head.get();
                if head == self.sq_doorbell.get() {
                    return;
                }
                // The completion queue must not overflow: the driver's
                // head doorbell says what it has consumed.
                let next_tail = (self.cq_tail.get() + 1) % self.entries;
                assert_ne!(
                    next_tail,
                    self.cq_doorbell.get(),
                    "completion queue overflow"
                );
                let cid = self.sq.borrow()[head as usize][0] >> 16;
                let next_head = (head + 1) % self.entries;
                self.sq_head.set(next_head);
                let tail = self.cq_tail.get();
                self.cq.borrow_mut()[tail as usize] = [
                    0,
                    0,
                    u32::from(next_head),
                    cid | (u32::from(self.phase.get()) << 16),
                ];
                self.cq_tail.set(next_tail);
                if next_tail == 0 {
                    self.phase.set(!self.phase.get());
                }
            }
        }
    }

    impl Ring for Sim {
        fn write_sq(&self, index: u16, entry: [u32; 16]) {
            self.sq.borrow_mut()[index as usize] = entry;
        }
        fn read_cq(&self, index: u16) -> [u32; 4] {
            self.cq.borrow()[index as usize]
        }
    }

    impl Doorbells for Sim {
        fn sq_tail(&self, tail: u16) {
            self.sq_doorbell.set(tail);
            self.sq_rings.set(self.sq_rings.get() + 1);
        }
        fn cq_head(&self, head: u16) {
            self.cq_doorbell.set(head);
            self.cq_rings.set(self.cq_rings.get() + 1);
        }
    }

    fn cmd(cid: u16) -> Command {
        Command {
            opcode: 2,
            cid,
            nsid: 1,
            ..Command::default()
        }
    }

    #[test]
    fn batches_ring_once_and_complete_across_wraparounds() {
        let sim = Sim::new(8);
        // The CQ memory starts zeroed: phase 0, so nothing looks new.
        let mut qp = QueuePair::new(8);
        let mut done = Vec::new();
        let mut next_cid = 0u16;
        for round in 0..50 {
            let batch = 1 + round % 7; // up to entries - 1
            for _ in 0..batch {
                qp.push(&sim, &cmd(next_cid)).unwrap();
                next_cid += 1;
            }
            let rings = sim.sq_rings.get();
            qp.submit(&sim);
            assert_eq!(sim.sq_rings.get(), rings + 1, "one doorbell per batch");
            // The device completes in two steps; the driver reaps each.
            sim.process(batch / 2);
            qp.reap(&sim, &sim, |c| {
                done.push(c.cid);
                true
            });
            sim.process(batch);
            qp.reap(&sim, &sim, |c| {
                done.push(c.cid);
                true
            });
            assert_eq!(qp.in_flight(), 0);
        }
        let expected: Vec<u16> = (0..next_cid).collect();
        assert_eq!(done, expected, "every command completed once, in order");
        assert!(next_cid > 8 * 20, "wrapped around many times");
    }

    #[test]
    fn full_queue_is_refused_and_nothing_is_seen_before_the_device_writes() {
        let sim = Sim::new(4);
        let mut qp = QueuePair::new(4);
        for cid in 0..3 {
            qp.push(&sim, &cmd(cid)).unwrap();
        }
        assert_eq!(qp.push(&sim, &cmd(3)), Err(Full), "one slot stays empty");
        assert_eq!(qp.reap(&sim, &sim, |_| panic!("nothing completed")), 0);
        assert_eq!(sim.cq_rings.get(), 0, "no completion doorbell for nothing");
        qp.submit(&sim);
        qp.submit(&sim);
        assert_eq!(sim.sq_rings.get(), 1, "nothing new: no second doorbell");
        sim.process(3);
        assert_eq!(qp.reap(&sim, &sim, |_| true), 3);
        assert_eq!(qp.free(), 3);
    }

    // ---- a hostile device ------------------------------------------------

    /// A completion entry as a lying device writes it.
    fn forged(cid: u16, phase: bool) -> [u32; 4] {
        [0, 0, 0, u32::from(cid) | (u32::from(phase) << 16)]
    }

    #[test]
    fn completions_for_nothing_in_flight_are_not_taken() {
        let sim = Sim::new(8);
        let mut qp = QueuePair::new(8);
        // The device fills the whole completion queue with entries that
        // look new although nothing was submitted.
        for i in 0..8 {
            sim.cq.borrow_mut()[i] = forged(i as u16, true);
        }
        assert_eq!(qp.reap(&sim, &sim, |_| panic!("nothing was submitted")), 0);
        assert_eq!(qp.free(), 7, "no slot counts as freed");
        assert_eq!(sim.cq_rings.get(), 0);
    }

    #[test]
    fn a_phase_flipping_device_cannot_make_reap_loop_or_overfill_the_queue() {
        let sim = Sim::new(4);
        let mut qp = QueuePair::new(4);
        qp.push(&sim, &cmd(1)).unwrap();
        qp.push(&sim, &cmd(2)).unwrap();
        qp.submit(&sim);
        // Every entry claims both phases over time: the driver wraps and
        // would see "new" entries forever if it trusted them.
        for i in 0..4 {
            sim.cq.borrow_mut()[i] = forged(9, true);
        }
        let mut seen = 0;
        assert_eq!(
            qp.reap(&sim, &sim, |_| {
                seen += 1;
                true
            }),
            2,
            "at most what is in flight"
        );
        assert_eq!(seen, 2);
        for i in 0..4 {
            sim.cq.borrow_mut()[i] = forged(9, false);
        }
        assert_eq!(qp.reap(&sim, &sim, |_| panic!("nothing in flight")), 0);
        assert_eq!(qp.free(), 3);
        // The queue still works for commands the driver pushes next.
        for cid in 3..6 {
            qp.push(&sim, &cmd(cid)).unwrap();
        }
        assert_eq!(qp.push(&sim, &cmd(6)), Err(Full));
    }

    #[test]
    fn refused_completions_free_nothing_and_the_real_one_behind_is_taken() {
        let sim = Sim::new(8);
        let mut qp = QueuePair::new(8);
        qp.push(&sim, &cmd(1)).unwrap();
        qp.submit(&sim);
        // A lie (cid 7) ahead of the real completion (cid 1).
        sim.cq.borrow_mut()[0] = forged(7, true);
        sim.cq.borrow_mut()[1] = forged(1, true);
        let mut seen = Vec::new();
        assert_eq!(
            qp.reap(&sim, &sim, |c| {
                seen.push(c.cid);
                c.cid == 1
            }),
            1
        );
        assert_eq!(seen, [7, 1], "the lie is consumed, the real one taken");
        assert_eq!(qp.in_flight(), 0);
        assert_eq!(sim.cq_doorbell.get(), 2);
    }

    #[test]
    fn a_queue_full_of_refused_lies_is_read_at_most_once_around_per_call() {
        let sim = Sim::new(4);
        let mut qp = QueuePair::new(4);
        qp.push(&sim, &cmd(1)).unwrap();
        qp.submit(&sim);
        for round in 0..3 {
            // Every entry looks new in whichever phase the driver expects.
            for i in 0..4 {
                sim.cq.borrow_mut()[i] = forged(9, round % 2 == 0);
            }
            let mut looked = 0;
            assert_eq!(
                qp.reap(&sim, &sim, |_| {
                    looked += 1;
                    assert!(looked <= 4, "reap loops over lies");
                    false
                }),
                0
            );
            assert_eq!(looked, 4, "round {round}: one queue's worth, no loop");
            assert_eq!(qp.in_flight(), 1, "a lie frees no slot");
        }
    }

    #[test]
    fn pending_counts_each_submitted_request_once() {
        let mut pending = Pending::default();
        for index in [0u8, 31, 64, 255] {
            pending.insert(index);
        }
        assert_eq!(pending.len(), 4);
        assert!(pending.take(31));
        assert!(
            !pending.take(31),
            "a second completion of one request is a lie"
        );
        assert!(!pending.take(7), "a request never submitted");
        assert_eq!(pending.len(), 3);
        assert!(pending.take(0) && pending.take(64) && pending.take(255));
        assert!(pending.is_empty());
    }
}
