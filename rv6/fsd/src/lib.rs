//! `fs`: rv6's file-system domain. It mounts the rv6 file system
//! (`rv6-fs`, native 4 KiB profile) on a block device and exports it as
//! [`Files`] ("fs/files").
//!
//! The device is the one `rv6_disk=NAME` on the kernel command line names
//! (an export such as `ramdisk/bdev`), else the first of
//! `nvme-shadow/bdev` (NVMe through its shadow, which restarts a crashed
//! driver and re-issues its requests), `nvme/bdev` and `ramdisk/bdev`
//! that exists. Make the image with `rv6fs mkfs` on the host; with
//! `fs_mkfs=1`, a device that holds no file system gets a new one (a RAM
//! disk starts empty).
//!
//! One task owns the file system. Calls queue requests for it; it takes
//! every request waiting, runs them in order, commits their changes in
//! one transaction (group commit), then answers them all: a call that
//! changed something returns once the change is durable. A call whose
//! caller gave up still runs to its end, so the file system never stops
//! in the middle of an operation. At mount the log is replayed, so a
//! crash of this domain, of the driver, or of the machine loses no
//! acknowledged change.
//!
//! `call fs help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod disk;
pub mod server;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, Owner, RRef, RpcFuture, RpcResult, caller, is_alive, log, sleep, spawn,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::rv6::{Chunk, DirEntry, FileStat, Files, Path, Reply, errno};
use rv6_fs::{Disk, Fs, MkfsOptions, Profile};

use disk::BDevDisk;
use server::{OwnerBits, Server};

/// Blocks the buffer cache holds (4 KiB each), unless `fs_cache=N` says.
const CACHE_BLOCKS: usize = 512;
/// Requests run before one commit at most.
const MAX_BATCH: usize = 64;

enum Op {
    Open(u32, String, u32),
    Close(u32),
    Read(u32, u64, RRef<Chunk>),
    ReadPath(u32, String, u64, RRef<Chunk>),
    Write(u32, u64, RRef<Chunk>, bool),
    Stat(u32),
    Truncate(u32, u64),
    ReadDir(u32, u32),
    Mkdir(u32, String),
    Mknod(u32, String, i16, i16),
    Unlink(u32, String),
    Rmdir(u32, String),
    Link(u32, String, String),
    Rename(u32, String, String),
    Sync,
    /// Close the handles of dead owners (the sweeper's).
    Sweep,
}

enum Answer {
    Reply(Reply),
    Chunk(RRef<Chunk>),
    Stat(FileStat),
    Dir(DirEntry),
}

#[derive(Default)]
struct Slot {
    answer: Mutex<Option<Answer>>,
    waker: Mutex<Option<Waker>>,
}

struct Request {
    owner: OwnerBits,
    op: Op,
    slot: Arc<Slot>,
}

struct Shared {
    queue: Mutex<VecDeque<Request>>,
    worker: Mutex<Option<Waker>>,
    /// Set once the file system cannot be used (no device, no file
    /// system on it): every call gets EIO.
    unusable: Mutex<Option<String>>,
    calls: AtomicU64,
    commits: AtomicU64,
    batches: AtomicU64,
    swept: AtomicU64,
    mounted: AtomicU64,
    /// Time the file-system task spent running calls, and committing.
    run_ns: AtomicU64,
    commit_ns: AtomicU64,
}

fn me() -> OwnerBits {
    caller().to_bits()
}

impl Shared {
    /// Queues `op` for the file-system task and waits for its answer.
    async fn submit(&self, owner: OwnerBits, op: Op) -> Answer {
        if self.unusable.lock().is_some() {
            return Answer::Reply(Reply::error(errno::EIO));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        self.queue.lock().push_back(Request {
            owner,
            op,
            slot: slot.clone(),
        });
        if let Some(w) = self.worker.lock().take() {
            w.wake();
        }
        poll_fn(|cx| {
            if let Some(answer) = slot.answer.lock().take() {
                return Poll::Ready(answer);
            }
            *slot.waker.lock() = Some(cx.waker().clone());
            // An answer that came in between.
            match slot.answer.lock().take() {
                Some(answer) => Poll::Ready(answer),
                None => Poll::Pending,
            }
        })
        .await
    }

    async fn reply(&self, op: Op) -> RpcResult<Reply> {
        Ok(match self.submit(me(), op).await {
            Answer::Reply(r) => r,
            _ => Reply::error(errno::EIO),
        })
    }
}

fn answer(slot: &Slot, answer: Answer) {
    *slot.answer.lock() = Some(answer);
    if let Some(w) = slot.waker.lock().take() {
        w.wake();
    }
}

/// Takes the requests waiting (waits for one if there is none).
async fn next_batch(shared: Arc<Shared>) -> Vec<Request> {
    poll_fn(|cx| {
        let mut queue = shared.queue.lock();
        if queue.is_empty() {
            *shared.worker.lock() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = queue.len().min(MAX_BATCH);
        Poll::Ready(queue.drain(..n).collect())
    })
    .await
}

fn path_of(path: &RRef<Path>) -> Option<String> {
    path.as_str().map(String::from)
}

/// Runs one request; whether it may have changed the file system.
/// A read's outcome into its chunk: the bytes' count and the file's
/// size, or the error number.
fn fill(chunk: &mut Chunk, read: Result<(usize, u64), i32>) {
    (chunk.len, chunk.errno, chunk.size) = match read {
        Ok((n, size)) => (n as u32, 0, size),
        Err(e) => (0, e, 0),
    };
}

async fn run(server: &mut Server<BDevDisk>, req: Request) -> (Arc<Slot>, Answer, bool) {
    let owner = req.owner;
    let (answer, changes) = match req.op {
        Op::Open(dir, path, flags) => (
            Answer::Reply(server.open(owner, dir, &path, flags).await),
            true,
        ),
        Op::Close(h) => (Answer::Reply(server.close(owner, h).await), true),
        Op::Read(h, off, mut chunk) => {
            let r = server.read(owner, h, off, &mut chunk.data).await;
            fill(&mut chunk, r);
            (Answer::Chunk(chunk), false)
        }
        Op::ReadPath(dir, path, off, mut chunk) => {
            let r = server
                .read_path(owner, dir, &path, off, &mut chunk.data)
                .await;
            fill(&mut chunk, r);
            // Its release may free an unlinked file, as a close does.
            (Answer::Chunk(chunk), true)
        }
        Op::Write(h, off, mut chunk, durable) => {
            let len = (chunk.len as usize).min(chunk.data.len());
            let r = server.write(owner, h, off, &chunk.data[..len]).await;
            match r {
                Ok(n) => {
                    chunk.len = n as u32;
                    chunk.errno = 0;
                }
                Err(e) => {
                    chunk.len = 0;
                    chunk.errno = e;
                }
            }
            (Answer::Chunk(chunk), durable)
        }
        Op::Stat(h) => (Answer::Stat(server.stat(owner, h).await), false),
        Op::Truncate(h, size) => (Answer::Reply(server.truncate(owner, h, size).await), true),
        Op::ReadDir(h, slot) => (Answer::Dir(server.read_dir(owner, h, slot).await), false),
        Op::Mkdir(dir, path) => (Answer::Reply(server.mkdir(owner, dir, &path).await), true),
        Op::Mknod(dir, path, major, minor) => (
            Answer::Reply(server.mknod(owner, dir, &path, major, minor).await),
            true,
        ),
        Op::Unlink(dir, path) => (Answer::Reply(server.unlink(owner, dir, &path).await), true),
        Op::Rmdir(dir, path) => (Answer::Reply(server.rmdir(owner, dir, &path).await), true),
        Op::Link(dir, old, new) => (
            Answer::Reply(server.link(owner, dir, &old, &new).await),
            true,
        ),
        Op::Rename(dir, old, new) => (
            Answer::Reply(server.rename(owner, dir, &old, &new).await),
            true,
        ),
        Op::Sync => (Answer::Reply(Reply::ok(0)), true),
        Op::Sweep => {
            let n = server.sweep(|o| is_alive(Owner::from_bits(o))).await;
            // Quiet for a second: leave the log empty.
            let _ = server.quiesce().await;
            (Answer::Reply(Reply::ok(n as u64)), true)
        }
    };
    (req.slot, answer, changes)
}

/// A reply saying the change was not made durable.
fn failed(answer: Answer) -> Answer {
    match answer {
        Answer::Reply(_) => Answer::Reply(Reply::error(errno::EIO)),
        Answer::Chunk(mut chunk) => {
            chunk.errno = errno::EIO;
            chunk.len = 0;
            Answer::Chunk(chunk)
        }
        other => other,
    }
}

async fn mount(shared: Arc<Shared>) -> Result<Server<BDevDisk>, String> {
    let cache = match domain_sdk::boot_option("fs_cache") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| alloc::format!("fs_cache={text}: not a number"))?,
        None => CACHE_BLOCKS,
    };
    // The device may still be starting: look for a few seconds.
    let mut tries = 0;
    let (name, mut disk) = loop {
        match disk::find().await {
            Ok(found) => break found,
            Err(e) if tries >= 50 => return Err(e),
            Err(_) => {
                tries += 1;
                sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // `fs_mkfs=1`: a device without a file system gets a new one (for a
    // RAM disk, which starts empty at every boot).
    let make = domain_sdk::boot_option("fs_mkfs").as_deref() == Some("1");
    let fs = if make && !disk::has_file_system(&mut disk).await {
        let blocks = u32::try_from(disk.blocks()).unwrap_or(u32::MAX);
        let fs = Fs::format(
            disk,
            MkfsOptions::for_blocks(Profile::Native, blocks),
            cache,
        )
        .await
        .map_err(|e| alloc::format!("cannot make a file system on {name}: {e}"))?;
        log(&alloc::format!(
            "fs: {name} had no file system: made one (fs_mkfs=1)"
        ));
        fs
    } else {
        Fs::mount(disk, Profile::Native, cache).await.map_err(|e| {
            alloc::format!(
                "no rv6 file system on {name} ({e}); make one on the host with `rv6fs mkfs`"
            )
        })?
    };
    let sb = *fs.superblock();
    log(&alloc::format!(
        "fs: mounted {name}: {} blocks, {} inodes, log of {} blocks",
        sb.size,
        sb.ninodes,
        sb.nlog
    ));
    shared.mounted.fetch_add(1, Ordering::Relaxed);
    Ok(Server::new(fs))
}

async fn serve(shared: Arc<Shared>) {
    let mut server = match mount(shared.clone()).await {
        Ok(server) => server,
        Err(e) => {
            log(&alloc::format!("fs: {e}"));
            *shared.unusable.lock() = Some(e);
            // Answer whatever queued meanwhile, and everything after.
            loop {
                for req in next_batch(shared.clone()).await {
                    answer(&req.slot, failed(Answer::Reply(Reply::error(errno::EIO))));
                }
            }
        }
    };
    loop {
        let batch = next_batch(shared.clone()).await;
        shared.batches.fetch_add(1, Ordering::Relaxed);
        let mut answers = Vec::with_capacity(batch.len());
        let mut changed = false;
        let t0 = domain_sdk::now_ns();
        for req in batch {
            let (slot, a, changes) = run(&mut server, req).await;
            changed |= changes;
            answers.push((slot, a, changes));
        }
        let t1 = domain_sdk::now_ns();
        let durable = if changed {
            let before = server.stats.commits;
            let r = server.commit().await;
            shared
                .commits
                .fetch_add(server.stats.commits - before, Ordering::Relaxed);
            r.is_ok()
        } else {
            true
        };
        shared.run_ns.fetch_add(t1 - t0, Ordering::Relaxed);
        shared
            .commit_ns
            .fetch_add(domain_sdk::now_ns() - t1, Ordering::Relaxed);
        shared.swept.store(server.stats.swept, Ordering::Relaxed);
        for (slot, a, changes) in answers {
            answer(&slot, if changes && !durable { failed(a) } else { a });
        }
        if !durable {
            // The device failed in the middle of a commit: what is on it
            // is in doubt until a mount replays the log. Crash, so that a
            // restart mounts again.
            panic!("fs: the device failed during a commit; restart this domain to remount");
        }
    }
}

/// Once a second, closes the handles of domains that died.
async fn sweeper(shared: Arc<Shared>) {
    loop {
        sleep(Duration::from_secs(1)).await;
        if shared.unusable.lock().is_some() {
            return;
        }
        let _ = shared.submit(0, Op::Sweep).await;
    }
}

impl Files for Shared {
    fn open<'a>(&'a self, dir: u32, path: &'a RRef<Path>, flags: u32) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match path_of(path) {
                Some(p) => self.reply(Op::Open(dir, p, flags)).await,
                None => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn close(&self, handle: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move { self.reply(Op::Close(handle)).await })
    }

    fn read(&self, handle: u32, offset: u64, chunk: RRef<Chunk>) -> RpcFuture<'_, RRef<Chunk>> {
        RpcFuture::new(async move {
            match self.submit(me(), Op::Read(handle, offset, chunk)).await {
                Answer::Chunk(c) => Ok(c),
                _ => Err(domain_sdk::RpcError::DomainCrashed),
            }
        })
    }

    fn read_path<'a>(
        &'a self,
        dir: u32,
        path: &'a RRef<Path>,
        offset: u64,
        mut chunk: RRef<Chunk>,
    ) -> RpcFuture<'a, RRef<Chunk>> {
        RpcFuture::new(async move {
            let Some(p) = path_of(path) else {
                fill(&mut chunk, Err(errno::EINVAL));
                return Ok(chunk);
            };
            match self.submit(me(), Op::ReadPath(dir, p, offset, chunk)).await {
                Answer::Chunk(c) => Ok(c),
                _ => Err(domain_sdk::RpcError::DomainCrashed),
            }
        })
    }

    fn write(&self, handle: u32, offset: u64, chunk: RRef<Chunk>) -> RpcFuture<'_, RRef<Chunk>> {
        RpcFuture::new(async move {
            match self
                .submit(me(), Op::Write(handle, offset, chunk, true))
                .await
            {
                Answer::Chunk(c) => Ok(c),
                _ => Err(domain_sdk::RpcError::DomainCrashed),
            }
        })
    }

    fn write_more(
        &self,
        handle: u32,
        offset: u64,
        chunk: RRef<Chunk>,
    ) -> RpcFuture<'_, RRef<Chunk>> {
        RpcFuture::new(async move {
            match self
                .submit(me(), Op::Write(handle, offset, chunk, false))
                .await
            {
                Answer::Chunk(c) => Ok(c),
                _ => Err(domain_sdk::RpcError::DomainCrashed),
            }
        })
    }

    fn stat(&self, handle: u32) -> RpcFuture<'_, FileStat> {
        RpcFuture::new(async move {
            Ok(match self.submit(me(), Op::Stat(handle)).await {
                Answer::Stat(s) => s,
                _ => FileStat {
                    errno: errno::EIO,
                    inum: 0,
                    kind: 0,
                    nlink: 0,
                    size: 0,
                    major: 0,
                    minor: 0,
                },
            })
        })
    }

    fn truncate(&self, handle: u32, size: u64) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move { self.reply(Op::Truncate(handle, size)).await })
    }

    fn read_dir(&self, handle: u32, slot: u32) -> RpcFuture<'_, DirEntry> {
        RpcFuture::new(async move {
            Ok(match self.submit(me(), Op::ReadDir(handle, slot)).await {
                Answer::Dir(d) => d,
                _ => DirEntry {
                    errno: errno::EIO,
                    next: 0,
                    inum: 0,
                    name: [0; interfaces::rv6::NAME],
                    name_len: 0,
                },
            })
        })
    }

    fn mkdir<'a>(&'a self, dir: u32, path: &'a RRef<Path>) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match path_of(path) {
                Some(p) => self.reply(Op::Mkdir(dir, p)).await,
                None => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn mknod<'a>(
        &'a self,
        dir: u32,
        path: &'a RRef<Path>,
        major: i16,
        minor: i16,
    ) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match path_of(path) {
                Some(p) => self.reply(Op::Mknod(dir, p, major, minor)).await,
                None => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn unlink<'a>(&'a self, dir: u32, path: &'a RRef<Path>) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match path_of(path) {
                Some(p) => self.reply(Op::Unlink(dir, p)).await,
                None => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn rmdir<'a>(&'a self, dir: u32, path: &'a RRef<Path>) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match path_of(path) {
                Some(p) => self.reply(Op::Rmdir(dir, p)).await,
                None => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn link<'a>(
        &'a self,
        dir: u32,
        old: &'a RRef<Path>,
        new: &'a RRef<Path>,
    ) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match (path_of(old), path_of(new)) {
                (Some(a), Some(b)) => self.reply(Op::Link(dir, a, b)).await,
                _ => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn rename<'a>(
        &'a self,
        dir: u32,
        old: &'a RRef<Path>,
        new: &'a RRef<Path>,
    ) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            match (path_of(old), path_of(new)) {
                (Some(a), Some(b)) => self.reply(Op::Rename(dir, a, b)).await,
                _ => Ok(Reply::error(errno::EINVAL)),
            }
        })
    }

    fn sync(&self) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move { self.reply(Op::Sync).await })
    }
}

impl Control for Shared {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.calls.load(Ordering::Relaxed),
            1 => self.batches.load(Ordering::Relaxed),
            2 => self.commits.load(Ordering::Relaxed),
            3 => self.swept.load(Ordering::Relaxed),
            5 => self.run_ns.load(Ordering::Relaxed) / 1000,
            6 => self.commit_ns.load(Ordering::Relaxed) / 1000,
            _ => self.mounted.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(&alloc::format!(
                "rv6 file system, exported as fs/files ({})\n\
                 0: calls\n1: batches run (each ends with at most one commit)\n\
                 2: commits\n3: handles closed because their owner died\n4: mounted (1) or not (0)\n\
                 5: microseconds spent running calls\n6: microseconds spent in commits after them",
                match self.unusable.lock().as_deref() {
                    Some(e) => alloc::format!("unusable: {e}"),
                    None => String::from("usable"),
                }
            )),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        worker: Mutex::new(None),
        unusable: Mutex::new(None),
        calls: AtomicU64::new(0),
        commits: AtomicU64::new(0),
        batches: AtomicU64::new(0),
        swept: AtomicU64::new(0),
        mounted: AtomicU64::new(0),
        run_ns: AtomicU64::new(0),
        commit_ns: AtomicU64::new(0),
    });
    spawn(serve(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    spawn(sweeper(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Files + Send + Sync>("files", shared.clone())
        .with::<dyn Control + Send + Sync>("control", shared))
}
