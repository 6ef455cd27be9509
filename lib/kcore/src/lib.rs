//! `kcore`: the kernel's pure logic, factored out so that `cargo test -p
//! kcore` runs it on the host (the idea of Hubris's `kerncore`).
//!
//! What lives here: parsing of what the firmware and the boot loader hand us
//! (the PVH start info in [`pvh`], the ACPI tables in [`acpi`]), the physical
//! frame allocator ([`frames`]), the serial console's line editor
//! ([`lineedit`]), command-line parsing ([`cmdline`]), the boot archive of
//! domain images ([`cpio`], [`manifest`]) and small formatting helpers
//! ([`fmt`]).
//!
//! # What this crate never does
//!
//! - It never touches hardware. Physical memory is read through the
//!   [`PhysMemory`] trait, which the kernel implements over its physical
//!   mapping and tests implement over a byte vector ([`SliceMemory`]); ports
//!   and registers are returned as values for the kernel to write.
//! - It never uses `unsafe` (`#![forbid(unsafe_code)]`) and never allocates:
//!   every table lives in a fixed-capacity array.
//! - It never panics on bad input. Firmware tables, boot information,
//!   command lines and console bytes are untrusted: each parser is a checked
//!   constructor that either returns a value whose accessors cannot fail, or a
//!   typed error (an enum implementing [`core::fmt::Display`]) saying what was
//!   wrong.
//!
//! # Principles
//!
//! - Every size and count read from outside is bounded by a named constant
//!   before it is used, and all address arithmetic is checked, so a hostile
//!   table costs bounded time and can never cause an out-of-bounds access.
//! - Simple, clear algorithms over clever ones: the inputs are small (a few
//!   hundred memory-map entries, a few hundred CPUs).
//! - Everything is tested on the host, including malformed and hostile input
//!   for every parser.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acpi;
pub mod cmdline;
pub mod cpio;
pub mod domheap;
pub mod fmt;
pub mod frames;
mod le;
pub mod lineedit;
pub mod logring;
pub mod manifest;
pub mod pci;
mod phys;
pub mod pvh;
pub mod rng;

pub use phys::{MemError, PhysMemory, SliceMemory};

/// Size of a page and of a physical frame.
pub const PAGE_SIZE: u64 = 4096;
