//! Bringing an NVMe controller up and doing I/O on it, through the
//! kernel's device capability (registers) and RRef pages on the shared
//! heap (queues and buffers the device reaches by DMA).
//!
//! - [`bringup`]: reset, enable, identify, and the I/O queue pairs created
//!   through the admin queue ([`Controller::start`]).
//! - [`lanes`]: the I/O queue pairs (one per core) and the guard that
//!   gives one batch a lane at a time and deals with commands it abandons.
//! - [`io`]: batches, extents and flushes on the calling core's lane.

mod bringup;
mod io;
mod lanes;

use alloc::boxed::Box;
use alloc::string::String;

use domain_sdk::{Device, RRef};
use interfaces::bdev::Geometry;

use crate::spec::Capabilities;
use lanes::Lane;

/// One 4 KiB page of DMA memory (the queues' and identify data's).
pub use interfaces::bdev::DmaPage as Page;

fn page() -> RRef<Page> {
    RRef::new(Page::new())
}

fn address(page: &RRef<Page>) -> Result<u64, String> {
    page.device_address()
        .ok_or_else(|| String::from("shared heap gave no device address"))
}

/// Entries per queue (one page of submission entries).
const ENTRIES: u16 = 64;

/// A running controller.
pub struct Controller {
    device: Box<dyn Device>,
    cap: Capabilities,
    nsid: u32,
    /// Logical block size of the namespace, in bytes.
    sector: u32,
    /// Capacity in 4 KiB blocks.
    blocks: u64,
    /// I/O queue pairs (queue ids 1..): one per core, as many as the
    /// controller grants; a core uses `lanes[core % lanes.len()]`.
    lanes: alloc::vec::Vec<Lane>,
    /// What the controller calls itself (model number).
    pub model: String,
}

impl Controller {
    /// I/O queue pairs in use.
    pub fn queue_pairs(&self) -> usize {
        self.lanes.len()
    }

    /// The namespace's size and block size.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            blocks: self.blocks,
            sector: self.sector,
        }
    }
}
