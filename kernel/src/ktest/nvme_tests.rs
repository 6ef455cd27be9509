//! The NVMe driver domain against QEMU's NVMe controller (`make test`
//! gives every test boot a scratch disk): distinct patterns across the
//! namespace (first, last and random blocks, batches up to 32), read back
//! and compared; several tasks on several cores at once; out-of-range
//! blocks get an error status; the driver's memory is reclaimed when it
//! is killed.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use interfaces::bdev::{BATCH, BDev, BDevProxy, Batch, Io, status};
use rrpc::{RRef, RRefDeque};

use super::{BoxedTest, KTest, TestFn};
use crate::domain::{self, Source, images};
use crate::{cpu, ensure, sched};

pub static TESTS: &[KTest] = &[KTest {
    name: "nvme_patterns_across_the_namespace_on_every_core",
    run: TestFn::Async(patterns),
}];

/// Byte `i` of block `block`'s pattern in round `seed`.
fn pattern(block: u64, seed: u64, i: usize) -> u8 {
    (block.wrapping_mul(0x9E37_79B9).wrapping_add(seed * 131) as usize).wrapping_add(i * 7) as u8
        ^ (i >> 9) as u8
}

fn batch_of(blocks: &[u64], seed: Option<u64>) -> RRef<Batch> {
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
async fn round_trip(bdev: &BDevProxy, blocks: &[u64], seed: u64) -> Result<(), String> {
    for chunk in blocks.chunks(BATCH) {
        let written = bdev
            .write(batch_of(chunk, Some(seed)))
            .await
            .map_err(|e| alloc::format!("write: {e}"))?;
        for io in written.iter() {
            ensure!(
                io.status == status::OK,
                "write of block {} gave status {}",
                io.block,
                io.status
            );
        }
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

fn patterns() -> BoxedTest {
    Box::pin(async {
        if crate::pci::functions()
            .iter()
            .all(|f| (f.header.class, f.header.subclass, f.header.prog_if) != driver_class())
        {
            return Err("no NVMe controller in this machine (make test attaches one)".into());
        }
        let (shared_before, _) = crate::shared_heap::usage();
        let d = domain::create_from(Source::Archive(String::from("nvme")), "t-nvme")?;
        let bdev = images::proxy::<dyn BDev + Send + Sync>("t-nvme/bdev")
            .map_err(|e| alloc::format!("lookup: {e}"))?;
        let geometry = bdev
            .geometry()
            .await
            .map_err(|e| alloc::format!("geometry: {e}"))?;
        ensure!(geometry.blocks >= 64, "a {}-block device", geometry.blocks);
        crate::println!(
            "    device: {} blocks of 4 KiB, {}-byte sectors",
            geometry.blocks,
            geometry.sector
        );
        // First, last, and pseudo-random blocks, in batches of up to 32.
        let mut blocks: Vec<u64> = alloc::vec![0, 1, geometry.blocks - 1, geometry.blocks - 2];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        while blocks.len() < 100 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let block = x % geometry.blocks;
            if !blocks.contains(&block) {
                blocks.push(block);
            }
        }
        round_trip(&bdev, &blocks, 1).await?;
        // Overwrite with another round: the new data, not the old.
        round_trip(&bdev, &blocks[..40], 2).await?;
        // Out of range: an error status, the rest of the batch done.
        let mixed = bdev
            .read(batch_of(&[geometry.blocks, 3, u64::MAX], None))
            .await
            .map_err(|e| alloc::format!("read: {e}"))?;
        let statuses: Vec<u16> = mixed.iter().map(|io| io.status).collect();
        ensure!(
            statuses == [status::OUT_OF_RANGE, status::OK, status::OUT_OF_RANGE],
            "statuses {statuses:?}"
        );
        // An empty batch.
        let empty = bdev
            .read(RRef::new(RRefDeque::new()))
            .await
            .map_err(|e| alloc::format!("{e}"))?;
        ensure!(empty.is_empty(), "empty batch grew");
        // Several tasks on every core, disjoint regions, at once.
        let cores = cpu::count();
        let per_task = 48u64;
        let mut handles = Vec::new();
        for core in 0..cores {
            let region: Vec<u64> = (0..per_task)
                .map(|i| 200 + core as u64 * 1000 + i * 3)
                .collect();
            let handle = sched::spawn_on(core, async move {
                let bdev = images::proxy::<dyn BDev + Send + Sync>("t-nvme/bdev")
                    .map_err(|e| alloc::format!("lookup: {e}"))?;
                round_trip(&bdev, &region, 10 + core as u64).await
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))?;
            handles.push(handle);
        }
        for handle in handles {
            handle.await.map_err(|e| alloc::format!("join: {e:?}"))??;
        }
        bdev.flush()
            .await
            .map_err(|e| alloc::format!("flush: {e}"))?;
        drop(bdev);
        drop(mixed);
        drop(empty);
        domain::kill(d, "test");
        ensure!(
            domain::wait_dead(d, Duration::from_secs(5)).await,
            "nvme still {}",
            d.state().name()
        );
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap {shared_before} -> {shared_after} B after the driver died"
        );
        Ok(())
    })
}

fn driver_class() -> (u8, u8, u8) {
    (0x01, 0x08, 0x02)
}
