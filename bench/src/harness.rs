//! Timing: samples of `iterations` calls, median/min/p90 per call, in TSC
//! ticks.

use std::fmt::Write as _;
use std::hint::black_box;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub iterations: u64,
    pub samples: usize,
}

impl Settings {
    pub const FULL: Settings = Settings {
        iterations: 20_000,
        samples: 31,
    };
    pub const QUICK: Settings = Settings {
        iterations: 500,
        samples: 5,
    };
}

#[inline(always)]
fn tsc() -> u64 {
    // SAFETY: `lfence` and `rdtsc` have no memory effects; every x86_64 CPU
    // has both (SSE2 is baseline).
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}

/// Per-call ticks of one measured closure.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub p90: f64,
}

/// Instruction counting (`bench --instructions`): the binary runs again
/// under callgrind, and each timed closure then runs [`COUNT_ITERATIONS`]
/// times between two client requests (zero the counters; dump them with a
/// label naming the benchmark and which side of it ran). Callgrind counts
/// every instruction the closure and the loop around it executed;
/// the loop's own few instructions are the same on both sides of a row.
pub mod count {
    use std::cell::{Cell, RefCell};

    pub const COUNT_ITERATIONS: u64 = 10_000;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static BENCH: RefCell<String> = const { RefCell::new(String::new()) };
        static SIDE: Cell<u32> = const { Cell::new(0) };
    }

    /// Switches counting on for this thread (the `--counting` child).
    pub fn enable() {
        ON.with(|on| on.set(true));
    }

    pub fn enabled() -> bool {
        ON.with(Cell::get)
    }

    /// Names the benchmark whose closures run next.
    pub fn begin(name: &str) {
        BENCH.with(|b| *b.borrow_mut() = name.to_string());
        SIDE.with(|s| s.set(0));
    }

    /// The label of the next closure: `NAME#0` for the measured side,
    /// `NAME#1` for the baseline (every suite times them in that order).
    pub(crate) fn next_label() -> String {
        let side = SIDE.with(|s| {
            let v = s.get();
            s.set(v + 1);
            v
        });
        BENCH.with(|b| format!("{}#{side}", b.borrow()))
    }

    /// Valgrind's client-request sequence (a no-op on a real CPU: four
    /// rotations of `rdi` by 128 bits in all and `xchg rbx, rbx`).
    fn client_request(request: u64, arg1: u64) -> u64 {
        let args: [u64; 6] = [request, arg1, 0, 0, 0, 0];
        let result: u64;
        // SAFETY: the sequence changes no register but `rdx` (the result)
        // and reads `args` only when valgrind runs us.
        unsafe {
            core::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") 0u64 => result,
                in("rax") args.as_ptr(),
                options(nostack),
            );
        }
        result
    }

    const CALLGRIND_BASE: u64 = ((b'C' as u64) << 24) | ((b'T' as u64) << 16);
    const ZERO_STATS: u64 = CALLGRIND_BASE + 1;
    const DUMP_STATS_AT: u64 = CALLGRIND_BASE + 3;

    pub(crate) fn zero() {
        client_request(ZERO_STATS, 0);
    }

    pub(crate) fn dump(label: &str) {
        let label = std::ffi::CString::new(label).expect("label without NUL");
        client_request(DUMP_STATS_AT, label.as_ptr() as u64);
    }

    /// Instructions per operation by label, from the dump files callgrind
    /// wrote (`desc: Trigger: Client Request: LABEL` and `summary: N`).
    pub fn parse_dumps(dir: &std::path::Path) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let label = text
                .lines()
                .find_map(|l| l.strip_prefix("desc: Trigger: Client Request: "));
            let total = text
                .lines()
                .find_map(|l| l.strip_prefix("summary: ").or(l.strip_prefix("totals: ")))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
            if let (Some(label), Some(total)) = (label, total) {
                out.insert(label.to_string(), total as f64 / COUNT_ITERATIONS as f64);
            }
        }
        out
    }
}

/// Times `f` (called `iterations` times per sample).
pub fn time(settings: Settings, mut f: impl FnMut()) -> Stats {
    if count::enabled() {
        let label = count::next_label();
        // Warm-up as for timing (first-use paths, lazily built state).
        for _ in 0..1000 {
            f();
        }
        count::zero();
        for _ in 0..count::COUNT_ITERATIONS {
            f();
        }
        count::dump(&label);
        return Stats {
            median: 0.0,
            min: 0.0,
            p90: 0.0,
        };
    }
    // Warm up caches and branch predictors.
    for _ in 0..settings.iterations.min(1000) {
        f();
    }
    let mut per_call: Vec<f64> = (0..settings.samples)
        .map(|_| {
            let start = tsc();
            for _ in 0..settings.iterations {
                f();
            }
            (tsc() - start) as f64 / settings.iterations as f64
        })
        .collect();
    per_call.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| per_call[((per_call.len() - 1) as f64 * q).round() as usize];
    black_box(&per_call);
    Stats {
        median: at(0.5),
        min: per_call[0],
        p90: at(0.9),
    }
}

/// One benchmark next to its baseline.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub name: &'static str,
    pub workload: &'static str,
    pub baseline_name: &'static str,
    pub measured: Stats,
    pub baseline: Stats,
    pub iterations: u64,
    pub samples: usize,
}

impl Measurement {
    pub fn delta(&self) -> f64 {
        self.measured.median - self.baseline.median
    }

    pub fn ratio(&self) -> f64 {
        self.measured.median / self.baseline.median.max(f64::MIN_POSITIVE)
    }
}

/// One row of the report: the best of its runs, with the spread.
#[derive(Debug, Clone)]
pub struct Row {
    /// The benchmark's key (`--only` name).
    pub key: &'static str,
    /// The run with the lowest measured median (its baseline is from the
    /// same run).
    pub best: Measurement,
    /// Lowest and highest delta over the runs.
    pub delta_range: (f64, f64),
    pub runs: usize,
    /// Instructions per operation (measured, baseline), when counted.
    pub instructions: Option<(f64, f64)>,
}

impl Row {
    /// The best of `runs` (all of the same benchmark).
    pub fn best_of(key: &'static str, runs: Vec<Measurement>) -> Row {
        let deltas = runs.iter().map(Measurement::delta);
        let delta_range = (
            deltas.clone().fold(f64::INFINITY, f64::min),
            deltas.fold(f64::NEG_INFINITY, f64::max),
        );
        let count = runs.len();
        let best = runs
            .into_iter()
            .min_by(|a, b| a.measured.median.total_cmp(&b.measured.median))
            .expect("at least one run");
        Row {
            key,
            best,
            delta_range,
            runs: count,
            instructions: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// `model name` from `/proc/cpuinfo` with family and model numbers.
    pub cpu: String,
}

/// This machine's CPU as `/proc/cpuinfo` names it: "NAME (family F model
/// M)", or "unknown".
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => {
            format!("{name} (family {family} model {model})")
        }
        (Some(name), _, _) => name,
        _ => "unknown".to_string(),
    }
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "CPU: {}", self.cpu);
        let _ = writeln!(
            out,
            "{:<30} {:>9} {:>8}   {:<30} {:>9} {:>8} {:>7} {:>15} {:>9}",
            "benchmark",
            "median",
            "p90",
            "baseline",
            "median",
            "delta",
            "ratio",
            "delta range",
            "instr"
        );
        let _ = writeln!(out, "{}", "-".repeat(136));
        for row in &self.rows {
            let m = &row.best;
            let instr = match row.instructions {
                Some((measured, baseline)) => format!("{:+.1}", measured - baseline),
                None => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "{:<30} {:>9.1} {:>8.1}   {:<30} {:>9.1} {:>+8.1} {:>6.2}x {:>+7.1}..{:<+6.1} {:>9}",
                m.name,
                m.measured.median,
                m.measured.p90,
                m.baseline_name,
                m.baseline.median,
                m.delta(),
                m.ratio(),
                row.delta_range.0,
                row.delta_range.1,
                instr
            );
        }
        let runs = self.rows.first().map_or(0, |r| r.runs);
        let _ = writeln!(
            out,
            "(TSC ticks per operation, median of samples, the best of {runs} run(s): delta and ratio against the baseline of the same run; \
             delta range over the runs; instr: instructions per operation over the baseline's, from callgrind)"
        );
        for row in &self.rows {
            let _ = writeln!(out, "  {}: {}", row.best.name, row.best.workload);
        }
        out
    }

    pub fn json(&self) -> String {
        let mut out = format!(
            "{{\n  \"unit\": \"tsc_ticks_per_operation\",\n  \"cpu\": {},\n  \"benchmarks\": [\n",
            json_string(&self.cpu)
        );
        for (i, row) in self.rows.iter().enumerate() {
            let m = &row.best;
            let instructions = match row.instructions {
                Some((measured, baseline)) => format!(
                    ", \"instructions\": {measured:.2}, \"baseline_instructions\": {baseline:.2}, \"delta_instructions\": {:.2}",
                    measured - baseline
                ),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "    {{\"key\": {}, \"name\": {}, \"workload\": {}, \"baseline\": {}, \"median\": {:.2}, \"min\": {:.2}, \"p90\": {:.2}, \
                 \"baseline_median\": {:.2}, \"baseline_min\": {:.2}, \"delta\": {:.2}, \"ratio\": {:.4}, \
                 \"delta_min\": {:.2}, \"delta_max\": {:.2}, \"runs\": {}, \
                 \"iterations\": {}, \"samples\": {}{}}}{}",
                json_string(row.key),
                json_string(m.name),
                json_string(m.workload),
                json_string(m.baseline_name),
                m.measured.median,
                m.measured.min,
                m.measured.p90,
                m.baseline.median,
                m.baseline.min,
                m.delta(),
                m.ratio(),
                row.delta_range.0,
                row.delta_range.1,
                row.runs,
                m.iterations,
                m.samples,
                instructions,
                if i + 1 < self.rows.len() { "," } else { "" }
            );
        }
        out.push_str("  ]\n}\n");
        out
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
