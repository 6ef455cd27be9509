//! The I/O queue pairs ("lanes"), one per core, and the guard that gives
//! one batch at a time a lane ([`LaneUse`]).

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use domain_sdk::{Device, Mutex, RRef, now_ns, yield_now};

use super::{Controller, ENTRIES, Page, page};
use crate::queue::{Doorbells, Pending, QueuePair, Ring};
use crate::spec::{Capabilities, Completion};

/// How long a lane given up with commands in flight waits for them before
/// it is released (well inside the watchdog's budget for one entry).
const ABANDON_WAIT_NS: u64 = 50_000_000;

/// A queue pair's memory.
pub(super) struct Queues {
    pub(super) sq: RRef<Page>,
    pub(super) cq: RRef<Page>,
}

impl Queues {
    pub(super) fn new() -> Queues {
        Queues {
            sq: page(),
            cq: page(),
        }
    }
}

impl Ring for Queues {
    fn write_sq(&self, index: u16, entry: [u32; 16]) {
        let base = usize::from(index) * 16;
        for (i, word) in entry.iter().enumerate() {
            self.sq.0[base + i].store(*word, Ordering::Relaxed);
        }
    }

    fn read_cq(&self, index: u16) -> [u32; 4] {
        let base = usize::from(index) * 4;
        // The phase dword last written by the device is read first (with
        // acquire), so the rest of the entry is seen as it wrote it.
        let d3 = self.cq.0[base + 3].load(Ordering::Acquire);
        [
            self.cq.0[base].load(Ordering::Relaxed),
            self.cq.0[base + 1].load(Ordering::Relaxed),
            self.cq.0[base + 2].load(Ordering::Relaxed),
            d3,
        ]
    }
}

/// Queue `qid`'s doorbells.
pub(super) struct Bells<'a> {
    pub(super) device: &'a dyn Device,
    pub(super) cap: Capabilities,
    pub(super) qid: u16,
}

impl Doorbells for Bells<'_> {
    fn sq_tail(&self, tail: u16) {
        // A failing doorbell means the claim was revoked: nothing to do
        // but let the request time out.
        let _ = self
            .device
            .write32(0, self.cap.sq_doorbell(self.qid), u32::from(tail));
    }

    fn cq_head(&self, head: u16) {
        let _ = self
            .device
            .write32(0, self.cap.cq_doorbell(self.qid), u32::from(head));
    }
}

/// A queue pair and its memory, used by one batch at a time.
pub(super) struct Lane {
    qid: u16,
    busy: AtomicBool,
    /// Counts the lane's uses; the high byte of each use's command ids, so
    /// that completions of commands an earlier use left in flight (it timed
    /// out, or its future was dropped) are recognised and ignored.
    epoch: AtomicU8,
    pub(super) state: Mutex<(QueuePair, Queues)>,
}

impl Lane {
    /// Queue pair `qid` over `queues` (created on the device already).
    pub(super) fn new(qid: u16, queues: Queues) -> Lane {
        Lane {
            qid,
            busy: AtomicBool::new(false),
            epoch: AtomicU8::new(0),
            state: Mutex::new((QueuePair::new(ENTRIES), queues)),
        }
    }
}

/// One use of a lane: exclusive until dropped. Dropped with commands still
/// outstanding (the caller's future was dropped: for one, its caller died;
/// or they timed out), it first waits a little for them, so that the device
/// is done with their buffers before whoever owns those frees them, then
/// releases the lane (completions of commands of earlier uses are ignored
/// by epoch). If they still have not completed, it turns the device's bus
/// mastering off and crashes the driver: a restart resets the controller.
pub(super) struct LaneUse<'a> {
    pub(super) lane: &'a Lane,
    pub(super) bells: Bells<'a>,
    epoch: u8,
    /// Requests of this use submitted and not completed.
    pub(super) outstanding: Pending,
}

impl LaneUse<'_> {
    /// The command id of request `index` of this use.
    pub(super) fn cid(&self, index: u8) -> u16 {
        u16::from(self.epoch) << 8 | u16::from(index)
    }

    /// Request `index` of this use was submitted.
    pub(super) fn submitted(&mut self, index: u8) {
        self.outstanding.insert(index);
    }

    /// Takes the lane's new completions; `f` gets those of this use's
    /// waiting requests (with the request index). The others are dropped
    /// and free no queue slot (so the real completion behind one is still
    /// taken): left by earlier uses (another epoch), or lies (an index
    /// nobody waits for, or a second completion of one request).
    pub(super) fn reap(&mut self, mut f: impl FnMut(u8, Completion)) {
        let epoch = self.epoch;
        let outstanding = &mut self.outstanding;
        let (pair, queues) = &mut *self.lane.state.lock();
        pair.reap(queues, &self.bells, |c: Completion| {
            let ours = (c.cid >> 8) as u8 == epoch && outstanding.take(c.cid as u8);
            if ours {
                f(c.cid as u8, c);
            }
            ours
        });
    }
}

impl Drop for LaneUse<'_> {
    fn drop(&mut self) {
        if !self.outstanding.is_empty() {
            let deadline = now_ns() + ABANDON_WAIT_NS;
            while !self.outstanding.is_empty() && now_ns() < deadline {
                self.reap(|_, _| {});
                core::hint::spin_loop();
            }
            if !self.outstanding.is_empty() {
                // The device still holds buffers their owners are about to
                // free: stop all its DMA and fail, so that the driver is
                // reclaimed and (by its supervisor) restarted, which resets
                // the controller. Nothing else is safe.
                self.bells.device.set_bus_master(false);
                panic!(
                    "queue {}: {} commands given up and still not completed; device stopped",
                    self.lane.qid,
                    self.outstanding.len()
                );
            }
        }
        self.lane.busy.store(false, Ordering::Release);
    }
}

impl Controller {
    /// The calling core's queue pair, once free.
    pub(super) async fn lane(&self) -> LaneUse<'_> {
        let (core, _) = domain_sdk::core();
        let lane = &self.lanes[core % self.lanes.len()];
        while lane.busy.swap(true, Ordering::Acquire) {
            yield_now().await;
        }
        LaneUse {
            lane,
            bells: Bells {
                device: &*self.device,
                cap: self.cap,
                qid: lane.qid,
            },
            epoch: lane.epoch.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
            outstanding: Pending::default(),
        }
    }
}
