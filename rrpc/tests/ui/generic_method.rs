use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn put<T: Copy>(&self, value: T) -> RpcResult<()>;
    fn fill<const N: usize>(&self, value: [u8; N]) -> RpcResult<()>;
    fn call(&self, value: Option<impl Copy>) -> RpcResult<()>;
    fn sized(&self, value: u64) -> RpcResult<()>
    where
        Self: Sized;
    fn borrow<'a>(&'a self, value: u64) -> RpcResult<()>;
}

fn main() {}
