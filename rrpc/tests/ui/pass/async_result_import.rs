// Only async methods: the expansion rewrites `RpcResult<T>` into
// `RpcFuture<'_, T>`, and the import must still count as used.
#![deny(warnings)]

use rrpc::{RRef, RpcResult};

#[rrpc::interface]
pub trait Service {
    async fn get(&self) -> RpcResult<u64>;
    async fn put(&self, buffer: RRef<[u8; 16]>) -> RpcResult<RRef<[u8; 16]>>;
}

fn main() {}
