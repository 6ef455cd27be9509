//! The interfaces between domains.
//!
//! Untrusted: no unsafe code is written here (a test checks), and it
//! depends only on `rrpc`. It denies rather than forbids unsafe code
//! because `#[interface]` generates one `unsafe impl rrpc::Interface` per
//! trait (under its own `allow`): `Interface` is an unsafe trait so that
//! domains, which forbid unsafe code, cannot implement it with a forged
//! fingerprint or a proxy that misuses the entry capability. Every trait
//! here carries `#[rrpc::interface]`: the IDL compiler checks that each
//! argument and result can cross a domain boundary and generates
//! `<Trait>Proxy`, the handle other domains call through (each call a
//! contained domain entry, `RRef`s moving with it). A domain exports
//! objects implementing these traits under names; others look them up by
//! name and receive proxies (see `domain_sdk::lookup`).
//!
//! One file per interface module. Moving a trait between files keeps its
//! fingerprint only if its tokens stay the same (doc comments and trailing
//! commas included; whitespace does not count).
//!
//! The example interfaces:
//! - [`control::Control`]: what the console's `call NAME OP [ARG]` calls.
//! - [`counter::Counter`]: a service with plain and `async` methods.
//! - [`checksum::Checksum`]: a service that accepts and returns `RRef`
//!   buffers (moved, lent, and in batches).
//! - [`greeter::Greeter`]: the example of `docs/authoring-domains.md`.
//! - [`bdev::BDev`]: block devices (the NVMe driver, the RAM disk).
//! - [`probe::Probe`]: the isolation tests' service (`domains/attack`).

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub use rrpc::{Interface, RRef, RRefDeque, RpcError, RpcResult};

pub mod bdev;
pub mod checksum;
pub mod control;
pub mod counter;
pub mod greeter;
pub mod probe;
