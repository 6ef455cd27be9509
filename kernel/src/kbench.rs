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
    image_loading().await;
    println!("kbench: done");
    crate::power::exit_qemu(crate::power::EXIT_TESTS_PASSED)
}

/// Median TSC ticks of `runs` load → first call → kill cycles of `source`
/// under the domain name `name`: (load + init, first call, kill + reclaim).
async fn load_cycle(
    source: impl Fn() -> domain::Source,
    name: &str,
    runs: usize,
) -> Option<(f64, f64, f64)> {
    let mut samples = alloc::vec::Vec::new();
    for _ in 0..runs {
        let start = rdtsc();
        let d = match domain::create_from(source(), name) {
            Ok(d) => d,
            Err(e) => {
                println!("kbench: cannot load {name}: {e}");
                return None;
            }
        };
        let loaded = rdtsc();
        let control =
            images::proxy::<dyn Control + Send + Sync>(&alloc::format!("{name}/control")).ok()?;
        black_box(control.control(2, 1).ok());
        let called = rdtsc();
        drop(control);
        domain::kill(d, "bench");
        if !domain::wait_dead(d, core::time::Duration::from_secs(5)).await {
            println!("kbench: {name} did not die");
            return None;
        }
        let dead = rdtsc();
        samples.push((
            (loaded - start) as f64,
            (called - loaded) as f64,
            (dead - called) as f64,
        ));
    }
    let median = |pick: fn(&(f64, f64, f64)) -> f64| {
        let mut v: alloc::vec::Vec<f64> = samples.iter().map(pick).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
        v[v.len() / 2]
    };
    Some((median(|s| s.0), median(|s| s.1), median(|s| s.2)))
}

/// Loading images from the signed boot archive (verify the digest, check
/// and plan the ELF, copy, relocate, map W^X, run the entry), the first call
/// through the name service, and kill + reclaim (unmap, TLB shootdown,
/// free): each image against the smallest one (`idle`), and the archive's
/// `idle` against the same domain linked into the kernel.
async fn image_loading() {
    const RUNS: usize = 9;
    let Ok(catalog) = domain::loaded::catalog() else {
        println!("kbench: no signed boot archive: image loading not measured");
        return;
    };
    let archive =
        |image: &'static str| move || domain::Source::Archive(alloc::string::String::from(image));
    let Some(null) = load_cycle(archive("idle"), "bench-null", RUNS).await else {
        return;
    };
    let builtin = images::image("idle").expect("idle image");
    if let Some(linked) =
        load_cycle(|| domain::Source::BuiltIn(builtin), "bench-linked", RUNS).await
    {
        report(
            "load idle from archive",
            "create + verify + map + relocate + init, vs the same domain linked into the kernel",
            null.0,
            "load idle built in",
            linked.0,
        );
    }
    for image in ["counter", "checksum", "client"] {
        let Ok(bytes) = catalog.image(image) else {
            continue;
        };
        let name = alloc::format!("bench-{image}");
        let Some(cycle) = load_cycle(archive(image), &name, RUNS).await else {
            continue;
        };
        let size = kcore::fmt::Bytes(bytes.len() as u64);
        report(
            &alloc::format!("load {image}"),
            &alloc::format!("{size} image: create + verify + map + relocate + init"),
            cycle.0,
            "load idle (null)",
            null.0,
        );
        report(
            &alloc::format!("first call {image}"),
            "name-service lookup + control call",
            cycle.1,
            "first call idle",
            null.1,
        );
        report(
            &alloc::format!("kill {image}"),
            "kill + grace period + reclaim (heap, RRefs, image pages, TLB shootdown)",
            cycle.2,
            "kill idle",
            null.2,
        );
    }
    let idle = catalog.image("idle").map_or(0, |b| b.len() as u64);
    println!(
        "kbench: idle image is {} ({} bytes)",
        kcore::fmt::Bytes(idle),
        idle
    );
}
