//! The trust boundary, enforced (DESIGN.md section 2): every crate under
//! `interfaces/`, `drivers/`, `rv6/` and every domain under `domains/`
//! (all but the trusted SDK) forbids unsafe code, has no build script, and
//! depends only on an allow-list of crates.

use std::fs;
use std::path::{Path, PathBuf};

/// What an untrusted crate may depend on.
const ALLOWED: &[&str] = &["interfaces", "domain-sdk", "rrpc"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Crate directories that must be untrusted.
fn untrusted_crates() -> Vec<PathBuf> {
    let root = repo();
    let mut crates = Vec::new();
    if root.join("interfaces/Cargo.toml").exists() {
        crates.push(root.join("interfaces"));
    }
    for folder in ["domains", "drivers", "rv6"] {
        let Ok(entries) = fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("Cargo.toml").exists() && path.file_name().unwrap() != "sdk" {
                crates.push(path);
            }
        }
    }
    crates.sort();
    crates
}

fn dependencies(manifest: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
            continue;
        }
        if section.ends_with("dependencies")
            && !line.is_empty()
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            deps.push((section.clone(), name.trim().trim_matches('"').to_string()));
        }
    }
    deps
}

#[test]
fn untrusted_crates_forbid_unsafe_and_use_only_allowed_dependencies() {
    let crates = untrusted_crates();
    assert!(
        crates.len() >= 5,
        "expected interfaces and the example domains, found {crates:?}"
    );
    let mut problems = Vec::new();
    for dir in &crates {
        let name = dir.strip_prefix(repo()).unwrap().display().to_string();
        let mut roots = Vec::new();
        for root in ["src/lib.rs", "src/main.rs"] {
            if dir.join(root).exists() {
                roots.push(dir.join(root));
            }
        }
        if roots.is_empty() {
            problems.push(format!("{name}: no src/lib.rs or src/main.rs"));
        }
        for root in roots {
            let text = fs::read_to_string(&root).unwrap();
            if !text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]") {
                problems.push(format!(
                    "{}: missing #![forbid(unsafe_code)]",
                    root.display()
                ));
            }
        }
        if dir.join("build.rs").exists() {
            problems.push(format!(
                "{name}: untrusted crates may not have a build script"
            ));
        }
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        if manifest.contains("build =") || manifest.contains("proc-macro") {
            problems.push(format!(
                "{name}: build scripts and proc-macros are not allowed"
            ));
        }
        for (section, dep) in dependencies(&manifest) {
            if section == "dev-dependencies" {
                continue;
            }
            if !ALLOWED.contains(&dep.as_str()) {
                problems.push(format!(
                    "{name}: [{section}] {dep} is not on the allow-list {ALLOWED:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "trust boundary violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_catches_violations() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nspin = \"0.9\"\ndomain-sdk = { path = \"../sdk\" }\n";
    let deps = dependencies(manifest);
    assert_eq!(
        deps,
        vec![
            ("dependencies".into(), "spin".into()),
            ("dependencies".into(), "domain-sdk".into())
        ]
    );
    assert!(!ALLOWED.contains(&"spin"));
}
