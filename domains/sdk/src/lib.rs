//! The domain SDK: everything a domain crate depends on besides
//! `interfaces`.
//!
//! A domain is a crate with `#![no_std]` and `#![forbid(unsafe_code)]`
//! exporting one entry function of type [`Entry`]. The kernel calls it,
//! inside the new domain (its heap, under its continuation), with a handle
//! to kernel services; the domain returns the object it exports. Allocation
//! needs nothing special: while the domain's code runs, `alloc` allocates
//! from its private heap.
//!
//! Trusted (it may use `unsafe`, though today it needs none); what it must
//! never do is hand a domain a way to reach another domain's memory other
//! than through a contained call.
//!
//! ```ignore
//! #![no_std]
//! #![forbid(unsafe_code)]
//! extern crate alloc;
//! use alloc::{boxed::Box, string::String};
//! use domain_sdk::{Kernel, Service};
//!
//! struct Echo;
//! impl Service for Echo {
//!     fn call(&self, _op: u32, arg: u64) -> u64 { arg }
//! }
//!
//! pub fn init(_kernel: &'static dyn Kernel) -> Result<Box<dyn Service>, String> {
//!     Ok(Box::new(Echo))
//! }
//! ```

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use core::future::Future;
use core::pin::Pin;

pub use executor::{interval, sleep, sleep_until, yield_now};
pub use interfaces::service::Service;
pub use rrpc::{RRef, RRefArray, RRefDeque, RpcError, RpcResult};

/// A task a domain spawns: owned by the domain, removed (never polled or
/// dropped again) if the domain crashes.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a spawn failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// The core's executor has no free task slot.
    Full,
    /// Only a domain's own running code may spawn its tasks.
    NotInDomain,
}

/// Kernel services, as seen by one domain incarnation.
pub trait Kernel: Send + Sync {
    /// Spawns a task owned by this domain on the current core.
    fn spawn(&self, task: Task) -> Result<(), SpawnError>;
    /// Calls the service of the domain named `domain` (a contained entry:
    /// a crash there is an `Err` here).
    fn call(&self, domain: &str, op: u32, arg: u64) -> RpcResult<u64>;
    /// Writes a line to the kernel log, prefixed with the domain's name.
    fn log(&self, message: &str);
}

/// The entry point every domain exports.
pub type Entry = fn(&'static dyn Kernel) -> Result<Box<dyn Service>, String>;
