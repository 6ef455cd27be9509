use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn bare(&self) -> RpcResult;
    fn two(&self) -> RpcResult<u8, u8>;
    fn constant(&self) -> RpcResult<3>;
}

fn main() {}
