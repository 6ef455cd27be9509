//! The trust boundary, enforced (DESIGN.md section 2): every crate under
//! `drivers/`, `rv6/` and every domain under `domains/` (all but the trusted
//! SDK) forbids unsafe code, has no build script, and depends only on an
//! allow-list of crates. `interfaces/` is held to the same except that it
//! *denies* unsafe code, with none written by hand (checked line by line):
//! the only unsafe item there is the `unsafe impl rrpc::Interface` that
//! `#[interface]` generates, because `Interface` must be an unsafe trait
//! (a domain implementing it could forge a fingerprint and make the name
//! service type-confuse another domain's exports). A deliberate deviation
//! from DESIGN.md's `forbid`, which cannot admit generated unsafe code.

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
        // `interfaces/` denies unsafe code rather than forbidding it: the
        // one unsafe item there is the `unsafe impl rrpc::Interface` that
        // `#[interface]` generates, under its own `allow`. No unsafe code
        // may be written by hand (checked below), and domains, which
        // forbid it, can neither implement `Interface` nor define
        // interfaces of their own.
        let is_interfaces = dir.ends_with("interfaces");
        let required = if is_interfaces {
            "#![deny(unsafe_code)]"
        } else {
            "#![forbid(unsafe_code)]"
        };
        for root in roots {
            let text = fs::read_to_string(&root).unwrap();
            if !text.lines().any(|l| l.trim() == required) {
                problems.push(format!("{}: missing {required}", root.display()));
            }
        }
        if is_interfaces {
            for file in rust_files(&dir.join("src")) {
                let text = fs::read_to_string(&file).unwrap();
                for (number, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    if has_word(code, "unsafe") || code.contains("allow(unsafe_code)") {
                        problems.push(format!(
                            "{}:{}: unsafe code written by hand",
                            file.display(),
                            number + 1
                        ));
                    }
                }
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

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `word` occurs in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

#[test]
fn the_checker_catches_violations() {
    assert!(has_word("unsafe { x }", "unsafe"));
    assert!(has_word(
        "#[allow(unsafe_code)] unsafe impl X for Y {}",
        "unsafe"
    ));
    assert!(!has_word("fn not_unsafe_at_all() {}", "unsafe"));
    assert!(!has_word("let unsafely = 1;", "unsafe"));
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
