// Inside `RRef<...>` a rejected type would also fail the trait's own
// well-formedness check (`RRef<T>` needs `T: Exchangeable`): reported once.
use rrpc::{RRef, RpcResult, interface};

#[interface]
pub trait Service {
    fn put(&self, buffer: RRef<Vec<u8>>) -> RpcResult<()>;
    fn lend(&self, text: &RRef<String>) -> RpcResult<()>;
    async fn get(&self) -> RpcResult<RRef<Box<u64>>>;
}

fn main() {}
