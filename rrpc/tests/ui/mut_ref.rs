use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: &mut u64) -> RpcResult<()>;
}

fn main() {}
