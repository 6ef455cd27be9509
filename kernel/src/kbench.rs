//! In-QEMU micro-benchmarks (`bench=1` on the kernel command line).
//!
//! Under TCG absolute times mean little, so each benchmark is reported next
//! to its baseline measured in the same boot, as a ratio. Output lines start
//! with `kbench:` and the run ends with `kbench: done`; `make bench` collects
//! them into `bench/results/qemu.json`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::hint::black_box;

use interfaces::control::Control;
use rrpc::{Interface, RRef, RpcResult};

use crate::arch::rdtsc;
use crate::domain::{self, images};

const ITERATIONS: u64 = 20_000;
const SAMPLES: usize = 11;

fn median_ticks(mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let mut samples = [0f64; SAMPLES];
    for sample in samples.iter_mut() {
        let start = rdtsc();
        for _ in 0..ITERATIONS {
            f();
        }
        *sample = (rdtsc() - start) as f64 / ITERATIONS as f64;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
    samples[SAMPLES / 2]
}

fn report(name: &str, workload: &str, measured: f64, baseline_name: &str, baseline: f64) {
    println!(
        "kbench: {name} | {workload} | {measured:.1} | {baseline_name} | {baseline:.1} | {:.2}",
        measured / baseline.max(f64::MIN_POSITIVE)
    );
}

struct Plain;

impl Control for Plain {
    #[inline(never)]
    fn control(&self, _op: u32, arg: u64) -> RpcResult<u64> {
        Ok(arg)
    }
}

/// Gives an RRef straight back (the callee owns it in between).
#[rrpc::interface]
trait Bounce {
    fn bounce(&self, buffer: RRef<[u8; 64]>) -> RpcResult<RRef<[u8; 64]>>;
}

struct Bouncer;

impl Bounce for Bouncer {
    #[inline(never)]
    fn bounce(&self, buffer: RRef<[u8; 64]>) -> RpcResult<RRef<[u8; 64]>> {
        Ok(buffer)
    }
}

pub async fn run() {
    println!("kbench: name | workload | ticks | baseline | baseline ticks | ratio");
    // A call into the `idle` domain's control interface through its
    // generated proxy, versus the same call through a plain trait object.
    let plain: Arc<dyn Control + Send + Sync> = Arc::new(Plain);
    let plain_ticks = median_ticks(|| {
        black_box(black_box(&plain).control(2, black_box(7)).ok());
    });
    match domain::create(images::image("idle").expect("idle image"), "bench-idle") {
        Ok(d) => {
            let mut proxy = None;
            let _ = images::lookup("bench-idle/control", &mut |exports, name, owner| {
                proxy = exports
                    .get::<dyn Control + Send + Sync>(name)
                    .map(|o| <dyn Control + Send + Sync as Interface>::proxy(o.clone(), owner));
            });
            if let Some(proxy) = proxy {
                let proxy_ticks = median_ticks(|| {
                    black_box(black_box(&proxy).control(2, black_box(7)).ok());
                });
                report(
                    "domain call",
                    "generated proxy call into a domain: alive check, owner switch, continuation, watchdog deadline",
                    proxy_ticks,
                    "trait-object call",
                    plain_ticks,
                );
            }
            let owner = d.owner();
            let catch_ticks = median_ticks(|| {
                black_box(crate::catch::catch(|| black_box(7u64)).ok());
            });
            report(
                "continuation only",
                "catch() of a closure returning a value: save and discard a continuation",
                catch_ticks,
                "trait-object call",
                plain_ticks,
            );
            let enter_ticks = median_ticks(|| {
                black_box(domain::enter(owner, || black_box(7u64)).ok());
            });
            report(
                "domain entry (empty)",
                "domain::enter with an empty closure",
                enter_ticks,
                "trait-object call",
                plain_ticks,
            );
            // RRefs: allocation, and a call moving one in and back.
            let rref_ticks = median_ticks(|| {
                drop(black_box(RRef::new(black_box([0u8; 64]))));
            });
            let box_ticks = median_ticks(|| {
                drop(black_box(Box::new(black_box([0u8; 64]))));
            });
            report(
                "RRef<[u8; 64]> alloc+drop",
                "RRef::new then drop (shared heap, registry)",
                rref_ticks,
                "Box (kernel heap)",
                box_ticks,
            );
            if let Ok(object) =
                domain::enter(owner, || Arc::new(Bouncer) as Arc<dyn Bounce + Send + Sync>)
            {
                let bounce = BounceProxy::new(object, owner);
                let mut buffer = Some(RRef::new([7u8; 64]));
                let bounce_ticks = median_ticks(|| {
                    if let Some(b) = buffer.take() {
                        buffer = bounce.bounce(b).ok();
                    }
                });
                let local = Bouncer;
                let local: &dyn Bounce = black_box(&local);
                let mut buffer = Some(RRef::new([7u8; 64]));
                let local_ticks = median_ticks(|| {
                    if let Some(b) = buffer.take() {
                        buffer = local.bounce(b).ok();
                    }
                });
                report(
                    "call moving an RRef in and back",
                    "generated proxy: RRef argument to the callee, result back to the caller",
                    bounce_ticks,
                    "trait-object call",
                    local_ticks,
                );
            }
            domain::kill(d, "bench done");
        }
        Err(e) => println!("kbench: cannot create a domain: {e}"),
    }
    println!("kbench: done");
    crate::power::exit_qemu(crate::power::EXIT_TESTS_PASSED)
}
