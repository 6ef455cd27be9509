//! In-QEMU micro-benchmarks (`bench=1` on the kernel command line).
//!
//! Under TCG absolute times mean little, so each benchmark is reported next
//! to its baseline measured in the same boot, as a ratio. Output lines start
//! with `kbench:` and the run ends with `kbench: done`; `make bench` collects
//! them into `bench/results/qemu.json`.

use alloc::boxed::Box;
use core::hint::black_box;

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

impl images::Service for Plain {
    #[inline(never)]
    fn call(&self, _op: u32, arg: u64) -> u64 {
        arg
    }
}

pub async fn run() {
    println!("kbench: name | workload | ticks | baseline | baseline ticks | ratio");
    // Domain entry: a call into the `idle` domain's echo service versus
    // the same kind of call through a plain trait object.
    let plain: Box<dyn images::Service> = Box::new(Plain);
    let plain_ticks = median_ticks(|| {
        black_box(black_box(&plain).call(2, black_box(7)));
    });
    match domain::create(images::image("idle").expect("idle image"), "bench-idle") {
        Ok(d) => {
            let entry_ticks = median_ticks(|| {
                black_box(images::call(d, 2, black_box(7)).ok());
            });
            report(
                "domain call",
                "call into a domain's service: alive check, owner switch, continuation, watchdog deadline",
                entry_ticks,
                "trait-object call",
                plain_ticks,
            );
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
            domain::kill(d, "bench done");
        }
        Err(e) => println!("kbench: cannot create a domain: {e}"),
    }
    println!("kbench: done");
    crate::power::exit_qemu(crate::power::EXIT_TESTS_PASSED)
}
