//! [`Greeter`]: the example of `docs/authoring-domains.md`.

/// The authoring guide's example service (`docs/authoring-domains.md`).
#[rrpc::interface]
pub trait Greeter {
    /// Waits `delay_ms`, then counts one greeting; returns the count.
    async fn greet(&self, delay_ms: u64) -> rrpc::RpcResult<u64>;
}
