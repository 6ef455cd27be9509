//! The file-system service without the domain around it: handles owned
//! by callers, permission checks, POSIX error numbers, the sweep of dead
//! owners' handles. The domain runs one [`Server`] in one task and
//! commits after each batch of calls; the host tests drive it over a
//! memory device.

use alloc::collections::BTreeMap;

use interfaces::rv6::{DirEntry, FileStat, NAME, Reply, errno, kind, open_flags};
use rv6_fs::{Disk, Error, Fs, Kind, OpenFlags};

/// Handles one owner may hold at once.
pub const MAX_HANDLES_PER_OWNER: usize = 1024;

/// The number a caller's identity is known by.
pub type OwnerBits = u32;

struct Handle {
    inum: u32,
    owner: OwnerBits,
    read: bool,
    write: bool,
}

/// Counters for `call fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub calls: u64,
    pub commits: u64,
    pub batches: u64,
    /// Handles closed because their owner died.
    pub swept: u64,
}

pub struct Server<D: Disk> {
    fs: Fs<D>,
    handles: BTreeMap<u32, Handle>,
    next: u32,
    pub stats: Stats,
}

fn code(e: Error) -> i32 {
    e.errno()
}

fn reply(r: rv6_fs::Result<u64>) -> Reply {
    match r {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::error(code(e)),
    }
}

impl<D: Disk> Server<D> {
    pub fn new(fs: Fs<D>) -> Server<D> {
        Server {
            fs,
            handles: BTreeMap::new(),
            next: 1,
            stats: Stats::default(),
        }
    }

    pub fn fs(&mut self) -> &mut Fs<D> {
        &mut self.fs
    }

    pub fn into_fs(self) -> Fs<D> {
        self.fs
    }

    /// Handles held now.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// The inode behind `handle` for `owner` (handle 0: the root).
    fn inode(&self, owner: OwnerBits, handle: u32) -> Result<&Handle, i32> {
        match self.handles.get(&handle) {
            Some(h) if h.owner == owner => Ok(h),
            _ => Err(errno::EBADF),
        }
    }

    fn dir_inode(&self, owner: OwnerBits, dir: u32) -> Result<u32, i32> {
        if dir == interfaces::rv6::ROOT {
            return Ok(rv6_fs::ROOT);
        }
        self.inode(owner, dir).map(|h| h.inum)
    }

    pub async fn open(&mut self, owner: OwnerBits, dir: u32, path: &str, flags: u32) -> Reply {
        let cwd = match self.dir_inode(owner, dir) {
            Ok(inum) => inum,
            Err(e) => return Reply::error(e),
        };
        let known = open_flags::READ
            | open_flags::WRITE
            | open_flags::CREATE
            | open_flags::EXCLUSIVE
            | open_flags::TRUNCATE;
        if flags & !known != 0 {
            return Reply::error(errno::EINVAL);
        }
        if self.handles.values().filter(|h| h.owner == owner).count() >= MAX_HANDLES_PER_OWNER {
            return Reply::error(errno::EMFILE);
        }
        let write = flags & open_flags::WRITE != 0;
        let of = OpenFlags {
            write,
            create: flags & open_flags::CREATE != 0,
            exclusive: flags & open_flags::EXCLUSIVE != 0,
            truncate: flags & open_flags::TRUNCATE != 0,
        };
        let inum = match self.fs.open(cwd, path, of).await {
            Ok(inum) => inum,
            Err(e) => return Reply::error(code(e)),
        };
        // Handle numbers are not reused soon: a stale number fails.
        while self.next == 0 || self.handles.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let handle = self.next;
        self.next = self.next.wrapping_add(1);
        self.handles.insert(
            handle,
            Handle {
                inum,
                owner,
                read: flags & open_flags::READ != 0 || !write,
                write,
            },
        );
        Reply::ok(handle as u64)
    }

    pub async fn close(&mut self, owner: OwnerBits, handle: u32) -> Reply {
        let inum = match self.inode(owner, handle) {
            Ok(h) => h.inum,
            Err(e) => return Reply::error(e),
        };
        self.handles.remove(&handle);
        reply(self.fs.release(inum).await.map(|()| 0))
    }

    /// Reads into `buf`: the bytes read and the file's size, or an error
    /// number.
    pub async fn read(
        &mut self,
        owner: OwnerBits,
        handle: u32,
        off: u64,
        buf: &mut [u8],
    ) -> Result<(usize, u64), i32> {
        let h = self.inode(owner, handle)?;
        if !h.read {
            return Err(errno::EBADF);
        }
        let inum = h.inum;
        let n = self.fs.read(inum, off, buf).await.map_err(code)?;
        let size = self.fs.stat(inum).await.map_err(code)?.size;
        Ok((n, size))
    }

    /// Reads into `buf` from the regular file `path` at `off`, opened for
    /// the call only (no handle): the bytes read and the file's size, or
    /// an error number (`EISDIR` for a directory, `ENODEV` for a device).
    pub async fn read_path(
        &mut self,
        owner: OwnerBits,
        dir: u32,
        path: &str,
        off: u64,
        buf: &mut [u8],
    ) -> Result<(usize, u64), i32> {
        let cwd = self.dir_inode(owner, dir)?;
        let read_only = OpenFlags {
            write: false,
            create: false,
            exclusive: false,
            truncate: false,
        };
        let inum = self.fs.open(cwd, path, read_only).await.map_err(code)?;
        let result = match self.fs.stat(inum).await {
            Ok(s) if s.kind == Kind::File => self
                .fs
                .read(inum, off, buf)
                .await
                .map(|n| (n, s.size))
                .map_err(code),
            Ok(s) if s.kind == Kind::Dir => Err(errno::EISDIR),
            Ok(_) => Err(errno::ENODEV),
            Err(e) => Err(code(e)),
        };
        // As a close: the last reference to an unlinked file frees it.
        let released = self.fs.release(inum).await.map_err(code);
        result.and_then(|r| released.map(|()| r))
    }

    /// Writes `data` at `off` (`APPEND`: at the end).
    pub async fn write(
        &mut self,
        owner: OwnerBits,
        handle: u32,
        off: u64,
        data: &[u8],
    ) -> Result<usize, i32> {
        let h = self.inode(owner, handle)?;
        if !h.write {
            return Err(errno::EBADF);
        }
        let inum = h.inum;
        let off = if off == interfaces::rv6::APPEND {
            self.fs.stat(inum).await.map_err(code)?.size
        } else {
            off
        };
        self.fs.write(inum, off, data).await.map_err(code)
    }

    pub async fn stat(&mut self, owner: OwnerBits, handle: u32) -> FileStat {
        let mut out = FileStat {
            errno: 0,
            inum: 0,
            kind: 0,
            nlink: 0,
            size: 0,
            major: 0,
            minor: 0,
        };
        let inum = match self.dir_inode(owner, handle) {
            Ok(inum) => inum,
            Err(e) => {
                out.errno = e;
                return out;
            }
        };
        match self.fs.stat(inum).await {
            Ok(s) => {
                out.inum = s.inum;
                out.kind = match s.kind {
                    Kind::Dir => kind::DIR,
                    Kind::File => kind::FILE,
                    Kind::Device => kind::DEVICE,
                };
                out.nlink = s.nlink;
                out.size = s.size;
                out.major = s.major;
                out.minor = s.minor;
            }
            Err(e) => out.errno = code(e),
        }
        out
    }

    pub async fn truncate(&mut self, owner: OwnerBits, handle: u32, size: u64) -> Reply {
        let h = match self.inode(owner, handle) {
            Ok(h) => h,
            Err(e) => return Reply::error(e),
        };
        if !h.write {
            return Reply::error(errno::EBADF);
        }
        let inum = h.inum;
        reply(self.fs.truncate(inum, size).await.map(|()| 0))
    }

    pub async fn read_dir(&mut self, owner: OwnerBits, handle: u32, slot: u32) -> DirEntry {
        let mut out = DirEntry {
            errno: 0,
            next: 0,
            inum: 0,
            name: [0; NAME],
            name_len: 0,
        };
        let inum = match self.dir_inode(owner, handle) {
            Ok(inum) => inum,
            Err(e) => {
                out.errno = e;
                return out;
            }
        };
        match self.fs.read_dir(inum, slot as usize).await {
            Ok(Some((next, entry))) => {
                let name = entry.name.as_bytes();
                let len = name.len().min(NAME);
                out.name[..len].copy_from_slice(&name[..len]);
                out.name_len = len as u8;
                out.inum = entry.inum;
                out.next = next as u32;
            }
            Ok(None) => {}
            Err(e) => out.errno = code(e),
        }
        out
    }

    pub async fn mkdir(&mut self, owner: OwnerBits, dir: u32, path: &str) -> Reply {
        match self.dir_inode(owner, dir) {
            Ok(cwd) => reply(self.fs.mkdir(cwd, path).await.map(|()| 0)),
            Err(e) => Reply::error(e),
        }
    }

    pub async fn mknod(
        &mut self,
        owner: OwnerBits,
        dir: u32,
        path: &str,
        major: i16,
        minor: i16,
    ) -> Reply {
        match self.dir_inode(owner, dir) {
            Ok(cwd) => reply(self.fs.mknod(cwd, path, major, minor).await.map(|()| 0)),
            Err(e) => Reply::error(e),
        }
    }

    pub async fn unlink(&mut self, owner: OwnerBits, dir: u32, path: &str) -> Reply {
        match self.dir_inode(owner, dir) {
            Ok(cwd) => reply(self.fs.unlink(cwd, path).await.map(|()| 0)),
            Err(e) => Reply::error(e),
        }
    }

    pub async fn rmdir(&mut self, owner: OwnerBits, dir: u32, path: &str) -> Reply {
        match self.dir_inode(owner, dir) {
            Ok(cwd) => reply(self.fs.rmdir(cwd, path).await.map(|()| 0)),
            Err(e) => Reply::error(e),
        }
    }

    pub async fn link(&mut self, owner: OwnerBits, dir: u32, old: &str, new: &str) -> Reply {
        match self.dir_inode(owner, dir) {
            Ok(cwd) => reply(self.fs.link(cwd, old, new).await.map(|()| 0)),
            Err(e) => Reply::error(e),
        }
    }

    pub async fn rename(&mut self, owner: OwnerBits, dir: u32, old: &str, new: &str) -> Reply {
        match self.dir_inode(owner, dir) {
            Ok(cwd) => reply(self.fs.rename(cwd, old, new).await.map(|()| 0)),
            Err(e) => Reply::error(e),
        }
    }

    /// Makes every change so far durable (one commit for all of them).
    pub async fn commit(&mut self) -> rv6_fs::Result<()> {
        if self.fs.pending_blocks() == 0 {
            return Ok(());
        }
        self.stats.commits += 1;
        self.fs.commit().await
    }

    /// Leaves the log empty (what a quiet file system does once a
    /// second, so an image at rest needs no replay).
    pub async fn quiesce(&mut self) -> rv6_fs::Result<()> {
        self.fs.quiesce().await
    }

    /// Closes the handles of owners `alive` says are dead; returns how
    /// many.
    pub async fn sweep<F: Fn(OwnerBits) -> bool>(&mut self, alive: F) -> usize {
        let dead: alloc::vec::Vec<(u32, u32)> = self
            .handles
            .iter()
            .filter(|(_, h)| !alive(h.owner))
            .map(|(n, h)| (*n, h.inum))
            .collect();
        for (handle, inum) in &dead {
            self.handles.remove(handle);
            let _ = self.fs.release(*inum).await;
        }
        self.stats.swept += dead.len() as u64;
        dead.len()
    }
}
