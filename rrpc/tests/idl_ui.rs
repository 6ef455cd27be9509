//! The IDL compiler's errors: every rejected shape fails to compile with a
//! message at the offending type (`tests/ui/*.stderr`).

#[test]
fn rejected_shapes() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

/// What the expansion must not warn about (each file denies warnings):
/// imports that only the rewritten async methods used, method names that
/// lints have opinions about.
#[test]
fn accepted_shapes_compile_without_warnings() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
}

/// What code that forbids `unsafe` (every domain) cannot do with the proxy
/// runtime: enter another domain with code of its own, make an entry
/// capability, implement `Interface` (forged fingerprint, a proxy that
/// keeps the capability), or define an interface outside `interfaces/`.
#[test]
fn untrusted_code_cannot_enter_other_domains() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/boundary/*.rs");
}
