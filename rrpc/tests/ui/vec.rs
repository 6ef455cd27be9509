use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: Vec<u8>) -> RpcResult<()>;
}

fn main() {}
