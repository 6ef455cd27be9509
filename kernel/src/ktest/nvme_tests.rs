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

use interfaces::bdev::{BATCH, BDev, BDevProxy, status};
use rrpc::{RRef, RRefDeque};

use crate::blk::{batch_of, pattern, round_trip};

use super::{BoxedTest, KTest, TestFn};
use crate::domain::{self, Source};
use crate::{cpu, sched};

pub static TESTS: &[KTest] = &[
    KTest {
        name: "nvme_patterns_across_the_namespace_on_every_core",
        run: TestFn::Async(patterns),
    },
    KTest {
        name: "nvme_shadow_hides_repeated_driver_crashes",
        run: TestFn::Async(shadow_under_crashes),
    },
    KTest {
        name: "nvme_a_client_dying_mid_io_leaves_the_driver_usable",
        run: TestFn::Async(client_dies_mid_io),
    },
];

/// Loads the NVMe driver as domain `name` and returns it with a proxy to
/// its `BDev` and the device's geometry (an error if the machine has no
/// NVMe controller).
pub(super) async fn start_driver(
    name: &str,
) -> Result<
    (
        &'static domain::Domain,
        BDevProxy,
        interfaces::bdev::Geometry,
    ),
    String,
> {
    if crate::pci::functions()
        .iter()
        .all(|f| (f.header.class, f.header.subclass, f.header.prog_if) != driver_class())
    {
        return Err("no NVMe controller in this machine (make test attaches one)".into());
    }
    let driver = domain::create_from(Source::Archive(String::from("nvme")), name)?;
    let bdev = domain::proxy::<dyn BDev + Send + Sync>(&alloc::format!("{name}/bdev"))
        .map_err(|e| alloc::format!("lookup: {e}"))?;
    let geometry = bdev
        .geometry()
        .await
        .map_err(|e| alloc::format!("geometry: {e}"))?;
    Ok((driver, bdev, geometry))
}

fn patterns() -> BoxedTest {
    Box::pin(async {
        let (shared_before, _) = crate::shared_heap::usage();
        let (d, bdev, geometry) = start_driver("t-nvme").await?;
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
        // Multi-page transfers (one command, a PRP list): an extent
        // written whole reads back block by block, and the other way round.
        extents(&bdev, geometry.blocks).await?;
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
                let bdev = domain::proxy::<dyn BDev + Send + Sync>("t-nvme/bdev")
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

/// A verified write/read workload through the shadow while the driver is
/// crashed again and again: every round completes, no error reaches the
/// client, every byte reads back as written, and afterwards nothing of the
/// driver's incarnations is left on the shared heap.
fn shadow_under_crashes() -> BoxedTest {
    Box::pin(async {
        use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        static DONE: AtomicBool = AtomicBool::new(false);
        static CRASHES: AtomicU32 = AtomicU32::new(0);
        DONE.store(false, Ordering::SeqCst);
        CRASHES.store(0, Ordering::SeqCst);
        let (shared_before, _) = crate::shared_heap::usage();
        let driver = domain::create_from(Source::Archive(String::from("nvme")), "nvme")?;
        let shadow =
            domain::create_from(Source::Archive(String::from("nvme-shadow")), "nvme-shadow")?;
        let bdev = domain::proxy::<dyn BDev + Send + Sync>("nvme-shadow/bdev")
            .map_err(|e| alloc::format!("lookup: {e}"))?;
        let geometry = bdev
            .geometry()
            .await
            .map_err(|e| alloc::format!("geometry: {e}"))?;
        // Crash the driver every 40 ms, five times, from another core.
        let other = (cpu::current().index + 1) % cpu::count();
        let crasher = sched::spawn_on(other, async move {
            for _ in 0..5 {
                executor::sleep(Duration::from_millis(40)).await;
                // Wait for the restarted incarnation.
                for _ in 0..500 {
                    if driver.state() == domain::State::Alive {
                        break;
                    }
                    executor::sleep(Duration::from_millis(1)).await;
                }
                let crash = domain::enter(driver.owner(), || {
                    crate::inject::trigger(crate::inject::Kind::Panic)
                });
                if crash.is_err() {
                    CRASHES.fetch_add(1, Ordering::SeqCst);
                }
            }
            DONE.store(true, Ordering::SeqCst);
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        let mut rounds = 0u64;
        while !DONE.load(Ordering::SeqCst) || rounds < 5 {
            let base = (rounds * 37) % (geometry.blocks - 32);
            let blocks: Vec<u64> = (0..16).map(|i| base + i * 2).collect();
            round_trip(&bdev, &blocks, 100 + rounds)
                .await
                .map_err(|e| alloc::format!("round {rounds}: {e}"))?;
            rounds += 1;
            ensure!(rounds < 10_000, "workload never saw the crasher finish");
        }
        crasher
            .await
            .map_err(|e| alloc::format!("crasher: {e:?}"))?;
        let crashes = CRASHES.load(Ordering::SeqCst);
        let restarts = domain::call(shadow, 0, 0).map_err(|e| alloc::format!("shadow: {e}"))?;
        let reissued = domain::call(shadow, 1, 0).map_err(|e| alloc::format!("shadow: {e}"))?;
        crate::println!(
            "    {rounds} verified rounds; driver crashed {crashes} times, restarted {restarts} times by the shadow, {reissued} batches re-issued"
        );
        ensure!(crashes >= 3, "only {crashes} crashes landed");
        ensure!(restarts >= 1, "the shadow never restarted the driver");
        drop(bdev);
        domain::kill(shadow, "test");
        domain::kill(driver, "test");
        for d in [shadow, driver] {
            ensure!(
                domain::wait_dead(d, Duration::from_secs(5)).await,
                "{} still {}",
                d.name,
                d.state().name()
            );
        }
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap {shared_before} -> {shared_after} B"
        );
        Ok(())
    })
}

/// Extents (4 blocks, one NVMe command with a PRP list): write one, read it
/// back as an extent and as single blocks; write single blocks, read them
/// as an extent; one past the end is refused.
async fn extents(bdev: &BDevProxy, device_blocks: u64) -> Result<(), String> {
    use interfaces::bdev::{BLOCK, EXTENT_BLOCKS, Extent};
    let first = device_blocks / 2 + 1; // not extent-aligned on purpose
    let mut extent = RRef::new(Extent::new(first));
    for (i, byte) in extent.data.iter_mut().enumerate() {
        *byte = pattern(first + (i / BLOCK) as u64, 7, i % BLOCK);
    }
    let written = bdev
        .write_extent(&extent)
        .await
        .map_err(|e| alloc::format!("write_extent: {e}"))?;
    ensure!(written == status::OK, "extent write status {written}");
    let blocks: Vec<u64> = (first..first + EXTENT_BLOCKS as u64).collect();
    let read = bdev
        .read(batch_of(&blocks, None))
        .await
        .map_err(|e| alloc::format!("read: {e}"))?;
    for io in read.iter() {
        ensure!(io.status == status::OK, "read status {}", io.status);
        ensure!(
            (0..BLOCK).all(|i| io.data[i] == pattern(io.block, 7, i)),
            "block {} of the extent differs",
            io.block
        );
    }
    round_trip(bdev, &blocks, 8).await?;
    let back = bdev
        .read_extent(RRef::new(Extent::new(first)))
        .await
        .map_err(|e| alloc::format!("read_extent: {e}"))?;
    ensure!(
        back.status == status::OK,
        "extent read status {}",
        back.status
    );
    ensure!(
        back.data
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(first + (i / BLOCK) as u64, 8, i % BLOCK)),
        "the extent read differs from the blocks written"
    );
    let past = bdev
        .read_extent(RRef::new(Extent::new(device_blocks - 1)))
        .await
        .map_err(|e| alloc::format!("read_extent: {e}"))?;
    ensure!(
        past.status == status::OUT_OF_RANGE,
        "an extent past the end gave {}",
        past.status
    );
    Ok(())
}

/// A client domain's task keeps reading through the driver; the client
/// crashes while a batch is in flight. Its task is never polled again, so
/// the kernel drops the driver's pending future inside the driver, which
/// waits for the batch's completions and releases its queue pair: I/O on
/// the same core then works, nothing the client had is left on the shared
/// heap, and the driver is alive.
fn client_dies_mid_io() -> BoxedTest {
    Box::pin(async {
        use domain_sdk::Kernel;
        let (shared_before, _) = crate::shared_heap::usage();
        let (driver, bdev, geometry) = start_driver("t-nvme-c").await?;
        let client = domain::create_from(Source::Archive(String::from("idle")), "t-io-client")?;
        let client_bdev = domain::proxy::<dyn BDev + Send + Sync>("t-nvme-c/bdev")
            .map_err(|e| alloc::format!("lookup: {e}"))?;
        let spawned = domain::enter(client.owner(), || {
            domain::SERVICES.spawn(Box::pin(async move {
                loop {
                    let blocks: Vec<u64> = (0..BATCH as u64).collect();
                    let _ = client_bdev.read(batch_of(&blocks, None)).await;
                }
            }))
        })
        .map_err(|e| alloc::format!("enter: {e}"))?;
        ensure!(spawned.is_ok(), "spawn as the client: {spawned:?}");
        // Until a read is pending in the driver.
        let mut pending = false;
        for _ in 0..2000 {
            if domain::parked_calls(client) > 0 {
                pending = true;
                break;
            }
            executor::yield_now().await;
        }
        ensure!(pending, "the client's read never went pending");
        let crash = domain::enter(client.owner(), || {
            crate::inject::trigger(crate::inject::Kind::Panic)
        });
        ensure!(
            crash == Err(domain::EntryError::Crashed),
            "crash gave {crash:?}"
        );
        ensure!(
            domain::wait_dead(client, Duration::from_secs(5)).await,
            "client still {}",
            client.state().name()
        );
        ensure!(driver.state() == domain::State::Alive, "the driver died");
        // Same core, same queue pair: it must have been released.
        let base = geometry.blocks - 64;
        let blocks: Vec<u64> = (base..base + 32).collect();
        round_trip(&bdev, &blocks, 77).await?;
        drop(bdev);
        domain::kill(driver, "test");
        ensure!(
            domain::wait_dead(driver, Duration::from_secs(5)).await,
            "driver still {}",
            driver.state().name()
        );
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap {shared_before} -> {shared_after} B"
        );
        Ok(())
    })
}
