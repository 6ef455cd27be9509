//! `attack`: a hostile domain for the isolation tests (issue 10). It is an
//! ordinary domain (`#![forbid(unsafe_code)]`, only the SDK and the
//! interfaces), so whatever it does is what any domain author can do. The
//! in-QEMU tests (`kernel/src/ktest/attack_tests.rs`) load it twice or
//! more, one instance named "keeper" serving [`Probe`], others attacking
//! through [`Control`] (`call NAME OP ARG` from the console):
//!
//! | op | attack |
//! |---:|---|
//! | 1 | spawn tasks until refused; returns `count | reason << 32` (1 full, 2 quota) |
//! | 2 | spawn 4 tasks that each spin 90 ms (under the watchdog's budget), yield, and spin again, forever |
//! | 3 | push 8 buffers into a batch, forget the batch, panic |
//! | 4 | move ARG buffers into "keeper" (which keeps them) |
//! | 5 | poll keeper's `hold_waker` once with a waker of its own whose `wake` panics, and abandon the call |
//! | 6 | lend keeper a buffer it crashes on; returns the buffer's sum if it is intact and still ours |
//! | 7 | panic |
//! | 8 | claim the NVMe controller (as its driver would) and point its admin queues at physical address ARG, then ring: the device reads a command there and writes its completion over it; returns 1 if armed, 0 if the controller did not start, 2 if the claim was refused |
//! | 9 | turn that controller off again; returns its status register |
//! | 10 | keep 4 KiB `RRef`s (in a task, a MiB at a time) until refused, or until ARG MiB if ARG is not 0 |
//! | 11 | MiB kept so far, with bit 63 set once the keeping is over |
//! | 12 | spawn a task on core ARG that notes the core it runs on; returns 1, or `reason << 32` if refused (4: no such core) |
//! | 13 | the core op 12's task noted, plus 1 (0: not run yet) |
//! | 14 | start a task that spawns pending tasks on core ARG one after another, without end (a domain killed meanwhile must leave none behind) |
//!
//! The [`Probe`] it serves keeps what it is given (see the interface).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use domain_sdk::{
    Device, Exports, Kernel, Mutex, RRef, RRefDeque, RpcFuture, RpcResult, SpawnError, now_ns,
    yield_now,
};
use interfaces::control::Control;
use interfaces::probe::{Buffer, Probe};

/// What the keeper holds.
#[derive(Default)]
struct Keeper {
    kept: Mutex<Vec<RRef<Buffer>>>,
    wakers: Mutex<Vec<Waker>>,
    wakes: AtomicU64,
}

struct Service(Arc<Keeper>);

impl Probe for Service {
    fn keep(&self, buffer: RRef<Buffer>) -> RpcResult<u64> {
        let mut kept = self.0.kept.lock();
        kept.push(buffer);
        Ok(kept.len() as u64)
    }

    fn release(&self) -> RpcResult<u64> {
        let kept = core::mem::take(&mut *self.0.kept.lock());
        let sum = kept.iter().map(|b| u64::from(b[0])).sum();
        drop(kept);
        Ok(sum)
    }

    fn inspect(&self, buffer: &RRef<Buffer>, crash: bool) -> RpcResult<u64> {
        let sum = buffer.iter().map(|&b| u64::from(b)).sum();
        if crash {
            panic!("keeper: crashing with a lent buffer in hand");
        }
        Ok(sum)
    }

    fn hold_waker(&self) -> RpcFuture<'_, u64> {
        let keeper = self.0.clone();
        let mut kept = false;
        RpcFuture::new(core::future::poll_fn(move |cx| {
            if kept {
                return Poll::Ready(Ok(keeper.wakes.load(Ordering::Relaxed)));
            }
            kept = true;
            keeper.wakers.lock().push(cx.waker().clone());
            Poll::Pending
        }))
    }

    fn wake_all(&self) -> RpcResult<u64> {
        let wakers = core::mem::take(&mut *self.0.wakers.lock());
        let count = wakers.len() as u64;
        for waker in wakers {
            waker.wake();
        }
        self.0.wakes.fetch_add(count, Ordering::Relaxed);
        Ok(count)
    }
}

/// A waker whose code is this domain's: run by whoever wakes it.
struct Trap;

impl Wake for Trap {
    fn wake(self: Arc<Self>) {
        panic!("attack: my waker ran");
    }
}

#[derive(Default)]
struct Attacker {
    /// The NVMe controller, once op 8 claimed it.
    device: Mutex<Option<Box<dyn Device>>>,
    /// What op 10 keeps.
    hoard: Arc<Hoard>,
    /// Where op 12's task ran, plus 1.
    ran_on: Arc<AtomicU64>,
}

#[derive(Default)]
struct Hoard {
    blocks: Mutex<Vec<RRef<[u8; 4096]>>>,
    done: core::sync::atomic::AtomicBool,
}

// NVMe controller registers (BAR 0).
const CC: u64 = 0x14;
const CSTS: u64 = 0x1C;
const AQA: u64 = 0x24;
const ASQ: u64 = 0x28;
const ACQ: u64 = 0x30;
const SQ0_TAIL: u64 = 0x1000;

/// Spins until `done` or 50 ms (well inside the watchdog's budget).
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = now_ns() + 50_000_000;
    while !done() {
        if now_ns() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

impl Attacker {
    /// Issue 10, item 3: DMA anywhere. A driver writes device addresses as
    /// plain numbers; this one writes a kernel address.
    fn dma_to(&self, target: u64) -> RpcResult<u64> {
        let Ok(device) = domain_sdk::claim_device((1, 8, 2), 0) else {
            return Ok(2); // refused (another driver holds it, or no grant)
        };
        device.set_bus_master(true);
        let csts = |d: &dyn Device| d.read32(0, CSTS).unwrap_or(u32::MAX);
        let _ = device.write32(0, CC, 0);
        spin_until(|| csts(&*device) & 1 == 0);
        let _ = device.write32(0, AQA, 1 << 16 | 1);
        let _ = device.write64(0, ASQ, target);
        let _ = device.write64(0, ACQ, target);
        let _ = device.write32(0, CC, 1 | 6 << 16 | 4 << 20);
        let ready = spin_until(|| csts(&*device) & 1 == 1);
        if ready {
            // The device fetches the "command" at ASQ and posts its
            // completion at ACQ: a read and a write of the target page.
            let _ = device.write32(0, SQ0_TAIL, 1);
        }
        *self.device.lock() = Some(device);
        Ok(u64::from(ready))
    }

    /// Issue 10, item 10 (found in review): the shared heap has no per-
    /// domain bound unless the kernel sets one.
    fn hoard(&self, mib: u64) -> u64 {
        let hoard = self.hoard.clone();
        let limit = if mib == 0 {
            usize::MAX
        } else {
            mib as usize * 256
        };
        let started = domain_sdk::spawn(async move {
            'keeping: while hoard.blocks.lock().len() < limit {
                for _ in 0..256 {
                    match RRef::try_new([0u8; 4096]) {
                        Ok(block) => hoard.blocks.lock().push(block),
                        Err(_) => break 'keeping,
                    }
                }
                yield_now().await;
            }
            hoard.done.store(true, Ordering::Release);
        });
        u64::from(started.is_ok())
    }

    fn hoarded(&self) -> u64 {
        let mib = self.hoard.blocks.lock().len() as u64 / 256;
        mib | u64::from(self.hoard.done.load(Ordering::Acquire)) << 63
    }

    fn dma_stop(&self) -> u64 {
        match self.device.lock().take() {
            Some(device) => {
                let _ = device.write32(0, CC, 0);
                u64::from(device.read32(0, CSTS).unwrap_or(u32::MAX))
            }
            None => u64::MAX,
        }
    }
    fn spawn_flood(&self) -> u64 {
        let mut count = 0u64;
        loop {
            match domain_sdk::spawn(core::future::pending::<()>()) {
                Ok(()) => count += 1,
                Err(e) => {
                    return count | spawn_reason(e) << 32;
                }
            }
        }
    }

    fn spawn_on(&self, core: u64) -> u64 {
        let ran_on = self.ran_on.clone();
        ran_on.store(0, Ordering::Relaxed);
        let core = usize::try_from(core).unwrap_or(usize::MAX);
        match domain_sdk::spawn_on(core, async move {
            ran_on.store(domain_sdk::core().0 as u64 + 1, Ordering::Relaxed);
        }) {
            Ok(()) => 1,
            Err(e) => spawn_reason(e) << 32,
        }
    }

    fn spawn_on_forever(&self, core: u64) -> u64 {
        let core = usize::try_from(core).unwrap_or(usize::MAX);
        let started = domain_sdk::spawn(async move {
            loop {
                // Refused at the quota: the tasks made so far stay pending
                // there; try again after a yield (one may have been purged).
                let _ = domain_sdk::spawn_on(core, core::future::pending::<()>());
                yield_now().await;
            }
        });
        u64::from(started.is_ok())
    }

    fn hog(&self) -> u64 {
        for _ in 0..4 {
            let _ = domain_sdk::spawn(async {
                loop {
                    let end = now_ns() + 90_000_000;
                    while now_ns() < end {
                        core::hint::spin_loop();
                    }
                    yield_now().await;
                }
            });
        }
        4
    }

    fn forget_batch_and_panic(&self) -> ! {
        let mut batch = RRef::new(RRefDeque::<Buffer, 8>::new());
        for i in 0..8u8 {
            let _ = batch.push_back(RRef::new([i; 256]));
        }
        core::mem::forget(batch);
        panic!("attack: crashing with a forgotten batch");
    }

    fn give(&self, count: u64) -> RpcResult<u64> {
        let keeper = domain_sdk::lookup::<dyn Probe + Send + Sync>("keeper/probe")?;
        let mut kept = 0;
        for i in 0..count {
            kept = keeper.keep(RRef::new([i as u8 + 1; 256]))?;
        }
        Ok(kept)
    }

    fn foreign_waker(&self) -> RpcResult<u64> {
        let keeper = domain_sdk::lookup::<dyn Probe + Send + Sync>("keeper/probe")?;
        let keeper: &'static _ = Box::leak(Box::new(keeper));
        let waker = Waker::from(Arc::new(Trap));
        let mut call = Box::pin(keeper.hold_waker());
        let polled = call.as_mut().poll(&mut Context::from_waker(&waker));
        // Abandoned while pending: the keeper keeps whatever waker it got.
        core::mem::forget(call);
        Ok(u64::from(polled.is_pending()))
    }

    fn lend_and_crash_keeper(&self) -> RpcResult<u64> {
        let keeper = domain_sdk::lookup::<dyn Probe + Send + Sync>("keeper/probe")?;
        let buffer = RRef::new([3u8; 256]);
        let crashed = keeper.inspect(&buffer, true);
        let intact = buffer.iter().all(|&b| b == 3);
        let ours = buffer.owner() == buffer_owner_probe();
        Ok(match (crashed, intact && ours) {
            (Err(_), true) => buffer.iter().map(|&b| u64::from(b)).sum(),
            _ => 0,
        })
    }
}

/// A refused spawn's reason as a number (1 full, 2 quota, 3 not in a
/// domain, 4 no such core).
fn spawn_reason(e: SpawnError) -> u64 {
    match e {
        SpawnError::Full => 1,
        SpawnError::Quota => 2,
        SpawnError::NotInDomain => 3,
        SpawnError::NoSuchCore => 4,
    }
}

/// The running incarnation (a fresh buffer is always the allocator's).
fn buffer_owner_probe() -> domain_sdk::Owner {
    RRef::new(0u8).owner()
}

impl Control for Attacker {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {
        match op {
            1 => Ok(self.spawn_flood()),
            2 => Ok(self.hog()),
            3 => self.forget_batch_and_panic(),
            4 => self.give(arg),
            5 => self.foreign_waker(),
            6 => self.lend_and_crash_keeper(),
            7 => panic!("attack: asked to crash"),
            8 => self.dma_to(arg),
            9 => Ok(self.dma_stop()),
            10 => Ok(self.hoard(arg)),
            11 => Ok(self.hoarded()),
            12 => Ok(self.spawn_on(arg)),
            13 => Ok(self.ran_on.load(Ordering::Relaxed)),
            14 => Ok(self.spawn_on_forever(arg)),
            _ => Ok(arg),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    Ok(Exports::new()
        .with::<dyn Control + Send + Sync>("control", Arc::new(Attacker::default()))
        .with::<dyn Probe + Send + Sync>("probe", Arc::new(Service(Arc::default()))))
}
