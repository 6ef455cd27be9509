//! `nic-shadow`: stands in front of a NIC driver domain (`igb` or
//! `virtio-net`, whichever is loaded) and exports the same [`Net`]
//! interface as "net": clients that look up `nic-shadow/net` call the
//! shadow, the shadow calls the driver. When the driver crashes, the
//! shadow restarts it (a new incarnation resets the device and posts
//! fresh receive buffers) and sends again the frames that were in flight,
//! so a client sees at most the frames that arrived while the driver was
//! down go missing, never an error.
//!
//! Sending again needs the frames. A transmit batch moves to the driver
//! and dies with it, so while the driver holds a client's batch the shadow
//! keeps copies of its frames (in buffers of its own, reused call after
//! call: one copy per frame, no other work per frame). The batch itself
//! goes to the driver as it is and comes back as the driver gives it,
//! frames it had no room for included, exactly as from the driver called
//! directly. If the driver dies in the call, the client gets as many empty
//! buffers as it gave and no error, and the copies wait in the shadow to
//! go first once the driver is back; so do frames sent while it is down.
//! (Frames the driver accepted into its ring before it died are not kept:
//! as on the wire, TCP sends them again.)
//!
//! Receive copies nothing, and passes on only the buffers the driver can
//! use: its ring is full but for the frames it handed out since it last
//! got buffers, so a client's batch of empty buffers (a whole batch every
//! call, most of which would come back unused) goes on to the driver cut
//! down to those plus a few, the rest waiting among the spares, and the
//! client gets as many buffers back as it gave, frames first. Every
//! buffer in a batch changes owner (the kernel's registry) at every
//! crossing: the batches the shadow adds crossings to are kept small.
//!
//! Recovery runs in a task of the shadow's own: a call that finds the
//! driver dead only raises the flag and wakes it (calls are synchronous
//! and must not wait the half second a restarted 82576 takes to bring its
//! link up), returns the client's receive buffers empty (fresh ones: the
//! client's batch died with the driver), and keeps transmitted frames for
//! later. Until then the task waits without a timer: a task polling every
//! few milliseconds keeps a timer due on its core, which the kernel counts
//! as competition for a busy domain there (the network stack calling
//! through the shadow), holding it to its share of the core, half.
//!
//! All of this is per queue pair: the frames waiting to be sent and the
//! receive buffers a driver's ring is short of are kept for each queue a
//! client uses (up to [`MAX_QUEUES`]), and a queue's frames go out by it.
//!
//! `call nic-shadow help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, RRef, RestartError, RpcError, RpcResult, log, lookup, sleep, spawn,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, FRAME, Net, NetCounters, NetInfo, NetProxy, Packet, Packets};

/// The drivers a shadow can stand in front of (its manifest grants it
/// their supervision).
pub const DRIVERS: [&str; 2] = ["igb", "virtio-net"];
/// Frames kept to send again at most, per queue (older ones are
/// dropped, counted).
pub const MAX_PENDING: usize = 256;
/// Receive buffers passed on to the driver beyond those its ring is short
/// of: room for the frames that arrive before the next call.
pub const RX_HEADROOM: usize = BATCH / 4;
/// Queue pairs the shadow keeps state for (what the drivers have at most:
/// the 82576's 16); calls on a higher queue go to the driver as they are.
pub const MAX_QUEUES: usize = 16;

/// What the shadow keeps per queue pair.
#[derive(Default)]
struct Lane {
    /// Frames to send by this queue (the client's buffers), oldest first.
    pending: VecDeque<RRef<Packet>>,
    /// The batch that takes copies to the driver (it comes back with the
    /// call; made again if it died with the driver).
    batch: Option<RRef<Packets>>,
    /// Receive buffers the driver's ring is short of: frames it handed
    /// out that no buffer from here has replaced yet (0 for a new
    /// incarnation, whose rings start full).
    owed: usize,
}

struct Inner {
    driver: Option<(&'static str, Arc<NetProxy>)>,
    /// Spare buffers: for copies, to hand the client for its frames, and
    /// receive buffers the driver had no use for.
    spare: Vec<RRef<Packet>>,
    /// Queue pair `q`'s state is `lanes[q]` (made as queues are used).
    lanes: Vec<Lane>,
}

impl Inner {
    /// Queue `queue`'s state (`queue` below [`MAX_QUEUES`]).
    fn lane(&mut self, queue: u16) -> &mut Lane {
        let q = usize::from(queue);
        while self.lanes.len() <= q {
            self.lanes.push(Lane::default());
        }
        &mut self.lanes[q]
    }

    /// Frames waiting to be sent, all queues.
    fn pending(&self) -> usize {
        self.lanes.iter().map(|l| l.pending.len()).sum()
    }
}

/// Whether `packet` holds a frame a driver would send (not empty, not
/// longer than a buffer): the others it refuses, and they come back to the
/// client as they were.
fn sendable(packet: &Packet) -> bool {
    packet.len != 0 && usize::from(packet.len) <= FRAME
}

pub struct Shadow {
    inner: Mutex<Inner>,
    recovering: AtomicBool,
    /// Queue `q`'s buffers for the copies of a transmit call's frames,
    /// reused call after call: a call holds the lock for its length (the
    /// copy and the driver's call; `try_lock` only, so nobody waits on
    /// it), and a second call on the queue meanwhile copies into buffers
    /// of its own.
    copies: [Mutex<Vec<RRef<Packet>>>; MAX_QUEUES],
    /// The recovery task, waiting for `recovering`.
    recovery_waker: Mutex<Option<Waker>>,
    restarts: AtomicU64,
    reissued: AtomicU64,
    dropped: AtomicU64,
}

fn driver_error(e: RpcError) -> bool {
    matches!(e, RpcError::DomainCrashed | RpcError::DomainNotAlive)
}

impl Default for Shadow {
    fn default() -> Shadow {
        Shadow::new()
    }
}

impl Shadow {
    /// A shadow with no driver yet: its first call looks one up (the
    /// first of [`DRIVERS`] that exports `net`).
    pub fn new() -> Shadow {
        Shadow {
            inner: Mutex::new(Inner {
                driver: None,
                spare: Vec::new(),
                lanes: Vec::new(),
            }),
            recovering: AtomicBool::new(false),
            copies: [const { Mutex::new(Vec::new()) }; MAX_QUEUES],
            recovery_waker: Mutex::new(None),
            restarts: AtomicU64::new(0),
            reissued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// A shadow already standing before `driver`, an incarnation of the
    /// driver domain `name`, as if its first call had looked it up. For
    /// the host benchmark (`bench`'s `nullnet` rows), which has no kernel
    /// to look drivers up in; restarting a crashed driver needs one, so
    /// there a driver's crash leaves the shadow recovering for good.
    pub fn before(name: &'static str, driver: NetProxy) -> Shadow {
        let shadow = Shadow::new();
        shadow.inner.lock().driver = Some((name, Arc::new(driver)));
        shadow
    }

    /// The driver's current incarnation, looked up if need be.
    fn driver(&self) -> Option<(&'static str, Arc<NetProxy>)> {
        if self.recovering.load(Ordering::Acquire) {
            return None;
        }
        if let Some(driver) = self.inner.lock().driver.clone() {
            return Some(driver);
        }
        for name in DRIVERS {
            if let Ok(proxy) = lookup::<dyn Net + Send + Sync>(&alloc::format!("{name}/net")) {
                // The right to restart it (once per driver incarnation is
                // harmless: an existing supervision is ours already).
                let _ = domain_sdk::kernel().supervise(name);
                let driver = (name, Arc::new(proxy));
                self.inner.lock().driver = Some(driver.clone());
                return Some(driver);
            }
        }
        None
    }

    /// The driver failed: the recovery task takes over.
    fn failed(&self) {
        {
            let mut inner = self.inner.lock();
            inner.driver = None;
            for lane in &mut inner.lanes {
                lane.owed = 0; // the next incarnation fills its rings itself
            }
        }
        self.recovering.store(true, Ordering::Release);
        if let Some(waker) = self.recovery_waker.lock().take() {
            waker.wake();
        }
    }

    /// Completes once a call has found the driver dead (see [`failed`]);
    /// no timer meanwhile (see the module doc).
    ///
    /// [`failed`]: Self::failed
    async fn needed(&self) {
        poll_fn(|cx| {
            if self.recovering.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self.recovery_waker.lock() = Some(cx.waker().clone());
            // A failure between the first look and the registration woke
            // nobody: look again.
            if self.recovering.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }

    /// A copy of `packet`'s frame in a spare buffer.
    fn copy(&self, inner: &mut Inner, packet: &Packet) -> Option<RRef<Packet>> {
        let mut copy = match inner.spare.pop() {
            Some(copy) => copy,
            None => RRef::try_new(Packet::empty()).ok()?,
        };
        let len = usize::from(packet.len).min(packet.data.len());
        copy.data[..len].copy_from_slice(&packet.data[..len]);
        copy.len = packet.len;
        Some(copy)
    }

    /// Sends what is pending on queue `queue` through `driver` (a batch at
    /// most). Unsent frames stay pending; the driver's returned buffers
    /// become spares. `Err` if the driver failed (the batch sent is
    /// pending again: its copies were made before).
    fn flush(&self, driver: &NetProxy, queue: u16) -> Result<(), RpcError> {
        // The frames whose copies go, in order (a batch on the stack: no
        // allocation).
        let mut kept = Packets::new();
        let batch = {
            let mut inner = self.inner.lock();
            if inner.lane(queue).pending.is_empty() {
                return Ok(());
            }
            let mut batch = match inner.lane(queue).batch.take() {
                Some(batch) => batch,
                None => match RRef::try_new(Packets::new()) {
                    Ok(batch) => batch,
                    Err(_) => return Ok(()), // the shared heap is short: later
                },
            };
            while !kept.is_full() {
                let Some(frame) = inner.lane(queue).pending.pop_front() else {
                    break;
                };
                // What goes to the driver is a copy; the frame stays here
                // until the driver has taken it.
                match self.copy(&mut inner, &frame) {
                    Some(copy) => {
                        let _ = batch.push_back(copy);
                        let _ = kept.push_back(frame);
                    }
                    None => {
                        inner.lane(queue).pending.push_front(frame);
                        break;
                    }
                }
            }
            if kept.is_empty() {
                inner.lane(queue).batch = Some(batch);
                return Ok(());
            }
            batch
        };
        let count = kept.len();
        match driver.transmit(queue, batch) {
            Ok(mut back) => {
                let mut inner = self.inner.lock();
                // Frames the driver had no room for come back with their
                // length: those (the last of the batch) stay pending.
                let mut unsent = 0;
                while let Some(buffer) = back.pop_front() {
                    if buffer.len != 0 {
                        unsent += 1;
                    }
                    inner.spare.push(buffer);
                }
                inner.lane(queue).batch = Some(back);
                // The frames sent: their buffers are spares too (as many
                // as a full pending queue needs; the rest go).
                for _ in 0..count - unsent.min(count) {
                    if let Some(frame) = kept.pop_front() {
                        inner.spare.push(frame);
                    }
                }
                Self::requeue(inner.lane(queue), kept);
                inner.spare.truncate(MAX_PENDING + BATCH);
                Ok(())
            }
            Err(e) => {
                // The copies died with the driver: the frames wait again.
                Self::requeue(self.inner.lock().lane(queue), kept);
                Err(e)
            }
        }
    }

    /// Makes `frames` (copies of the frames of a batch that died with the
    /// driver) pending on queue `queue`, in order, and `rest` spares.
    fn pend_copies(&self, queue: u16, frames: Vec<RRef<Packet>>, mut rest: Vec<RRef<Packet>>) {
        let mut inner = self.inner.lock();
        let lane = inner.lane(queue);
        for frame in frames {
            if lane.pending.len() >= MAX_PENDING {
                lane.pending.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            lane.pending.push_back(frame);
        }
        inner.spare.append(&mut rest);
        inner.spare.truncate(MAX_PENDING + BATCH);
    }

    /// Puts `frames` back at the head of `lane`'s pending queue, in order.
    fn requeue(lane: &mut Lane, mut frames: Packets) {
        if frames.is_empty() {
            return;
        }
        let frames: Vec<RRef<Packet>> = core::iter::from_fn(|| frames.pop_front()).collect();
        for frame in frames.into_iter().rev() {
            lane.pending.push_front(frame);
        }
    }

    /// The recovery task: restarts the driver when a call found it dead,
    /// waits until it is up, then sends what was in flight.
    async fn recovery(self: Arc<Self>) {
        loop {
            if !self.recovering.load(Ordering::Acquire) {
                self.needed().await;
                continue;
            }
            let mut restarted = None;
            for _ in 0..2000 {
                let mut done = None;
                for name in DRIVERS {
                    let _ = domain_sdk::kernel().supervise(name);
                    match domain_sdk::kernel().restart_domain(name) {
                        Ok(()) => {
                            self.restarts.fetch_add(1, Ordering::Relaxed);
                            log(&alloc::format!("{name} restarted"));
                            done = Some(name);
                            break;
                        }
                        Err(RestartError::StillRunning)
                            if lookup::<dyn Net + Send + Sync>(&alloc::format!("{name}/net"))
                                .is_ok() =>
                        {
                            // Alive again (the console restarted it).
                            done = Some(name);
                            break;
                        }
                        Err(_) => {}
                    }
                }
                if done.is_some() {
                    restarted = done;
                    break;
                }
                sleep(Duration::from_millis(2)).await;
            }
            let Some(name) = restarted else {
                log("no driver to restart; the next call tries again");
                self.recovering.store(false, Ordering::Release);
                continue;
            };
            // Up when its info says the link is. An incarnation that
            // crashes while it starts (bringing the link up takes the
            // 82576 half a second) is restarted at once, not after the
            // wait for its link runs out.
            let mut up = None;
            let mut waited = 0;
            while waited < 1000 {
                if let Ok(proxy) = lookup::<dyn Net + Send + Sync>(&alloc::format!("{name}/net"))
                    && proxy.info().is_ok_and(|info| info.link_up)
                {
                    up = Some(proxy);
                    break;
                }
                if domain_sdk::kernel().restart_domain(name).is_ok() {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    log(&alloc::format!("{name} crashed while starting; restarted"));
                    waited = 0;
                    continue;
                }
                sleep(Duration::from_millis(5)).await;
                waited += 1;
            }
            let Some(proxy) = up else {
                log(&alloc::format!("{name} did not come up; trying again"));
                continue;
            };
            let proxy = Arc::new(proxy);
            let pending = self.inner.lock().pending() as u64;
            // Whatever was in flight goes out first, queue by queue (a few
            // batches each; the rest with the next calls).
            let queues = self.inner.lock().lanes.len() as u16;
            'queues: for queue in 0..queues {
                for _ in 0..(MAX_PENDING / BATCH) {
                    if self.inner.lock().lane(queue).pending.is_empty() {
                        break;
                    }
                    if self.flush(&proxy, queue).is_err() {
                        break 'queues;
                    }
                }
            }
            self.reissued.fetch_add(pending, Ordering::Relaxed);
            self.inner.lock().driver = Some((name, proxy));
            self.recovering.store(false, Ordering::Release);
        }
    }

    /// A batch of `n` empty buffers (what the client gets back when its
    /// receive buffers died with the driver).
    fn fresh(&self, n: usize) -> RpcResult<RRef<Packets>> {
        let mut batch = Packets::new();
        {
            let mut inner = self.inner.lock();
            for _ in 0..n.min(BATCH) {
                let buffer = match inner.spare.pop() {
                    Some(mut buffer) => {
                        buffer.len = 0;
                        buffer
                    }
                    None => RRef::try_new(Packet::empty())?,
                };
                let _ = batch.push_back(buffer);
            }
        }
        RRef::try_new(batch)
    }
}

impl Net for Shadow {
    fn info(&self) -> RpcResult<NetInfo> {
        match self.driver() {
            Some((_, driver)) => match driver.info() {
                Ok(info) => Ok(info),
                Err(e) if driver_error(e) => {
                    self.failed();
                    Ok(NetInfo {
                        mac: [0; 6],
                        link_up: false,
                        speed: 0,
                        queues: 1,
                    })
                }
                Err(e) => Err(e),
            },
            None => Ok(NetInfo {
                mac: [0; 6],
                link_up: false,
                speed: 0,
                queues: 1,
            }),
        }
    }

    fn receive(&self, queue: u16, mut buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let Some((_, driver)) = self.driver() else {
            return Ok(buffers); // recovering: nothing arrived
        };
        if usize::from(queue) >= MAX_QUEUES {
            return Ok(buffers); // no such queue: nothing arrived
        }
        let count = buffers.len();
        // The driver gets the buffers its ring is short of and a few more;
        // the rest of the client's wait among the spares (moving them to
        // the driver and back would cost a change of owner each way).
        let give = {
            let mut inner = self.inner.lock();
            let give = count.min(inner.lane(queue).owed + RX_HEADROOM);
            for _ in give..count {
                if let Some(buffer) = buffers.pop_front() {
                    inner.spare.push(buffer);
                }
            }
            give
        };
        match driver.receive(queue, buffers) {
            Ok(mut frames) => {
                let mut inner = self.inner.lock();
                // Frames first (with their length), then the buffers the
                // driver had no room for.
                let arrived = frames.iter().filter(|p| p.len != 0).count();
                let posted = give.saturating_sub(frames.len() - arrived);
                let lane = inner.lane(queue);
                lane.owed = (lane.owed + arrived).saturating_sub(posted);
                // The client gets back as many buffers as it gave.
                while frames.len() < count {
                    let Some(mut buffer) = inner.spare.pop() else {
                        break;
                    };
                    buffer.len = 0;
                    if let Err(buffer) = frames.push_back(buffer) {
                        inner.spare.push(buffer);
                        break;
                    }
                }
                Ok(frames)
            }
            Err(e) if driver_error(e) => {
                // The buffers given died with the driver.
                self.failed();
                self.fresh(count)
            }
            Err(e) => Err(e),
        }
    }

    fn transmit(&self, queue: u16, mut packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        if usize::from(queue) >= MAX_QUEUES {
            return Ok(packets); // no such queue: nothing sent, all given back
        }
        // The common case: the driver is up and nothing waits to go before
        // these frames. The client's batch goes to the driver as it is and
        // comes back as the driver gives it (frames it had no room for
        // included, as a driver called directly would), copies of its
        // frames kept for the length of the call: in the queue's copy
        // buffers, or, while another call on the queue has them, in
        // spares of this call's own.
        if let Some((_, driver)) = self.driver() {
            let q = usize::from(queue);
            let frames = packets.iter().filter(|p| sendable(p)).count();
            let mut held = self.copies[q].try_lock();
            let mut own = Vec::new();
            let ready = {
                let mut inner = self.inner.lock();
                let Inner { spare, lanes, .. } = &mut *inner;
                while lanes.len() <= q {
                    lanes.push(Lane::default());
                }
                let buffers = match held.as_mut() {
                    Some(buffers) => &mut **buffers,
                    None => &mut own,
                };
                let mut ready = lanes[q].pending.is_empty();
                while ready && buffers.len() < frames {
                    match spare
                        .pop()
                        .map_or_else(|| RRef::try_new(Packet::empty()).ok(), Some)
                    {
                        Some(buffer) => buffers.push(buffer),
                        None => ready = false, // the shared heap is short
                    }
                }
                if !ready {
                    spare.append(&mut own);
                }
                ready
            };
            if ready {
                // The copies, outside the shadow's lock (other queues'
                // calls go on meanwhile).
                let buffers = match held.as_mut() {
                    Some(buffers) => &mut **buffers,
                    None => &mut own,
                };
                for (copy, packet) in buffers
                    .iter_mut()
                    .zip(packets.iter().filter(|p| sendable(p)))
                {
                    let len = usize::from(packet.len);
                    copy.data[..len].copy_from_slice(&packet.data[..len]);
                    copy.len = packet.len;
                }
                let count = packets.len();
                let result = driver.transmit(queue, packets);
                let died = matches!(result, Err(e) if driver_error(e));
                let buffers = match held.as_mut() {
                    Some(buffers) => &mut **buffers,
                    None => &mut own,
                };
                let resend: Vec<RRef<Packet>> = if died {
                    buffers.drain(..frames).collect()
                } else {
                    Vec::new()
                };
                drop(held);
                if died || !own.is_empty() {
                    self.pend_copies(queue, resend, own);
                }
                if died {
                    // The client's frames died with the driver: their
                    // copies are pending (before the recovery task can
                    // look), and the client gets as many empty buffers as
                    // it gave.
                    self.failed();
                    return self.fresh(count);
                }
                return result;
            }
        }
        // Otherwise (recovering, earlier frames waiting, or the shared
        // heap too short for the copies) the frames join the queue's
        // pending ones (bounded) as they are, without a copy: each buffer
        // is swapped for a spare (empty to the client, which only reuses
        // them), so the client's batch comes back at once. The one copy
        // per frame is made when it goes to the driver (`flush`), so that
        // a crash cannot take it.
        {
            let mut inner = self.inner.lock();
            for packet in packets.iter_mut() {
                if !sendable(packet) {
                    continue; // refused: back to the client as it was
                }
                if inner.lane(queue).pending.len() >= MAX_PENDING {
                    inner.lane(queue).pending.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let spare = match inner.spare.pop() {
                    Some(spare) => Some(spare),
                    None => RRef::try_new(Packet::empty()).ok(),
                };
                match spare {
                    Some(spare) => {
                        let frame = core::mem::replace(packet, spare);
                        inner.lane(queue).pending.push_back(frame);
                    }
                    // The shared heap is short: a copy into a spare, or
                    // the frame is lost (TCP sends it again).
                    None => {
                        if let Some(copy) = self.copy(&mut inner, packet) {
                            inner.lane(queue).pending.push_back(copy);
                        }
                    }
                }
                packet.len = 0;
            }
        }
        if let Some((_, driver)) = self.driver() {
            // Pending frames go now, a batch at a time (a few batches at
            // most per call).
            for _ in 0..4 {
                if self.inner.lock().lane(queue).pending.is_empty() {
                    break;
                }
                if let Err(e) = self.flush(&driver, queue) {
                    if driver_error(e) {
                        self.failed();
                    }
                    break;
                }
            }
        }
        Ok(packets)
    }

    fn counters(&self, queue: u16) -> RpcResult<NetCounters> {
        match self.driver() {
            Some((_, driver)) => driver.counters(queue).or_else(|e| {
                if driver_error(e) {
                    self.failed();
                    Ok(NetCounters::default())
                } else {
                    Err(e)
                }
            }),
            None => Ok(NetCounters::default()),
        }
    }
}

impl Control for Shadow {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.restarts.load(Ordering::Relaxed),
            1 => self.reissued.load(Ordering::Relaxed),
            2 => self.dropped.load(Ordering::Relaxed),
            _ => self.inner.lock().pending() as u64,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: driver restarts\n1: frames sent again after a restart\n2: frames dropped (more than 256 waiting)\n3: frames waiting to be sent",
            ),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let shadow = Arc::new(Shadow::new());
    spawn(shadow.clone().recovery()).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Net + Send + Sync>("net", shadow.clone())
        .with::<dyn Control + Send + Sync>("control", shadow))
}
