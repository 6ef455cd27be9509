//! Fault campaigns ("storms"): many real faults injected into live domains
//! at random moments while verifying workloads run on every core, then a
//! check that nothing was lost: no data error, and after every domain is
//! killed, free frames, kernel heap and shared heap exactly as before.
//!
//! What the console's `storm` runs (and, through it, `make test` with 1,000
//! faults and `make soak` with 10,000).
//!
//! ## The domains and their workloads
//!
//! The storm loads its own set: `counter` and `checksum` (services),
//! `client` (a domain calling both, checking every digest itself),
//! `ramdisk`, and, when the machine has an NVMe controller, `nvme` under
//! `nvme-shadow`. On every core, kernel tasks drive them without pause:
//!
//! - checksum: a page moved in to be filled and moved back (every byte
//!   compared with the pattern), lent for a digest (compared with our own),
//!   and every fourth round a batch of four pages moved through an async
//!   call and back (digest and every byte compared);
//! - counter: each value must be larger than the last one this task saw
//!   from the same incarnation; every eighth call is an async one;
//! - ramdisk and NVMe (through the shadow): a batch of eight blocks written
//!   with a fresh pattern, read back, every byte compared, each core in a
//!   region of its own.
//!
//! A call refused because its callee crashed is expected (counted, the
//! task looks the service up again); wrong bytes in a successful answer
//! are a *data error*. A proxy is bound to one incarnation, so a restarted
//! RAM disk (empty) can never be read through a proxy that wrote to the
//! old one.
//!
//! ## Injection
//!
//! One injector per target domain picks a fault kind (all seven of
//! `inject::Kind`) and a random delay, then *arms* it for the target's
//! current incarnation. The next timer tick that interrupts that
//! incarnation's own code (under its continuation, outside any kernel
//! service: the moments the watchdog may already stop it) sends it into
//! `inject::fault_trampoline`, so the fault happens at whatever instruction
//! the domain was at: "mid-code". If no tick lands in the domain within
//! [`ARM_WAIT`] (a domain that rarely runs, like `client`), the injector
//! disarms and raises the fault by entering the domain itself ("at
//! entry"). Either way the fault is real (a CPU exception, a panic, a
//! runaway loop stopped by the watchdog) and must be contained by the
//! domain's own continuation.
//!
//! After the fault the injector waits for the crash to be recorded, then
//! restarts the domain, except the NVMe driver, which its shadow restarts
//! (the recovery latency is from the crash to the first request that was
//! in flight at the crash and then succeeded: the shadow's re-issue).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use executor::OwnerId;
use interfaces::bdev::{BDev, BDevProxy, Batch, status};
use interfaces::checksum::{self, Checksum, ChecksumProxy};
use interfaces::counter::{Counter, CounterProxy};
use rrpc::{RRef, RRefDeque, RpcError};

use crate::arch::idt::TrapFrame;
use crate::blk::{batch_of, pattern};
use crate::domain::{self, Domain, Source, State};
use crate::inject::{self, Kind};
use crate::{cpu, mem, sched, serial, time};

/// How long an armed fault waits for a tick inside its domain before the
/// injector raises it at entry instead.
pub const ARM_WAIT: Duration = Duration::from_millis(15);
/// Longest wait for a crash to be recorded or a domain to come back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// Blocks per batch in the block workloads.
const BATCH_BLOCKS: u64 = 8;
/// Faults in the warm-up pass.
const WARM_UP_FAULTS: u64 = 30;
/// A storm with neither a fault done nor a workload round for this long
/// is stopped as hung.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Recovery-latency samples kept (later ones are counted, not kept).
const MAX_SAMPLES: usize = 16_384;

/// Where faults go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Counter,
    Checksum,
    Client,
    Ramdisk,
    Nvme,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Counter,
        Target::Checksum,
        Target::Client,
        Target::Ramdisk,
        Target::Nvme,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Counter => "counter",
            Target::Checksum => "checksum",
            Target::Client => "client",
            Target::Ramdisk => "ramdisk",
            Target::Nvme => "nvme",
        }
    }

    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The domains a storm loads (image, name), in load order: services
/// before their clients, the driver before its shadow.
const DOMAINS: [(&str, &str); 6] = [
    ("counter", "counter"),
    ("checksum", "checksum"),
    ("ramdisk", "ramdisk"),
    ("nvme", "nvme"),
    ("nvme-shadow", "nvme-shadow"),
    ("client", "client"),
];

pub struct Plan {
    pub faults: u64,
    pub targets: Vec<Target>,
    pub seed: u64,
    /// Arm faults for the timer tick (mid-code) before falling back to
    /// raising them at entry; false: at entry only.
    pub mid_code: bool,
}

/// What a storm found. Counts are since its start.
#[derive(Default)]
pub struct Report {
    pub faults: u64,
    pub mid_code: u64,
    pub at_entry: u64,
    pub contained: u64,
    pub not_contained: u64,
    /// Crashes nobody injected (a domain failing because another did).
    pub unexpected_crashes: u64,
    pub by_kind: [u64; 7],
    pub by_target: [u64; 5],
    pub rounds: u64,
    pub bytes_verified: u64,
    pub data_errors: u64,
    pub refused_calls: u64,
    pub io_errors: u64,
    /// Errors the shadow passed to its clients (it gives up after several
    /// failed attempts in a row).
    pub shadow_errors: u64,
    /// Digest mismatches the `client` domain counted itself.
    pub client_mismatches: u64,
    pub recovery_ns: Vec<u64>,
    pub restart_ns: Vec<u64>,
    /// Mean time from a fault to its crash recorded (all targets), and,
    /// for the domains the storm restarts, from then to reclaimed and the
    /// restart itself.
    pub phase_mean_ns: [u64; 3],
    pub stuck_workloads: usize,
    pub frames: (u64, u64),
    pub heap: (u64, u64),
    /// Of the kernel heap in use: the shared heap's pool bookkeeping
    /// (grows with the pool, kept with it).
    pub pool_bookkeeping: (u64, u64),
    pub heap_size: (u64, u64),
    /// Kernel-heap size classes whose live count changed: (class, before,
    /// after).
    pub heap_classes: Vec<(usize, i64, i64)>,
    pub shared: (u64, u64),
    pub shared_pages: (u64, u64),
    /// Page-table frames (CPU and IOMMU; never freed, grow with mappings).
    pub tables: (u64, u64),
    /// Free frames, kernel heap and shared heap in use before the warm-up
    /// loaded anything.
    pub first_load: (u64, u64, u64),
    pub nvme: bool,
    pub seconds: u64,
    /// Why the campaign stopped early, if it did.
    pub aborted: Option<&'static str>,
}

impl Report {
    /// Frames that went missing and are not the shared heap's or the
    /// kernel heap's pools growing (both keep their pages for reuse).
    pub fn frames_unaccounted(&self) -> i64 {
        let consumed = self.frames.0 as i64 - self.frames.1 as i64;
        let pools = (self.shared_pages.1 as i64 - self.shared_pages.0 as i64)
            + (self.tables.1 as i64 - self.tables.0 as i64)
            + (self.heap_size.1 as i64 - self.heap_size.0 as i64) / mem::PAGE_SIZE as i64;
        consumed - pools
    }

    pub fn bytes_leaked(&self) -> u64 {
        let pool = self.pool_bookkeeping.1 as i64 - self.pool_bookkeeping.0 as i64;
        (self.heap.1 as i64 - self.heap.0 as i64 - pool).unsigned_abs()
            + (self.shared.1 as i64 - self.shared.0 as i64).unsigned_abs()
            + self.frames_unaccounted().unsigned_abs() * mem::PAGE_SIZE
    }

    pub fn ok(&self) -> bool {
        self.aborted.is_none()
            && self.not_contained == 0
            && self.unexpected_crashes == 0
            && self.data_errors == 0
            && self.client_mismatches == 0
            && self.stuck_workloads == 0
            && self.bytes_leaked() == 0
    }

    pub fn print(&self) {
        let targets: Vec<&str> = Target::ALL
            .iter()
            .zip(self.by_target)
            .filter(|&(_, n)| n > 0)
            .map(|(t, _)| t.name())
            .collect();
        println!(
            "storm: {} faults in {} s on {} cores ({} mid-code, {} at entry) into {}",
            self.faults,
            self.seconds,
            cpu::count(),
            self.mid_code,
            self.at_entry,
            targets.join(", ")
        );
        print!("storm: kinds:");
        for (kind, n) in Kind::ALL.iter().zip(self.by_kind) {
            print!(" {} {n}", kind.name());
        }
        print!("; targets:");
        for (target, n) in Target::ALL.iter().zip(self.by_target) {
            print!(" {} {n}", target.name());
        }
        println!();
        println!(
            "storm: contained {} of {}; {} not contained; {} crashes nobody injected",
            self.contained, self.faults, self.not_contained, self.unexpected_crashes
        );
        println!(
            "storm: workloads: {} rounds, {} bytes compared, {} data errors, {} client digest mismatches; {} calls refused by crashed callees, {} I/O errors, {} errors through the shadow{}",
            self.rounds,
            self.bytes_verified,
            self.data_errors,
            self.client_mismatches,
            self.refused_calls,
            self.io_errors,
            self.shadow_errors,
            if self.stuck_workloads > 0 {
                alloc::format!("; {} workloads STUCK", self.stuck_workloads)
            } else {
                alloc::string::String::new()
            }
        );
        let (m, p) = percentiles(&self.recovery_ns);
        if self.nvme {
            println!(
                "storm: recovery (nvme crash to the shadow's first successful re-issued request): median {} us, p99 {} us ({} samples)",
                m / 1000,
                p / 1000,
                self.recovery_ns.len()
            );
        } else {
            println!("storm: no NVMe controller: the driver and its shadow were not part of it");
        }
        let (rm, rp) = percentiles(&self.restart_ns);
        println!(
            "storm: restart (crash to the next incarnation started, other domains): median {} us, p99 {} us ({} samples)",
            rm / 1000,
            rp / 1000,
            self.restart_ns.len()
        );
        println!(
            "storm: mean time from a fault to its crash recorded {} us; then to the incarnation reclaimed {} us; restart {} us",
            self.phase_mean_ns[0] / 1000,
            self.phase_mean_ns[1] / 1000,
            self.phase_mean_ns[2] / 1000
        );
        println!(
            "storm: memory after every domain was killed: free frames {} -> {} (shared-heap pool {} -> {} pages, page tables {} -> {} frames, kernel heap {} -> {} B mapped), kernel heap {} -> {} B in use (the pool's bookkeeping {} -> {} B of it), shared heap {} -> {} B in use",
            self.frames.0,
            self.frames.1,
            self.shared_pages.0,
            self.shared_pages.1,
            self.tables.0,
            self.tables.1,
            self.heap_size.0,
            self.heap_size.1,
            self.heap.0,
            self.heap.1,
            self.pool_bookkeeping.0,
            self.pool_bookkeeping.1,
            self.shared.0,
            self.shared.1
        );
        println!(
            "storm: since before the warm-up's first load: free frames {} -> {}, kernel heap {} -> {} B in use, shared heap {} -> {} B (kept: domain records, pools sized by the warm-up)",
            self.first_load.0,
            self.frames.1,
            self.first_load.1,
            self.heap.1,
            self.first_load.2,
            self.shared.1
        );
        for &(class, before, after) in &self.heap_classes {
            println!(
                "storm:   kernel-heap objects of {}..{} B: {before} -> {after}",
                class * 16,
                class * 16 + 15
            );
        }
        if let Some(why) = self.aborted {
            println!("storm: ABORTED: {why}");
        }
        println!(
            "storm: summary faults={} contained={} data_errors={} leaked_bytes={} unexpected_crashes={} stuck={} recovery_median_us={} recovery_p99_us={} result={}",
            self.faults,
            self.contained,
            self.data_errors + self.client_mismatches,
            self.bytes_leaked(),
            self.unexpected_crashes,
            self.stuck_workloads,
            m / 1000,
            p / 1000,
            if self.ok() { "ok" } else { "FAILED" }
        );
    }
}

/// Median and 99th percentile (nearest rank) of `samples`.
fn percentiles(samples: &[u64]) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = |q: usize| sorted[((sorted.len() * q).div_ceil(100)).clamp(1, sorted.len()) - 1];
    (rank(50), rank(99))
}

// ---- armed faults, fired from the timer interrupt ----

/// Armed faults: `owner bits << 8 | kind index + 1`, 0 when free.
static ARMED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
/// When each armed fault fired (ns since boot), 0 while it has not.
static FIRED_AT: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static ANY_ARMED: AtomicUsize = AtomicUsize::new(0);

/// From the timer interrupt (see `catch::check_budget`), when it
/// interrupted `owner`'s code under its continuation (pushed by
/// `frame_owner`) outside any kernel service: if a fault is armed for
/// `owner`, make the interrupted code raise it as soon as the interrupt
/// returns.
pub(crate) fn on_tick(frame: &mut TrapFrame, owner: OwnerId, frame_owner: OwnerId) {
    // Only inside the incarnation's own frame: just before its entry
    // pushes the frame, or just after it pops it, the current owner is
    // already (or still) the callee while a failure would resume the
    // caller's frame and be charged to the caller.
    if ANY_ARMED.load(Ordering::Relaxed) == 0 || owner == OwnerId::KERNEL || frame_owner != owner {
        return;
    }
    let bits = u64::from(owner.to_bits()) << 8;
    for (slot, fired) in ARMED.iter().zip(&FIRED_AT) {
        let armed = slot.load(Ordering::Acquire);
        if armed != 0
            && armed & !0xFF == bits
            && slot
                .compare_exchange(armed, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            fired.store(time::now_ns().max(1), Ordering::Release);
            frame.rdi = (armed & 0xFF) - 1;
            frame.rip = inject::fault_trampoline as extern "C" fn() as usize as u64;
            return;
        }
    }
}

fn arm(index: usize, owner: OwnerId, kind: Kind) {
    FIRED_AT[index].store(0, Ordering::Release);
    ANY_ARMED.fetch_add(1, Ordering::AcqRel);
    ARMED[index].store(
        u64::from(owner.to_bits()) << 8 | (kind.index() as u64 + 1),
        Ordering::Release,
    );
}

/// Arms `kind` for `owner` in the last slot (no storm uses it) until the
/// guard drops: for the test of [`on_tick`].
#[cfg(feature = "ktest")]
pub fn arm_for_test(owner: OwnerId, kind: Kind) -> impl Drop {
    struct Disarm;
    impl Drop for Disarm {
        fn drop(&mut self) {
            disarm(ARMED.len() - 1);
        }
    }
    arm(ARMED.len() - 1, owner, kind);
    Disarm
}

/// Takes the fault back unless it already fired; returns when it fired.
fn disarm(index: usize) -> Option<u64> {
    let armed = ARMED[index].swap(0, Ordering::AcqRel);
    ANY_ARMED.fetch_sub(1, Ordering::AcqRel);
    if armed != 0 {
        return None;
    }
    // It fired: the interrupt stores the time right after taking it.
    loop {
        let at = FIRED_AT[index].load(Ordering::Acquire);
        if at != 0 {
            return Some(at);
        }
        core::hint::spin_loop();
    }
}

// ---- where each storm task is (for a report on one that hangs) ----

/// Injector phases.
const INJECTOR_PHASES: [&str; 8] = [
    "done",
    "waiting for its domain to be alive",
    "waiting a random delay",
    "armed, waiting for a tick in the domain",
    "raising the fault at entry",
    "waiting for the crash to be recorded",
    "waiting for the shadow to serve again",
    "waiting for the domain to be reclaimed",
];
/// Workload phases.
const WORKLOAD_PHASES: [&str; 4] = ["done", "connecting", "in a call", "between rounds"];
/// Per injector (target index) and per workload (core * 4 + kind).
static INJECTOR_AT: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];
static WORKLOAD_AT: [AtomicUsize; 4 * cpu::MAX_CPUS] =
    [const { AtomicUsize::new(0) }; 4 * cpu::MAX_CPUS];

fn injector_at(index: usize, phase: usize) {
    INJECTOR_AT[index].store(phase, Ordering::Relaxed);
}

/// Prints every storm task that has not finished, and where it is.
fn print_unfinished() {
    for (i, at) in INJECTOR_AT.iter().enumerate() {
        let phase = at.load(Ordering::Relaxed);
        if phase != 0 {
            println!(
                "storm:   injector for {}: {}",
                Target::ALL[i].name(),
                INJECTOR_PHASES[phase]
            );
        }
    }
    for (i, at) in WORKLOAD_AT.iter().enumerate() {
        let phase = at.load(Ordering::Relaxed);
        if phase != 0 {
            println!(
                "storm:   {} workload on core {}: {}",
                ["checksum", "counter", "ramdisk", "nvme"][i % 4],
                i / 4,
                WORKLOAD_PHASES[phase]
            );
        }
    }
}

// ---- stalled cores (for the report on a storm that hangs) ----

/// Per core: polls seen at the last tick, the tick they last changed, and
/// where the core was when it had gone a second without a poll.
static SEEN_POLLS: [AtomicU64; cpu::MAX_CPUS] = [const { AtomicU64::new(0) }; cpu::MAX_CPUS];
static SEEN_AT: [AtomicU64; cpu::MAX_CPUS] = [const { AtomicU64::new(0) }; cpu::MAX_CPUS];
static STALL_RIP: [AtomicU64; cpu::MAX_CPUS] = [const { AtomicU64::new(0) }; cpu::MAX_CPUS];

/// From every timer tick while a storm runs: notes where a core is that
/// has polled nothing for a second (a task spinning, say).
pub(crate) fn watch_stall(frame: &TrapFrame, ticks: u64) {
    if !RUNNING.load(Ordering::Relaxed) {
        return;
    }
    let cpu = cpu::current();
    let polls = cpu.polls.load(Ordering::Relaxed);
    let i = cpu.index;
    if SEEN_POLLS[i].swap(polls, Ordering::Relaxed) != polls {
        SEEN_AT[i].store(ticks, Ordering::Relaxed);
    } else if ticks.saturating_sub(SEEN_AT[i].load(Ordering::Relaxed)) > time::tick_hz() {
        STALL_RIP[i].store(frame.rip, Ordering::Relaxed);
    }
}

fn print_stalls() {
    for c in cpu::all() {
        let rip = STALL_RIP[c.index].swap(0, Ordering::Relaxed);
        if rip != 0 {
            println!(
                "storm:   cpu {} went a second without a poll, at rip {rip:#x}",
                c.index
            );
        }
    }
}

// ---- shared counters (one storm at a time) ----

static RUNNING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

struct Counters {
    faults: AtomicU64,
    mid_code: AtomicU64,
    at_entry: AtomicU64,
    contained: AtomicU64,
    not_contained: AtomicU64,
    by_kind: [AtomicU64; 7],
    by_target: [AtomicU64; 5],
    rounds: AtomicU64,
    bytes: AtomicU64,
    data_errors: AtomicU64,
    refused: AtomicU64,
    io_errors: AtomicU64,
    shadow_errors: AtomicU64,
    client_mismatches: AtomicU64,
    /// Successful requests through the shadow (the NVMe injector waits
    /// for one after each crash before the next).
    nvme_ok: AtomicU64,
    recovery: [AtomicU64; MAX_SAMPLES],
    recovery_count: AtomicUsize,
    restart: [AtomicU64; MAX_SAMPLES],
    restart_count: AtomicUsize,
    /// Time from the fault to the crash recorded, to the incarnation
    /// reclaimed, and the restart itself (domains the storm restarts).
    phases: [AtomicU64; 3],
    /// The last NVMe crash: its time, and a sequence number; `sampled` is
    /// the last sequence number whose recovery was measured.
    nvme_crash_ns: AtomicU64,
    nvme_crash_seq: AtomicU64,
    nvme_sampled: AtomicU64,
    aborted: spin::Mutex<Option<&'static str>>,
}

static C: Counters = Counters {
    faults: AtomicU64::new(0),
    mid_code: AtomicU64::new(0),
    at_entry: AtomicU64::new(0),
    contained: AtomicU64::new(0),
    not_contained: AtomicU64::new(0),
    by_kind: [const { AtomicU64::new(0) }; 7],
    by_target: [const { AtomicU64::new(0) }; 5],
    rounds: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
    data_errors: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    io_errors: AtomicU64::new(0),
    shadow_errors: AtomicU64::new(0),
    client_mismatches: AtomicU64::new(0),
    nvme_ok: AtomicU64::new(0),
    recovery: [const { AtomicU64::new(0) }; MAX_SAMPLES],
    recovery_count: AtomicUsize::new(0),
    restart: [const { AtomicU64::new(0) }; MAX_SAMPLES],
    restart_count: AtomicUsize::new(0),
    phases: [const { AtomicU64::new(0) }; 3],
    nvme_crash_ns: AtomicU64::new(0),
    nvme_crash_seq: AtomicU64::new(0),
    nvme_sampled: AtomicU64::new(0),
    aborted: spin::Mutex::new(None),
};

fn reset() {
    let all = [
        &C.faults,
        &C.mid_code,
        &C.at_entry,
        &C.contained,
        &C.not_contained,
        &C.rounds,
        &C.bytes,
        &C.data_errors,
        &C.refused,
        &C.io_errors,
        &C.shadow_errors,
        &C.client_mismatches,
        &C.nvme_ok,
        &C.nvme_crash_ns,
        &C.nvme_crash_seq,
        &C.nvme_sampled,
    ];
    for counter in all
        .into_iter()
        .chain(&C.by_kind)
        .chain(&C.by_target)
        .chain(&C.phases)
    {
        counter.store(0, Ordering::SeqCst);
    }
    C.recovery_count.store(0, Ordering::SeqCst);
    C.restart_count.store(0, Ordering::SeqCst);
    *C.aborted.lock() = None;
    STOP.store(false, Ordering::SeqCst);
    for kept in &UNEXPECTED {
        kept.lock().2 = 0;
    }
}

fn abort(why: &'static str) {
    C.aborted.lock().get_or_insert(why);
    STOP.store(true, Ordering::SeqCst);
}

fn push_sample(samples: &[AtomicU64; MAX_SAMPLES], count: &AtomicUsize, value: u64) {
    let i = count.fetch_add(1, Ordering::AcqRel);
    if let Some(slot) = samples.get(i) {
        slot.store(value, Ordering::Release);
    }
}

fn samples(samples: &[AtomicU64; MAX_SAMPLES], count: &AtomicUsize) -> Vec<u64> {
    let n = count.load(Ordering::Acquire).min(MAX_SAMPLES);
    samples[..n]
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .collect()
}

fn data_error(what: core::fmt::Arguments) {
    if C.data_errors.fetch_add(1, Ordering::SeqCst) < 5 {
        println!("storm: DATA ERROR: {what}");
    }
}

/// What one workload round ended with.
enum Round {
    /// Bytes compared.
    Ok(u64),
    /// A call failed (its callee crashed or is restarting): not an error.
    Refused,
    /// The device answered with an error status.
    Io,
    /// Wrong bytes or values in a successful answer (already reported).
    Data,
}

impl From<RpcError> for Round {
    fn from(_: RpcError) -> Round {
        Round::Refused
    }
}

// ---- workloads ----

async fn checksum_round(p: &ChecksumProxy, seed: u32, n: u64) -> Round {
    let block = match p.fill(RRef::new([0u8; 4096]), seed) {
        Ok(block) => block,
        Err(e) => return e.into(),
    };
    if let Some(i) = (0..block.len()).find(|&i| block[i] != checksum::pattern(seed, i)) {
        data_error(format_args!(
            "checksum fill (seed {seed}) byte {i}: {:#x}, expected {:#x}",
            block[i],
            checksum::pattern(seed, i)
        ));
        return Round::Data;
    }
    let expected = checksum::digest(&block[..]);
    match p.digest(&block) {
        Ok(digest) if digest == expected => {}
        Ok(digest) => {
            data_error(format_args!(
                "checksum digest {digest:#x}, expected {expected:#x}"
            ));
            return Round::Data;
        }
        Err(e) => return e.into(),
    }
    let mut bytes = 4096;
    if n.is_multiple_of(4) {
        let mut batch = RRef::new(RRefDeque::new());
        let mut combined = 0;
        for i in 0..4u32 {
            let mut page = RRef::new([0u8; 4096]);
            for (j, byte) in page.iter_mut().enumerate() {
                *byte = checksum::pattern(seed.wrapping_add(i), j);
            }
            combined = checksum::combine(combined, checksum::digest(&page[..]));
            let _ = batch.push_back(page);
        }
        let (batch, digest) = match p.digest_batch(batch).await {
            Ok(answer) => answer,
            Err(e) => return e.into(),
        };
        if digest != combined || batch.len() != 4 {
            data_error(format_args!(
                "checksum batch digest {digest:#x} of {} pages, expected {combined:#x} of 4",
                batch.len()
            ));
            return Round::Data;
        }
        for (i, page) in batch.iter().enumerate() {
            let seed = seed.wrapping_add(i as u32);
            if let Some(j) = (0..page.len()).find(|&j| page[j] != checksum::pattern(seed, j)) {
                data_error(format_args!(
                    "checksum batch page {i} byte {j} changed on its way back"
                ));
                return Round::Data;
            }
        }
        bytes += 4 * 4096;
    }
    Round::Ok(bytes)
}

async fn counter_round(p: &CounterProxy, last: &mut u64, n: u64) -> Round {
    let value = match p.increment() {
        Ok(value) => value,
        Err(e) => return e.into(),
    };
    if value <= *last {
        data_error(format_args!(
            "counter went from {} to {value} in one incarnation",
            *last
        ));
        return Round::Data;
    }
    *last = value;
    if n.is_multiple_of(8)
        && let Err(e) = p.wait_ticks(1).await
    {
        return e.into();
    }
    Round::Ok(8)
}

/// Write a batch with a fresh pattern, read it back, compare every byte.
/// `timed`: record NVMe recovery samples.
async fn block_round(p: &BDevProxy, blocks: &[u64], seed: u64, timed: bool) -> Round {
    let batch = batch_of(blocks, Some(seed));
    let statuses = match timed_call(timed, p.write(&batch)).await {
        Ok(statuses) => statuses,
        Err(e) => return e.into(),
    };
    if statuses[..blocks.len()].iter().any(|&s| s != status::OK) {
        return Round::Io;
    }
    if let Some(io) = batch
        .iter()
        .find(|io| (0..io.data.len()).any(|i| io.data[i] != pattern(io.block, seed, i)))
    {
        data_error(format_args!(
            "a write batch lent to {} came back changed (block {})",
            if timed { "the shadow" } else { "the ramdisk" },
            io.block
        ));
        return Round::Data;
    }
    drop(batch);
    let read: RRef<Batch> = match timed_call(timed, p.read(batch_of(blocks, None))).await {
        Ok(read) => read,
        Err(e) => return e.into(),
    };
    if read.len() != blocks.len() {
        data_error(format_args!(
            "read batch of {} came back with {}",
            blocks.len(),
            read.len()
        ));
        return Round::Data;
    }
    for (io, &block) in read.iter().zip(blocks) {
        if io.status != status::OK {
            return Round::Io;
        }
        if io.block != block {
            data_error(format_args!("asked for block {block}, got {}", io.block));
            return Round::Data;
        }
        if let Some(i) = (0..io.data.len()).find(|&i| io.data[i] != pattern(block, seed, i)) {
            data_error(format_args!(
                "{} block {block} byte {i}: read {:#x}, wrote {:#x}",
                if timed { "nvme" } else { "ramdisk" },
                io.data[i],
                pattern(block, seed, i)
            ));
            return Round::Data;
        }
    }
    Round::Ok(2 * blocks.len() as u64 * interfaces::bdev::BLOCK as u64)
}

/// Runs one request; through the shadow (`timed`), a request that was in
/// flight when the driver crashed and then succeeded is the shadow's
/// re-issue: the first one after each crash gives a recovery sample.
async fn timed_call<T>(timed: bool, call: impl core::future::Future<Output = T>) -> T {
    let start = time::now_ns();
    let result = call.await;
    if timed {
        let end = time::now_ns();
        let seq = C.nvme_crash_seq.load(Ordering::Acquire);
        let at = C.nvme_crash_ns.load(Ordering::Acquire);
        let sampled = C.nvme_sampled.load(Ordering::Acquire);
        if seq != 0
            && sampled != seq
            && start <= at
            && at <= end
            && C.nvme_sampled
                .compare_exchange(sampled, seq, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            push_sample(&C.recovery, &C.recovery_count, end - at);
        }
    }
    result
}

#[derive(Clone, Copy)]
#[repr(usize)]
enum Workload {
    Checksum,
    Counter,
    Ramdisk,
    Nvme,
}

/// The connection a workload holds (bound to one incarnation).
enum Peer {
    Checksum(ChecksumProxy),
    Counter(CounterProxy, u64),
    Block(BDevProxy, u64),
}

async fn connect(w: Workload) -> Result<Peer, RpcError> {
    Ok(match w {
        Workload::Checksum => Peer::Checksum(domain::proxy::<dyn Checksum + Send + Sync>(
            "checksum/checksum",
        )?),
        Workload::Counter => Peer::Counter(
            domain::proxy::<dyn Counter + Send + Sync>("counter/counter")?,
            0,
        ),
        Workload::Ramdisk | Workload::Nvme => {
            let name = if matches!(w, Workload::Nvme) {
                "nvme-shadow/bdev"
            } else {
                "ramdisk/bdev"
            };
            let p = domain::proxy::<dyn BDev + Send + Sync>(name)?;
            let blocks = p.geometry().await?.blocks;
            Peer::Block(p, blocks)
        }
    })
}

async fn workload(w: Workload, core: usize, cores: usize) {
    let at = &WORKLOAD_AT[core * 4 + w as usize];
    let mut peer: Option<Peer> = None;
    let mut n = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        n += 1;
        if peer.is_none() {
            at.store(1, Ordering::Relaxed);
            match connect(w).await {
                Ok(p) => peer = Some(p),
                Err(_) => {
                    if matches!(w, Workload::Nvme) {
                        // The shadow itself is never a target.
                        C.shadow_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    executor::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            }
        }
        let seed = (n << 8) | core as u64;
        at.store(2, Ordering::Relaxed);
        let round = match peer.as_mut().expect("connected above") {
            Peer::Checksum(p) => checksum_round(p, seed as u32, n).await,
            Peer::Counter(p, last) => counter_round(p, last, n).await,
            Peer::Block(p, device_blocks) => {
                // Each core in a region of its own.
                let region = (*device_blocks / cores as u64).max(BATCH_BLOCKS);
                let slots = (region / BATCH_BLOCKS).max(1);
                let first = core as u64 * region + (n % slots) * BATCH_BLOCKS;
                let blocks: Vec<u64> = (first..first + BATCH_BLOCKS)
                    .filter(|&b| b < *device_blocks)
                    .collect();
                block_round(p, &blocks, seed, matches!(w, Workload::Nvme)).await
            }
        };
        match round {
            Round::Ok(bytes) => {
                C.rounds.fetch_add(1, Ordering::Relaxed);
                C.bytes.fetch_add(bytes, Ordering::Relaxed);
                if matches!(w, Workload::Nvme) {
                    C.nvme_ok.fetch_add(1, Ordering::Release);
                }
            }
            Round::Refused => {
                if matches!(w, Workload::Nvme) {
                    C.shadow_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    C.refused.fetch_add(1, Ordering::Relaxed);
                }
                peer = None;
            }
            Round::Io => {
                C.io_errors.fetch_add(1, Ordering::Relaxed);
            }
            Round::Data => peer = None,
        }
        at.store(3, Ordering::Relaxed);
        executor::yield_now().await;
    }
    drop(peer);
    at.store(0, Ordering::Relaxed);
    ACTIVE.fetch_sub(1, Ordering::AcqRel);
}

/// Reads the `client` domain's own count of digest mismatches, per
/// incarnation, while the storm runs.
async fn watch_client() {
    let mut seen: Option<(u32, u64)> = None;
    let mut total = 0;
    while !STOP.load(Ordering::Relaxed) {
        executor::sleep(Duration::from_millis(50)).await;
        let Some(client) = domain::find("client") else {
            continue;
        };
        let generation = client.generation();
        if let Ok(mismatches) = domain::call(client, 3, 0) {
            match seen {
                Some((g, m)) if g == generation => {
                    total += mismatches.saturating_sub(m);
                }
                _ => total += mismatches,
            }
            seen = Some((generation, mismatches));
        }
    }
    C.client_mismatches.store(total, Ordering::SeqCst);
    ACTIVE.fetch_sub(1, Ordering::AcqRel);
}

// ---- injectors ----

/// The first crashes of domains no injector targets (the shadow), as
/// they happened: a wind-down's kill would overwrite the last fault.
static OTHER_CRASHES: spin::Mutex<Vec<alloc::string::String>> = spin::Mutex::new(Vec::new());
/// Per target: the first crash its injector did not raise (message bytes,
/// the injector's phase then, the message's length; 0: none).
static UNEXPECTED: [spin::Mutex<([u8; 200], usize, usize)>; 5] =
    [const { spin::Mutex::new(([0; 200], 0, 0)) }; 5];

/// Called (as the kernel) whenever an incarnation crashes.
pub fn on_crash(name: &str, message: &str) {
    if !RUNNING.load(Ordering::Relaxed) {
        return;
    }
    if let Some(index) = Target::ALL.iter().position(|t| t.name() == name) {
        // A target crashing while its injector is not between raising a
        // fault and seeing the crash: not one of ours. Its first such
        // message is kept for the report (in place: no allocation while
        // the heap is being accounted).
        let phase = INJECTOR_AT[index].load(Ordering::Relaxed);
        if !(3..=5).contains(&phase) {
            let mut kept = UNEXPECTED[index].lock();
            if kept.2 == 0 {
                let len = message.len().min(kept.0.len());
                kept.0[..len].copy_from_slice(&message.as_bytes()[..len]);
                kept.1 = phase;
                kept.2 = len;
            }
        }
        return;
    }
    let mut crashes = OTHER_CRASHES.lock();
    if crashes.len() < 4 {
        crashes.push(alloc::format!("{name}: {message}"));
    }
}

fn print_cores() {
    for c in cpu::all() {
        println!(
            "storm:   cpu {}: ticks {}, polls {}",
            c.index,
            c.ticks.load(Ordering::Relaxed),
            c.polls.load(Ordering::Relaxed),
        );
    }
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ns() + limit.as_nanos() as u64;
    while !done() {
        if time::now_ns() >= deadline {
            return false;
        }
        executor::sleep(Duration::from_millis(1)).await;
    }
    true
}

async fn injector(
    index: usize,
    target: Target,
    d: &'static Domain,
    share: u64,
    total: u64,
    seed: u64,
    mid_code: bool,
) {
    let mut rng = kcore::rng::Rng::new(seed);
    let phase = |p: usize| injector_at(index, p);
    let mut done = 0;
    loop {
        if STOP.load(Ordering::Relaxed) || done >= share {
            break;
        }
        // The shadow restarts the driver; the others were restarted below.
        phase(1);
        if !wait_until(RECOVERY_LIMIT, || d.state() == State::Alive).await {
            abort("a target did not come back after a crash");
            break;
        }
        phase(2);
        executor::sleep(Duration::from_micros(rng.next_u64() % 4000)).await;
        let owner = d.owner();
        let kind = Kind::ALL[(rng.next_u64() % 7) as usize];
        let crashes = d.crashes();
        let fired = if mid_code {
            phase(3);
            arm(index, owner, kind);
            wait_until(ARM_WAIT, || ARMED[index].load(Ordering::Acquire) == 0).await;
            disarm(index)
        } else {
            None
        };
        let crash_at = match fired {
            Some(at) => {
                C.mid_code.fetch_add(1, Ordering::Relaxed);
                at
            }
            None => {
                phase(4);
                let at = time::now_ns();
                match domain::enter(owner, || inject::trigger(kind)) {
                    Ok(()) => {}
                    Err(_) if d.crashes() == crashes && d.owner() != owner => {
                        // Gone already (cannot happen to a target only
                        // this injector faults): try again.
                        continue;
                    }
                    Err(_) => {}
                }
                C.at_entry.fetch_add(1, Ordering::Relaxed);
                at
            }
        };
        C.faults.fetch_add(1, Ordering::Relaxed);
        done += 1;
        C.by_kind[kind.index()].fetch_add(1, Ordering::Relaxed);
        C.by_target[Target::ALL.iter().position(|&t| t == target).unwrap_or(0)]
            .fetch_add(1, Ordering::Relaxed);
        if target == Target::Nvme {
            C.nvme_crash_ns.store(crash_at, Ordering::Release);
            C.nvme_crash_seq.fetch_add(1, Ordering::AcqRel);
        }
        phase(5);
        // Contained: the crash is recorded against the incarnation (a
        // runaway loop waits for the watchdog's budget).
        if wait_until(RECOVERY_LIMIT, || d.crashes() > crashes).await {
            C.contained.fetch_add(1, Ordering::Relaxed);
            C.phases[0].fetch_add(time::now_ns() - crash_at, Ordering::Relaxed);
        } else {
            C.not_contained.fetch_add(1, Ordering::Relaxed);
            abort("an injected fault was not contained");
            break;
        }
        if target == Target::Nvme {
            // Next fault only once the shadow has served a request again.
            phase(6);
            let served = C.nvme_ok.load(Ordering::Acquire);
            if !wait_until(RECOVERY_LIMIT, || {
                C.nvme_ok.load(Ordering::Acquire) > served && d.state() == State::Alive
            })
            .await
            {
                println!(
                    "storm: the shadow served no request for {} s after an nvme crash: driver {}, {} executors yet to drop its tasks",
                    RECOVERY_LIMIT.as_secs(),
                    d.state().name(),
                    d.pending_purges()
                );
                if let Some(shadow) = domain::all().find(|x| x.name == "nvme-shadow") {
                    println!(
                        "storm:   nvme-shadow: {}, {} crashes, last: {}",
                        shadow.state().name(),
                        shadow.crashes(),
                        shadow.last_fault().unwrap_or_default()
                    );
                }
                print_cores();
                print_unfinished();
                print_stalls();
                abort("the shadow did not bring the NVMe driver back");
                break;
            }
        } else {
            phase(7);
            let recorded = time::now_ns();
            if !domain::wait_dead(d, RECOVERY_LIMIT).await {
                println!(
                    "storm: {} not reclaimed after {} s: {}, {} executors yet to drop its tasks",
                    d.name,
                    RECOVERY_LIMIT.as_secs(),
                    d.state().name(),
                    d.pending_purges()
                );
                print_cores();
                print_stalls();
                abort("a crashed domain was not reclaimed");
                break;
            }
            let dead = time::now_ns();
            C.phases[1].fetch_add(dead - recorded, Ordering::Relaxed);
            if domain::restart(d).is_err() {
                abort("a crashed domain could not be restarted");
                break;
            }
            C.phases[2].fetch_add(time::now_ns() - dead, Ordering::Relaxed);
            push_sample(&C.restart, &C.restart_count, time::now_ns() - crash_at);
        }
        let all = C.faults.load(Ordering::Relaxed);
        if all.is_multiple_of(500) {
            println!(
                "storm: {all}/{total} faults, {} verified rounds",
                C.rounds.load(Ordering::Relaxed)
            );
        }
    }
    phase(0);
    ACTIVE.fetch_sub(1, Ordering::AcqRel);
}

// ---- the campaign ----

fn nvme_present() -> bool {
    crate::pci::functions()
        .iter()
        .any(|f| (f.header.class, f.header.subclass, f.header.prog_if) == (0x01, 0x08, 0x02))
}

fn load_all(nvme: bool) -> Result<Vec<&'static Domain>, alloc::string::String> {
    let mut loaded = Vec::new();
    for (image, name) in DOMAINS {
        if !nvme && image.starts_with("nvme") {
            continue;
        }
        let d = domain::create_from(Source::Archive(image.into()), name)
            .map_err(|e| alloc::format!("loading {name}: {e}"))?;
        // Its log ring, kept across incarnations, is otherwise allocated
        // at its first line: in the warm-up or, for a domain that only
        // logs when something fails, perhaps only in the measured pass.
        domain::logs::reserve(d.slot);
        loaded.push(d);
    }
    Ok(loaded)
}

/// Stops the workloads and injectors, brings every domain back to life
/// (so each ends the same way, whatever state the storm left it in) and
/// kills them all. Returns how many tasks did not finish.
async fn wind_down(domains: &[&'static Domain]) -> usize {
    STOP.store(true, Ordering::SeqCst);
    wait_until(Duration::from_secs(20), || {
        ACTIVE.load(Ordering::Acquire) == 0
    })
    .await;
    let stuck = ACTIVE.load(Ordering::Acquire);
    // Clients and the shadow first: nothing restarts or calls the rest.
    let order = ["client", "nvme-shadow"];
    let mut ordered: Vec<&'static Domain> = domains
        .iter()
        .filter(|d| order.contains(&d.name.as_str()))
        .copied()
        .collect();
    ordered.extend(domains.iter().filter(|d| !order.contains(&d.name.as_str())));
    for d in ordered {
        if d.state() != State::Alive {
            domain::wait_dead(d, RECOVERY_LIMIT).await;
            let _ = domain::restart(d);
        }
        domain::kill(d, "storm: finished");
        domain::wait_dead(d, RECOVERY_LIMIT).await;
    }
    stuck
}

struct Snapshot {
    classes: [i64; mem::heap::CLASSES],
    frames: u64,
    tables: u64,
    heap: (u64, u64),
    pool_bookkeeping: u64,
    shared: (u64, u64),
}

fn snapshot() -> Snapshot {
    Snapshot {
        classes: core::array::from_fn(|i| mem::heap::LIVE_BY_SIZE[i].load(Ordering::Relaxed)),
        frames: mem::frames::free_count(),
        tables: mem::frames::table_count(),
        heap: mem::heap::usage(),
        pool_bookkeeping: crate::shared_heap::bookkeeping_bytes(),
        shared: crate::shared_heap::usage(),
    }
}

/// One pass: load, run workloads (and faults), wind down. With no faults
/// it runs for `calm` (the warm-up that sizes every pool the storm will
/// use, so that the measurement compares like with like).
async fn pass(
    plan: &Plan,
    nvme: bool,
    faults: u64,
    calm: Duration,
) -> Result<usize, alloc::string::String> {
    let domains = load_all(nvme)?;
    let cores = cpu::count();
    let workloads: &[Workload] = if nvme {
        &[
            Workload::Checksum,
            Workload::Counter,
            Workload::Ramdisk,
            Workload::Nvme,
        ]
    } else {
        &[Workload::Checksum, Workload::Counter, Workload::Ramdisk]
    };
    STOP.store(false, Ordering::SeqCst);
    let spawn = |core: usize,
                 fut: core::pin::Pin<
        alloc::boxed::Box<dyn core::future::Future<Output = ()> + Send>,
    >| {
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        match sched::spawn_on(core, fut) {
            Ok(handle) => handle.detach(),
            Err(_) => {
                ACTIVE.fetch_sub(1, Ordering::AcqRel);
                abort("could not spawn a storm task");
            }
        }
    };
    for core in 0..cores {
        for &w in workloads {
            spawn(core, alloc::boxed::Box::pin(workload(w, core, cores)));
        }
    }
    spawn(0, alloc::boxed::Box::pin(watch_client()));
    let start = time::now_ns();
    let targets: Vec<Target> = plan
        .targets
        .iter()
        .copied()
        .filter(|&t| nvme || t != Target::Nvme)
        .collect();
    // Each target gets its share of the faults: with one pool, an
    // injector whose target recovers slowly (the NVMe driver waits for
    // the shadow's next request) or whose core is busier got a fraction
    // of the others' turns.
    let n = targets.len().max(1) as u64;
    for (k, &target) in targets.iter().enumerate() {
        let share = faults / n + u64::from((k as u64) < faults % n);
        let i = Target::ALL.iter().position(|&t| t == target).unwrap_or(0);
        let Some(d) = domains.iter().copied().find(|d| d.name == target.name()) else {
            continue;
        };
        let seed = plan
            .seed
            .wrapping_add((i as u64 + 1) * 0x9E37_79B9_7F4A_7C15);
        // Not on core 0 when there are others: it takes the console and
        // the devices' interrupts, and an injector there got a fraction of
        // the others' turns.
        let core = if cores > 1 { 1 + i % (cores - 1) } else { 0 };
        spawn(
            core,
            alloc::boxed::Box::pin(injector(i, target, d, share, faults, seed, plan.mid_code)),
        );
    }
    // Injectors end when every fault is done; the calm pass just waits.
    let deadline = start + calm.as_nanos() as u64;
    let (mut last_faults, mut last_rounds, mut last_change) = (0, 0, start);
    loop {
        executor::sleep(Duration::from_millis(10)).await;
        let now = time::now_ns();
        let (done_faults, rounds) = (
            C.faults.load(Ordering::Relaxed),
            C.rounds.load(Ordering::Relaxed),
        );
        if done_faults >= faults && now >= deadline || STOP.load(Ordering::Relaxed) {
            break;
        }
        // Neither a fault nor a workload round for a long time: something
        // hangs. Say where, and stop.
        if (done_faults, rounds) != (last_faults, last_rounds) {
            (last_faults, last_rounds, last_change) = (done_faults, rounds, now);
        } else if now - last_change > STALL_LIMIT.as_nanos() as u64 {
            println!("storm: no progress for {} s:", STALL_LIMIT.as_secs());
            print_unfinished();
            print_stalls();
            abort("no progress (a storm task hangs: see above)");
            break;
        }
    }
    let stuck = wind_down(&domains).await;
    if stuck > 0 {
        println!("storm: {stuck} tasks did not finish:");
        print_unfinished();
        print_stalls();
    }
    Ok(stuck)
}

/// Runs a campaign (see the module doc). Refuses if a domain it needs is
/// already loaded and alive (it must own their whole life to account for
/// memory exactly).
pub async fn run(plan: Plan) -> Result<Report, alloc::string::String> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Err("a storm is already running".into());
    }
    let result = campaign(plan).await;
    RUNNING.store(false, Ordering::SeqCst);
    result
}

async fn campaign(plan: Plan) -> Result<Report, alloc::string::String> {
    let nvme = nvme_present();
    for (_, name) in DOMAINS {
        if let Some(d) = domain::find(name)
            && d.state() != State::Dead
        {
            return Err(alloc::format!(
                "domain '{name}' is {}: a storm loads its own (kill it first)",
                d.state().name()
            ));
        }
    }
    if plan.targets.is_empty() {
        return Err("no targets".into());
    }
    let level = serial::level();
    serial::set_level(serial::Level::Error);
    reset();
    let first = snapshot();
    // Warm-up: the same domains, workloads and a few faults of each kind,
    // so that what the kernel keeps for reuse (domain records, executor
    // queues and timer wheels, registry shards, the shared heap's pool)
    // has its size before the measurement starts.
    let warm = pass(&plan, nvme, WARM_UP_FAULTS, Duration::from_millis(300)).await;
    let warm_aborted = *C.aborted.lock();
    let (Ok(0), None) = (&warm, warm_aborted) else {
        serial::set_level(level);
        return Err(match (warm, warm_aborted) {
            (Err(e), _) => e,
            (_, Some(why)) => alloc::format!("warm-up: {why}"),
            (Ok(stuck), None) => alloc::format!("{stuck} warm-up tasks did not finish"),
        });
    };
    let crashes_before: u64 = domain::all().map(|d| u64::from(d.crashes())).sum();
    let each_before: Vec<(&'static Domain, u32)> =
        domain::all().map(|d| (d, d.crashes())).collect();
    reset();
    let before = snapshot();
    let start = time::now_ns();
    let stuck = pass(&plan, nvme, plan.faults, Duration::ZERO).await;
    let seconds = (time::now_ns() - start) / 1_000_000_000;
    let after = snapshot();
    serial::set_level(level);
    let stuck = stuck?;
    let crashes_after: u64 = domain::all().map(|d| u64::from(d.crashes())).sum();
    let contained = C.contained.load(Ordering::SeqCst);
    for crash in core::mem::take(&mut *OTHER_CRASHES.lock()) {
        println!("storm: unexpected crash of {crash}");
    }
    // Name whoever crashed more often than it was faulted (a domain no
    // injector targets, such as the shadow, should never crash).
    for &(d, before) in &each_before {
        let injected = Target::ALL
            .iter()
            .position(|t| t.name() == d.name)
            .map_or(0, |i| C.by_target[i].load(Ordering::SeqCst));
        let extra = u64::from(d.crashes() - before).saturating_sub(injected);
        if extra > 0 {
            println!(
                "storm: {} crashed {extra} times more than it was faulted; last: {}",
                d.name,
                d.last_fault().unwrap_or_default()
            );
        }
        if let Some(i) = Target::ALL.iter().position(|t| t.name() == d.name) {
            let kept = UNEXPECTED[i].lock();
            if kept.2 > 0 {
                println!(
                    "storm: {} crashed while its injector was {}: {}",
                    d.name,
                    INJECTOR_PHASES[kept.1],
                    match core::str::from_utf8(&kept.0[..kept.2]) {
                        Ok(text) => text,
                        // Cut mid-character at the buffer's end.
                        Err(e) => core::str::from_utf8(&kept.0[..e.valid_up_to()]).unwrap_or(""),
                    }
                );
            }
        }
    }
    let load = |c: &AtomicU64| c.load(Ordering::SeqCst);
    Ok(Report {
        faults: load(&C.faults),
        mid_code: load(&C.mid_code),
        at_entry: load(&C.at_entry),
        contained,
        not_contained: load(&C.not_contained),
        unexpected_crashes: (crashes_after - crashes_before).saturating_sub(contained),
        by_kind: core::array::from_fn(|i| load(&C.by_kind[i])),
        by_target: core::array::from_fn(|i| load(&C.by_target[i])),
        rounds: load(&C.rounds),
        bytes_verified: load(&C.bytes),
        data_errors: load(&C.data_errors),
        refused_calls: load(&C.refused),
        io_errors: load(&C.io_errors),
        shadow_errors: load(&C.shadow_errors),
        client_mismatches: load(&C.client_mismatches),
        recovery_ns: samples(&C.recovery, &C.recovery_count),
        restart_ns: samples(&C.restart, &C.restart_count),
        phase_mean_ns: {
            let restarts = C.restart_count.load(Ordering::SeqCst).max(1) as u64;
            [
                load(&C.phases[0]) / contained.max(1),
                load(&C.phases[1]) / restarts,
                load(&C.phases[2]) / restarts,
            ]
        },
        stuck_workloads: stuck,
        frames: (before.frames, after.frames),
        heap: (before.heap.0, after.heap.0),
        pool_bookkeeping: (before.pool_bookkeeping, after.pool_bookkeeping),
        heap_size: (before.heap.1, after.heap.1),
        heap_classes: (0..mem::heap::CLASSES)
            .filter(|&i| before.classes[i] != after.classes[i])
            .map(|i| (i, before.classes[i], after.classes[i]))
            .collect(),
        shared: (before.shared.0, after.shared.0),
        shared_pages: (before.shared.1, after.shared.1),
        tables: (before.tables, after.tables),
        first_load: (first.frames, first.heap.0, first.shared.0),
        nvme,
        seconds,
        aborted: *C.aborted.lock(),
    })
}
