// The same, with the result type spelled through a module import.
#![deny(warnings)]

use rrpc as ipc;

#[rrpc::interface]
pub trait Service {
    async fn get(&self) -> ipc::RpcResult<u64>;
}

fn main() {}
