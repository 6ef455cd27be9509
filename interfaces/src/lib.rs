//! The interfaces between domains.
//!
//! Untrusted: no unsafe code is written here (a test checks, line by
//! line), and it depends only on `rrpc`. It denies rather than forbids
//! unsafe code because the trusted IDL compiler generates two kinds of
//! `unsafe impl` here, each under its own `allow`: `#[interface]` one
//! `unsafe impl rrpc::Interface` per trait, and `#[derive(Exchangeable)]`
//! one `unsafe impl rrpc::Exchangeable` per data type. Both traits are
//! unsafe so that domains, which forbid unsafe code, cannot implement them
//! by hand: a forged fingerprint or a proxy that misuses the entry
//! capability (`Interface`), or a type whose `RRef`s would not move with
//! it across a call (`Exchangeable`). Their soundness rests on the
//! generator (trusted), not on what is written in this crate; that is why
//! the types domains exchange are declared here, where the derive works,
//! and not in the domains (where `forbid` refuses it). Every trait
//! here carries `#[rrpc::interface]`: the IDL compiler checks that each
//! argument and result can cross a domain boundary and generates
//! `<Trait>Proxy`, the handle other domains call through (each call a
//! contained domain entry, `RRef`s moving with it). A domain exports
//! objects implementing these traits under names; others look them up by
//! name and receive proxies (see `domain_sdk::lookup`).
//!
//! One file per interface module. A trait's fingerprint (its identity
//! between the kernel and separately built images) covers its name and
//! its methods' names, `async`, argument and result types, in order:
//! comments, doc comments and layout do not change it.
//!
//! The example interfaces:
//! - [`control::Control`]: what the console's `call NAME OP [ARG]` calls.
//! - [`counter::Counter`]: a service with plain and `async` methods.
//! - [`checksum::Checksum`]: a service that accepts and returns `RRef`
//!   buffers (moved, lent, and in batches).
//! - [`greeter::Greeter`]: the example of `docs/authoring-domains.md`.
//! - [`bdev::BDev`]: block devices (the NVMe driver, the RAM disk).
//! - [`net::Net`]: network interfaces (the igb driver).
//! - [`probe::Probe`]: the isolation tests' service (`domains/attack`).
//! - [`rv6::Files`]: rv6's file system (`rv6/fsd`).

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub use rrpc::{Interface, RRef, RRefDeque, RpcError, RpcResult};

pub mod bdev;
pub mod checksum;
pub mod control;
pub mod counter;
pub mod greeter;
pub mod net;
pub mod probe;
pub mod rv6;
pub mod socket;
