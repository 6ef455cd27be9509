#![forbid(unsafe_code)]
// Issue 10, item 2: a type holding a reference (into the kernel, or a
// domain's private heap) declared exchangeable by hand, to put it in an
// RRef another domain can read after the allocator is gone.

use core::sync::atomic::AtomicU64;

struct Pointer(&'static AtomicU64);

impl rrpc::Exchangeable for Pointer {}

fn main() {}
