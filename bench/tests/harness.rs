//! The harness runs end to end and writes well-formed JSON with every field.

#[test]
fn quick_run_writes_complete_json() {
    let dir = std::env::temp_dir().join(format!("bench-test-{}", std::process::id()));
    let out = dir.join("host.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--quick",
            "--only",
            "trait-object-call,timer-wheel-insert",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("run bench");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("results file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let benches = json["benchmarks"].as_array().expect("benchmarks array");
    assert_eq!(benches.len(), 2);
    for b in benches {
        for field in [
            "name",
            "workload",
            "baseline",
            "median",
            "baseline_median",
            "delta",
            "ratio",
            "iterations",
            "samples",
        ] {
            assert!(!b[field].is_null(), "missing {field} in {b}");
        }
        assert!(b["median"].as_f64().unwrap() > 0.0);
        assert!(b["baseline_median"].as_f64().unwrap() > 0.0);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_arguments_are_refused() {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--frobnicate")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn callgrind_dumps_are_read_per_label() {
    let dir = std::env::temp_dir().join(format!("bench-dumps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = |name: &str, label: &str, total: u64| {
        std::fs::write(
            dir.join(name),
            format!("version: 1\ncreator: callgrind-3.19.0\ndesc: Trigger: Client Request: {label}\nevents: Ir\nsummary: {total}\n\nfn=(1) x\n0 {total}\ntotals: {total}\n"),
        )
        .unwrap();
    };
    dump("cg.out.1", "proxy-call#0", 1_230_000);
    dump("cg.out.2", "proxy-call#1", 120_000);
    std::fs::write(
        dir.join("cg.out"),
        "desc: Trigger: Program termination\nsummary: 99\n",
    )
    .unwrap();
    let counts = bench::harness::count::parse_dumps(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(counts.len(), 2, "{counts:?}");
    let per_op = bench::harness::count::COUNT_ITERATIONS as f64;
    assert_eq!(counts["proxy-call#0"], 1_230_000.0 / per_op);
    assert_eq!(counts["proxy-call#1"], 120_000.0 / per_op);
}

/// With valgrind installed (`make bench` installs it), `--instructions`
/// adds deterministic counts to every row: a trait-object call through a
/// `black_box` is a handful of instructions more than a direct call.
#[test]
fn instruction_counts_reach_the_json_when_valgrind_is_there() {
    if std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("valgrind not installed: `make bench` installs it; not checked here");
        return;
    }
    let dir = std::env::temp_dir().join(format!("bench-instr-{}", std::process::id()));
    let out = dir.join("host.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--quick",
            "--instructions",
            "--only",
            "trait-object-call",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("run bench");
    assert!(status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    assert!(json["cpu"].as_str().is_some_and(|c| !c.is_empty()));
    let row = &json["benchmarks"][0];
    let measured = row["instructions"].as_f64().expect("instructions counted");
    let baseline = row["baseline_instructions"]
        .as_f64()
        .expect("baseline counted");
    assert!(measured > 3.0 && baseline > 3.0, "{row}");
    assert!(measured < 100.0 && baseline < 100.0, "{row}");
}

#[test]
fn bad_run_counts_are_refused() {
    for runs in ["0", "21", "three", ""] {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["--runs", runs])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "--runs {runs:?}");
    }
}

#[test]
fn malformed_callgrind_dumps_are_skipped() {
    let dir = std::env::temp_dir().join(format!("bench-bad-dumps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cg.out.1"),
        "desc: Trigger: Client Request: x#0\nsummary: lots\n",
    )
    .unwrap();
    std::fs::write(dir.join("cg.out.2"), [0xffu8, 0xfe, 0x00]).unwrap();
    std::fs::write(dir.join("cg.out.3"), "summary: 10\n").unwrap();
    let counts = bench::harness::count::parse_dumps(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(counts.is_empty(), "{counts:?}");
}
