#![forbid(unsafe_code)]
// A domain makes itself the capability to enter another domain.

fn main() {
    let _cap = rrpc::proxy::EntryCap::new(rrpc::Owner::new(1, 1));
}
