//! [`Probe`]: the isolation tests' service (`domains/attack`).

use rrpc::{RRef, RpcResult};

/// A buffer the probe keeps or inspects.
pub type Buffer = [u8; 256];

/// A service that does what hostile or careless peers make a service
/// do: keep `RRef`s a client moved in, read lent ones, keep the waker
/// it was polled with. The isolation tests (`domains/attack`) call it
/// from domains that then die, to show that the service survives them.
#[rrpc::interface]
pub trait Probe {
    /// Keeps `buffer` until [`release`](Probe::release); returns how
    /// many it keeps.
    fn keep(&self, buffer: RRef<Buffer>) -> RpcResult<u64>;
    /// Drops every kept buffer (made by other domains, which may be
    /// dead by now); returns the sum of their first bytes.
    fn release(&self) -> RpcResult<u64>;
    /// The sum of a lent buffer's bytes; then crashes if `crash`.
    fn inspect(&self, buffer: &RRef<Buffer>, crash: bool) -> RpcResult<u64>;
    /// Pending until [`wake_all`](Probe::wake_all): keeps the waker it
    /// is polled with, then completes with the number of wakes.
    async fn hold_waker(&self) -> RpcResult<u64>;
    /// Wakes every waker kept by `hold_waker`; returns how many.
    fn wake_all(&self) -> RpcResult<u64>;
}
