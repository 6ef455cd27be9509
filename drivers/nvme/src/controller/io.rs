//! I/O on the calling core's lane: batches of block requests, extents
//! (one command, a PRP list) and flushes.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;

use domain_sdk::{RRef, now_ns, yield_now};
use interfaces::bdev::{BATCH, BLOCK, Batch, EXTENT_BLOCKS, Extent, Statuses, status};

use super::{Controller, address, page};
use crate::spec::{self, Command, Completion};

/// How long one I/O batch may take before its requests time out.
const IO_TIMEOUT_NS: u64 = 5_000_000_000;

impl Controller {
    /// Reads or writes every request of `batch` (one doorbell for the
    /// batch), then polls for the completions; returns each request's
    /// status. (A read's data arrives by DMA into the batch, which the
    /// caller owns; a write's data is only read.)
    pub async fn io(&self, batch: &Batch, write: bool) -> Statuses {
        // One batch at a time on the queue pair.
        let mut lane = self.lane().await;
        let per_block = (BLOCK as u32 / self.sector) as u16;
        let mut statuses: Statuses = [status::PENDING; BATCH];
        {
            let (pair, queues) = &mut *lane.lane.state.lock();
            for (index, io) in batch.iter().enumerate() {
                if io.block >= self.blocks {
                    statuses[index] = status::OUT_OF_RANGE;
                    continue;
                }
                let Some(data) = io.device_address() else {
                    statuses[index] = status::DEVICE_ERROR;
                    continue;
                };
                // `Io` is repr(C) with the data first.
                let Some(prps) = spec::prps(data, BLOCK, |_| 0) else {
                    statuses[index] = status::DEVICE_ERROR;
                    continue;
                };
                let lba = io.block * u64::from(per_block);
                let command = Command::rw(
                    write,
                    lane.cid(index as u8),
                    self.nsid,
                    lba,
                    per_block,
                    prps,
                );
                if pair.push(queues, &command).is_err() {
                    statuses[index] = status::DEVICE_ERROR;
                    continue;
                }
                lane.submitted(index as u8);
            }
            pair.submit(&lane.bells);
        }
        let deadline = now_ns() + IO_TIMEOUT_NS;
        let mut results = [status::PENDING; BATCH];
        while !lane.outstanding.is_empty() {
            lane.reap(|index, c| {
                if let Some(slot) = results.get_mut(usize::from(index)) {
                    *slot = c.bdev_status();
                    if c.status != 0 {
                        let (kind, code) = c.describe();
                        domain_sdk::log(&format!(
                            "request {index} failed: {kind} status {code:#x}"
                        ));
                    }
                }
            });
            if lane.outstanding.is_empty() || now_ns() > deadline {
                break;
            }
            yield_now().await;
        }
        for index in 0..batch.len() {
            if statuses[index] == status::PENDING {
                statuses[index] = match results[index] {
                    status::PENDING => status::TIMEOUT,
                    done => done,
                };
            }
        }
        // Dropping the lane releases it (after a last wait if requests
        // timed out).
        drop(lane);
        statuses
    }

    /// Reads or writes an extent: one command for all its blocks, its
    /// pages named by PRP1 and a PRP list. Returns its status.
    pub async fn extent(&self, extent: &RRef<Extent>, write: bool) -> u16 {
        let blocks = EXTENT_BLOCKS as u64;
        if extent
            .block
            .checked_add(blocks)
            .is_none_or(|end| end > self.blocks)
        {
            return status::OUT_OF_RANGE;
        }
        let Some(data) = extent.device_address() else {
            return status::DEVICE_ERROR;
        };
        // The list page lives until the command completes (or times out:
        // then it is leaked with the stuck command, never freed under the
        // device).
        let list = page();
        let Ok(list_address) = address(&list) else {
            return status::DEVICE_ERROR;
        };
        let prps = spec::prps(data, BLOCK * EXTENT_BLOCKS, |pages| {
            for (i, page) in pages.enumerate() {
                list.0[2 * i].store(page as u32, Ordering::Relaxed);
                list.0[2 * i + 1].store((page >> 32) as u32, Ordering::Relaxed);
            }
            list_address
        });
        let Some(prps) = prps else {
            return status::DEVICE_ERROR;
        };
        let per_block = BLOCK as u64 / u64::from(self.sector);
        let command = Command::rw(
            write,
            0xFFFE,
            self.nsid,
            extent.block * per_block,
            (per_block * blocks) as u16,
            prps,
        );
        match self.single(command).await {
            Ok(completion) => completion.bdev_status(),
            Err(_) => {
                core::mem::forget(list);
                status::TIMEOUT
            }
        }
    }

    /// Runs one command on the calling core's queue pair and waits for it.
    async fn single(&self, mut command: Command) -> Result<Completion, String> {
        let mut lane = self.lane().await;
        command.cid = lane.cid(command.cid as u8);
        let pushed = {
            let (pair, queues) = &mut *lane.lane.state.lock();
            let pushed = pair.push(queues, &command).is_ok();
            pair.submit(&lane.bells);
            pushed
        };
        if !pushed {
            return Err(String::from("queue full"));
        }
        lane.submitted(command.cid as u8);
        let deadline = now_ns() + IO_TIMEOUT_NS;
        let mut outcome = None;
        loop {
            lane.reap(|_, c| outcome = Some(c));
            if let Some(completion) = outcome {
                return Ok(completion);
            }
            if now_ns() > deadline {
                return Err(format!("command {:#x} timed out", command.opcode));
            }
            yield_now().await;
        }
    }

    /// Flushes the volatile write cache.
    pub async fn flush(&self) -> Result<(), String> {
        let command = Command {
            opcode: spec::io::FLUSH,
            nsid: self.nsid,
            cid: 0xFFFF,
            ..Command::default()
        };
        let completion = self.single(command).await?;
        match completion.status {
            0 => Ok(()),
            status => Err(format!("flush failed with status {status:#x}")),
        }
    }
}
