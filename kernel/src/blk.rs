//! Block-device checks: write distinct patterns to blocks, read them back,
//! compare. What the console's `blk check` runs, and what the in-QEMU
//! tests of the NVMe driver build on.

use alloc::string::String;
use alloc::vec::Vec;

use interfaces::bdev::{BATCH, BDev, BDevProxy, Batch, Io, status};
use rrpc::{RRef, RRefDeque};

/// Byte `i` of block `block`'s pattern in round `seed`.
pub fn pattern(block: u64, seed: u64, i: usize) -> u8 {
    (block.wrapping_mul(0x9E37_79B9).wrapping_add(seed * 131) as usize).wrapping_add(i * 7) as u8
        ^ (i >> 9) as u8
}

/// A batch of requests for `blocks`, filled with round `seed`'s patterns
/// (or zeroes).
pub fn batch_of(blocks: &[u64], seed: Option<u64>) -> RRef<Batch> {
    let mut batch = RRef::new(RRefDeque::new());
    for &block in blocks {
        let mut io = RRef::new(Io::new(block));
        if let Some(seed) = seed {
            for (i, byte) in io.data.iter_mut().enumerate() {
                *byte = pattern(block, seed, i);
            }
        }
        let _ = batch.push_back(io);
    }
    batch
}

/// Writes `blocks` with round `seed`'s patterns, reads them back, compares.
pub async fn round_trip(bdev: &BDevProxy, blocks: &[u64], seed: u64) -> Result<(), String> {
    for chunk in blocks.chunks(BATCH) {
        let batch = batch_of(chunk, Some(seed));
        let statuses = bdev
            .write(&batch)
            .await
            .map_err(|e| alloc::format!("write: {e}"))?;
        for (io, &status) in batch.iter().zip(statuses.iter()) {
            ensure!(
                status == status::OK,
                "write of block {} gave status {}",
                io.block,
                status
            );
        }
        ensure!(
            batch
                .iter()
                .all(|io| io.data.first() == Some(&pattern(io.block, seed, 0))),
            "a lent batch changed"
        );
        let read = bdev
            .read(batch_of(chunk, None))
            .await
            .map_err(|e| alloc::format!("read: {e}"))?;
        ensure!(
            read.len() == chunk.len(),
            "batch came back with {} requests",
            read.len()
        );
        for io in read.iter() {
            ensure!(
                io.status == status::OK,
                "read of block {} gave status {}",
                io.block,
                io.status
            );
            if let Some(i) = (0..io.data.len()).find(|&i| io.data[i] != pattern(io.block, seed, i))
            {
                return Err(alloc::format!(
                    "block {} byte {i}: read {:#x}, wrote {:#x}",
                    io.block,
                    io.data[i],
                    pattern(io.block, seed, i)
                ));
            }
        }
    }
    Ok(())
}

/// Writes, reads back and compares `count` blocks at the end of `bdev`
/// (the console's `blk check`). Returns the first block used.
pub async fn check_blocks(bdev: &BDevProxy, count: u64) -> Result<u64, String> {
    let geometry = bdev
        .geometry()
        .await
        .map_err(|e| alloc::format!("geometry: {e}"))?;
    ensure!(
        count <= geometry.blocks,
        "the device has only {} blocks",
        geometry.blocks
    );
    let first = geometry.blocks - count;
    let blocks: Vec<u64> = (first..geometry.blocks).collect();
    round_trip(bdev, &blocks, crate::time::now_ns()).await?;
    Ok(first)
}
