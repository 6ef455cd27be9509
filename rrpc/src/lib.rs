//! `rrpc`: what crosses a domain boundary.
//!
//! - [`RRef<T>`]: a value on the **shared heap** (owned by no domain's
//!   private heap) with an owner domain recorded in a header. Moving an
//!   `RRef` into a call moves ownership: the kernel's proxies call
//!   [`RRef::move_to`]. When a domain dies, [`registry::reclaim`] frees
//!   every `RRef` it owned, found through a per-domain list, without scanning
//!   the heap.
//! - Nested `RRef`s: an `RRef` stored inside another `RRef`'s value is
//!   *adopted* by it (owned through its root, on no domain's list): only the
//!   root moves on a call, and dropping or reclaiming the root frees the
//!   children.
//! - [`RRefDeque`]: a fixed-capacity ring of `RRef`s, itself an `RRef`
//!   value: the batch container drivers pass to devices.
//! - [`RpcError`] / [`RpcResult`]: every cross-domain call's result, with
//!   the death of the callee explicit.
//!
//! Trusted (it uses `unsafe` for the header layout, each block explained);
//! it must never hand out a reference to an `RRef` whose memory another
//! domain may free, and never free an object twice. The memory itself comes
//! from a [`Backend`] the kernel installs (the host tests install one over
//! the system allocator).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod deque;
mod error;
mod exchangeable;
pub mod registry;
mod rref;
#[cfg(test)]
mod tests;

pub use deque::RRefDeque;
pub use error::{RpcError, RpcResult};
pub use exchangeable::Exchangeable;
pub use registry::{Backend, install_backend};
pub use rref::RRef;

/// A domain incarnation (the kernel's owner id; 0 is the kernel).
pub type Owner = u32;
