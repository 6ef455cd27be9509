//! Each rule rejects its fixture; ordinary domain code and every real
//! domain and driver of the repository pass.

use std::path::{Path, PathBuf};

use vet::{Finding, Rule, vet_dir, vet_sources};

fn vet(source: &str) -> Vec<Finding> {
    vet_sources(&[("fixture.rs", source)])
}

fn rules(source: &str) -> Vec<Rule> {
    vet(source).into_iter().map(|f| f.rule).collect()
}

/// The cve-rs form of rust-lang/rust#25860: compiles under
/// `#![forbid(unsafe_code)]` on Rust 1.95 and extends any lifetime.
const CVE_RS: &str = r#"
#![forbid(unsafe_code)]
static UNIT: &'static &'static () = &&();
fn translator<'a, 'b, T: ?Sized>(_: &'a &'b (), v: &'b T) -> &'a T { v }
fn expand<'a, 'b, T: ?Sized>(x: &'a T) -> &'b T { let f: for<'x> fn(_, &'x T) -> &'b T = translator; f(UNIT, x) }
"#;

#[test]
fn the_cve_rs_form_is_rejected_with_its_issue_and_line() {
    let findings = vet(CVE_RS);
    let got: Vec<_> = findings.iter().map(|f| (f.rule, f.line)).collect();
    assert_eq!(got, [(Rule::HigherRanked, 5), (Rule::FnPointer, 5)]);
    let text = findings[0].to_string();
    assert!(text.starts_with("fixture.rs:5: "), "{text}");
    assert!(text.contains("rust-lang/rust#25860"), "{text}");
}

#[test]
fn the_form_without_an_explicit_binder_is_rejected() {
    // Elided lifetimes in a fn pointer type are higher-ranked too.
    let src = "fn expand<'a, 'b, T>(x: &'a T) -> &'b T { let f: fn(_, &T) -> &'b T = translator; f(UNIT, x) }";
    assert_eq!(rules(src), [Rule::FnPointer]);
    assert_eq!(rules("type F = extern \"C\" fn(u8);"), [Rule::FnPointer]);
}

#[test]
fn macro_rules_bodies_are_scanned() {
    // The coercion written inside a macro body, the binder and `fn`
    // passed in by the caller, and keywords behind metavariables.
    let hidden = r#"
macro_rules! widen {
    ($x:expr) => {{ let f: for<'x> fn(_, &'x T) -> &'b T = translator; f(UNIT, $x) }};
}
"#;
    assert_eq!(rules(hidden), [Rule::HigherRanked, Rule::FnPointer]);
    let split = r#"
macro_rules! ty { ($k:tt, $($a:tt)*) => { $k ($($a)*) -> &'b T }; }
fn expand<'a, 'b, T>(x: &'a T) -> &'b T { let f: ty!(fn, _, &T) = translator; f(UNIT, x) }
"#;
    assert_eq!(rules(split), [Rule::FnPointer]);
    let binder = r#"
macro_rules! hr { ($($t:tt)*) => { for $($t)* }; }
fn g(_: hr!(<'x> u8)) {}
"#;
    assert_eq!(rules(binder), [Rule::HigherRanked]);
    let gen_fn = "macro_rules! f { ($n:ident) => { fn $n() {} }; }";
    assert_eq!(rules(gen_fn), [Rule::FnPointer]);
    let passed_fn_trait =
        "macro_rules! b { ($t:ident) => { impl $t(&&'b T) }; } fn h(_: b!(Fn)) {}";
    assert_eq!(rules(passed_fn_trait), [Rule::FnTraitRefs]);
}

#[test]
fn fn_trait_bounds_with_references_are_rejected() {
    for src in [
        "fn f<'b, T>(g: impl Fn(&'static &'b (), &T) -> &'b T) {}",
        "fn f<T>(g: impl FnMut(&&T)) {}",
        "fn f<T>(g: &dyn FnOnce(&T) -> u8) {}",
        "fn f(g: impl Fn(&u8, &u8)) {}",
        "fn f(g: impl Fn(&mut dyn Iterator<Item = &u8>)) {}",
        "fn f(g: impl Fn(&dyn Tr<'_>)) {}",
        "macro_rules! m { ($t:ty) => { fn f(g: impl Fn($t)) {} }; }",
    ] {
        assert_eq!(rules(src), [Rule::FnTraitRefs], "{src}");
    }
}

#[test]
fn dyn_with_an_associated_type_of_a_local_trait_is_rejected() {
    // The shape of rust-lang/rust#57893: a blanket impl of a local trait
    // and a trait object naming a different associated type.
    let src = r#"
trait Object<U> { type Output; }
impl<T: ?Sized, U> Object<U> for T { type Output = U; }
fn foo<T: ?Sized, U>(x: <T as Object<U>>::Output) -> U { x }
fn transmute<T, U>(x: T) -> U { foo::<dyn Object<U, Output = T>, U>(x) }
"#;
    let findings = vet(src);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0].rule, findings[0].line),
        (Rule::DynAssocBinding, 5)
    );
    assert!(findings[0].to_string().contains("rust-lang/rust#57893"));
    // Declared in another file of the same crate.
    let two = vet_sources(&[
        ("a.rs", "pub trait Object<U> { type Output; }"),
        (
            "b.rs",
            "type X = Box<dyn crate::a::Object<u8, Output = u16> + Send>;",
        ),
    ]);
    assert_eq!(two.len(), 1);
    // A trait declared by a macro: its name is unknown, so any binding is.
    let by_macro =
        "macro_rules! t { ($n:ident) => { trait $n { type O; } }; } type X = Box<dyn Foo<O = u8>>;";
    assert_eq!(rules(by_macro), [Rule::DynAssocBinding]);
}

#[test]
fn code_from_outside_the_tree_is_rejected() {
    assert_eq!(
        rules("include!(\"../../kernel/src/x.rs\");"),
        [Rule::OutsideCode]
    );
    assert_eq!(rules("use core::include as inc;"), [Rule::OutsideCode]);
    assert_eq!(
        rules("#[path = \"/tmp/evil.rs\"] mod evil;"),
        [Rule::OutsideCode]
    );
    assert_eq!(
        rules("#[cfg_attr(all(), path = \"../x.rs\")] mod evil;"),
        [Rule::OutsideCode]
    );
    assert_eq!(
        rules("macro_rules! m { ($a:ident) => { #[$a = \"../x.rs\"] mod evil; }; } m!(path);"),
        [Rule::OutsideCode]
    );
    assert_eq!(
        rules("fn f() { let s = \"unterminated; }"),
        [Rule::Unreadable]
    );
}

#[test]
fn ordinary_domain_code_passes() {
    let src = r#"
//! A domain. fn(..) for<'x> in comments and "fn(u8)" in strings are fine.
#![no_std]
#![forbid(unsafe_code)]
use core::fmt;
pub trait Local { type Out; fn get(&self) -> Self::Out; }
struct S;
impl fmt::Display for S { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { Ok(()) } }
impl<T: Local> Local for [T; 2] { type Out = u8; fn get(&self) -> u8 { 0 } }
impl Local for &S { type Out = u8; fn get(&self) -> u8 { 0 } }
fn loops(v: &[u8]) -> u32 {
    let mut n = 0;
    for x in v { n += *x as u32; }
    for (i, _) in v.iter().enumerate() { n += i as u32; }
    for _ in 0..3 {}
    for &b in v { n += b as u32; }
    for [a, b] in [[1u8, 2]] { n += (a + b) as u32; }
    n
}
fn callbacks(mut f: impl FnMut(u8, u16), g: impl FnOnce() -> Result<bool, ()>) {}
fn list(list: impl FnOnce(&mut dyn Iterator<Item = u64>) -> u64) -> u64 { list(&mut [1u64].into_iter()) }
fn objects(x: &dyn Iterator<Item = u8>, y: Box<dyn Local<Out = u8>>) {}
fn lookup() { let _ = lookup::<dyn Local + Send + Sync>("x"); }
async fn run() {}
const fn c() -> u8 { 0 }
"#;
    let findings = vet(src);
    // `dyn Local<Out = u8>` is the only hit: `Local` is declared here.
    assert_eq!(
        findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
        [Rule::DynAssocBinding]
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_domain_and_driver_of_the_repository_passes() {
    let root = repo();
    let mut dirs = vec![root.join("interfaces")];
    for folder in ["domains", "drivers", "rv6"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("Cargo.toml").exists() && !path.ends_with("sdk") {
                dirs.push(path);
            }
        }
    }
    assert!(dirs.len() >= 10, "{dirs:?}");
    for dir in dirs {
        let findings = vet_dir(&dir).unwrap();
        assert!(
            findings.is_empty(),
            "{}:\n{}",
            dir.display(),
            findings
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn the_command_line_tool_lists_findings_and_fails() {
    let dir = std::env::temp_dir().join(format!("vet-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), CVE_RS).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vet"))
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("src/lib.rs:5: "), "{stderr}");
    assert!(stderr.contains("rust-lang/rust#25860"), "{stderr}");
    // A symbolic link could bring in files from anywhere.
    std::fs::write(dir.join("src/lib.rs"), "#![forbid(unsafe_code)]").unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("src/elsewhere")).unwrap();
    let findings = vet_dir(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
        [Rule::Unreadable]
    );
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_vet"))
        .arg(repo().join("domains/counter"))
        .status()
        .unwrap();
    assert!(ok.success());
}
