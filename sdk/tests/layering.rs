//! The layers, enforced over the whole Cargo graph (`cargo metadata`): which
//! workspace crate may depend on which. The trust boundary (untrusted crates
//! depend only on the SDK, `interfaces` and `rrpc`) is checked in more
//! detail by `trust_boundary.rs`; this test covers the trusted side too:
//!
//! | crate | may depend on (workspace crates) |
//! |---|---|
//! | `kernel` | the shared trusted crates (`kcore`, `cont`, `owner`, `loader`), `executor`, `rrpc`, the SDK (it implements its `Kernel` trait) and `interfaces` (the console speaks `Control` and `BDev`); never a domain or driver (every domain runs from its signed image) |
//! | `executor` | `owner` only: never the kernel, never `rrpc` |
//! | `rrpc` | `cont`, `owner`, `rrpc-idl`: never the kernel, never `executor` |
//! | `interfaces` | `rrpc` only |
//! | `domain-sdk` | `rrpc`, `interfaces` |
//! | domains, drivers, rv6 | the SDK, `interfaces`, `rrpc`; no driver uses another; drivers also the driver libraries, domains the service, domain and rv6 libraries |
//! | driver libraries (`nic-ring`: code two drivers share) | the SDK, `interfaces`, `rrpc` |
//! | service libraries (`sockets`: the TCP services' server loop; `rv6-ulib`: rv6's user library; untrusted) | the SDK, `interfaces`, `rrpc` |
//! | domain libraries (`netwire`: smoltcp's device adapter, trusted) | nothing of ours |
//! | rv6 libraries (`rv6-fs`: the file system, untrusted) | nothing of ours |
//! | `kcore`, `owner`, `rrpc-idl` | nothing of ours |
//! | `cont` | `owner` |
//! | `loader` | `kcore` |
//! | host tools (`pack`, `vet`, `bench`, `rv6fs`) | trusted crates and the rv6 libraries, never the kernel or a domain; but `bench` links the application domains whose cores it times against C (`domain-maglev`, `domain-kvstore`), and `nic-shadow` with `interfaces` (the `nullnet` rows time the shadow's own code over the `Net` interface), as their host tests do: a benchmark of their code on the host, never a path into a running system |

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A workspace package's normal and build dependencies on other workspace
/// packages: (name, optional).
type Edges = BTreeMap<String, Vec<(String, bool)>>;

fn workspace_edges(metadata: &Value) -> (Edges, BTreeMap<String, String>) {
    let packages = metadata["packages"].as_array().expect("packages");
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ours: BTreeMap<String, String> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["manifest_path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut edges = Edges::new();
    for package in packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
    {
        let name = package["name"].as_str().unwrap().to_string();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter(|d| ours.contains_key(d["name"].as_str().unwrap_or("")))
            .map(|d| {
                (
                    d["name"].as_str().unwrap().to_string(),
                    d["optional"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        edges.insert(name, deps);
    }
    (edges, ours)
}

/// Which layer a workspace package belongs to, by name and place.
fn layer(name: &str, manifest: &str) -> &'static str {
    let path = Path::new(manifest);
    let under = |folder: &str| path.components().any(|c| c.as_os_str() == folder);
    match name {
        "kernel" => "kernel",
        "executor" => "executor",
        "rrpc" => "rrpc",
        "interfaces" => "interfaces",
        "domain-sdk" => "sdk",
        "kcore" | "cont" | "owner" | "rrpc-idl" | "loader" => "shared",
        "pack" | "vet" | "bench" | "rv6fs" => "tool",
        "nic-ring" => "driver-lib",
        "sockets" | "rv6-ulib" => "service-lib",
        "netwire" => "domain-lib",
        "rv6-fs" => "rv6-lib",
        _ if under("drivers") => "driver",
        _ if under("domains") || under("rv6") => "domain",
        _ => "unknown",
    }
}

/// What `check` finds wrong with the graph.
fn check(edges: &Edges, places: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (from, deps) in edges {
        let from_layer = layer(from, &places[from]);
        for (to, optional) in deps {
            let to_layer = layer(to, &places[to]);
            let allowed = match (from_layer, to_layer) {
                ("kernel", "shared" | "executor" | "rrpc" | "sdk" | "interfaces") => true,
                ("executor", "shared") => to == "owner",
                ("executor", _) => false,
                ("rrpc", "shared") => matches!(to.as_str(), "cont" | "owner" | "rrpc-idl"),
                ("interfaces", "rrpc") => true,
                ("sdk", "rrpc" | "interfaces") => true,
                (
                    "domain" | "driver" | "driver-lib" | "service-lib",
                    "sdk" | "interfaces" | "rrpc",
                ) => true,
                ("domain", "service-lib") => true,
                ("driver", "driver-lib") => true,
                ("domain", "domain-lib") => true,
                // rv6's file-system code: in its domain and in the host
                // tools (mkfs, fsck) alike.
                ("domain" | "tool", "rv6-lib") => true,
                ("shared", "shared") => {
                    (from == "loader" && to == "kcore") || (from == "cont" && to == "owner")
                }
                ("tool", "shared" | "executor" | "rrpc") => true,
                // The applications' cores against C (`bench::apps`).
                ("tool", "domain") => {
                    from == "bench"
                        && matches!(
                            to.as_str(),
                            "domain-maglev" | "domain-kvstore" | "domain-nic-shadow"
                        )
                }
                // The `Net` interface the `nullnet` rows' null device serves.
                ("tool", "interfaces") => from == "bench",
                _ => false,
            };
            if !allowed {
                problems.push(format!(
                    "{from} ({from_layer}) depends on {to} ({to_layer}){}",
                    if *optional { " (optional)" } else { "" }
                ));
            }
        }
        if from_layer == "unknown" {
            problems.push(format!("{from}: not in any layer (add it to the table)"));
        }
    }
    problems
}

#[test]
fn every_workspace_crate_depends_only_on_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata");
    assert!(output.status.success(), "{output:?}");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("json");
    let (edges, places) = workspace_edges(&metadata);
    assert!(edges.contains_key("kernel") && edges.contains_key("executor"));
    let problems = check(&edges, &places);
    assert!(
        problems.is_empty(),
        "layering violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layering_check_catches_each_kind_of_violation() {
    let places: BTreeMap<String, String> = [
        ("kernel", "/ws/kernel/Cargo.toml"),
        ("executor", "/ws/executor/Cargo.toml"),
        ("rrpc", "/ws/rrpc/Cargo.toml"),
        ("interfaces", "/ws/interfaces/Cargo.toml"),
        ("domain-sdk", "/ws/sdk/Cargo.toml"),
        ("cont", "/ws/lib/cont/Cargo.toml"),
        ("owner", "/ws/lib/owner/Cargo.toml"),
        ("domain-idle", "/ws/domains/idle/Cargo.toml"),
        ("driver-a", "/ws/drivers/a/Cargo.toml"),
        ("driver-b", "/ws/drivers/b/Cargo.toml"),
        ("bench", "/ws/bench/Cargo.toml"),
        ("domain-maglev", "/ws/domains/maglev/Cargo.toml"),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_string(), p.to_string()))
    .collect();
    let edge = |to: &str, optional: bool| (to.to_string(), optional);
    let mut edges = Edges::new();
    edges.insert("kernel".into(), vec![edge("rrpc", false)]);
    edges.insert(
        "rrpc".into(),
        vec![edge("cont", false), edge("owner", false)],
    );
    edges.insert("executor".into(), vec![edge("owner", false)]);
    edges.insert("cont".into(), vec![edge("owner", false)]);
    edges.insert("domain-idle".into(), vec![edge("domain-sdk", false)]);
    edges.insert("bench".into(), vec![edge("domain-maglev", false)]);
    assert!(check(&edges, &places).is_empty(), "an honest graph passes");
    for (from, to, optional) in [
        ("executor", "rrpc", false),
        ("executor", "cont", false),
        ("owner", "cont", false),
        ("rrpc", "executor", false),
        ("rrpc", "kernel", false),
        ("interfaces", "domain-sdk", false),
        ("kernel", "domain-idle", false),
        ("kernel", "domain-idle", true),
        ("driver-a", "driver-b", false),
        ("domain-idle", "kernel", false),
        // `bench` may time the application cores, no other domain.
        ("bench", "domain-idle", false),
    ] {
        let mut bad = edges.clone();
        bad.entry(from.to_string())
            .or_default()
            .push(edge(to, optional));
        let problems = check(&bad, &places);
        assert_eq!(problems.len(), 1, "{from} -> {to}: {problems:?}");
    }
}
