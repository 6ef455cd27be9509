use rrpc::{RpcResult, interface};

#[interface]
pub trait Service {
    fn get(&self) -> RpcResult<String>;
}

fn main() {}
