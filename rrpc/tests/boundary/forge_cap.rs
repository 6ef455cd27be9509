#![forbid(unsafe_code)]
// A domain makes itself the capability to enter another domain.

fn main() {
    let _cap = rrpc::proxy::EntryCap::new(1 << 16 | 1);
}
