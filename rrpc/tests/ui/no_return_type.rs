use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn get(&self) -> RpcResult<u64>;
    fn put(&self, value: u64);
}

fn main() {}
