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
