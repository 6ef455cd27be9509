// A type that is not exchangeable: by value, reported once, at the type.
// Inside `RRef<T>` (which requires `T: Exchangeable`) rustc checks the
// trait's own signature: reported at the type, and once more for the
// generated proxy's method, at the method's name.
use rrpc::{RRef, RpcResult, interface};

pub struct Request {
    pub value: u64,
}

#[interface]
pub trait Service {
    fn put(&self, request: Request) -> RpcResult<()>;
    async fn put_later(&self, request: Request) -> RpcResult<()>;
    fn put_shared(&self, request: RRef<Request>) -> RpcResult<()>;
    fn lend(&self, request: &RRef<Request>) -> RpcResult<()>;
}

fn main() {}
