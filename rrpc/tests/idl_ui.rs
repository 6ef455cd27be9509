//! The IDL compiler's errors: every rejected shape fails to compile with a
//! message at the offending type (`tests/ui/*.stderr`).

#[test]
fn rejected_shapes() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
