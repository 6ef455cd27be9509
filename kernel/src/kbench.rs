//! In-QEMU micro-benchmarks (`bench=1` on the kernel command line).
//!
//! Under TCG absolute times mean little, so each benchmark is reported next
//! to its baseline measured in the same boot, as a ratio. Variant and
//! baseline are measured in alternating rounds (the order flipping each
//! round, after an untimed warm-up of both), and each row gives the median
//! of the per-round ratios with their minimum, maximum and count: a ratio
//! taken from two measurements seconds apart moves with whatever the host
//! did in between. Output lines start with `kbench:` and the run ends with
//! `kbench: done`; `make bench` collects them into
//! `bench/results/qemu.json`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::hint::black_box;

use interfaces::control::Control;
use rrpc::{RRef, RpcResult};

use crate::arch::rdtsc;
use crate::domain;

const ITERATIONS: u64 = 20_000;
const SAMPLES: usize = 11;

/// Ticks per call of one sample of `ITERATIONS` calls of `f`.
fn sample(f: &mut dyn FnMut()) -> f64 {
    let start = rdtsc();
    for _ in 0..ITERATIONS {
        f();
    }
    (rdtsc() - start) as f64 / ITERATIONS as f64
}

/// `SAMPLES` rounds, each timing one sample of `measured` and one of
/// `baseline` (in flipping order), after a warm-up of both.
fn rounds(mut measured: impl FnMut(), mut baseline: impl FnMut()) -> Rounds {
    for _ in 0..1000 {
        measured();
        baseline();
    }
    let mut out = Rounds::default();
    for round in 0..SAMPLES {
        let (m, b) = if round % 2 == 0 {
            let m = sample(&mut measured);
            (m, sample(&mut baseline))
        } else {
            let b = sample(&mut baseline);
            (sample(&mut measured), b)
        };
        out.push(m, b);
    }
    out
}

/// Like [`rounds`], with every group of `INNER` calls made inside one
/// entry into `owner` (as code of that domain would run them); ticks per
/// call.
fn rounds_as(
    owner: executor::OwnerId,
    mut measured: impl FnMut(),
    mut baseline: impl FnMut(),
) -> Rounds {
    const INNER: u64 = 10;
    let group = |f: &mut dyn FnMut()| {
        let _ = domain::enter(owner, || {
            for _ in 0..INNER {
                f();
            }
        });
    };
    let mut r = rounds(|| group(&mut measured), || group(&mut baseline));
    for v in r.measured.iter_mut().chain(r.baseline.iter_mut()) {
        *v /= INNER as f64;
    }
    r
}

fn report(name: &str, workload: &str, measured: f64, baseline_name: &str, baseline: f64) {
    let ratio = measured / baseline.max(f64::MIN_POSITIVE);
    println!(
        "kbench: {name} | {workload} | {measured:.1} | {baseline_name} | {baseline:.1} | {ratio:.2}"
    );
    json_line(
        name,
        workload,
        measured,
        baseline_name,
        baseline,
        ratio,
        None,
    );
}

/// The row again as one JSON object on its own line (`kbench-json: {...}`),
/// for unattended runs on real machines read over a serial line.
fn json_line(
    name: &str,
    workload: &str,
    measured: f64,
    baseline_name: &str,
    baseline: f64,
    ratio: f64,
    range: Option<(f64, f64, usize)>,
) {
    let mut line = alloc::format!(
        "kbench-json: {{\"name\": \"{}\", \"workload\": \"{}\", \"ticks\": {measured:.1}, \
         \"baseline\": \"{}\", \"baseline_ticks\": {baseline:.1}, \"ratio\": {ratio:.3}",
        json_escape(name),
        json_escape(workload),
        json_escape(baseline_name)
    );
    if let Some((min, max, rounds)) = range {
        line.push_str(&alloc::format!(
            ", \"ratio_min\": {min:.3}, \"ratio_max\": {max:.3}, \"rounds\": {rounds}"
        ));
    }
    line.push('}');
    println!("{line}");
}

fn json_escape(text: &str) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&alloc::format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Per-round values of a variant and of its baseline, measured in the
/// same rounds.
#[derive(Default)]
struct Rounds {
    measured: alloc::vec::Vec<f64>,
    baseline: alloc::vec::Vec<f64>,
}

impl Rounds {
    fn push(&mut self, measured: f64, baseline: f64) {
        self.measured.push(measured);
        self.baseline.push(baseline);
    }

    /// Prints the row: medians of both sides, then the median, minimum and
    /// maximum of the per-round ratios and the number of rounds.
    fn report(&self, name: &str, workload: &str, baseline_name: &str) {
        let ratios: alloc::vec::Vec<f64> = self
            .measured
            .iter()
            .zip(&self.baseline)
            .map(|(m, b)| m / b.max(f64::MIN_POSITIVE))
            .collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "kbench: {name} | {workload} | {:.1} | {baseline_name} | {:.1} | {:.3} | {min:.3} | {max:.3} | {}",
            median(&self.measured),
            median(&self.baseline),
            median(&ratios),
            ratios.len()
        );
        json_line(
            name,
            workload,
            median(&self.measured),
            baseline_name,
            median(&self.baseline),
            median(&ratios),
            Some((min, max, ratios.len())),
        );
    }
}

/// Polls a future once with a no-op waker.
fn poll_once<F: core::future::Future>(future: F) -> Option<F::Output> {
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    match core::pin::pin!(future).poll(&mut cx) {
        core::task::Poll::Ready(value) => Some(value),
        core::task::Poll::Pending => None,
    }
}

/// An async method whose future is ready at its first poll.
#[rrpc::interface]
trait Ticker {
    async fn tick(&self, x: u64) -> RpcResult<u64>;
}

struct Tick;

impl Ticker for Tick {
    #[inline(never)]
    fn tick(&self, x: u64) -> rrpc::RpcFuture<'_, u64> {
        rrpc::RpcFuture::new(async move { Ok(x.wrapping_add(1)) })
    }
}

/// The archive's `idle` image (every benchmark domain comes from it).
fn archive_idle() -> domain::Source {
    domain::Source::Archive(alloc::string::String::from("idle"))
}

/// An async call from one domain into another whose future is ready at
/// once, against the same call on a local object; both run inside a caller
/// domain, so both futures come from domain heaps.
fn async_call(callee: executor::OwnerId) {
    let caller = match domain::create_from(archive_idle(), "bench-caller") {
        Ok(d) => d,
        Err(e) => {
            println!("kbench: cannot create the caller domain: {e}");
            return;
        }
    };
    let remote = domain::enter(callee, || Arc::new(Tick) as Arc<dyn Ticker + Send + Sync>);
    let local = domain::enter(caller.owner(), || {
        Arc::new(Tick) as Arc<dyn Ticker + Send + Sync>
    });
    if let (Ok(remote), Ok(local)) = (remote, local) {
        let proxy = TickerProxy::new(remote, crate::domain::entry_cap(callee));
        let proxy: &dyn Ticker = &proxy;
        let local: &dyn Ticker = &*local;
        rounds_as(
            caller.owner(),
            || {
                black_box(poll_once(black_box(proxy).tick(black_box(7))));
            },
            || {
                black_box(poll_once(black_box(local).tick(black_box(7))));
            },
        )
        .report(
            "async call (ready)",
            "generated proxy, from a caller domain: start, poll and drop of the callee's future in one entry",
            "same future, no proxy",
        );
        // The domain heap from inside the domain (groups of ten in one
        // entry), the kernel heap from the kernel (the same groups).
        let owner = caller.owner();
        let mut heap = rounds(
            || {
                let _ = domain::enter(owner, || {
                    for _ in 0..10 {
                        drop(black_box(Box::new(black_box([0u8; 64]))));
                    }
                });
            },
            || {
                for _ in 0..10 {
                    drop(black_box(Box::new(black_box([0u8; 64]))));
                }
            },
        );
        for v in heap.measured.iter_mut().chain(heap.baseline.iter_mut()) {
            *v /= 10.0;
        }
        heap.report(
            "domain heap alloc+free 64 B",
            "Box::new + drop inside a domain: global allocator routing, kernel section, per-core cache",
            "kernel heap",
        );
    }
    domain::kill(caller, "bench done");
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

/// The groups `bench=NAME` picks (`bench=1` or `bench=all`: every one).
pub const GROUPS: [&str; 4] = ["calls", "images", "block", "net"];

pub async fn run(selection: alloc::string::String) {
    let all = matches!(selection.as_str(), "" | "1" | "all");
    if !all && !GROUPS.contains(&selection.as_str()) {
        println!(
            "kbench: no benchmark '{selection}' (bench= takes one of {}, or all)",
            GROUPS.join(", ")
        );
        crate::power::finish(crate::power::EXIT_TESTS_FAILED)
    }
    let wants = |group: &str| all || selection == group;
    println!("kbench: name | workload | ticks | baseline | baseline ticks | ratio");
    if wants("calls") {
        calls();
    }
    if wants("images") {
        image_loading().await;
    }
    if wants("block") {
        block_io().await;
    }
    if wants("net") {
        packet_rates().await;
    }
    println!("kbench: done");
    crate::power::finish(crate::power::EXIT_TESTS_PASSED)
}

/// Crossing costs: proxy calls, continuations, entries, RRefs.
fn calls() {
    // A call into the `idle` domain's control interface through its
    // generated proxy, versus the same call through a plain trait object.
    let plain: Arc<dyn Control + Send + Sync> = Arc::new(Plain);
    let plain_call = || {
        black_box(black_box(&plain).control(2, black_box(7)).ok());
    };
    match domain::create_from(archive_idle(), "bench-idle") {
        Ok(d) => {
            let proxy = domain::proxy::<dyn Control + Send + Sync>("bench-idle/control").ok();
            if let Some(proxy) = proxy {
                rounds(
                    || {
                        black_box(black_box(&proxy).control(2, black_box(7)).ok());
                    },
                    plain_call,
                )
                .report(
                    "domain call",
                    "generated proxy call into a domain: alive check, owner switch, continuation, watchdog deadline",
                    "trait-object call",
                );
            }
            let owner = d.owner();
            rounds(
                || {
                    black_box(crate::catch::catch(|| black_box(7u64)).ok());
                },
                plain_call,
            )
            .report(
                "continuation only",
                "catch() of a closure returning a value: save and discard a continuation",
                "trait-object call",
            );
            rounds(
                || {
                    black_box(domain::enter(owner, || black_box(7u64)).ok());
                },
                plain_call,
            )
            .report(
                "domain entry (empty)",
                "domain::enter with an empty closure",
                "trait-object call",
            );
            // RRefs: allocation, and a call moving one in and back.
            rounds(
                || drop(black_box(RRef::new(black_box([0u8; 64])))),
                || drop(black_box(Box::new(black_box([0u8; 64])))),
            )
            .report(
                "RRef<[u8; 64]> alloc+drop",
                "RRef::new then drop (shared heap, registry)",
                "Box (kernel heap)",
            );
            if let Ok(object) =
                domain::enter(owner, || Arc::new(Bouncer) as Arc<dyn Bounce + Send + Sync>)
            {
                let bounce = BounceProxy::new(object, crate::domain::entry_cap(owner));
                let mut buffer = Some(RRef::new([7u8; 64]));
                let local = Bouncer;
                let local: &dyn Bounce = black_box(&local);
                let mut local_buffer = Some(RRef::new([7u8; 64]));
                rounds(
                    || {
                        if let Some(b) = buffer.take() {
                            buffer = bounce.bounce(b).ok();
                        }
                    },
                    || {
                        if let Some(b) = local_buffer.take() {
                            local_buffer = local.bounce(b).ok();
                        }
                    },
                )
                .report(
                    "call moving an RRef in and back",
                    "generated proxy: RRef argument to the callee, result back to the caller",
                    "trait-object call",
                );
            }
            async_call(owner);
            domain::kill(d, "bench done");
        }
        Err(e) => println!("kbench: cannot create a domain: {e}"),
    }
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
            domain::proxy::<dyn Control + Send + Sync>(&alloc::format!("{name}/control")).ok()?;
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
/// free): each image against the smallest one (`idle`). (No kernel links
/// domains any more, so there is no "linked in" baseline.)
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

// ---- block I/O (issue 5) ---------------------------------------------------------

use interfaces::bdev::{BDev, BDevProxy, Batch, Exerciser, Io, status};

/// A batch of `size` requests at pseudo-random blocks below `blocks`.
fn random_batch(size: usize, blocks: u64, x: &mut u64) -> RRef<Batch> {
    let mut batch = RRef::new(rrpc::RRefDeque::new());
    for _ in 0..size {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let _ = batch.push_back(RRef::new(Io::new(*x % blocks)));
    }
    batch
}

/// TSC ticks per 4 KiB request for `ops` requests in batches of `size`
/// through `bdev` (one pass); `None` if any request failed. Like the
/// driver's own loop, one batch is made up front and reused: it moves to
/// the callee and back with each call. The same blocks in every pass.
async fn ticks_per_io(
    bdev: &BDevProxy,
    write: bool,
    size: usize,
    ops: usize,
    blocks: u64,
) -> Option<f64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut batch = random_batch(size, blocks, &mut x);
    let start = rdtsc();
    for _ in 0..ops / size {
        for io in batch.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            io.block = x % blocks;
        }
        if write {
            let statuses = bdev.write(&batch).await.ok()?;
            if statuses[..batch.len()].iter().any(|&s| s != status::OK) {
                return None;
            }
        } else {
            batch = bdev.read(batch).await.ok()?;
            if batch.iter().any(|io| io.status != status::OK) {
                return None;
            }
        }
    }
    Some((rdtsc() - start) as f64 / ops as f64)
}

/// The same from inside the driver domain (no crossing per batch).
async fn ticks_direct(
    exerciser: &interfaces::bdev::ExerciserProxy,
    write: bool,
    size: usize,
    ops: usize,
) -> Option<f64> {
    let start = rdtsc();
    let ok = exerciser
        .run((ops / size) as u32, size as u32, write, 0x1234_5678)
        .await
        .ok()?;
    if ok != (ops / size * size) as u64 {
        return None;
    }
    Some((rdtsc() - start) as f64 / ops as f64)
}

/// Writes every block of the disk once, so that every variant meets the
/// same device state (a sparse image file allocates on first write).
async fn fill(bdev: &BDevProxy, blocks: u64) -> bool {
    let mut next = 0;
    while next < blocks {
        let mut batch = RRef::new(rrpc::RRefDeque::new());
        for block in next..(next + 32).min(blocks) {
            let _ = batch.push_back(RRef::new(Io::new(block)));
        }
        next += 32;
        match bdev.write(&batch).await {
            Ok(statuses) if statuses[..batch.len()].iter().all(|&s| s == status::OK) => {}
            _ => return false,
        }
    }
    true
}

/// Rounds of each block-I/O and packet comparison (each round measures
/// every variant once; the order flips every round). With 11, the median
/// ratio of some rows moved by up to ±5 % from one `make bench` to the
/// next on the Intel VM of session 12 (batch-32 NVMe writes, batch-1
/// writes, the 82576's batch-1 shadow); with 31 the batch-32 NVMe rows
/// held within ±2 % over three.
const IO_ROUNDS: usize = 31;

/// 4 KiB random reads and writes at batch 1 and 32: from inside the
/// driver domain (direct), through one domain crossing, through the
/// shadow (two), and the RAM disk through one, all in the same rounds;
/// then the shadow's throughput while the driver is crashed once per
/// second, against windows without crashes in between.
async fn block_io() {
    use alloc::string::String;
    if !crate::pci::functions()
        .iter()
        .any(|f| (f.header.class, f.header.subclass, f.header.prog_if) == (1, 8, 2))
    {
        println!("kbench: no NVMe controller: block I/O not measured");
        return;
    }
    let load = |image: &str, name: &str| {
        domain::create_from(domain::Source::Archive(String::from(image)), name)
    };
    let (Ok(driver), Ok(shadow), Ok(ram)) = (
        load("nvme", "nvme"),
        load("nvme-shadow", "nvme-shadow"),
        load("ramdisk", "bench-ram"),
    ) else {
        println!("kbench: cannot load the block domains");
        return;
    };
    let proxies = (
        domain::proxy::<dyn BDev + Send + Sync>("nvme/bdev"),
        domain::proxy::<dyn BDev + Send + Sync>("nvme-shadow/bdev"),
        domain::proxy::<dyn BDev + Send + Sync>("bench-ram/bdev"),
        domain::proxy::<dyn Exerciser + Send + Sync>("nvme/exerciser"),
    );
    let (Ok(direct_bdev), Ok(shadow_bdev), Ok(ram_bdev), Ok(exerciser)) = proxies else {
        println!("kbench: block domains export nothing");
        return;
    };
    let Ok(geometry) = direct_bdev.geometry().await else {
        println!("kbench: the NVMe driver did not start");
        return;
    };
    if !fill(&direct_bdev, geometry.blocks).await || !fill(&ram_bdev, ram_blocks()).await {
        println!("kbench: could not write the disks before measuring");
        return;
    }
    for write in [false, true] {
        let kind = if write { "write" } else { "read" };
        for size in [1usize, 32] {
            // Rounds of about 0.1 s per variant under TCG: shorter ones
            // swing with the host's scheduling of QEMU's threads.
            let ops = if size == 1 { 1024 } else { 8192 };
            let (mut crossing, mut shadowed, mut ramdisk) =
                (Rounds::default(), Rounds::default(), Rounds::default());
            let mut failed = false;
            // Round 0 is the untimed warm-up of every variant.
            for round in 0..=IO_ROUNDS {
                let mut t = [0f64; 4];
                let order = if round % 2 == 0 {
                    [0, 1, 2, 3]
                } else {
                    [3, 2, 1, 0]
                };
                for v in order {
                    let ticks = match v {
                        0 => ticks_direct(&exerciser, write, size, ops).await,
                        1 => ticks_per_io(&direct_bdev, write, size, ops, geometry.blocks).await,
                        2 => ticks_per_io(&shadow_bdev, write, size, ops, geometry.blocks).await,
                        _ => ticks_per_io(&ram_bdev, write, size, ops, ram_blocks()).await,
                    };
                    match ticks {
                        Some(ticks) => t[v] = ticks,
                        None => failed = true,
                    }
                }
                if failed {
                    break;
                }
                if round > 0 {
                    crossing.push(t[1], t[0]);
                    shadowed.push(t[2], t[0]);
                    ramdisk.push(t[3], t[1]);
                }
            }
            if failed {
                println!("kbench: a {kind} request failed at batch {size}");
                continue;
            }
            crossing.report(
                &alloc::format!("nvme {kind} b{size}: crossing"),
                "4 KiB random, ticks per request: one domain crossing per batch",
                "inside the driver",
            );
            shadowed.report(
                &alloc::format!("nvme {kind} b{size}: shadow"),
                "4 KiB random, ticks per request: through the shadow (two crossings)",
                "inside the driver",
            );
            ramdisk.report(
                &alloc::format!("ramdisk {kind} b{size}"),
                "4 KiB random, ticks per request: RAM disk, one crossing (upper bound)",
                "nvme, one crossing",
            );
        }
    }
    crash_throughput(&shadow_bdev, driver, geometry.blocks).await;
    for d in [shadow, driver, ram] {
        domain::kill(d, "bench done");
    }
}

fn ram_blocks() -> u64 {
    4096
}

/// Requests per second of the shadow's read/write mix with the driver
/// crashed once per second, against the same mix without crashes, in
/// alternating windows.
async fn crash_throughput(bdev: &BDevProxy, driver: &'static domain::Domain, blocks: u64) {
    use core::sync::atomic::{AtomicBool, Ordering};
    static STOP: AtomicBool = AtomicBool::new(false);
    const WINDOW_MS: u64 = 2000;
    const ROUNDS: usize = 5;
    let per_second = |ops: u64| ops as f64 * 1000.0 / WINDOW_MS as f64;
    let mut rounds = Rounds::default();
    let (mut crashes, mut stormy_errors, mut calm_errors) = (0, 0, 0);
    for round in 0..ROUNDS {
        let mut calm = 0.0;
        let mut stormy = 0.0;
        for stormy_first in [round % 2 == 1, round % 2 == 0] {
            if !stormy_first {
                let (ops, errors) = mix(bdev, blocks, WINDOW_MS).await;
                calm = per_second(ops);
                calm_errors += errors;
                continue;
            }
            STOP.store(false, Ordering::SeqCst);
            let crasher = crate::sched::spawn(async move {
                let mut crashes = 0;
                loop {
                    executor::sleep(core::time::Duration::from_millis(1000)).await;
                    if STOP.load(Ordering::SeqCst) {
                        break;
                    }
                    if domain::enter(driver.owner(), || {
                        crate::inject::trigger(crate::inject::Kind::Panic)
                    })
                    .is_err()
                    {
                        crashes += 1;
                    }
                }
                crashes
            });
            let (ops, errors) = mix(bdev, blocks, WINDOW_MS).await;
            STOP.store(true, Ordering::SeqCst);
            crashes += match crasher {
                Ok(handle) => handle.await.unwrap_or(0),
                Err(_) => 0,
            };
            stormy = per_second(ops);
            stormy_errors += errors;
            // The next window starts with the driver back (the shadow
            // restarts it on the next request).
            let _ = mix(bdev, blocks, 200).await;
            let until = crate::time::now_ns() + 5_000_000_000;
            while driver.state() != domain::State::Alive && crate::time::now_ns() < until {
                executor::sleep(core::time::Duration::from_millis(1)).await;
            }
        }
        rounds.push(stormy, calm);
    }
    rounds.report(
        "shadow, crash every 1 s",
        &alloc::format!(
            "requests/s of a 32-batch read/write mix while the driver crashes ({crashes} crashes in {ROUNDS} windows of {WINDOW_MS} ms; client errors {stormy_errors}, {calm_errors} without)"
        ),
        "no crashes",
    );
}

/// A 32-request write then read, repeated for `window_ms`: (requests that
/// completed OK, calls that failed).
async fn mix(bdev: &BDevProxy, blocks: u64, window_ms: u64) -> (u64, u64) {
    let end = crate::time::now_ns() + window_ms * 1_000_000;
    let mut x = 0x5151_5151u64;
    let (mut ops, mut errors) = (0u64, 0u64);
    while crate::time::now_ns() < end {
        for write in [true, false] {
            let batch = random_batch(32, blocks, &mut x);
            let done = if write {
                bdev.write(&batch).await.map(|s| {
                    s[..batch.len()]
                        .iter()
                        .filter(|&&s| s == status::OK)
                        .count()
                })
            } else {
                bdev.read(batch)
                    .await
                    .map(|b| b.iter().filter(|io| io.status == status::OK).count())
            };
            match done {
                Ok(n) => ops += n as u64,
                Err(_) => errors += 1,
            }
        }
    }
    (ops, errors)
}

// ---- packet rates (issue 15) ----------------------------------------------------

use interfaces::net::{Net, NetExerciser};

/// TSC ticks per frame of one [`interfaces::net::exercise`] run of
/// `frames` frames (per frame that came back, with loopback): `Some` only
/// if every frame was sent and, with loopback, at least 99 % came back.
fn ticks_per_frame(
    run: impl FnOnce() -> RpcResult<u64>,
    frames: u32,
    loopback: bool,
) -> Option<f64> {
    let start = rdtsc();
    let done = run().ok()?;
    let ticks = (rdtsc() - start) as f64;
    let enough = if loopback {
        done * 100 >= u64::from(frames) * 99
    } else {
        done >= u64::from(frames)
    };
    (enough && done > 0).then(|| ticks / done as f64)
}

/// 60-byte (64 on the wire) frames on QEMU's 82576 (`igb`), transmitted,
/// and transmitted then received back (the NIC's `dgram` netdev sends to
/// itself), at batch 1 and 32: the driver's own loop (direct), one domain
/// crossing per batch (the kernel calling `igb/net`), and through
/// `nic-shadow` (two crossings and, on transmit, the shadow's copy of
/// each frame), in alternating rounds. Needs `-device igb` on such a
/// netdev (tools/qemu-bench.py adds it).
async fn packet_rates() {
    use alloc::string::String;
    if !crate::pci::functions()
        .iter()
        .any(|f| (f.header.vendor, f.header.device) == (0x8086, 0x10c9))
    {
        println!("kbench: no 82576 NIC: packet rates not measured");
        return;
    }
    let load =
        |image: &str| domain::create_from(domain::Source::Archive(String::from(image)), image);
    let Ok(driver) = load("igb") else {
        println!("kbench: cannot load igb");
        return;
    };
    let (Ok(direct), Ok(exerciser)) = (
        domain::proxy::<dyn Net + Send + Sync>("igb/net"),
        domain::proxy::<dyn NetExerciser + Send + Sync>("igb/exerciser"),
    ) else {
        println!("kbench: igb exports no net/exerciser");
        return;
    };
    // The link comes up within a second or so of the reset.
    let until = crate::time::now_ns() + 5_000_000_000;
    while !direct.info().map(|i| i.link_up).unwrap_or(false) && crate::time::now_ns() < until {
        executor::sleep(core::time::Duration::from_millis(10)).await;
    }
    let Ok(shadow_domain) = load("nic-shadow") else {
        println!("kbench: cannot load nic-shadow");
        domain::kill(driver, "bench done");
        return;
    };
    let Ok(shadow) = domain::proxy::<dyn Net + Send + Sync>("nic-shadow/net") else {
        println!("kbench: nic-shadow exports no net");
        return;
    };
    for loopback in [false, true] {
        let kind = if loopback { "tx+rx" } else { "tx" };
        for batch in [1u32, 32] {
            // About 0.05 to 0.2 s per variant and round under TCG.
            let frames: u32 = if batch == 1 { 500 } else { 4000 };
            let (mut crossing, mut shadowed) = (Rounds::default(), Rounds::default());
            let mut failed = None;
            for round in 0..=IO_ROUNDS {
                let mut t = [0f64; 3];
                // Every order of the three in turn: each variant runs
                // first, second and last equally often (with two orders,
                // the crossing always ran between the other two).
                let order = [
                    [0, 1, 2],
                    [1, 2, 0],
                    [2, 0, 1],
                    [2, 1, 0],
                    [1, 0, 2],
                    [0, 2, 1],
                ][round % 6];
                for v in order {
                    let ticks = match v {
                        0 => ticks_per_frame(
                            || exerciser.run(0, frames, batch, loopback),
                            frames,
                            loopback,
                        ),
                        1 => ticks_per_frame(
                            || interfaces::net::exercise(&direct, 0, frames, batch, loopback),
                            frames,
                            loopback,
                        ),
                        _ => ticks_per_frame(
                            || interfaces::net::exercise(&shadow, 0, frames, batch, loopback),
                            frames,
                            loopback,
                        ),
                    };
                    match ticks {
                        Some(ticks) => t[v] = ticks,
                        None => failed = Some(["direct", "crossing", "shadow"][v]),
                    }
                }
                if failed.is_some() {
                    break;
                }
                // Round 0 is the untimed warm-up.
                if round > 0 {
                    crossing.push(t[1], t[0]);
                    shadowed.push(t[2], t[0]);
                }
            }
            if let Some(variant) = failed {
                println!(
                    "kbench: igb {kind} b{batch}: the {variant} run lost frames or failed; not measured"
                );
                continue;
            }
            let what = if loopback {
                "ticks per 64-byte frame sent and received back (two batches in flight)"
            } else {
                "ticks per 64-byte frame sent"
            };
            crossing.report(
                &alloc::format!("igb {kind} b{batch}: crossing"),
                &alloc::format!("{what}: one domain crossing per batch"),
                "inside the driver",
            );
            shadowed.report(
                &alloc::format!("igb {kind} b{batch}: shadow"),
                &alloc::format!("{what}: through nic-shadow"),
                "inside the driver",
            );
        }
    }
    domain::kill(shadow_domain, "bench done");
    domain::kill(driver, "bench done");
}
