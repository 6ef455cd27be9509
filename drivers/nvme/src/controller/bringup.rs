//! Bring-up: reset and enable the controller, identify it and namespace
//! 1, and create the I/O queue pairs through the admin queue.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;
use core::time::Duration;

use domain_sdk::{Device, RRef, now_ns, sleep, yield_now};
use interfaces::bdev::BLOCK;

use super::lanes::{Bells, Lane, Queues};
use super::{Controller, ENTRIES, Page, address, page};
use crate::queue::QueuePair;
use crate::spec::{self, Capabilities, Command, admin, reg};

/// How long an admin command may take.
const ADMIN_TIMEOUT_NS: u64 = 5_000_000_000;

fn reg_error(e: domain_sdk::DeviceError) -> String {
    format!("register access: {e}")
}

/// Polls `done` every millisecond until it holds or `timeout_ms` passes.
async fn wait_for(
    timeout_ms: u64,
    mut done: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = now_ns() + timeout_ms * 1_000_000;
    loop {
        if done()? {
            return Ok(());
        }
        if now_ns() > deadline {
            return Err(format!("timed out after {timeout_ms} ms"));
        }
        sleep(Duration::from_millis(1)).await;
    }
}

impl Controller {
    /// Resets and enables the controller, identifies it and namespace 1,
    /// and creates one I/O queue pair per core (as many as it grants).
    pub async fn start(device: Box<dyn Device>) -> Result<Controller, String> {
        let cap = Capabilities::parse(device.read64(0, reg::CAP).map_err(reg_error)?);
        if !cap.nvm {
            return Err("controller does not support the NVM command set".into());
        }
        if cap.min_page > 4096 {
            return Err(format!("controller needs pages of {} bytes", cap.min_page));
        }
        if u32::from(ENTRIES) > cap.max_entries {
            return Err(format!(
                "controller queues hold only {} entries",
                cap.max_entries
            ));
        }
        device.set_bus_master(true);
        // Reset: disable and wait until it says so (it may have been
        // running under a previous incarnation of this driver).
        device.write32(0, reg::CC, 0).map_err(reg_error)?;
        wait_for(cap.timeout_ms, || {
            Ok(device.read32(0, reg::CSTS).map_err(reg_error)? & spec::CSTS_READY == 0)
        })
        .await
        .map_err(|e| format!("disabling: {e}"))?;
        // The admin queue pair.
        let admin_queues = Queues::new();
        device
            .write32(
                0,
                reg::AQA,
                (u32::from(ENTRIES) - 1) << 16 | (u32::from(ENTRIES) - 1),
            )
            .map_err(reg_error)?;
        device
            .write64(0, reg::ASQ, address(&admin_queues.sq)?)
            .map_err(reg_error)?;
        device
            .write64(0, reg::ACQ, address(&admin_queues.cq)?)
            .map_err(reg_error)?;
        device
            .write32(0, reg::CC, spec::CC_ENABLE)
            .map_err(reg_error)?;
        wait_for(cap.timeout_ms, || {
            let csts = device.read32(0, reg::CSTS).map_err(reg_error)?;
            if csts & spec::CSTS_FATAL != 0 {
                return Err("controller fatal status while enabling".into());
            }
            Ok(csts & spec::CSTS_READY != 0)
        })
        .await
        .map_err(|e| format!("enabling: {e}"))?;
        let mut admin_pair = QueuePair::new(ENTRIES);
        let bells = Bells {
            device: &*device,
            cap,
            qid: 0,
        };
        // Identify controller (model number at bytes 24..64).
        let identify = page();
        let mut cid = 0u16;
        let mut run = |command: Command| {
            cid = cid.wrapping_add(1);
            Command { cid, ..command }
        };
        let command = run(Command {
            opcode: admin::IDENTIFY,
            prp1: address(&identify)?,
            cdw10: 1,
            ..Command::default()
        });
        admin_command(&mut admin_pair, &admin_queues, &bells, command).await?;
        let model = text(&identify, 24, 40);
        // Identify namespace 1: size (bytes 0..8) and the LBA format in use.
        let command = run(Command {
            opcode: admin::IDENTIFY,
            nsid: 1,
            prp1: address(&identify)?,
            cdw10: 0,
            ..Command::default()
        });
        admin_command(&mut admin_pair, &admin_queues, &bells, command).await?;
        let size = u64::from(word(&identify, 0)) | u64::from(word(&identify, 4)) << 32;
        let flbas = byte(&identify, 26) & 0xF;
        let lbads = byte(&identify, 128 + 4 * usize::from(flbas) + 2);
        if !(9..=12).contains(&lbads) {
            return Err(format!(
                "namespace 1 has {}-byte blocks (512 to 4096 supported)",
                1u64 << lbads.min(63)
            ));
        }
        if size == 0 {
            return Err("namespace 1 is empty or absent".into());
        }
        let sector = 1u32 << lbads;
        let blocks = namespace_blocks(size, sector)
            .ok_or_else(|| format!("namespace 1 claims an absurd size of {size} sectors"))?;
        if blocks == 0 {
            // Zero blocks would also read as "not ready" to `control`.
            return Err(format!(
                "namespace 1 holds less than one {BLOCK}-byte block ({size} sectors)"
            ));
        }
        // One I/O queue pair per core, as many as the controller grants.
        let (_, cores) = domain_sdk::core();
        let wanted = cores.clamp(1, 64) as u32;
        let command = run(Command {
            opcode: admin::SET_FEATURES,
            cdw10: admin::FEATURE_QUEUES,
            cdw11: (wanted - 1) << 16 | (wanted - 1),
            ..Command::default()
        });
        let granted = admin_command(&mut admin_pair, &admin_queues, &bells, command).await?;
        let pairs = wanted
            .min((granted & 0xFFFF) + 1)
            .min((granted >> 16) + 1)
            .max(1);
        let mut lanes = alloc::vec::Vec::new();
        for qid in 1..=pairs {
            // Completion queue first, then its submission queue.
            let io_queues = Queues::new();
            let command = run(Command {
                opcode: admin::CREATE_CQ,
                prp1: address(&io_queues.cq)?,
                cdw10: (u32::from(ENTRIES) - 1) << 16 | qid,
                cdw11: 1, // physically contiguous, no interrupts
                ..Command::default()
            });
            admin_command(&mut admin_pair, &admin_queues, &bells, command).await?;
            let command = run(Command {
                opcode: admin::CREATE_SQ,
                prp1: address(&io_queues.sq)?,
                cdw10: (u32::from(ENTRIES) - 1) << 16 | qid,
                cdw11: qid << 16 | 1, // its completion queue, contiguous
                ..Command::default()
            });
            admin_command(&mut admin_pair, &admin_queues, &bells, command).await?;
            lanes.push(Lane::new(qid as u16, io_queues));
        }
        // The admin queues are not needed again: the device forgets them
        // at the next reset (kept allocated until then, as it may DMA).
        core::mem::forget(admin_queues);
        Ok(Controller {
            device,
            cap,
            nsid: 1,
            sector,
            blocks,
            lanes,
            model,
        })
    }
}

async fn admin_command(
    pair: &mut QueuePair,
    queues: &Queues,
    bells: &Bells<'_>,
    command: Command,
) -> Result<u32, String> {
    pair.push(queues, &command)
        .map_err(|_| String::from("admin queue full"))?;
    pair.submit(bells);
    let deadline = now_ns() + ADMIN_TIMEOUT_NS;
    let mut result = None;
    loop {
        // Only this command's completion counts: one with another id is a
        // stale or invented one (the device is lying), and is dropped.
        pair.reap(queues, bells, |c| {
            let ours = c.cid == command.cid && result.is_none();
            if ours {
                result = Some(c);
            }
            ours
        });
        if let Some(c) = result {
            if c.status != 0 {
                let (kind, code) = c.describe();
                return Err(format!(
                    "admin command {:#x} failed: {kind} status {code:#x}",
                    command.opcode
                ));
            }
            return Ok(c.result);
        }
        if now_ns() > deadline {
            return Err(format!("admin command {:#x} timed out", command.opcode));
        }
        yield_now().await;
    }
}

/// How many `BLOCK`-byte blocks a namespace of `size` sectors of `sector`
/// bytes holds; `None` if the identify data is absurd (more than 2^64
/// bytes).
pub fn namespace_blocks(size: u64, sector: u32) -> Option<u64> {
    Some(size.checked_mul(u64::from(sector))? / BLOCK as u64)
}

fn word(page: &RRef<Page>, offset: usize) -> u32 {
    page.0[offset / 4].load(Ordering::Acquire)
}

fn byte(page: &RRef<Page>, offset: usize) -> u8 {
    (word(page, offset & !3) >> (8 * (offset % 4))) as u8
}

/// ASCII text at `offset`, trimmed.
fn text(page: &RRef<Page>, offset: usize, len: usize) -> String {
    let bytes: alloc::vec::Vec<u8> = (offset..offset + len).map(|i| byte(page, i)).collect();
    String::from_utf8_lossy(&bytes).trim().into()
}

#[cfg(test)]
mod tests {
    use super::namespace_blocks;

    #[test]
    fn absurd_namespace_sizes_are_refused_not_overflowed() {
        assert_eq!(namespace_blocks(2048, 512), Some(2048 * 512 / 4096));
        assert_eq!(namespace_blocks(u64::MAX, 4096), None);
        assert_eq!(namespace_blocks(1 << 53, 4096), None);
        assert_eq!(namespace_blocks(u64::MAX, 1), Some(u64::MAX / 4096));
    }
}
