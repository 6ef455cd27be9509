//! The trust boundary, enforced (docs/design.md, section 2): every crate under
//! `drivers/`, `rv6/` and every domain under `domains/` (all but the trusted
//! SDK) forbids unsafe code, has no build script or proc-macro, and
//! depends only on an allow-list of crates. `interfaces/` is held to the
//! same except that it *denies* unsafe code, with none written by hand
//! (checked line by line): the only unsafe items there are the `unsafe impl
//! rrpc::Interface` that `#[interface]` generates and the `unsafe impl
//! rrpc::Exchangeable` that `#[derive(Exchangeable)]` generates, because
//! both traits must be unsafe (a domain implementing `Interface` could
//! forge a fingerprint and make the name service type-confuse another
//! domain's exports; one implementing `Exchangeable` could keep `RRef`s
//! from moving with their root). A
//! deliberate deviation from a plain `forbid`, which cannot admit
//! generated unsafe code.
//!
//! The facts come from Cargo, not from reading manifests: `cargo metadata`
//! gives every package's targets (with the root file each compiles, wherever
//! `[lib] path` or `[[bin]] path` put it) and the resolved dependency graph
//! (real package names, whatever a dependency is renamed to, from
//! `[dependencies.x]` tables, `[target.'cfg(..)'.dependencies]` and
//! `[build-dependencies]` alike). The checker is a function over that
//! metadata and a file reader, so the tests below can feed it fixtures of
//! each trick.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use serde_json::Value;

/// What an untrusted crate may depend on: package name and the directory
/// (relative to the workspace root) of the one package of that name
/// allowed, so a registry or git crate of the same name does not pass.
const ALLOWED: &[(&str, &str)] = &[
    ("interfaces", "interfaces"),
    ("domain-sdk", "sdk"),
    ("rrpc", "rrpc"),
    // The Intel NIC drivers' shared rings: untrusted itself (checked as
    // every crate under `drivers/` is), so depending on it adds no trust.
    ("nic-ring", "drivers/nic-ring"),
    // The TCP services' server loop: untrusted itself (checked as every
    // crate under `domains/` is).
    ("sockets", "domains/sockets"),
    // rv6's file system: untrusted itself (checked as every crate under
    // `rv6/` is).
    ("rv6-fs", "rv6/fs"),
    // rv6's user library: untrusted itself (as above).
    ("rv6-ulib", "rv6/ulib"),
];

/// Registry crates admitted into one untrusted crate each, at one exact
/// version: (the crate's directory, the package, its version). What they
/// link (smoltcp's own dependencies) comes with them and is not checked
/// here; admitting a crate admits its code, unsafe included, to the
/// trusted base of that one domain's image (docs/design.md, section 2).
/// - smoltcp 0.14.0 into the TCP/IP domain: the issue asks for it rather
///   than TCP written by hand. smoltcp denies unsafe code except in its
///   random-number module (none there in 0.14.0's source); it pulls in
///   `heapless`, `managed`, `byteorder`, `bitflags` and `cfg-if`, of which
///   `heapless` has unsafe code (its fixed-capacity vectors).
/// - httparse 1.10.1 into the HTTP server: the issue asks for a well-kept
///   `no_std` parser rather than one written by hand. It has no
///   dependencies; its unsafe code is its SIMD scanning (compiled out for
///   the domains' target, which has no SSE) and its cursor over the input
///   bytes.
const ADMITTED: &[(&str, &str, &str)] = &[
    ("domains/netstack", "smoltcp", "0.14.0"),
    ("domains/httpd", "httparse", "1.10.1"),
];

/// Trusted workspace crates admitted into one untrusted crate each:
/// (the crate's directory, the package, its directory).
/// - `netwire` into the TCP/IP domain: smoltcp's device adapter, the one
///   place its closure-taking API (which the vet refuses in domain code)
///   is implemented; no unsafe code, about a hundred lines.
const ADMITTED_LOCAL: &[(&str, &str, &str)] = &[("domains/netstack", "netwire", "lib/netwire")];

const CRATES_IO: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// Whether registry package `package` is admitted into the crate at `dir`.
fn admitted(dir: &Path, package: &Value, root: &Path) -> bool {
    let local = local_dir(package, root);
    let admitted_local = ADMITTED_LOCAL.iter().any(|(d, n, place)| {
        Path::new(d) == dir
            && text(package, "name") == *n
            && local.as_deref() == Some(Path::new(place))
    });
    admitted_local
        || text(package, "source") == CRATES_IO
            && ADMITTED.iter().any(|(d, n, v)| {
                Path::new(d) == dir && text(package, "name") == *n && text(package, "version") == *v
            })
}

/// Whether the declared dependency `dep` of the crate at `dir` asks for an
/// admitted registry crate, at exactly its version.
fn admitted_dependency(dir: &Path, dep: &Value, root: &Path) -> bool {
    let place = dep["path"]
        .as_str()
        .and_then(|p| Path::new(p).strip_prefix(root).ok().map(Path::to_path_buf));
    let admitted_local = dep["source"].is_null()
        && ADMITTED_LOCAL.iter().any(|(d, n, p)| {
            Path::new(d) == dir && text(dep, "name") == *n && place.as_deref() == Some(Path::new(p))
        });
    admitted_local
        || text(dep, "source") == CRATES_IO
            && ADMITTED.iter().any(|(d, n, v)| {
                Path::new(d) == dir
                    && text(dep, "name") == *n
                    && text(dep, "req") == format!("={v}")
            })
}

/// Top-level folders whose crates are untrusted.
const UNTRUSTED: &[&str] = &["interfaces", "drivers", "rv6", "domains"];

/// The files the checker reads.
trait Files {
    fn read(&self, path: &Path) -> Option<String>;
    /// Every `.rs` file under `dir`.
    fn rust_files(&self, dir: &Path) -> Vec<PathBuf>;
}

struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        fs::read_to_string(path).ok()
    }

    fn rust_files(&self, dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    files.extend(self.rust_files(&path));
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files.sort();
        files
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// `cargo metadata` of the whole workspace: every package and the resolved
/// graph (all features, all platforms).
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--all-features"])
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata output is JSON")
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_string()
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A package's directory relative to the workspace root, if it is inside
/// it and not from a registry or git.
fn local_dir(package: &Value, root: &Path) -> Option<PathBuf> {
    if !package["source"].is_null() {
        return None;
    }
    let manifest = PathBuf::from(text(package, "manifest_path"));
    Some(manifest.parent()?.strip_prefix(root).ok()?.to_path_buf())
}

/// Whether `package` is on the allow-list (by name and place).
fn allowed(package: &Value, root: &Path) -> bool {
    let name = text(package, "name");
    let dir = local_dir(package, root);
    ALLOWED
        .iter()
        .any(|(n, d)| *n == name && dir.as_deref() == Some(Path::new(d)))
}

/// Checks every untrusted package of `metadata`; returns the violations.
fn check(metadata: &Value, files: &dyn Files) -> Vec<String> {
    let root = PathBuf::from(text(metadata, "workspace_root"));
    let packages: HashMap<String, &Value> = list(metadata, "packages")
        .iter()
        .map(|p| (text(p, "id"), p))
        .collect();
    let nodes: HashMap<String, &Value> = list(&metadata["resolve"], "nodes")
        .iter()
        .map(|n| (text(n, "id"), n))
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut ids: Vec<_> = packages.keys().cloned().collect();
    ids.sort();
    for id in ids {
        let package = packages[&id];
        let Some(rel) = local_dir(package, &root) else {
            continue;
        };
        let untrusted = rel
            .components()
            .next()
            .is_some_and(|c| UNTRUSTED.iter().any(|u| c.as_os_str() == *u));
        if !untrusted || rel == Path::new("sdk") {
            continue;
        }
        checked += 1;
        let name = format!("{} ({})", text(package, "name"), rel.display());
        let dir = root.join(&rel);
        let is_interfaces = rel == Path::new("interfaces");

        // Declared dependencies, including optional ones no feature
        // enables: `name` is the package's real name, whatever the key.
        for dep in list(package, "dependencies") {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let real = text(dep, "name");
            let place = dep["path"]
                .as_str()
                .and_then(|p| Path::new(p).strip_prefix(&root).ok().map(Path::to_path_buf));
            let ok = admitted_dependency(&rel, dep, &root)
                || dep["source"].is_null()
                    && ALLOWED
                        .iter()
                        .any(|(n, d)| *n == real && place.as_deref() == Some(Path::new(d)));
            if !ok {
                problems.push(format!(
                    "{name}: declares a dependency on {real}{} ({}) that is not on the allow-list {ALLOWED:?}",
                    rename(dep),
                    dep_kind(dep)
                ));
            }
        }

        // The resolved graph: what is actually linked.
        match nodes.get(&id) {
            None => problems.push(format!("{name}: not in the resolved dependency graph")),
            Some(node) => {
                for dep in list(node, "deps") {
                    let kinds = list(dep, "dep_kinds");
                    let linked =
                        kinds.is_empty() || kinds.iter().any(|k| k["kind"].as_str() != Some("dev"));
                    if !linked {
                        continue;
                    }
                    let pkg = text(dep, "pkg");
                    match packages.get(&pkg) {
                        Some(target) if allowed(target, &root) => {}
                        Some(target) if admitted(&rel, target, &root) => {}
                        Some(target) => problems.push(format!(
                            "{name}: depends on package {} (as `{}`, {pkg}), not on the allow-list {ALLOWED:?}",
                            text(target, "name"),
                            text(dep, "name")
                        )),
                        None => problems.push(format!("{name}: depends on unknown package {pkg}")),
                    }
                }
            }
        }

        // Targets: no build script or proc-macro; every compiled root file
        // (wherever the manifest points) inside the crate and forbidding
        // unsafe code.
        let mut roots = 0;
        for target in list(package, "targets") {
            let kinds: Vec<&str> = list(target, "kind")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let src = PathBuf::from(text(target, "src_path"));
            if kinds
                .iter()
                .any(|k| *k == "custom-build" || *k == "proc-macro")
            {
                problems.push(format!(
                    "{name}: target {} is a {} ({}): build scripts and proc-macros are not allowed",
                    text(target, "name"),
                    kinds.join(","),
                    src.display()
                ));
                continue;
            }
            if kinds
                .iter()
                .all(|k| matches!(*k, "test" | "bench" | "example"))
            {
                continue;
            }
            roots += 1;
            if !src.starts_with(&dir) {
                problems.push(format!(
                    "{name}: target {} compiles {}, outside the crate's directory",
                    text(target, "name"),
                    src.display()
                ));
            }
            let Some(code) = files.read(&src) else {
                problems.push(format!("{name}: cannot read root file {}", src.display()));
                continue;
            };
            let (lint, required) = if is_interfaces {
                (&["deny", "forbid"][..], "#![deny(unsafe_code)]")
            } else {
                (&["forbid"][..], "#![forbid(unsafe_code)]")
            };
            if !crate_lints_unsafe(&code, lint) {
                problems.push(format!("{}: missing {required}", src.display()));
            }
        }
        if roots == 0 {
            problems.push(format!("{name}: no lib or bin target"));
        }

        // `interfaces/` denies rather than forbids unsafe code: the only
        // unsafe items there are the `unsafe impl`s that `#[interface]`
        // and `#[derive(Exchangeable)]` generate, each under its own
        // `allow`. No unsafe code
        // may be written by hand, and domains, which forbid it, can
        // neither implement `Interface` nor define interfaces of their own.
        if is_interfaces {
            for file in files.rust_files(&dir) {
                let text = files.read(&file).unwrap_or_default();
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
    }
    if checked == 0 {
        problems.push("no untrusted package found in the metadata".into());
    }
    problems
}

fn rename(dep: &Value) -> String {
    dep["rename"]
        .as_str()
        .map(|r| format!(" (renamed `{r}`)"))
        .unwrap_or_default()
}

fn dep_kind(dep: &Value) -> String {
    let kind = dep["kind"].as_str().unwrap_or("normal");
    match dep["target"].as_str() {
        Some(target) => format!("{kind}, for {target}"),
        None => kind.to_string(),
    }
}

/// Whether `code`, a crate root, carries an inner attribute `#![LINT(..
/// unsafe_code ..)]` for one of `lints`. Lexed, so an attribute in a
/// comment or a string does not count; only crate-level (top-level inner)
/// attributes are seen.
fn crate_lints_unsafe(code: &str, lints: &[&str]) -> bool {
    let Ok(stream) = code.parse::<TokenStream>() else {
        return false;
    };
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    tokens.windows(3).any(|w| {
        let (TokenTree::Punct(hash), TokenTree::Punct(bang), TokenTree::Group(group)) =
            (&w[0], &w[1], &w[2])
        else {
            return false;
        };
        if hash.as_char() != '#' || bang.as_char() != '!' || group.delimiter() != Delimiter::Bracket
        {
            return false;
        }
        let inner: Vec<TokenTree> = group.stream().into_iter().collect();
        match inner.as_slice() {
            [TokenTree::Ident(lint), TokenTree::Group(args)]
                if lints.iter().any(|l| lint == l)
                    && args.delimiter() == Delimiter::Parenthesis =>
            {
                args.stream()
                    .into_iter()
                    .any(|t| matches!(&t, TokenTree::Ident(i) if i == "unsafe_code"))
            }
            _ => false,
        }
    })
}

#[test]
fn untrusted_crates_forbid_unsafe_and_use_only_allowed_dependencies() {
    let metadata = metadata();
    let root = PathBuf::from(text(&metadata, "workspace_root"));
    let untrusted = list(&metadata, "packages")
        .iter()
        .filter_map(|p| local_dir(p, &root))
        .filter(|d| UNTRUSTED.iter().any(|u| d.starts_with(u)) && !d.ends_with("sdk"))
        .count();
    assert!(
        untrusted >= 5,
        "expected interfaces and the example domains, found {untrusted}"
    );
    let problems = check(&metadata, &Disk);
    assert!(
        problems.is_empty(),
        "trust boundary violations:\n{}",
        problems.join("\n")
    );
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
    assert!(crate_lints_unsafe(
        "//! doc\n#![no_std]\n#![forbid(unsafe_code)]\nfn f() {}",
        &["forbid"]
    ));
    assert!(!crate_lints_unsafe(
        "/*\n#![forbid(unsafe_code)]\n*/\nfn f() {}",
        &["forbid"]
    ));
    assert!(!crate_lints_unsafe(
        "const S: &str = \"\n#![forbid(unsafe_code)]\n\";",
        &["forbid"]
    ));
    assert!(!crate_lints_unsafe(
        "#![cfg_attr(any(), forbid(unsafe_code))]",
        &["forbid"]
    ));
    assert!(!crate_lints_unsafe("#![deny(unsafe_code)]", &["forbid"]));
}

// Fixtures: a small workspace at /ws whose metadata is written out by hand,
// as `cargo metadata` would print it for each trick.

/// Files of a fixture workspace.
struct Fixture(BTreeMap<PathBuf, String>);

impl Files for Fixture {
    fn read(&self, path: &Path) -> Option<String> {
        self.0.get(path).cloned()
    }

    fn rust_files(&self, dir: &Path) -> Vec<PathBuf> {
        self.0
            .keys()
            .filter(|p| p.starts_with(dir) && p.extension().is_some_and(|e| e == "rs"))
            .cloned()
            .collect()
    }
}

const FORBID: &str = "#![no_std]\n#![forbid(unsafe_code)]\n";

/// The allowed packages, each with a lib target, as `cargo metadata`
/// lists them.
const ALLOWED_PACKAGES: &str = r#"
{"name": "domain-sdk", "id": "path+file:///ws/sdk#domain-sdk@0.1.0", "source": null,
 "manifest_path": "/ws/sdk/Cargo.toml", "dependencies": [],
 "targets": [{"kind": ["lib"], "name": "domain_sdk", "src_path": "/ws/sdk/src/lib.rs"}]},
{"name": "interfaces", "id": "path+file:///ws/interfaces#0.1.0", "source": null,
 "manifest_path": "/ws/interfaces/Cargo.toml", "dependencies": [],
 "targets": [{"kind": ["lib"], "name": "interfaces", "src_path": "/ws/interfaces/src/lib.rs"}]},
{"name": "rrpc", "id": "path+file:///ws/rrpc#0.1.0", "source": null,
 "manifest_path": "/ws/rrpc/Cargo.toml", "dependencies": [],
 "targets": [{"kind": ["lib"], "name": "rrpc", "src_path": "/ws/rrpc/src/lib.rs"}]},
{"name": "x86_64", "id": "registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5",
 "source": "registry+https://github.com/rust-lang/crates.io-index",
 "manifest_path": "/home/.cargo/registry/src/x86_64-0.15.5/Cargo.toml", "dependencies": [],
 "targets": [{"kind": ["lib"], "name": "x86_64", "src_path": "/home/.cargo/registry/src/x86_64-0.15.5/src/lib.rs"}]}
"#;

const ALLOWED_NODES: &str = r#"
{"id": "path+file:///ws/sdk#domain-sdk@0.1.0", "deps": []},
{"id": "path+file:///ws/interfaces#0.1.0", "deps": []},
{"id": "path+file:///ws/rrpc#0.1.0", "deps": []},
{"id": "registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5", "deps": []}
"#;

/// A domain `evil` at /ws/domains/evil: its `dependencies` and `targets`
/// (JSON arrays) and its resolved `deps`.
fn fixture(dependencies: &str, targets: &str, deps: &str) -> Value {
    let json = format!(
        r#"{{
  "workspace_root": "/ws",
  "packages": [
    {ALLOWED_PACKAGES},
    {{"name": "domain-evil", "id": "path+file:///ws/domains/evil#domain-evil@0.1.0", "source": null,
      "manifest_path": "/ws/domains/evil/Cargo.toml",
      "dependencies": {dependencies}, "targets": {targets}}}
  ],
  "resolve": {{"nodes": [
    {ALLOWED_NODES},
    {{"id": "path+file:///ws/domains/evil#domain-evil@0.1.0", "deps": {deps}}}
  ]}}
}}"#
    );
    serde_json::from_str(&json).expect("fixture is JSON")
}

fn files(extra: &[(&str, &str)]) -> Fixture {
    let mut files = BTreeMap::new();
    files.insert(
        PathBuf::from("/ws/domains/evil/src/lib.rs"),
        FORBID.to_string(),
    );
    files.insert(
        PathBuf::from("/ws/interfaces/src/lib.rs"),
        "#![deny(unsafe_code)]\n".to_string(),
    );
    for (path, text) in extra {
        files.insert(PathBuf::from(path), text.to_string());
    }
    Fixture(files)
}

const SDK_DEP: &str = r#"{"name": "domain-sdk", "source": null, "kind": null, "rename": null,
  "target": null, "path": "/ws/sdk"}"#;
const SDK_NODE: &str = r#"{"name": "domain_sdk", "pkg": "path+file:///ws/sdk#domain-sdk@0.1.0",
  "dep_kinds": [{"kind": null, "target": null}]}"#;
const LIB: &str =
    r#"{"kind": ["lib"], "name": "domain_evil", "src_path": "/ws/domains/evil/src/lib.rs"}"#;

fn only(problems: &[String], expected: &[&str]) {
    assert_eq!(
        problems.len(),
        expected.len(),
        "expected {expected:?}, got:\n{}",
        problems.join("\n")
    );
    for (problem, want) in problems.iter().zip(expected) {
        assert!(problem.contains(want), "{problem:?} should say {want:?}");
    }
}

#[test]
fn an_honest_fixture_passes() {
    let metadata = fixture(
        &format!("[{SDK_DEP}]"),
        &format!("[{LIB}]"),
        &format!("[{SDK_NODE}]"),
    );
    only(&check(&metadata, &files(&[])), &[]);
}

#[test]
fn a_lib_path_to_a_file_without_forbid_is_caught() {
    // `[lib] path = "src/real.rs"`: src/lib.rs forbids, the compiled file
    // does not.
    let lib =
        r#"{"kind": ["lib"], "name": "domain_evil", "src_path": "/ws/domains/evil/src/real.rs"}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}]"),
        &format!("[{lib}]"),
        &format!("[{SDK_NODE}]"),
    );
    let files = files(&[("/ws/domains/evil/src/real.rs", "#![no_std]\nfn evil() {}\n")]);
    only(
        &check(&metadata, &files),
        &["/ws/domains/evil/src/real.rs: missing #![forbid(unsafe_code)]"],
    );
    // A bin target pointing outside the crate, forbid or not.
    let bin = r#"{"kind": ["bin"], "name": "evil", "src_path": "/ws/kernel/src/x.rs"}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}]"),
        &format!("[{LIB}, {bin}]"),
        &format!("[{SDK_NODE}]"),
    );
    let files = self::files(&[("/ws/kernel/src/x.rs", FORBID)]);
    only(
        &check(&metadata, &files),
        &["outside the crate's directory"],
    );
}

#[test]
fn a_renamed_dependency_is_caught() {
    // `rrpc = { package = "x86_64", version = "0.15" }`: the key says
    // rrpc, the package is x86_64.
    let dep = r#"{"name": "x86_64", "source": "registry+https://github.com/rust-lang/crates.io-index",
      "kind": null, "rename": "rrpc", "target": null}"#;
    let node = r#"{"name": "rrpc", "pkg": "registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5",
      "dep_kinds": [{"kind": null, "target": null}]}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}, {dep}]"),
        &format!("[{LIB}]"),
        &format!("[{SDK_NODE}, {node}]"),
    );
    only(
        &check(&metadata, &files(&[])),
        &[
            "declares a dependency on x86_64 (renamed `rrpc`)",
            "depends on package x86_64 (as `rrpc`",
        ],
    );
}

#[test]
fn a_dependency_table_or_target_specific_dependency_is_caught() {
    // `[dependencies.x86_64]` with `version = "0.15"`, and the same under
    // `[target.'cfg(target_os = "none")'.build-dependencies]`: Cargo lists
    // both like any other dependency.
    let table = r#"{"name": "x86_64", "source": "registry+https://github.com/rust-lang/crates.io-index",
      "kind": null, "rename": null, "target": null}"#;
    let node = r#"{"name": "x86_64", "pkg": "registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5",
      "dep_kinds": [{"kind": "dev", "target": null}, {"kind": "build", "target": "cfg(target_os = \"none\")"}]}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}, {table}]"),
        &format!("[{LIB}]"),
        &format!("[{SDK_NODE}, {node}]"),
    );
    only(
        &check(&metadata, &files(&[])),
        &[
            "declares a dependency on x86_64 (normal)",
            "depends on package x86_64",
        ],
    );
    // A dev-dependency alone is fine: it is never linked into an image.
    let dev = r#"{"name": "x86_64", "source": "registry+https://github.com/rust-lang/crates.io-index",
      "kind": "dev", "rename": null, "target": null}"#;
    let dev_node = r#"{"name": "x86_64", "pkg": "registry+https://github.com/rust-lang/crates.io-index#x86_64@0.15.5",
      "dep_kinds": [{"kind": "dev", "target": null}]}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}, {dev}]"),
        &format!("[{LIB}]"),
        &format!("[{SDK_NODE}, {dev_node}]"),
    );
    only(&check(&metadata, &files(&[])), &[]);
}

#[test]
fn a_same_named_crate_from_elsewhere_is_caught() {
    // `rrpc = { path = "../../kernel/rrpc-fake" }`: right name, wrong
    // package.
    let fake = r#"{"name": "rrpc", "source": null, "kind": null, "rename": null, "target": null,
      "path": "/ws/kernel/rrpc-fake"}"#;
    let node = r#"{"name": "rrpc", "pkg": "path+file:///ws/kernel/rrpc-fake#rrpc@0.1.0",
      "dep_kinds": [{"kind": null, "target": null}]}"#;
    let mut metadata = fixture(
        &format!("[{SDK_DEP}, {fake}]"),
        &format!("[{LIB}]"),
        &format!("[{SDK_NODE}, {node}]"),
    );
    let package: Value = serde_json::from_str(
        r#"{"name": "rrpc", "id": "path+file:///ws/kernel/rrpc-fake#rrpc@0.1.0", "source": null,
          "manifest_path": "/ws/kernel/rrpc-fake/Cargo.toml", "dependencies": [], "targets": []}"#,
    )
    .unwrap();
    metadata["packages"].as_array_mut().unwrap().push(package);
    only(
        &check(&metadata, &files(&[])),
        &["declares a dependency on rrpc", "depends on package rrpc"],
    );
}

#[test]
fn a_build_script_or_proc_macro_is_caught() {
    // `build = "gen.rs"`, however named.
    let build = r#"{"kind": ["custom-build"], "name": "build-script-gen", "src_path": "/ws/domains/evil/gen.rs"}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}]"),
        &format!("[{LIB}, {build}]"),
        &format!("[{SDK_NODE}]"),
    );
    only(
        &check(&metadata, &files(&[])),
        &["target build-script-gen is a custom-build"],
    );
    // `[lib] proc-macro = true`.
    let proc_macro = r#"{"kind": ["proc-macro"], "name": "domain_evil", "src_path": "/ws/domains/evil/src/lib.rs"}"#;
    let metadata = fixture(
        &format!("[{SDK_DEP}]"),
        &format!("[{proc_macro}]"),
        &format!("[{SDK_NODE}]"),
    );
    only(
        &check(&metadata, &files(&[])),
        &["is a proc-macro", "no lib or bin target"],
    );
}

#[test]
fn hand_written_unsafe_in_interfaces_is_caught() {
    let metadata = fixture(
        &format!("[{SDK_DEP}]"),
        &format!("[{LIB}]"),
        &format!("[{SDK_NODE}]"),
    );
    let files = files(&[(
        "/ws/interfaces/src/evil.rs",
        "// unsafe in a comment is fine\n#[allow(unsafe_code)]\nunsafe impl Send for X {}\n",
    )]);
    only(
        &check(&metadata, &files),
        &[
            "/ws/interfaces/src/evil.rs:2: unsafe code written by hand",
            "/ws/interfaces/src/evil.rs:3: unsafe code written by hand",
        ],
    );
}
