//! `ramdisk`: a [`BDev`] in memory (exported as "bdev"): 16 MiB of 4 KiB
//! blocks on the domain's private heap, allocated as they are first
//! written (unwritten blocks read as zeros). The upper bound for the block
//! path's throughput, and a device for tests without hardware.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;

use domain_sdk::{Exports, Kernel, Mutex, RRef, RpcFuture};
use interfaces::bdev::{
    BATCH, BDev, BLOCK, Batch, EXTENT_BLOCKS, Extent, Geometry, Statuses, status,
};

/// Capacity in blocks.
pub const BLOCKS: u64 = 4096;

#[derive(Default)]
struct RamDisk {
    blocks: Mutex<BTreeMap<u64, Box<[u8; BLOCK]>>>,
}

impl RamDisk {
    fn read(&self, batch: &mut Batch) {
        let blocks = self.blocks.lock();
        for io in batch.iter_mut() {
            if io.block >= BLOCKS {
                io.status = status::OUT_OF_RANGE;
                continue;
            }
            match blocks.get(&io.block) {
                Some(data) => io.data = **data,
                None => io.data = [0; BLOCK],
            }
            io.status = status::OK;
        }
    }

    fn write(&self, batch: &Batch) -> Statuses {
        let mut statuses = [status::PENDING; BATCH];
        let mut blocks = self.blocks.lock();
        for (index, io) in batch.iter().enumerate() {
            statuses[index] = if io.block >= BLOCKS {
                status::OUT_OF_RANGE
            } else {
                blocks.insert(io.block, Box::new(io.data));
                status::OK
            };
        }
        statuses
    }
}

impl BDev for RamDisk {
    fn geometry(&self) -> RpcFuture<'_, Geometry> {
        RpcFuture::new(async move {
            Ok(Geometry {
                blocks: BLOCKS,
                sector: BLOCK as u32,
            })
        })
    }

    fn read(&self, mut batch: RRef<Batch>) -> RpcFuture<'_, RRef<Batch>> {
        RpcFuture::new(async move {
            RamDisk::read(self, &mut batch);
            Ok(batch)
        })
    }

    fn write<'a>(&'a self, batch: &'a RRef<Batch>) -> RpcFuture<'a, Statuses> {
        RpcFuture::new(async move { Ok(RamDisk::write(self, batch)) })
    }

    fn read_extent(&self, mut extent: RRef<Extent>) -> RpcFuture<'_, RRef<Extent>> {
        RpcFuture::new(async move {
            let first = extent.block;
            if first.saturating_add(EXTENT_BLOCKS as u64) > BLOCKS {
                extent.status = status::OUT_OF_RANGE;
                return Ok(extent);
            }
            let blocks = self.blocks.lock();
            for (i, chunk) in extent.data.chunks_exact_mut(BLOCK).enumerate() {
                match blocks.get(&(first + i as u64)) {
                    Some(data) => chunk.copy_from_slice(&data[..]),
                    None => chunk.fill(0),
                }
            }
            drop(blocks);
            extent.status = status::OK;
            Ok(extent)
        })
    }

    fn write_extent<'a>(&'a self, extent: &'a RRef<Extent>) -> RpcFuture<'a, u16> {
        RpcFuture::new(async move {
            let first = extent.block;
            if first.saturating_add(EXTENT_BLOCKS as u64) > BLOCKS {
                return Ok(status::OUT_OF_RANGE);
            }
            let mut blocks = self.blocks.lock();
            for (i, chunk) in extent.data.chunks_exact(BLOCK).enumerate() {
                let mut data = Box::new([0u8; BLOCK]);
                data.copy_from_slice(chunk);
                blocks.insert(first + i as u64, data);
            }
            Ok(status::OK)
        })
    }

    fn flush(&self) -> RpcFuture<'_, ()> {
        RpcFuture::new(async { Ok(()) })
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    Ok(Exports::new().with::<dyn BDev + Send + Sync>("bdev", Arc::new(RamDisk::default())))
}
