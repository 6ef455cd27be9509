//! [`Checksum`]: a service that accepts and returns `RRef` buffers
//! (moved, lent, and in batches).

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
