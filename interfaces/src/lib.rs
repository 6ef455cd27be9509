//! The interfaces between domains.
//!
//! Untrusted: `#![forbid(unsafe_code)]`; depends only on `rrpc`. Every trait
//! here carries `#[rrpc::interface]`: the IDL compiler checks that each
//! argument and result can cross a domain boundary and generates
//! `<Trait>Proxy`, the handle other domains call through (each call a
//! contained domain entry, `RRef`s moving with it). A domain exports
//! objects implementing these traits under names; others look them up by
//! name and receive proxies (see `domain_sdk::lookup`).
//!
//! The example interfaces:
//! - [`control::Control`]: what the console's `call NAME OP [ARG]` calls.
//! - [`counter::Counter`]: a service with plain and `async` methods.
//! - [`checksum::Checksum`]: a service that accepts and returns `RRef`
//!   buffers (moved, lent, and in batches).
//! - [`greeter::Greeter`]: the example of `docs/authoring-domains.md`.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub use rrpc::{Interface, RRef, RRefDeque, RpcError, RpcResult};

pub mod control {
    use rrpc::RpcResult;

    /// A domain's console hook: `call NAME OP [ARG]` ends up here. What
    /// `op` and `arg` mean is up to the domain (each documents it).
    #[rrpc::interface]
    pub trait Control {
        fn control(&self, op: u32, arg: u64) -> RpcResult<u64>;
    }
}

pub mod counter {
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
}

pub mod checksum {
    use rrpc::{RRef, RRefDeque, RpcResult};

    /// One buffer: a page.
    pub type Block = [u8; 4096];
    /// Up to 32 blocks moved as one.
    pub type Batch = RRefDeque<Block, 32>;

    /// Fills and digests buffers on the shared heap, without copying them.
    #[rrpc::interface]
    pub trait Checksum {
        /// Fills `block` with the pattern of `seed` (see [`pattern`]) and
        /// gives it back.
        fn fill(&self, block: RRef<Block>, seed: u32) -> RpcResult<RRef<Block>>;
        /// The [`digest`] of a lent block (the caller keeps it).
        fn digest(&self, block: &RRef<Block>) -> RpcResult<u64>;
        /// Digests every block of a batch; gives the batch back with the
        /// digests combined by [`combine`].
        async fn digest_batch(&self, batch: RRef<Batch>) -> RpcResult<(RRef<Batch>, u64)>;
    }

    /// Byte `i` of the pattern for `seed`.
    pub fn pattern(seed: u32, i: usize) -> u8 {
        (seed as usize).wrapping_mul(31).wrapping_add(i * 7) as u8 ^ (i >> 8) as u8
    }

    /// FNV-1a, 64 bits.
    pub fn digest(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Combines per-block digests in order.
    pub fn combine(acc: u64, digest: u64) -> u64 {
        acc.rotate_left(5) ^ digest
    }
}

pub mod greeter {
    /// The authoring guide's example service (`docs/authoring-domains.md`).
    #[rrpc::interface]
    pub trait Greeter {
        /// Waits `delay_ms`, then counts one greeting; returns the count.
        async fn greet(&self, delay_ms: u64) -> rrpc::RpcResult<u64>;
    }
}
