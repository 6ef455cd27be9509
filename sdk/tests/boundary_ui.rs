//! What a domain (code that forbids `unsafe`) cannot do with the SDK's
//! kernel services: open another domain's exports, or free memory through
//! the kernel's allocator (`tests/boundary/*.stderr`).

#[test]
fn untrusted_code_cannot_reach_other_domains_objects_or_memory() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/boundary/*.rs");
}
