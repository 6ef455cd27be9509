//! The interfaces between domains.
//!
//! Untrusted: `#![forbid(unsafe_code)]`; depends only on `rrpc`. Today it holds
//! the one interface the example domains use, [`service::Service`]: a
//! deliberately tiny request interface (`call(op, arg) -> u64`) standing in
//! until the IDL compiler (`rrpc`, `#[interface]`) generates typed proxies
//! for real interfaces. The kernel turns every call through it into a
//! contained domain entry.

#![no_std]
#![forbid(unsafe_code)]

pub mod service {
    /// What a domain exports.
    pub trait Service: Send + Sync {
        fn call(&self, op: u32, arg: u64) -> u64;
    }
}

pub use rrpc::{RRef, RpcError, RpcResult};
