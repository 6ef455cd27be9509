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
//! and dies with it, so the shadow keeps the client's frames (swapping
//! each buffer for a spare one it hands back) and sends the driver
//! *copies*, keeping the frames until the driver has taken them: one copy
//! per frame on the transmit path (receive moves buffers through
//! untouched). A client's batch comes
//! back at once, its buffers free for reuse; frames the driver could not
//! take yet, or that were in flight when it crashed, wait in the shadow
//! and go with the next batch (or when recovery ends).
//!
//! Recovery runs in a task of the shadow's own: a call that finds the
//! driver dead only raises the flag (calls are synchronous and must not
//! wait the half second a restarted 82576 takes to bring its link up),
//! returns the client's receive buffers empty (fresh ones: the client's
//! batch died with the driver), and keeps transmitted frames for later.
//!
//! `call nic-shadow help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, RRef, RestartError, RpcError, RpcResult, log, lookup, sleep, spawn,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, Net, NetCounters, NetInfo, NetProxy, Packet, Packets};

/// The drivers a shadow can stand in front of (its manifest grants it
/// their supervision).
pub const DRIVERS: [&str; 2] = ["igb", "virtio-net"];
/// Frames kept to send again at most (older ones are dropped, counted).
pub const MAX_PENDING: usize = 256;

struct Inner {
    driver: Option<(&'static str, Arc<NetProxy>)>,
    /// Frames to send (copies), oldest first.
    pending: Vec<RRef<Packet>>,
    /// Spare buffers for copies.
    spare: Vec<RRef<Packet>>,
}

pub struct Shadow {
    inner: Mutex<Inner>,
    recovering: AtomicBool,
    restarts: AtomicU64,
    reissued: AtomicU64,
    dropped: AtomicU64,
}

fn driver_error(e: RpcError) -> bool {
    matches!(e, RpcError::DomainCrashed | RpcError::DomainNotAlive)
}

impl Shadow {
    fn new() -> Shadow {
        Shadow {
            inner: Mutex::new(Inner {
                driver: None,
                pending: Vec::new(),
                spare: Vec::new(),
            }),
            recovering: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            reissued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
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
        self.inner.lock().driver = None;
        self.recovering.store(true, Ordering::Release);
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

    /// Sends what is pending through `driver` (a batch at most). Unsent
    /// frames stay pending; the driver's returned buffers become spares.
    /// `Err` if the driver failed (the batch sent is pending again: its
    /// copies were made before).
    fn flush(&self, driver: &NetProxy) -> Result<(), RpcError> {
        let (batch, kept) = {
            let mut inner = self.inner.lock();
            let take = inner.pending.len().min(BATCH);
            if take == 0 {
                return Ok(());
            }
            let mut batch = Packets::new();
            let mut kept = Vec::with_capacity(take);
            let frames: Vec<RRef<Packet>> = inner.pending.drain(..take).collect();
            for frame in frames {
                // What goes to the driver is a copy; the frame stays here
                // until the driver has taken it.
                match self.copy(&mut inner, &frame) {
                    Some(copy) => {
                        let _ = batch.push_back(copy);
                        kept.push(frame);
                    }
                    None => inner.pending.insert(0, frame),
                }
            }
            (batch, kept)
        };
        let count = kept.len();
        let Ok(batch) = RRef::try_new(batch) else {
            let mut inner = self.inner.lock();
            for (i, frame) in kept.into_iter().enumerate() {
                inner.pending.insert(i, frame);
            }
            return Ok(());
        };
        match driver.transmit(0, batch) {
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
                let sent = count - unsent.min(count);
                let mut kept = kept;
                let unsent_frames: Vec<RRef<Packet>> = kept.drain(sent..).collect();
                for (i, frame) in unsent_frames.into_iter().enumerate() {
                    inner.pending.insert(i, frame);
                }
                // The frames sent: their buffers are spares too (as many
                // as a full pending queue needs; the rest go).
                inner.spare.extend(kept);
                inner.spare.truncate(MAX_PENDING + BATCH);
                Ok(())
            }
            Err(e) => {
                let mut inner = self.inner.lock();
                for (i, frame) in kept.into_iter().enumerate() {
                    inner.pending.insert(i, frame);
                }
                Err(e)
            }
        }
    }

    /// The recovery task: restarts the driver when a call found it dead,
    /// waits until it is up, then sends what was in flight.
    async fn recovery(self: Arc<Self>) {
        loop {
            if !self.recovering.load(Ordering::Acquire) {
                sleep(Duration::from_millis(5)).await;
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
            // Up when its info says the link is.
            let mut up = None;
            for _ in 0..1000 {
                if let Ok(proxy) = lookup::<dyn Net + Send + Sync>(&alloc::format!("{name}/net"))
                    && proxy.info().is_ok_and(|info| info.link_up)
                {
                    up = Some(proxy);
                    break;
                }
                sleep(Duration::from_millis(5)).await;
            }
            let Some(proxy) = up else {
                log(&alloc::format!("{name} did not come up; trying again"));
                continue;
            };
            let proxy = Arc::new(proxy);
            let pending = self.inner.lock().pending.len() as u64;
            // Whatever was in flight goes out first (a few batches; the
            // rest with the next calls).
            for _ in 0..(MAX_PENDING / BATCH) {
                if self.inner.lock().pending.is_empty() || self.flush(&proxy).is_err() {
                    break;
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

    fn receive(&self, queue: u16, buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let Some((_, driver)) = self.driver() else {
            return Ok(buffers); // recovering: nothing arrived
        };
        let count = buffers.len();
        match driver.receive(queue, buffers) {
            Ok(frames) => Ok(frames),
            Err(e) if driver_error(e) => {
                // The client's buffers died with the driver.
                self.failed();
                self.fresh(count)
            }
            Err(e) => Err(e),
        }
    }

    fn transmit(&self, queue: u16, mut packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let _ = queue; // one queue pair: every frame goes by queue 0
        // The client's frames join the pending queue (bounded) as they
        // are, without a copy: each buffer is swapped for a spare (empty
        // to the client, which only reuses them), so the client's batch
        // comes back at once. The one copy per frame is made when it goes
        // to the driver (`flush`), so that a crash cannot take it.
        {
            let mut inner = self.inner.lock();
            for packet in packets.iter_mut() {
                if packet.len == 0 {
                    continue;
                }
                if inner.pending.len() >= MAX_PENDING {
                    inner.pending.remove(0);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let spare = match inner.spare.pop() {
                    Some(spare) => Some(spare),
                    None => RRef::try_new(Packet::empty()).ok(),
                };
                match spare {
                    Some(spare) => {
                        let frame = core::mem::replace(packet, spare);
                        inner.pending.push(frame);
                    }
                    // The shared heap is short: a copy into a spare, or
                    // the frame is lost (TCP sends it again).
                    None => {
                        if let Some(copy) = self.copy(&mut inner, packet) {
                            inner.pending.push(copy);
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
                if self.inner.lock().pending.is_empty() {
                    break;
                }
                if let Err(e) = self.flush(&driver) {
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
            _ => self.inner.lock().pending.len() as u64,
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
