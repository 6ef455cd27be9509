use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: fn(u8) -> u8) -> RpcResult<()>;
}

fn main() {}
