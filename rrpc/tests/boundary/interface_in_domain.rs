#![forbid(unsafe_code)]
// A domain defines an interface of its own (interfaces live in the
// `interfaces` crate, reviewed with the trusted base).

#[rrpc::interface]
pub trait Mine {
    fn ping(&self) -> rrpc::RpcResult<u64>;
}

fn main() {}
