//! [`Control`]: what the console's `call NAME OP [ARG]` calls.

use rrpc::RpcResult;

/// A domain's console hook: `call NAME OP [ARG]` ends up here. What
/// `op` and `arg` mean is up to the domain (each documents it).
#[rrpc::interface]
pub trait Control {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64>;
}
