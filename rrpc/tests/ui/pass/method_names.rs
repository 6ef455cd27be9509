// Method names that lints have opinions about (clippy is checked on the
// same names in `rrpc/idl/tests/names.rs`).
#![deny(warnings)]

use rrpc::RpcResult;

#[rrpc::interface]
pub trait Collection {
    fn len(&self) -> RpcResult<u64>;
    fn new(&self) -> RpcResult<u64>;
    fn into_inner(&self) -> RpcResult<u64>;
    fn from_raw(&self, raw: u64) -> RpcResult<u64>;
    fn next(&self) -> RpcResult<Option<u64>>;
    fn iter(&self) -> RpcResult<u64>;
    async fn default(&self) -> RpcResult<u64>;
}

fn main() {}
