//! `hashtable [--max LOG2] [--runs N] [--out PATH]`: the RedLeaf paper's
//! hashtable experiment (see `bench::hashtable`), C against idiomatic and
//! C-style Rust, at 2^12 to 2^LOG2 slots (default 26) filled to 75 %.
//! Prints a table and writes JSON (ratios: C's ticks over Rust's, so
//! above 1.0 Rust is faster).

use std::fmt::Write as _;

fn main() {
    bench::percpu::install(); // the kernel's per-core record, for `rrpc` (see there)
    let (mut max, mut runs, mut out) = (26u32, 5usize, None::<String>);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max" => {
                max = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|m| (12..=28).contains(m))
                    .unwrap_or_else(|| usage())
            }
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|r| (1..=21).contains(r))
                    .unwrap_or_else(|| usage())
            }
            "--out" => out = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    let cpu = bench::harness::cpu_model();
    println!(
        "hashtable: FNV-1a, open addressing, 8-byte keys and values, 75 % full; ticks per lookup, median of {runs}"
    );
    println!(
        "{:>10} {:>9} {:>12} {:>10} {:>12} {:>14}",
        "slots", "C", "idiomatic", "C-style", "idiom. vs C", "C-style vs C"
    );
    let mut json = String::from("{\"cpu\": ");
    let _ = write!(json, "{:?}, \"runs\": {runs}, \"rows\": [", cpu);
    let mut first = true;
    let mut log2 = 12;
    while log2 <= max {
        let row = bench::hashtable::measure(log2, 1 << 20, runs);
        println!(
            "{:>10} {:>9.1} {:>12.1} {:>10.1} {:>11.2}x {:>13.2}x",
            format!("2^{log2}"),
            row.c,
            row.idiomatic,
            row.c_style,
            row.c / row.idiomatic,
            row.c / row.c_style
        );
        if !first {
            json.push_str(", ");
        }
        first = false;
        let _ = write!(
            json,
            "{{\"log2_slots\": {log2}, \"c\": {:.2}, \"idiomatic\": {:.2}, \"c_style\": {:.2}, \"idiomatic_vs_c\": {:.3}, \"c_style_vs_c\": {:.3}}}",
            row.c,
            row.idiomatic,
            row.c_style,
            row.c / row.idiomatic,
            row.c / row.c_style
        );
        log2 += 2;
    }
    json.push_str("]}\n");
    println!("(ratios: C's ticks over Rust's: above 1.0x Rust is faster; CPU: {cpu})");
    if let Some(path) = out {
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("results written to {path}");
    }
}

fn usage() -> ! {
    eprintln!("usage: hashtable [--max LOG2 (12..28)] [--runs N (1..21)] [--out PATH]");
    std::process::exit(2)
}
