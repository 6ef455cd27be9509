use rrpc::{RRef, RpcResult, interface};

#[interface]
pub trait Service {
    fn maybe(&self, buffer: Option<&RRef<u64>>) -> RpcResult<()>;
    fn peek(&self) -> RpcResult<&RRef<u64>>;
}

fn main() {}
