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

pub mod control {
    use rrpc::RpcResult;

    /// A domain's console hook: `call NAME OP [ARG]` ends up here. What
    /// `op` and `arg` mean is up to the domain (each documents it).
    #[rrpc::interface]
    pub trait Control {
        fn control(&self, op: u32, arg: u64) -> RpcResult<u64>;
    }
}

pub mod counter {
    use rrpc::RpcResult;

    /// Counts calls, and ticks of a background task.
    #[rrpc::interface]
    pub trait Counter {
        /// Counts one call; returns the count so far.
        fn increment(&self) -> RpcResult<u64>;
        /// Ticks of the background task so far.
        fn ticks(&self) -> RpcResult<u64>;
        /// Completes once the background task has ticked `n` more times;
        /// returns the tick count then.
        async fn wait_ticks(&self, n: u64) -> RpcResult<u64>;
    }
}

pub mod checksum {
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
}

pub mod greeter {
    /// The authoring guide's example service (`docs/authoring-domains.md`).
    #[rrpc::interface]
    pub trait Greeter {
        /// Waits `delay_ms`, then counts one greeting; returns the count.
        async fn greet(&self, delay_ms: u64) -> rrpc::RpcResult<u64>;
    }
}

pub mod probe {
    use rrpc::{RRef, RpcResult};

    /// A buffer the probe keeps or inspects.
    pub type Buffer = [u8; 256];

    /// A service that does what hostile or careless peers make a service
    /// do: keep `RRef`s a client moved in, read lent ones, keep the waker
    /// it was polled with. The isolation tests (`domains/attack`) call it
    /// from domains that then die, to show that the service survives them.
    #[rrpc::interface]
    pub trait Probe {
        /// Keeps `buffer` until [`release`](Probe::release); returns how
        /// many it keeps.
        fn keep(&self, buffer: RRef<Buffer>) -> RpcResult<u64>;
        /// Drops every kept buffer (made by other domains, which may be
        /// dead by now); returns the sum of their first bytes.
        fn release(&self) -> RpcResult<u64>;
        /// The sum of a lent buffer's bytes; then crashes if `crash`.
        fn inspect(&self, buffer: &RRef<Buffer>, crash: bool) -> RpcResult<u64>;
        /// Pending until [`wake_all`](Probe::wake_all): keeps the waker it
        /// is polled with, then completes with the number of wakes.
        async fn hold_waker(&self) -> RpcResult<u64>;
        /// Wakes every waker kept by `hold_waker`; returns how many.
        fn wake_all(&self) -> RpcResult<u64>;
    }
}

pub mod bdev {
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
        /// The device did not answer in time. (The NVMe driver does not
        /// return it: a device that still holds a request's buffers after
        /// its deadline is stopped and the driver crashes, so that a
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
        async fn run(
            &self,
            batches: u32,
            size: u32,
            write: bool,
            seed: u64,
        ) -> rrpc::RpcResult<u64>;
    }
}
