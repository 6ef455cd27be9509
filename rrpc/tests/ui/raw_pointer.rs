use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: *const u8) -> RpcResult<()>;
}

fn main() {}
