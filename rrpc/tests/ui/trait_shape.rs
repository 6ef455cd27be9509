use rrpc::{RpcResult, interface};

#[interface]
pub trait Store<K> {
    type Value;
    const LIMIT: usize;
    fn get(&self, key: u64) -> RpcResult<u64>;
}

fn main() {}
