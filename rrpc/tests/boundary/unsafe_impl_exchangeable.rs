#![forbid(unsafe_code)]
// Issue 10, item 2: the same, with `unsafe impl`, and with the derive
// (whose expansion is an `unsafe impl`): a domain cannot declare a type
// exchangeable at all; types that cross domains live in `interfaces/`.

use core::sync::atomic::AtomicU64;

struct Pointer(&'static AtomicU64);

unsafe impl rrpc::Exchangeable for Pointer {}

#[derive(rrpc::Exchangeable)]
struct Plain(u64);

fn main() {}
