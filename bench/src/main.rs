//! `make bench`: runs the host-native micro-benchmarks and writes
//! `bench/results/host.json`.
//!
//! Usage: bench [--quick] [--runs N] [--instructions] [--out PATH]
//!              [--only NAME[,NAME]]
//!
//! `--runs N` times every benchmark N times and reports, per row, the run
//! with the lowest measured median (its baseline from the same run) and the
//! range of the delta over all runs. `--instructions` also runs the binary
//! once more under callgrind (`--counting`, internal) and reports the
//! instructions per operation of both sides of each row: a count that does
//! not depend on the machine's load or clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bench::harness::{Row, count, cpu_model};
use bench::suites::ALL;
use bench::{Report, Settings};

fn main() {
    bench::percpu::install(); // the kernel's per-core record, for `rrpc` (see there)
    let mut settings = Settings::FULL;
    let mut out = String::from("bench/results/host.json");
    let mut only: Option<Vec<String>> = None;
    let mut runs = 1usize;
    let mut instructions = false;
    let mut counting = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => settings = Settings::QUICK,
            "--out" => out = args.next().unwrap_or_else(|| usage("--out needs a path")),
            "--only" => {
                only = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--only needs names"))
                        .split(',')
                        .map(String::from)
                        .collect(),
                )
            }
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| (1..=20).contains(&n))
                    .unwrap_or_else(|| usage("--runs needs a number from 1 to 20"))
            }
            "--instructions" => instructions = true,
            "--counting" => counting = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    let selected: Vec<_> = ALL
        .iter()
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name)))
        .collect();
    if selected.is_empty() {
        usage("no benchmark selected");
    }
    if counting {
        // The child under callgrind: each closure dumps its own count.
        count::enable();
        for (name, bench) in &selected {
            count::begin(name);
            let _ = bench(settings);
        }
        return;
    }
    let mut by_key: Vec<(&'static str, Vec<bench::Measurement>)> = selected
        .iter()
        .map(|(name, _)| (*name, Vec::new()))
        .collect();
    for _ in 0..runs {
        for ((_, bench), (_, results)) in selected.iter().zip(by_key.iter_mut()) {
            results.push(bench(settings));
        }
    }
    let mut report = Report {
        rows: by_key
            .into_iter()
            .map(|(key, results)| Row::best_of(key, results))
            .collect(),
        cpu: cpu_model(),
    };
    if instructions {
        let keys: Vec<&str> = selected.iter().map(|(name, _)| *name).collect();
        match count_instructions(&keys) {
            Ok(counts) => {
                for row in &mut report.rows {
                    let side = |i: u32| counts.get(&format!("{}#{i}", row.key)).copied();
                    if let (Some(measured), Some(baseline)) = (side(0), side(1)) {
                        row.instructions = Some((measured, baseline));
                    }
                }
            }
            Err(e) => eprintln!("bench: no instruction counts: {e}"),
        }
    }
    print!("{}", report.table());
    if let Some(dir) = Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&out, report.json()) {
        eprintln!("bench: cannot write {out}: {e}");
        std::process::exit(1);
    }
    println!("results written to {out}");
}

/// Runs this binary under callgrind with `--counting` and reads the
/// instructions per operation of every closure it timed.
fn count_instructions(keys: &[&str]) -> Result<BTreeMap<String, f64>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("bench-callgrind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join("cg.out").display()
        ))
        .arg("--quiet")
        .arg(&exe)
        .args(["--counting", "--only", &keys.join(",")])
        .status()
        .map_err(|e| format!("cannot run valgrind ({e}); install it (Debian: valgrind)"))?;
    if !status.success() {
        return Err(format!("valgrind exited with {status}"));
    }
    let counts = count::parse_dumps(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    if counts.is_empty() {
        return Err("callgrind wrote no labelled dumps".to_string());
    }
    Ok(counts)
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("bench: {problem}");
    }
    eprintln!(
        "usage: bench [--quick] [--runs N] [--instructions] [--out PATH] [--only NAME[,NAME]]"
    );
    eprintln!(
        "benchmarks: {}",
        ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
    std::process::exit(2);
}
