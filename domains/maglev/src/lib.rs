//! `maglev`: a Maglev load balancer (Eisenbud et al., NSDI 2016) on the
//! `Net` interface, below any IP stack. Every IPv4 TCP or UDP frame that
//! arrives on the NIC (through `nic-shadow` if it is loaded, else the
//! domain exporting "net") goes to the backend its 5-tuple maps to: the
//! flow cache's if the flow is known, else the lookup table's; it is sent
//! on by rewriting its MAC addresses (destination: the backend's;
//! source: the NIC's), the rest untouched. Frames move in batches of up
//! to 32 `RRef` buffers, turned around in place; other frames (ARP, ICMP,
//! fragments) and every frame while no backend is configured are
//! dropped and counted.
//!
//! One task per core, each on its own core's executor, serves the NIC's
//! queue pairs of its number (queue `q` by the task on core `q mod
//! cores`): the NIC's receive-side scaling sends every frame of a flow to
//! the same queue, so each task keeps the flows of its queues in a flow
//! cache of its own, as the paper's packet threads do, and reads the
//! shared lookup table through a snapshot (`Arc`) taken once per batch;
//! a backend change installs a new table, and each cache, seeing a new
//! generation, checks its flows' backends against it.
//!
//! Backends are MAC addresses, added and removed at run time through the
//! control interface (`call maglev 10 0x0200000000aa` adds
//! 02:00:00:00:00:aa; `11` removes one). The table has 65,537 slots, or
//! the prime `maglev_size=N` on the kernel command line says.
//!
//! `call maglev help` lists the operations and counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod table;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, Mutex, RRef, RpcResult, log, lookup, sleep, spawn_on};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, Net, NetProxy, Packet, Packets};

use table::{DEFAULT_SIZE, Error, FlowCache, Table, flow_of};

/// Flows the cache remembers (about).
pub const CACHE_FLOWS: usize = 1 << 16;

/// The table and the cache.
pub struct Balancer {
    pub table: Table,
    pub cache: FlowCache,
}

impl Balancer {
    pub fn new(size: usize) -> Result<Balancer, Error> {
        Ok(Balancer {
            table: Table::new(size)?,
            cache: FlowCache::new(CACHE_FLOWS),
        })
    }

    /// Rewrites `packet` for its backend: true if it is to be sent on.
    pub fn steer(&mut self, packet: &mut Packet, mac: [u8; 6]) -> bool {
        let len = usize::from(packet.len).min(packet.data.len());
        self.steer_frame(&mut packet.data[..len], mac).is_some()
    }

    /// [`Balancer::steer`] on the bytes of one frame: the backend it goes
    /// to, if it is forwarded (the host benchmark calls this directly).
    pub fn steer_frame(&mut self, frame: &mut [u8], mac: [u8; 6]) -> Option<u64> {
        steer_frame(&mut self.cache, &self.table, frame, mac)
    }
}

/// Frames [`steer_batch`] takes at once (a receive batch).
pub const STEER_BATCH: usize = 32;

/// Rewrites each of `frames` (the first [`STEER_BATCH`]) for its backend,
/// as [`steer_frame`] does one, and tells `each` every frame's index and
/// backend (`None`: not forwarded); returns how many it took. Every frame
/// is parsed and hashed before any is looked up: FNV-1a is a chain of 13
/// dependent multiplies, and the chains of a batch's frames, computed back
/// to back, overlap in the CPU, where each frame's chain followed by its
/// lookup's loads and branches did not.
pub fn steer_batch<'a>(
    cache: &mut FlowCache,
    table: &Table,
    frames: impl Iterator<Item = &'a mut [u8]>,
    mac: [u8; 6],
    mut each: impl FnMut(usize, Option<u64>),
) -> usize {
    let mut held: [Option<&'a mut [u8]>; STEER_BATCH] = [const { None }; STEER_BATCH];
    let mut flows: [Option<(table::Flow, u64)>; STEER_BATCH] = [None; STEER_BATCH];
    let mut n = 0;
    for frame in frames.take(STEER_BATCH) {
        flows[n] = flow_of(frame).map(|flow| (flow, flow.hash()));
        held[n] = Some(frame);
        n += 1;
    }
    for (i, (flow, frame)) in flows.iter().zip(held.iter_mut()).take(n).enumerate() {
        let backend = flow.and_then(|(flow, hash)| cache.backend_hashed(table, &flow, hash));
        if let (Some(backend), Some(frame)) = (backend, frame) {
            // `flow_of` took at least 34 bytes.
            frame[0..6].copy_from_slice(&backend.to_be_bytes()[2..8]);
            frame[6..12].copy_from_slice(&mac);
        }
        each(i, backend);
    }
    n
}

/// Rewrites `frame` for its backend by `cache` over `table`: the backend,
/// if it is forwarded.
pub fn steer_frame(
    cache: &mut FlowCache,
    table: &Table,
    frame: &mut [u8],
    mac: [u8; 6],
) -> Option<u64> {
    let flow = flow_of(frame)?;
    let backend = cache.backend(table, &flow)?;
    let to = backend.to_be_bytes();
    // `flow_of` took at least 34 bytes.
    frame[0..6].copy_from_slice(&to[2..8]);
    frame[6..12].copy_from_slice(&mac);
    Some(backend)
}

struct Shared {
    /// The lookup table now: replaced whole on a change (the tasks take a
    /// snapshot per batch, so a change never waits for them).
    table: Mutex<Arc<Table>>,
    /// Flow-cache hits and misses, all tasks.
    hits: AtomicU64,
    misses: AtomicU64,
    /// `call maglev 20`'s own balancer and frames (built on first use).
    rate: Mutex<Option<(Balancer, Vec<u8>)>>,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    failed_calls: AtomicU64,
}

/// Control answers for add and remove.
/// Frames in `call maglev 20`'s trace, their length and their flows.
const RATE_FRAMES: usize = 256;
const RATE_FRAME_LEN: usize = 64;
const RATE_FLOWS: u32 = 1000;
const RATE_BACKENDS: u64 = 100;
/// How long `call maglev 20` steers (well inside the watchdog's budget).
const RATE_NS: u64 = 30_000_000;

impl Shared {
    /// Frames per second the balancer steers in this domain with no NIC
    /// (a 65,537-slot table of 100 backends, 1,000 flows, 64-byte UDP
    /// frames, batches of 32): the algorithm's rate on this machine, to
    /// set beside the rates through the driver and the shadow.
    fn steer_rate(&self) -> u64 {
        let mut rate = self.rate.lock();
        let built = rate.is_none();
        if built {
            let Ok(mut balancer) = Balancer::new(DEFAULT_SIZE) else {
                return 0;
            };
            let ids: Vec<u64> = (0..RATE_BACKENDS).map(|b| 0x0200_0000_0100 + b).collect();
            if balancer.table.add_all(&ids).is_err() {
                return 0;
            }
            let mut frames = alloc::vec![0u8; RATE_FRAMES * RATE_FRAME_LEN];
            for (i, frame) in frames.chunks_exact_mut(RATE_FRAME_LEN).enumerate() {
                let flow = (i as u32).wrapping_mul(2_654_435_761) % RATE_FLOWS;
                frame[12..14].copy_from_slice(&[0x08, 0x00]);
                frame[14] = 0x45;
                frame[22] = 64;
                frame[23] = 17;
                frame[26..30].copy_from_slice(&(0x0a00_0000 | flow).to_be_bytes());
                frame[30..34].copy_from_slice(&[10, 0, 9, 1]);
                frame[34..36].copy_from_slice(&(1024 + (flow & 0xfff) as u16).to_be_bytes());
                frame[36..38].copy_from_slice(&80u16.to_be_bytes());
            }
            *rate = Some((balancer, frames));
        }
        let Some((balancer, frames)) = rate.as_mut() else {
            return 0;
        };
        // Building took part of this call's budget: measure for less.
        let span = if built { RATE_NS / 2 } else { RATE_NS };
        let start = domain_sdk::now_ns();
        let mut steered = 0u64;
        loop {
            for batch in frames.chunks_mut(STEER_BATCH * RATE_FRAME_LEN) {
                steer_batch(
                    &mut balancer.cache,
                    &balancer.table,
                    batch.chunks_exact_mut(RATE_FRAME_LEN),
                    [2, 0, 0, 0, 0, 1],
                    |_, backend| steered += backend.is_some() as u64,
                );
            }
            let elapsed = domain_sdk::now_ns().saturating_sub(start);
            if elapsed >= span {
                return steered * 1_000_000_000 / elapsed;
            }
        }
    }
}

const OK: u64 = 0;
const DUPLICATE: u64 = 1;
const TOO_MANY: u64 = 2;
const NO_SUCH: u64 = 3;

impl Shared {
    /// Adds (`add`) or removes backend `mac` in a copy of the table and
    /// installs the copy (the tasks pick it up with their next batch; a
    /// rebuild bumps the table's generation, which is what their caches
    /// check).
    fn change(&self, add: bool, mac: u64) -> Result<(), Error> {
        let mut table = self.table.lock();
        let mut next = Table::clone(&table);
        if add {
            next.add(mac)?;
        } else {
            next.remove(mac)?;
        }
        *table = Arc::new(next);
        Ok(())
    }
}

impl Control for Shared {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {
        let mac = arg & 0xffff_ffff_ffff;
        Ok(match op {
            0 => self.forwarded.load(Ordering::Relaxed),
            1 => self.dropped.load(Ordering::Relaxed),
            2 => self.table.lock().backends().len() as u64,
            3 => self.hits.load(Ordering::Relaxed),
            4 => self.misses.load(Ordering::Relaxed),
            5 => self.failed_calls.load(Ordering::Relaxed),
            6 => self.table.lock().size() as u64,
            20 => self.steer_rate(),
            10 => match self.change(true, mac) {
                Ok(()) => OK,
                Err(Error::Duplicate) => DUPLICATE,
                Err(_) => TOO_MANY,
            },
            11 => match self.change(false, mac) {
                Ok(()) => OK,
                Err(_) => NO_SUCH,
            },
            _ => u64::MAX,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: frames forwarded\n1: frames dropped (not IPv4 TCP/UDP, or no backend)\n\
                 2: backends\n3: flow-cache hits\n4: flow-cache misses\n\
                 5: calls to the driver that failed\n6: table size\n\
                 20: frames per second the balancer steers here with no NIC (30 ms of a \
                 separate 100-backend table over 1,000 flows)\n\
                 10 MAC: add the backend with that MAC (as a number: 0x0200000000aa); \
                 0 added, 1 there already, 2 no room\n\
                 11 MAC: remove it; 0 removed, 3 no such backend\n\
                 other operations answer 18446744073709551615",
            ),
            _ => Ok(None),
        }
    }
}

/// A batch of empty receive buffers, topped up to [`BATCH`].
fn top_up(batch: Option<RRef<Packets>>) -> Option<RRef<Packets>> {
    let mut batch = match batch {
        Some(batch) => batch,
        None => RRef::try_new(Packets::new()).ok()?,
    };
    while batch.len() < BATCH {
        let packet = RRef::try_new(Packet::empty()).ok()?;
        if batch.push_back(packet).is_err() {
            break;
        }
    }
    Some(batch)
}

/// The task on core `core` of `cores`: serves the NIC's queues `core`,
/// `core + cores`, ... with a flow cache of its own.
async fn serve(shared: Arc<Shared>, core: u16, cores: u16) {
    let mut net: Option<NetProxy> = None;
    let mut buffers: Option<RRef<Packets>> = None;
    let mut cache = FlowCache::new(CACHE_FLOWS);
    let (mut hits, mut misses) = (0, 0);
    let mut idle_ms = 1;
    let mut queue: u16 = core;
    // Whether this pass over the task's queues has found any frame yet.
    let mut pass_busy = false;
    loop {
        if net.is_none() {
            net = lookup::<dyn Net + Send + Sync>("nic-shadow/net")
                .or_else(|_| lookup::<dyn Net + Send + Sync>("net"))
                .ok();
            if net.is_none() {
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let Some(driver) = &net else { continue };
        let failed = |what: &str, e: domain_sdk::RpcError| {
            log(&alloc::format!(
                "{what} failed: {e}; looking the driver up again"
            ));
            shared.failed_calls.fetch_add(1, Ordering::Relaxed);
        };
        let Some(batch) = top_up(buffers.take()) else {
            sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (mac, queues) = match driver.info() {
            Ok(info) => (info.mac, info.queues.max(1)),
            Err(e) => {
                failed("info", e);
                net = None;
                buffers = Some(batch);
                continue;
            }
        };
        if core >= queues {
            // Fewer queues than cores: nothing for this task (for now).
            buffers = Some(batch);
            sleep(Duration::from_millis(100)).await;
            continue;
        }
        // The next of this task's queues.
        queue = match queue.checked_add(cores) {
            Some(next) if next < queues => next,
            _ => core,
        };
        if queue == core {
            pass_busy = false;
        }
        let mut received = match driver.receive(queue, batch) {
            Ok(received) => received,
            Err(e) => {
                failed("receive", e);
                net = None;
                continue;
            }
        };
        let (mut forward, mut drop) = (0, 0);
        if received.iter().any(|p| p.len != 0) {
            let table = shared.table.lock().clone();
            // The batch's frames steered together (see `steer_batch`),
            // then those not forwarded emptied.
            let mut forwarded = [false; STEER_BATCH];
            let frames = received.iter_mut().filter(|p| p.len != 0).map(|p| {
                let len = usize::from(p.len).min(p.data.len());
                &mut p.data[..len]
            });
            steer_batch(&mut cache, &table, frames, mac, |i, backend| {
                forwarded[i] = backend.is_some();
            });
            let mut i = 0;
            for packet in received.iter_mut() {
                if packet.len == 0 {
                    continue;
                }
                if forwarded.get(i).copied().unwrap_or(false) {
                    forward += 1;
                } else {
                    packet.len = 0;
                    drop += 1;
                }
                i += 1;
            }
            shared.hits.fetch_add(cache.hits - hits, Ordering::Relaxed);
            shared
                .misses
                .fetch_add(cache.misses - misses, Ordering::Relaxed);
            (hits, misses) = (cache.hits, cache.misses);
        }
        shared.dropped.fetch_add(drop, Ordering::Relaxed);
        pass_busy |= forward + drop > 0;
        if forward == 0 {
            buffers = Some(received);
            // Idle only once a whole pass over the queues found nothing.
            let last = queue.checked_add(cores).is_none_or(|next| next >= queues);
            if !pass_busy && last {
                sleep(Duration::from_millis(idle_ms)).await;
                idle_ms = (idle_ms * 2).min(16);
            }
            continue;
        }
        idle_ms = 1;
        match driver.transmit(queue, received) {
            Ok(mut back) => {
                let unsent = back.iter().filter(|p| p.len != 0).count() as u64;
                shared
                    .forwarded
                    .fetch_add(forward - unsent.min(forward), Ordering::Relaxed);
                shared.dropped.fetch_add(unsent, Ordering::Relaxed);
                for packet in back.iter_mut() {
                    packet.len = 0;
                }
                buffers = Some(back);
            }
            Err(e) => {
                failed("transmit", e);
                net = None;
            }
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let size = match domain_sdk::boot_option("maglev_size") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| alloc::format!("maglev_size={text}: not a number"))?,
        None => DEFAULT_SIZE,
    };
    let table = Table::new(size).map_err(|_| {
        alloc::format!("maglev_size={size}: the table size must be a prime from 3 to 16,777,216")
    })?;
    let shared = Arc::new(Shared {
        table: Mutex::new(Arc::new(table)),
        hits: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        rate: Mutex::new(None),
        forwarded: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        failed_calls: AtomicU64::new(0),
    });
    // A task per core, on that core (queue q's frames are served where
    // the task of q mod cores runs).
    let cores = domain_sdk::core().1.clamp(1, usize::from(u16::MAX)) as u16;
    for core in 0..cores {
        spawn_on(usize::from(core), serve(shared.clone(), core, cores))
            .map_err(|e| alloc::format!("spawn on core {core}: {e:?}"))?;
    }
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", shared))
}
