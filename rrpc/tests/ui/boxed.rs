use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: Box<u64>) -> RpcResult<()>;
}

fn main() {}
