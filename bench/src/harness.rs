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

/// Times `f` (called `iterations` times per sample).
pub fn time(settings: Settings, mut f: impl FnMut()) -> Stats {
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

#[derive(Debug, Default)]
pub struct Report {
    pub measurements: Vec<Measurement>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<30} {:>9} {:>8}   {:<30} {:>9} {:>8} {:>7}",
            "benchmark", "median", "p90", "baseline", "median", "delta", "ratio"
        );
        let _ = writeln!(out, "{}", "-".repeat(110));
        for m in &self.measurements {
            let _ = writeln!(
                out,
                "{:<30} {:>9.1} {:>8.1}   {:<30} {:>9.1} {:>+8.1} {:>6.2}x",
                m.name,
                m.measured.median,
                m.measured.p90,
                m.baseline_name,
                m.baseline.median,
                m.delta(),
                m.ratio()
            );
        }
        let _ = writeln!(
            out,
            "(TSC ticks per operation, median of samples; delta and ratio against the baseline)"
        );
        for m in &self.measurements {
            let _ = writeln!(out, "  {}: {}", m.name, m.workload);
        }
        out
    }

    pub fn json(&self) -> String {
        let mut out =
            String::from("{\n  \"unit\": \"tsc_ticks_per_operation\",\n  \"benchmarks\": [\n");
        for (i, m) in self.measurements.iter().enumerate() {
            let _ = writeln!(
                out,
                "    {{\"name\": {}, \"workload\": {}, \"baseline\": {}, \"median\": {:.2}, \"min\": {:.2}, \"p90\": {:.2}, \
                 \"baseline_median\": {:.2}, \"baseline_min\": {:.2}, \"delta\": {:.2}, \"ratio\": {:.4}, \
                 \"iterations\": {}, \"samples\": {}}}{}",
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
                m.iterations,
                m.samples,
                if i + 1 < self.measurements.len() {
                    ","
                } else {
                    ""
                }
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
