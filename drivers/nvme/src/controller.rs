//! Bringing an NVMe controller up and doing I/O on it, through the
//! kernel's device capability (registers) and RRef pages on the shared
//! heap (queues and buffers the device reaches by DMA).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use core::time::Duration;

use domain_sdk::{Device, Mutex, RRef, now_ns, sleep, yield_now};
use interfaces::bdev::{BATCH, BLOCK, Batch, EXTENT_BLOCKS, Extent, Geometry, Statuses, status};

use crate::queue::{Doorbells, QueuePair, Ring};
use crate::spec::{self, Capabilities, Command, Completion, admin, reg};

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
/// How long one I/O batch may take before its requests time out.
const IO_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long an admin command may take.
const ADMIN_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long a lane given up with commands in flight waits for them before
/// it is released (well inside the watchdog's budget for one entry).
const ABANDON_WAIT_NS: u64 = 50_000_000;

/// A queue pair's memory.
struct Queues {
    sq: RRef<Page>,
    cq: RRef<Page>,
}

impl Queues {
    fn new() -> Queues {
        Queues {
            sq: page(),
            cq: page(),
        }
    }
}

impl Ring for Queues {
    fn write_sq(&self, index: u16, entry: [u32; 16]) {
        let base = usize::from(index) * 16;
        for (i, word) in entry.iter().enumerate() {
            self.sq.0[base + i].store(*word, Ordering::Relaxed);
        }
    }

    fn read_cq(&self, index: u16) -> [u32; 4] {
        let base = usize::from(index) * 4;
        // The phase dword last written by the device is read first (with
        // acquire), so the rest of the entry is seen as it wrote it.
        let d3 = self.cq.0[base + 3].load(Ordering::Acquire);
        [
            self.cq.0[base].load(Ordering::Relaxed),
            self.cq.0[base + 1].load(Ordering::Relaxed),
            self.cq.0[base + 2].load(Ordering::Relaxed),
            d3,
        ]
    }
}

/// Queue `qid`'s doorbells.
struct Bells<'a> {
    device: &'a dyn Device,
    cap: Capabilities,
    qid: u16,
}

impl Doorbells for Bells<'_> {
    fn sq_tail(&self, tail: u16) {
        // A failing doorbell means the claim was revoked: nothing to do
        // but let the request time out.
        let _ = self
            .device
            .write32(0, self.cap.sq_doorbell(self.qid), u32::from(tail));
    }

    fn cq_head(&self, head: u16) {
        let _ = self
            .device
            .write32(0, self.cap.cq_doorbell(self.qid), u32::from(head));
    }
}

/// A queue pair and its memory, used by one batch at a time.
struct Lane {
    qid: u16,
    busy: AtomicBool,
    /// Counts the lane's uses; the high byte of each use's command ids, so
    /// that completions of commands an earlier use left in flight (it timed
    /// out, or its future was dropped) are recognised and ignored.
    epoch: AtomicU8,
    state: Mutex<(QueuePair, Queues)>,
}

/// One use of a lane: exclusive until dropped. Dropped with commands still
/// outstanding (the caller's future was dropped: for one, its caller died;
/// or they timed out), it first waits a little for them, so that the device
/// is done with their buffers before whoever owns those frees them, then
/// releases the lane (completions of commands of earlier uses are ignored
/// by epoch). If they still have not completed, it turns the device's bus
/// mastering off and crashes the driver: a restart resets the controller.
struct LaneUse<'a> {
    lane: &'a Lane,
    bells: Bells<'a>,
    epoch: u8,
    /// Commands of this use submitted and not completed.
    outstanding: usize,
}

impl LaneUse<'_> {
    /// The command id of request `index` of this use.
    fn cid(&self, index: u8) -> u16 {
        u16::from(self.epoch) << 8 | u16::from(index)
    }

    /// Takes the lane's new completions; `f` gets those of this use (with
    /// the request index), the others (left by earlier uses) are dropped.
    fn reap(&mut self, mut f: impl FnMut(u8, Completion)) {
        let epoch = self.epoch;
        let mut mine = 0;
        {
            let (pair, queues) = &mut *self.lane.state.lock();
            pair.reap(queues, &self.bells, |c: Completion| {
                if (c.cid >> 8) as u8 == epoch {
                    mine += 1;
                    f(c.cid as u8, c);
                }
            });
        }
        self.outstanding = self.outstanding.saturating_sub(mine);
    }
}

impl Drop for LaneUse<'_> {
    fn drop(&mut self) {
        if self.outstanding > 0 {
            let deadline = now_ns() + ABANDON_WAIT_NS;
            while self.outstanding > 0 && now_ns() < deadline {
                self.reap(|_, _| {});
                core::hint::spin_loop();
            }
            if self.outstanding > 0 {
                // The device still holds buffers their owners are about to
                // free: stop all its DMA and fail, so that the driver is
                // reclaimed and (by its supervisor) restarted, which resets
                // the controller. Nothing else is safe.
                self.bells.device.set_bus_master(false);
                panic!(
                    "queue {}: {} commands given up and still not completed; device stopped",
                    self.lane.qid, self.outstanding
                );
            }
        }
        self.lane.busy.store(false, Ordering::Release);
    }
}

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
    /// and creates one I/O queue pair.
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
        let blocks = size * u64::from(sector) / BLOCK as u64;
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
            lanes.push(Lane {
                qid: qid as u16,
                busy: AtomicBool::new(false),
                epoch: AtomicU8::new(0),
                state: Mutex::new((QueuePair::new(ENTRIES), io_queues)),
            });
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

    /// I/O queue pairs in use.
    pub fn queue_pairs(&self) -> usize {
        self.lanes.len()
    }

    /// The calling core's queue pair, once free.
    async fn lane(&self) -> LaneUse<'_> {
        let (core, _) = domain_sdk::core();
        let lane = &self.lanes[core % self.lanes.len()];
        while lane.busy.swap(true, Ordering::Acquire) {
            yield_now().await;
        }
        LaneUse {
            lane,
            bells: Bells {
                device: &*self.device,
                cap: self.cap,
                qid: lane.qid,
            },
            epoch: lane.epoch.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
            outstanding: 0,
        }
    }

    pub fn geometry(&self) -> Geometry {
        Geometry {
            blocks: self.blocks,
            sector: self.sector,
        }
    }

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
                lane.outstanding += 1;
            }
            pair.submit(&lane.bells);
        }
        let deadline = now_ns() + IO_TIMEOUT_NS;
        let mut results = [status::PENDING; BATCH];
        while lane.outstanding > 0 {
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
            if lane.outstanding == 0 || now_ns() > deadline {
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
        lane.outstanding = 1;
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
        pair.reap(queues, bells, |c| result = Some(c));
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
