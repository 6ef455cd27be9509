use rrpc::{RRef, RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, bytes: RRef<[u8]>) -> RpcResult<()>;
    fn lend(&self, bytes: &RRef<[u16]>) -> RpcResult<()>;
    fn name(&self) -> RpcResult<RRef<str>>;
    fn raw(&self) -> RpcResult<[u8]>;
}

fn main() {}
