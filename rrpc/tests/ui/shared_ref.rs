use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: &u64) -> RpcResult<()>;
}

fn main() {}
