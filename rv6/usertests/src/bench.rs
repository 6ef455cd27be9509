//! The file-system benchmark: the same reads and writes through rv6's
//! file system and straight to the block device, in alternating rounds.
//!
//! Workloads (each write durable when it returns, as a file-system write
//! is: the raw path flushes after each):
//!
//! | row | through `fs/files` | raw `BDev` (nvme-shadow) |
//! |---|---|---|
//! | `null_call` | 1,000 `fstat` calls (no device access) | 1,000 `geometry` calls |
//! | `seq_write_4k` | 512 writes of 4 KiB appended to a new file | 512 one-block writes, each flushed |
//! | `seq_write_1m` | 4 writes of 1 MiB | 4 x (8 batches of 32 blocks, flush) |
//! | `seq_read_4k` | an 8 MiB file read in 4 KiB reads | 2,048 one-block reads |
//! | `seq_read_1m` | the 8 MiB file in 1 MiB reads | batches of 32 blocks |
//! | `rand_read_4k` | 512 reads of 4 KiB at random block offsets of the file | 512 random one-block reads |
//! | `rand_write_4k` | 256 overwrites of 4 KiB at random block offsets | 256 random one-block writes, each flushed |
//!
//! The raw path uses blocks from `raw_start` on, past the file system
//! (the benchmark image is larger than the file system on it). Each
//! round logs `fsbench: ROW raw_us fs_us` (`raw_us` 0 when the round ran
//! only the file system); `tools/rv6-bench.py` turns them into ratios.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use domain_sdk::{RRef, RRefDeque, log, lookup, now_ns};
use interfaces::bdev::{BATCH, BDev, BDevProxy, Io, status};
use rv6_ulib::{Errno, Files, open_flags};

pub const ROWS: [&str; 7] = [
    "null_call",
    "seq_write_4k",
    "seq_write_1m",
    "seq_read_4k",
    "seq_read_1m",
    "rand_read_4k",
    "rand_write_4k",
];

const BIG: usize = 8 << 20;
const BLOCK: usize = 4096;

struct Raw {
    dev: BDevProxy,
    start: u64,
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

impl Raw {
    async fn batch(
        &self,
        first: u64,
        count: usize,
        blocks: &[u64],
    ) -> Result<RRef<RRefDeque<Io, BATCH>>, String> {
        let mut batch = RRef::try_new(RRefDeque::new()).map_err(|e| format!("{e:?}"))?;
        for i in 0..count {
            let block = if blocks.is_empty() {
                first + i as u64
            } else {
                blocks[i]
            };
            batch
                .push_back(
                    RRef::try_new(Io::new(self.start + block)).map_err(|e| format!("{e:?}"))?,
                )
                .map_err(|_| String::from("batch full"))?;
        }
        Ok(batch)
    }

    async fn write(&self, first: u64, count: usize, blocks: &[u64]) -> Result<(), String> {
        let batch = self.batch(first, count, blocks).await?;
        let statuses = self
            .dev
            .write(&batch)
            .await
            .map_err(|e| format!("raw write: {e:?}"))?;
        if statuses.iter().take(count).any(|s| *s != status::OK) {
            return Err(String::from("raw write: device error"));
        }
        Ok(())
    }

    async fn read(&self, first: u64, count: usize, blocks: &[u64]) -> Result<(), String> {
        let batch = self.batch(first, count, blocks).await?;
        let batch = self
            .dev
            .read(batch)
            .await
            .map_err(|e| format!("raw read: {e:?}"))?;
        if batch.iter().any(|io| io.status != status::OK) {
            return Err(String::from("raw read: device error"));
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), String> {
        self.dev
            .flush()
            .await
            .map_err(|e| format!("raw flush: {e:?}"))
    }

    /// One row's work; returns its time in microseconds.
    async fn row(&self, row: usize) -> Result<u64, String> {
        let t = now_ns();
        let mut seed = 0x1234_5678u64;
        let blocks = (BIG / BLOCK) as u64;
        match row {
            0 => {
                for _ in 0..1000 {
                    self.dev
                        .geometry()
                        .await
                        .map_err(|e| format!("geometry: {e:?}"))?;
                }
            }
            1 => {
                for b in 0..512 {
                    self.write(b, 1, &[]).await?;
                    self.flush().await?;
                }
            }
            2 => {
                for mib in 0..4u64 {
                    for k in 0..8u64 {
                        self.write(mib * 256 + k * 32, 32, &[]).await?;
                    }
                    self.flush().await?;
                }
            }
            3 => {
                for b in 0..blocks {
                    self.read(b, 1, &[]).await?;
                }
            }
            4 => {
                for b in (0..blocks).step_by(BATCH) {
                    self.read(b, BATCH, &[]).await?;
                }
            }
            5 => {
                for _ in 0..512 {
                    let b = rng(&mut seed) % blocks;
                    self.read(0, 1, &[b]).await?;
                }
            }
            _ => {
                for _ in 0..256 {
                    let b = rng(&mut seed) % blocks;
                    self.write(0, 1, &[b]).await?;
                    self.flush().await?;
                }
            }
        }
        Ok((now_ns() - t) / 1000)
    }
}

fn err(what: &str, e: Errno) -> String {
    format!("{what}: {e}")
}

/// One row through the file system; its time in microseconds.
async fn fs_row(fs: &mut Files, row: usize) -> Result<u64, String> {
    let mut seed = 0x1234_5678u64;
    let blocks = (BIG / BLOCK) as u64;
    let data = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let t = now_ns();
    match row {
        0 => {
            let h = fs
                .open("/", open_flags::READ)
                .await
                .map_err(|e| err("open", e))?;
            for _ in 0..1000 {
                fs.fstat(h).await.map_err(|e| err("stat", e))?;
            }
            fs.close(h).await.map_err(|e| err("close", e))?;
        }
        1 | 2 => {
            let flags = open_flags::WRITE | open_flags::CREATE | open_flags::TRUNCATE;
            let h = fs
                .open("/bench/seq", flags)
                .await
                .map_err(|e| err("open", e))?;
            let (count, size) = if row == 1 { (512, BLOCK) } else { (4, 1 << 20) };
            for i in 0..count {
                fs.write_at(h, (i * size) as u64, &data[..size])
                    .await
                    .map_err(|e| err("write", e))?;
            }
            fs.close(h).await.map_err(|e| err("close", e))?;
        }
        3 | 4 => {
            let h = fs
                .open("/bench/big", open_flags::READ)
                .await
                .map_err(|e| err("open", e))?;
            let size = if row == 3 { BLOCK } else { 1 << 20 };
            let mut off = 0;
            while off < BIG {
                let n = fs
                    .read_at(h, off as u64, &mut buf[..size])
                    .await
                    .map_err(|e| err("read", e))?;
                if n != size {
                    return Err(format!("short read at {off}"));
                }
                off += size;
            }
            fs.close(h).await.map_err(|e| err("close", e))?;
        }
        5 => {
            let h = fs
                .open("/bench/big", open_flags::READ)
                .await
                .map_err(|e| err("open", e))?;
            for _ in 0..512 {
                let b = rng(&mut seed) % blocks;
                fs.read_at(h, b * BLOCK as u64, &mut buf[..BLOCK])
                    .await
                    .map_err(|e| err("read", e))?;
            }
            fs.close(h).await.map_err(|e| err("close", e))?;
        }
        _ => {
            let h = fs
                .open("/bench/big", open_flags::WRITE)
                .await
                .map_err(|e| err("open", e))?;
            for _ in 0..256 {
                let b = rng(&mut seed) % blocks;
                fs.write_at(h, b * BLOCK as u64, &data[..BLOCK])
                    .await
                    .map_err(|e| err("write", e))?;
            }
            fs.close(h).await.map_err(|e| err("close", e))?;
        }
    }
    Ok((now_ns() - t) / 1000)
}

/// Makes the 8 MiB file the read rows read.
async fn prepare(fs: &mut Files) -> Result<(), String> {
    let _ = fs.mkdir("/bench").await;
    let data = vec![0xa5u8; BIG];
    fs.write_file("/bench/big", &data)
        .await
        .map_err(|e| err("prepare", e))
}

/// Row `row` through the file system, repeated until `ms` milliseconds
/// have passed: the iterations done and the microseconds they took (whole
/// iterations only). For throughput over a window long enough that a
/// driver crashed every second meets every row the same number of times.
pub async fn timed(row: usize, ms: u64) -> Result<(u32, u64), String> {
    let mut fs = Files::connect().map_err(|e| err("connect", e))?;
    let ready = match fs.stat("/bench/big").await {
        Ok(st) => st.size == BIG as u64,
        Err(_) => false,
    };
    if !ready {
        prepare(&mut fs).await?;
    }
    let start = now_ns();
    let mut iterations = 0u32;
    let mut us = 0u64;
    while now_ns() - start < ms * 1_000_000 {
        us += fs_row(&mut fs, row).await?;
        iterations += 1;
    }
    Ok((iterations, us))
}

/// `rounds` rounds; each runs every row raw then through the file system
/// (`raw_start` 0: the file system only), logging each row.
pub async fn run(rounds: u32, raw_start: u64) -> Result<(), String> {
    let mut fs = Files::connect().map_err(|e| err("connect", e))?;
    prepare(&mut fs).await?;
    let raw = if raw_start > 0 {
        Some(Raw {
            dev: lookup::<dyn BDev + Send + Sync>("nvme-shadow/bdev")
                .map_err(|e| format!("bdev: {e:?}"))?,
            start: raw_start,
        })
    } else {
        None
    };
    for round in 0..rounds {
        for (row, name) in ROWS.iter().enumerate() {
            let raw_us = match &raw {
                Some(raw) => raw.row(row).await?,
                None => 0,
            };
            let fs_us = fs_row(&mut fs, row).await?;
            log(&format!("fsbench: {name} {raw_us} {fs_us} round {round}"));
        }
    }
    Ok(())
}
