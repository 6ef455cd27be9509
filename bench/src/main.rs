//! `make bench`: runs the host-native micro-benchmarks and writes
//! `bench/results/host.json`.
//!
//! Usage: bench [--quick] [--out PATH] [--only NAME[,NAME]]

use bench::suites::ALL;
use bench::{Report, Settings};

fn main() {
    let mut settings = Settings::FULL;
    let mut out = String::from("bench/results/host.json");
    let mut only: Option<Vec<String>> = None;
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
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    let mut report = Report::default();
    for (name, bench) in ALL {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        report.measurements.push(bench(settings));
    }
    if report.measurements.is_empty() {
        usage("no benchmark selected");
    }
    print!("{}", report.table());
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&out, report.json()) {
        eprintln!("bench: cannot write {out}: {e}");
        std::process::exit(1);
    }
    println!("results written to {out}");
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("bench: {problem}");
    }
    eprintln!("usage: bench [--quick] [--out PATH] [--only NAME[,NAME]]");
    eprintln!(
        "benchmarks: {}",
        ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
    std::process::exit(2);
}
