//! The domain SDK: everything a domain crate depends on besides
//! `interfaces`.
//!
//! A domain is a crate with `#![no_std]` and `#![forbid(unsafe_code)]`
//! exporting one entry function of type [`Entry`]. The kernel calls it,
//! inside the new domain (its heap, under its continuation), with a handle
//! to kernel services; the domain returns its [`Exports`]: objects
//! implementing `#[interface]` traits, under names. Other domains find them
//! with [`lookup`] and call them through generated proxies. Allocation
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
//! use alloc::{string::String, sync::Arc};
//! use domain_sdk::{Exports, Kernel, RpcResult};
//! use interfaces::control::Control;
//!
//! struct Echo;
//! impl Control for Echo {
//!     fn control(&self, _op: u32, arg: u64) -> RpcResult<u64> { Ok(arg) }
//! }
//!
//! pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
//!     Ok(Exports::new().with::<dyn Control + Send + Sync>("control", Arc::new(Echo)))
//! }
//! ```

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::future::Future;
use core::pin::Pin;

pub use executor::{interval, sleep, sleep_until, yield_now};
pub use rrpc::{Interface, Owner, RRef, RRefArray, RRefDeque, RpcError, RpcResult};

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
    /// The name service: finds the alive domain exporting `name` (either
    /// `EXPORT`, the first domain exporting it, or `DOMAIN/EXPORT`) and
    /// shows its object and incarnation to `visit`. Use [`lookup`], which
    /// turns this into a typed proxy.
    fn lookup(&self, name: &str, visit: &mut dyn FnMut(&Exports, &str, Owner)) -> RpcResult<()>;
    /// Writes a line to the kernel log, prefixed with the domain's name.
    fn log(&self, message: &str);
}

/// What a domain exports: named objects implementing `#[interface]`
/// traits. They live in the domain's heap and are only ever called
/// through proxies (domain entries).
#[derive(Default)]
pub struct Exports {
    entries: Vec<(String, Box<dyn Any + Send + Sync>)>,
}

impl Exports {
    pub fn new() -> Exports {
        Exports::default()
    }

    /// Adds `object` as interface `I` under `name` (replacing an export of
    /// the same name).
    pub fn with<I: ?Sized + Interface>(mut self, name: &str, object: Arc<I>) -> Exports {
        self.entries.retain(|(n, _)| n != name);
        self.entries.push((String::from(name), Box::new(object)));
        self
    }

    /// The object exported as `name`, if it is an `I`.
    pub fn get<I: ?Sized + Interface>(&self, name: &str) -> Option<&Arc<I>> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, object)| object.downcast_ref::<Arc<I>>())
    }

    /// Whether something is exported as `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// The exported names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

/// Finds interface `I` exported as `name` (`EXPORT` or `DOMAIN/EXPORT`)
/// and returns its proxy: calls through it enter the exporting domain.
/// The proxy is bound to that incarnation: once it dies, calls fail, and a
/// new lookup finds its restarted successor.
///
/// ```ignore
/// let counter = domain_sdk::lookup::<dyn Counter + Send + Sync>(kernel, "counter")?;
/// let n = counter.increment()?;
/// ```
pub fn lookup<I: ?Sized + Interface>(kernel: &dyn Kernel, name: &str) -> RpcResult<I::Proxy> {
    let mut proxy = None;
    kernel.lookup(name, &mut |exports, export, owner| {
        proxy = exports
            .get::<I>(export)
            .map(|object| I::proxy(object.clone(), owner));
    })?;
    proxy.ok_or(RpcError::NoSuchInterface)
}

/// The entry point every domain exports.
pub type Entry = fn(&'static dyn Kernel) -> Result<Exports, String>;
