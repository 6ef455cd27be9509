use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn consume(self) -> RpcResult<()>;
    fn change(&mut self, value: u64) -> RpcResult<()>;
    fn make(value: u64) -> RpcResult<()>;
    unsafe fn raw(&self, address: usize) -> RpcResult<u64>;
}

fn main() {}
