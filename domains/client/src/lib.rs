//! `client`: every 20 ms, calls `counter` (a plain call, and every fifth
//! round an `async` one) and `checksum` (moves a page-sized `RRef` buffer
//! in to be filled and gets it back, lends it for a digest, and every fifth
//! round moves a batch of four through an `async` call), checking every
//! digest against its own. A failed call is counted and the proxies are
//! dropped; the next round looks the services up again, so after `restart`
//! it talks to the new incarnation.
//!
//! Exports [`Control`] as "control": `call client OP` with 0 = rounds that
//! succeeded, 1 = calls that failed, 2 = blocks verified, 3 = digest
//! mismatches (must stay 0).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, RRef, RRefDeque, RpcError, RpcResult, lookup, sleep};
use interfaces::checksum::{self, Checksum, ChecksumProxy};
use interfaces::control::{Control, HELP, Text};
use interfaces::counter::{Counter, CounterProxy};

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    errors: AtomicU64,
    verified: AtomicU64,
    mismatches: AtomicU64,
}

struct Client(Arc<Stats>);

impl Control for Client {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        let counter = match op {
            0 => &self.0.ok,
            1 => &self.0.errors,
            2 => &self.0.verified,
            _ => &self.0.mismatches,
        };
        Ok(counter.load(Ordering::Relaxed))
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: rounds that succeeded\n1: calls that failed\n2: blocks verified\n3: digest mismatches (must stay 0)\n4: all of them, as text",
            ),
            4 => Text::answer(&alloc::format!(
                "rounds ok {}, calls failed {}, blocks verified {}, digest mismatches {}",
                self.0.ok.load(Ordering::Relaxed),
                self.0.errors.load(Ordering::Relaxed),
                self.0.verified.load(Ordering::Relaxed),
                self.0.mismatches.load(Ordering::Relaxed)
            )),
            _ => Ok(None),
        }
    }
}

/// The services, looked up once and kept until a call through them fails.
struct Peers {
    counter: CounterProxy,
    checksum: ChecksumProxy,
}

fn connect() -> RpcResult<Peers> {
    Ok(Peers {
        counter: lookup::<dyn Counter + Send + Sync>("counter")?,
        checksum: lookup::<dyn Checksum + Send + Sync>("checksum")?,
    })
}

/// One round of calls; returns the blocks it verified.
async fn round(peers: &Peers, n: u64, stats: &Stats) -> RpcResult<u64> {
    peers.counter.increment()?;
    let seed = n as u32;
    let mut verified = 0;
    // Moved in, filled there, moved back.
    let block = peers.checksum.fill(RRef::try_new([0u8; 4096])?, seed)?;
    let expected: [u8; 16] = core::array::from_fn(|i| checksum::pattern(seed, i));
    // Lent: the callee reads it, we keep it.
    let digest = peers.checksum.digest(&block)?;
    if block[..16] != expected || digest != checksum::digest(&block[..]) {
        stats.mismatches.fetch_add(1, Ordering::Relaxed);
    }
    verified += 1;
    if n.is_multiple_of(5) {
        peers.counter.wait_ticks(1).await?;
        let mut batch = RRef::try_new(RRefDeque::new())?;
        let mut combined = 0;
        for i in 0..4u32 {
            let page = peers.checksum.fill(RRef::try_new([0u8; 4096])?, seed + i)?;
            combined = checksum::combine(combined, checksum::digest(&page[..]));
            batch.push_back(page).map_err(|_| RpcError::OutOfMemory)?;
        }
        let (batch, digest) = peers.checksum.digest_batch(batch).await?;
        if digest != combined || batch.len() != 4 {
            stats.mismatches.fetch_add(1, Ordering::Relaxed);
        }
        verified += 4;
    }
    Ok(verified)
}

pub fn init(kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let stats = Arc::new(Stats::default());
    let task_stats = stats.clone();
    kernel
        .spawn(alloc::boxed::Box::pin(async move {
            let stats = task_stats;
            let mut peers: Option<Peers> = None;
            let mut failing = false;
            for n in 0u64.. {
                sleep(Duration::from_millis(20)).await;
                if peers.is_none() {
                    peers = connect().ok();
                }
                let result = match &peers {
                    Some(p) => round(p, n, &stats).await,
                    None => Err(RpcError::NoSuchInterface),
                };
                match result {
                    Ok(verified) => {
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        stats.verified.fetch_add(verified, Ordering::Relaxed);
                        if failing {
                            kernel.log("services answer again");
                        }
                        failing = false;
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            kernel.log(&alloc::format!("call failed: {e}; will look up again"));
                        }
                        failing = true;
                        peers = None;
                    }
                }
            }
        }))
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", Arc::new(Client(stats))))
}
