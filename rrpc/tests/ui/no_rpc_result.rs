use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: u64) -> u64;
}

fn main() {}
