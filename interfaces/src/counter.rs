//! [`Counter`]: a service with plain and `async` methods.

use rrpc::RpcResult;

/// Counts calls, and ticks of a background task.
#[rrpc::interface]
pub trait Counter {
    /// Counts one call; returns the count so far.
    fn increment(&self) -> RpcResult<u64>;
    /// Ticks of the background task so far.
    fn ticks(&self) -> RpcResult<u64>;
    /// Completes once the background task has ticked `n` more times;
    /// returns the tick count then.
    async fn wait_ticks(&self, n: u64) -> RpcResult<u64>;
}
