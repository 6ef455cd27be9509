//! `apps [--runs N] [--quick] [--out PATH]`: the applications' cores
//! against C (see `bench::apps`): Maglev per packet, the key-value core's
//! get and set, HTTP request parsing. Prints a table and writes JSON
//! (ratios: C's ticks over ours, so above 1.0 ours is faster).

use std::fmt::Write as _;

use bench::apps;

fn main() {
    bench::percpu::install(); // the kernel's per-core record, for `rrpc` (see there)
    let (mut runs, mut quick, mut out) = (5usize, false, None::<String>);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|r| (1..=21).contains(r))
                    .unwrap_or_else(|| usage())
            }
            "--quick" => quick = true,
            "--out" => out = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    let cpu = bench::harness::cpu_model();
    let scale = if quick { 16 } else { 1 };
    println!("applications' cores against C: TSC ticks per operation, median of {runs} runs");
    println!(
        "{:<11} {:<58} {:>9} {:>9} {:>8}",
        "benchmark", "case", "C", "ours", "C/ours"
    );
    let mut rows = Vec::new();
    let mut report = |row: apps::Row| {
        println!(
            "{:<11} {:<58} {:>9.1} {:>9.1} {:>7.2}x",
            row.benchmark,
            row.case,
            row.c,
            row.rust,
            row.ratio()
        );
        rows.push(row);
    };
    for flows in [1_000, 60_000, 1_000_000] {
        report(apps::maglev(flows, (1 << 21) / scale, runs));
    }
    for (n, key, value) in [(1 << 20, 8, 8), (1 << 20, 16, 64), (1 << 18, 64, 1024)] {
        for row in apps::kv(n / scale, key, value, runs.min(3)) {
            report(row);
        }
    }
    for row in apps::http(runs, (1 << 20) / scale) {
        report(row);
    }
    println!("(C/ours: C's ticks over ours, above 1.0x ours is faster; CPU: {cpu})");
    let mut json = String::new();
    let _ = write!(json, "{{\"cpu\": {cpu:?}, \"runs\": {runs}, \"rows\": [");
    for (i, row) in rows.iter().enumerate() {
        let _ = write!(
            json,
            "{}{{\"benchmark\": {:?}, \"case\": {:?}, \"c\": {:.2}, \"ours\": {:.2}, \"c_vs_ours\": {:.3}}}",
            if i == 0 { "" } else { ", " },
            row.benchmark,
            row.case,
            row.c,
            row.rust,
            row.ratio()
        );
    }
    json.push_str("]}\n");
    if let Some(path) = out {
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("results written to {path}");
    }
}

fn usage() -> ! {
    eprintln!("usage: apps [--runs N (1..21)] [--quick] [--out PATH]");
    std::process::exit(2)
}
