use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn pair(&self, (low, high): (u32, u32)) -> RpcResult<()>;
    fn count(&self, mut n: u64) -> RpcResult<()>;
}

fn main() {}
