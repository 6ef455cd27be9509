use rrpc::{RpcResult, interface};

pub struct Reply {
    pub value: u64,
}

#[interface]
pub trait Service {
    async fn get(&self) -> RpcResult<Reply>;
}

fn main() {}
