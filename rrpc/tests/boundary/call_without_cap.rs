#![forbid(unsafe_code)]
// A domain calls the proxy runtime with a bare domain id.

fn main() {
    let _ = rrpc::proxy::call(rrpc::Owner::new(1, 1), || panic!("as the victim"));
}
