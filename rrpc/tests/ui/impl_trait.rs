use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, value: impl Fn()) -> RpcResult<()>;
}

fn main() {}
