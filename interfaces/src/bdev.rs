//! [`BDev`]: block devices (the NVMe driver, the RAM disk), the types
//! their requests are made of, and [`Exerciser`] (in-driver benchmarks).

use rrpc::{RRef, RRefDeque};

/// Bytes in one [`Io`] block.
pub const BLOCK: usize = 4096;
/// Most requests in one batch.
pub const BATCH: usize = 32;

/// One block-sized request: the block number (in [`BLOCK`]-byte
/// units), a status the device sets, and the data, which moves to the
/// device's driver and back without being copied.
///
/// `repr(C)` with the data first: a driver hands the data's address
/// straight to the device, which needs it 4-byte aligned.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Io {
    pub data: [u8; BLOCK],
    pub block: u64,
    pub status: u16,
}

impl Io {
    /// A zeroed request for `block`.
    pub fn new(block: u64) -> Io {
        Io {
            data: [0; BLOCK],
            block,
            status: status::PENDING,
        }
    }
}

/// Values of [`Io::status`].
pub mod status {
    pub const OK: u16 = 0;
    /// Not processed yet.
    pub const PENDING: u16 = 1;
    /// The block is past the end of the device.
    pub const OUT_OF_RANGE: u16 = 2;
    /// The device reported an error.
    pub const DEVICE_ERROR: u16 = 3;
    /// The device did not answer in time. (The NVMe driver returns it
    /// only if the device completes the request within its last short
    /// wait after the deadline; a device that still holds a request's
    /// buffers after that is stopped and the driver crashes, so that a
    /// restart resets it; see `docs/architecture.md`.)
    pub const TIMEOUT: u16 = 4;
    /// The medium could not be read or written (an unrecovered media
    /// error, a failed write): the data of that block is in doubt.
    pub const MEDIA_ERROR: u16 = 5;
    /// The device refused the request as malformed (a driver bug).
    pub const INVALID: u16 = 6;
}

/// A batch of requests.
pub type Batch = RRefDeque<Io, BATCH>;

/// The status of each request of a batch, in order.
pub type Statuses = [u16; BATCH];

/// Blocks in one [`Extent`].
pub const EXTENT_BLOCKS: usize = 4;

/// A multi-block request: [`EXTENT_BLOCKS`] consecutive blocks from
/// `block`, in one page-aligned buffer (a device transfers it with one
/// command, its pages listed in a PRP list).
#[derive(rrpc::Exchangeable)]
#[repr(C, align(4096))]
pub struct Extent {
    pub data: [u8; BLOCK * EXTENT_BLOCKS],
    pub block: u64,
    pub status: u16,
}

impl Extent {
    /// A zeroed extent starting at `block`.
    pub fn new(block: u64) -> Extent {
        Extent {
            data: [0; BLOCK * EXTENT_BLOCKS],
            block,
            status: status::PENDING,
        }
    }
}

/// One 4 KiB page of DMA memory, page-aligned, read and written as
/// 32-bit words (a device writes it concurrently): what a driver
/// keeps its queues in. Declared here because types that live in
/// `RRef`s are declared by the IDL (domains cannot implement
/// `Exchangeable`).
#[derive(rrpc::Exchangeable)]
#[repr(C, align(4096))]
pub struct DmaPage(pub [core::sync::atomic::AtomicU32; 1024]);

impl DmaPage {
    /// A zeroed page.
    pub const fn new() -> DmaPage {
        DmaPage([const { core::sync::atomic::AtomicU32::new(0) }; 1024])
    }
}

impl Default for DmaPage {
    fn default() -> Self {
        Self::new()
    }
}

/// The device's shape.
#[derive(rrpc::Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Blocks of [`BLOCK`] bytes.
    pub blocks: u64,
    /// The device's own logical block size in bytes.
    pub sector: u32,
}

/// A block device: batched reads and writes of block buffers.
#[rrpc::interface]
pub trait BDev {
    /// Waits until the device is ready (a driver may still be starting).
    async fn geometry(&self) -> rrpc::RpcResult<Geometry>;
    /// Reads every request's block into its data; sets each status.
    async fn read(&self, batch: RRef<Batch>) -> rrpc::RpcResult<RRef<Batch>>;
    /// Writes every request's data to its block and returns each
    /// request's status. The batch is only lent: the caller keeps it
    /// (so a shadow can re-issue it if the driver crashes, with no
    /// copy), and the device reads the data from it by DMA.
    async fn write(&self, batch: &RRef<Batch>) -> rrpc::RpcResult<Statuses>;
    /// Makes completed writes durable.
    async fn flush(&self) -> rrpc::RpcResult<()>;
    /// Reads an extent (one multi-page transfer); sets its status.
    async fn read_extent(&self, extent: RRef<Extent>) -> rrpc::RpcResult<RRef<Extent>>;
    /// Writes a lent extent; returns its status.
    async fn write_extent(&self, extent: &RRef<Extent>) -> rrpc::RpcResult<u16>;
}

/// Runs I/O from inside the device's own domain, for benchmarks: the
/// baseline with no domain crossing per batch.
#[rrpc::interface]
pub trait Exerciser {
    /// `batches` batches of `size` requests (4 KiB blocks at
    /// pseudo-random positions from `seed`), reads or writes; returns
    /// the requests that completed with status OK.
    async fn run(&self, batches: u32, size: u32, write: bool, seed: u64) -> rrpc::RpcResult<u64>;
}
