//! rv6's file-system interface ([`Files`]), which the file-system domain
//! (`rv6/fsd`, image `fs`) exports as "files".
//!
//! Files and directories are reached through *handles*: numbers the
//! file system gives out on [`Files::open`], each owned by the domain
//! that opened it (another domain naming it gets `EBADF`), released by
//! [`Files::close`] or when the owner dies. Handle [`ROOT`] is the root
//! directory, for everyone. Paths are resolved from a directory handle
//! (a process's working directory) unless they start with `/`.
//!
//! Reads and writes name their offset (file positions belong to the
//! descriptor tables above); [`APPEND`] as the offset writes at the end.
//! Every call that changes the file system returns once the change is
//! durable: the file system commits the changes of every call waiting at
//! the time at once (group commit). The one exception is
//! [`Files::write_more`], for the leading chunks of a long write.
//!
//! Errors are POSIX numbers ([`errno`]) in the reply; the call itself
//! fails only with an `RpcError` (the file system crashed: its handles
//! are gone, and the restarted one replays its log at mount).

use rrpc::{RRef, RpcResult};

/// The longest path, in bytes.
pub const PATH_MAX: usize = 512;
/// Bytes one [`Chunk`] carries.
pub const CHUNK: usize = 16384;
/// The root directory's handle.
pub const ROOT: u32 = 0;
/// The offset that means "at the end of the file" for [`Files::write`].
pub const APPEND: u64 = u64::MAX;

/// Flags of [`Files::open`].
pub mod open_flags {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const CREATE: u32 = 4;
    /// With `CREATE`: fail with `EEXIST` if the name exists.
    pub const EXCLUSIVE: u32 = 8;
    pub const TRUNCATE: u32 = 16;
}

/// The POSIX error numbers replies carry (Linux's values).
pub mod errno {
    pub const OK: i32 = 0;
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EBADF: i32 = 9;
    pub const ENOMEM: i32 = 12;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const EMFILE: i32 = 24;
    pub const EFBIG: i32 = 27;
    pub const ENOSPC: i32 = 28;
    pub const EMLINK: i32 = 31;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ENOTEMPTY: i32 = 39;
    pub const EUCLEAN: i32 = 117;
}

/// A path: `bytes[..len]`, UTF-8.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Path {
    bytes: [u8; PATH_MAX],
    len: u16,
}

impl Path {
    /// `path`, or `None` if it is longer than [`PATH_MAX`].
    pub fn new(path: &str) -> Option<Path> {
        let mut p = Path {
            bytes: [0; PATH_MAX],
            len: 0,
        };
        p.set(path).then_some(p)
    }

    /// Makes it hold `path`; false (and unchanged) if it is too long.
    pub fn set(&mut self, path: &str) -> bool {
        if path.len() > PATH_MAX {
            return false;
        }
        self.bytes[..path.len()].copy_from_slice(path.as_bytes());
        self.len = path.len() as u16;
        true
    }

    /// The path; `None` if what arrived is not a valid one (a length
    /// past the buffer, not UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        let bytes = self.bytes.get(..usize::from(self.len))?;
        core::str::from_utf8(bytes).ok()
    }
}

/// File data: `data[..len]`, and the call's outcome.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Chunk {
    pub data: [u8; CHUNK],
    pub len: u32,
    /// 0, or the POSIX error of the read or write.
    pub errno: i32,
    /// After a read: the file's size when it was read (so a reader that
    /// asked from offset 0 and got it all knows it has the whole file).
    pub size: u64,
}

impl Chunk {
    pub fn empty() -> Chunk {
        Chunk {
            data: [0; CHUNK],
            len: 0,
            errno: 0,
            size: 0,
        }
    }

    /// The bytes it holds (empty if `len` is out of range).
    pub fn bytes(&self) -> &[u8] {
        self.data.get(..self.len as usize).unwrap_or(&[])
    }

    /// Makes it hold `bytes` (at most [`CHUNK`]); returns how many.
    pub fn set(&mut self, bytes: &[u8]) -> usize {
        let len = bytes.len().min(CHUNK);
        self.data[..len].copy_from_slice(&bytes[..len]);
        self.len = len as u32;
        len
    }
}

/// A call's outcome: `errno` 0 and a value (a handle, a count), or a
/// POSIX error.
#[derive(rrpc::Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub errno: i32,
    pub value: u64,
}

impl Reply {
    pub const fn ok(value: u64) -> Reply {
        Reply { errno: 0, value }
    }

    pub const fn error(errno: i32) -> Reply {
        Reply { errno, value: 0 }
    }
}

/// Kinds in [`FileStat::kind`].
pub mod kind {
    pub const DIR: u8 = 1;
    pub const FILE: u8 = 2;
    pub const DEVICE: u8 = 3;
}

/// What [`Files::stat`] answers.
#[derive(rrpc::Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub errno: i32,
    pub inum: u32,
    /// One of [`kind`].
    pub kind: u8,
    pub nlink: u16,
    pub size: u64,
    pub major: i16,
    pub minor: i16,
}

/// Bytes of a name in a directory entry.
pub const NAME: usize = 14;

/// One entry of a directory ([`Files::read_dir`]).
#[derive(rrpc::Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub errno: i32,
    /// The slot to ask for next; 0 once there is no entry left (then the
    /// rest is empty).
    pub next: u32,
    pub inum: u32,
    pub name: [u8; NAME],
    pub name_len: u8,
}

impl DirEntry {
    pub fn name(&self) -> &str {
        let bytes = self.name.get(..usize::from(self.name_len)).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("?")
    }
}

/// The file system, as the file-system domain exports it.
#[rrpc::interface]
pub trait Files {
    /// Opens `path` (from the directory handle `dir`) with
    /// [`open_flags`]; the reply's value is the new handle.
    async fn open(&self, dir: u32, path: &RRef<Path>, flags: u32) -> RpcResult<Reply>;
    /// Releases a handle (an unlinked file goes with its last handle).
    async fn close(&self, handle: u32) -> RpcResult<Reply>;
    /// Reads up to a chunk from `offset`; `len` 0 at the end of the file.
    async fn read(&self, handle: u32, offset: u64, chunk: RRef<Chunk>) -> RpcResult<RRef<Chunk>>;
    /// Reads up to a chunk of the regular file `path` (from the directory
    /// handle `dir`) at `offset`, without a handle: one call where open,
    /// read and close are three (and three trips through the file
    /// system's queue), for a reader that wants a small file whole (the
    /// HTTP server); `size` says whether it got all of it. `EISDIR` for a
    /// directory, `ENODEV` for a device.
    async fn read_path(
        &self,
        dir: u32,
        path: &RRef<Path>,
        offset: u64,
        chunk: RRef<Chunk>,
    ) -> RpcResult<RRef<Chunk>>;
    /// Writes the chunk's bytes at `offset` ([`APPEND`]: at the end);
    /// `len` becomes the bytes written.
    async fn write(&self, handle: u32, offset: u64, chunk: RRef<Chunk>) -> RpcResult<RRef<Chunk>>;
    /// As `write`, but returns as soon as the bytes are in the file,
    /// before they are durable: for every chunk of a long write but the
    /// last, which is sent with `write` (its commit takes these along).
    async fn write_more(
        &self,
        handle: u32,
        offset: u64,
        chunk: RRef<Chunk>,
    ) -> RpcResult<RRef<Chunk>>;
    async fn stat(&self, handle: u32) -> RpcResult<FileStat>;
    /// Sets a file's size (shrinks it, or grows it with zeros).
    async fn truncate(&self, handle: u32, size: u64) -> RpcResult<Reply>;
    /// The first entry of directory `handle` at or after `slot`.
    async fn read_dir(&self, handle: u32, slot: u32) -> RpcResult<DirEntry>;
    async fn mkdir(&self, dir: u32, path: &RRef<Path>) -> RpcResult<Reply>;
    async fn mknod(&self, dir: u32, path: &RRef<Path>, major: i16, minor: i16) -> RpcResult<Reply>;
    async fn unlink(&self, dir: u32, path: &RRef<Path>) -> RpcResult<Reply>;
    async fn rmdir(&self, dir: u32, path: &RRef<Path>) -> RpcResult<Reply>;
    async fn link(&self, dir: u32, old: &RRef<Path>, new: &RRef<Path>) -> RpcResult<Reply>;
    async fn rename(&self, dir: u32, old: &RRef<Path>, new: &RRef<Path>) -> RpcResult<Reply>;
    /// Returns once everything done so far is durable.
    async fn sync(&self) -> RpcResult<Reply>;
}

/// Bytes of a program's arguments (each followed by a NUL).
pub const ARGS_MAX: usize = 1024;

/// A program's arguments: `bytes[..len]`, each argument followed by a
/// NUL byte.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Args {
    bytes: [u8; ARGS_MAX],
    len: u16,
}

impl Args {
    /// `args`, or `None` if they do not fit or one holds a NUL.
    pub fn new<'a>(args: impl IntoIterator<Item = &'a str>) -> Option<Args> {
        let mut out = Args {
            bytes: [0; ARGS_MAX],
            len: 0,
        };
        let mut at = 0;
        for arg in args {
            if arg.contains('\0') || at + arg.len() + 1 > ARGS_MAX {
                return None;
            }
            out.bytes[at..at + arg.len()].copy_from_slice(arg.as_bytes());
            at += arg.len() + 1;
        }
        out.len = at as u16;
        Some(out)
    }

    /// The arguments (`None` if what arrived is not valid: a length past
    /// the buffer, not UTF-8, no final NUL).
    pub fn list(&self) -> Option<alloc::vec::Vec<&str>> {
        let bytes = self.bytes.get(..usize::from(self.len))?;
        if bytes.is_empty() {
            return Some(alloc::vec::Vec::new());
        }
        let text = core::str::from_utf8(bytes).ok()?;
        let text = text.strip_suffix('\0')?;
        Some(text.split('\0').collect())
    }
}

/// The device number of the console (`/dev/console`, which the process
/// domain makes if it is missing).
pub const CONSOLE_MAJOR: i16 = 1;

/// Flags of [`Proc::open`] beyond [`open_flags`]: writes go at the end.
pub const APPEND_FLAG: u32 = 32;

/// Operations of [`Proc::path_op`].
pub mod path_op {
    pub const MKDIR: u32 = 1;
    pub const UNLINK: u32 = 2;
    pub const RMDIR: u32 = 3;
    /// `a` becomes also `b`.
    pub const LINK: u32 = 4;
    /// `a` is renamed `b`.
    pub const RENAME: u32 = 5;
}

/// Exit statuses [`Proc::wait`] reports besides a program's own code
/// (0 to 255).
pub mod status {
    /// The program crashed (a panic, a fault, the watchdog).
    pub const CRASHED: u64 = 139;
    /// It was killed.
    pub const KILLED: u64 = 137;
}

/// What rv6's process domain (`rv6/core`, image `rv6`) exports to its
/// programs as "proc". The caller's incarnation says which process is
/// calling: a program can only act as itself. Descriptors 0, 1 and 2 are
/// given at spawn; the rest come from `open` and `pipe`. Paths are
/// resolved from the process's working directory.
#[rrpc::interface]
pub trait Proc {
    /// The calling process's arguments.
    async fn args(&self) -> RpcResult<RRef<Args>>;
    /// Reads from descriptor `fd` (a file: from its offset; a pipe: what
    /// is there, waiting for some; the console: a line). `len` 0: the
    /// end.
    async fn read(&self, fd: u32, chunk: RRef<Chunk>) -> RpcResult<RRef<Chunk>>;
    /// Writes the chunk's bytes to `fd`; `len` becomes the bytes written.
    async fn write(&self, fd: u32, chunk: RRef<Chunk>) -> RpcResult<RRef<Chunk>>;
    /// Opens `path` with [`open_flags`] (and [`APPEND_FLAG`]); the value
    /// is the new descriptor. A device node of major [`CONSOLE_MAJOR`]
    /// (`/dev/console`) opens the console.
    async fn open(&self, path: &RRef<Path>, flags: u32) -> RpcResult<Reply>;
    async fn close(&self, fd: u32) -> RpcResult<Reply>;
    /// Moves file descriptor `fd`'s offset (`whence` 0: to `offset`; 1:
    /// by `offset` from where it is; 2: by `offset` from the end); the
    /// value is the new offset. `ESPIPE` (29) for a pipe or the console.
    async fn seek(&self, fd: u32, offset: i64, whence: u32) -> RpcResult<Reply>;
    /// Makes `to` another descriptor of what `from` is.
    async fn dup2(&self, from: u32, to: u32) -> RpcResult<Reply>;
    /// A pipe: the value is the read end's descriptor, plus the write
    /// end's shifted left by 32.
    async fn pipe(&self) -> RpcResult<Reply>;
    async fn fstat(&self, fd: u32) -> RpcResult<FileStat>;
    /// The entry of directory `fd` at or after `slot`.
    async fn read_dir(&self, fd: u32, slot: u32) -> RpcResult<DirEntry>;
    async fn chdir(&self, path: &RRef<Path>) -> RpcResult<Reply>;
    /// [`path_op`] on `a` (and `b`).
    async fn path_op(&self, op: u32, a: &RRef<Path>, b: &RRef<Path>) -> RpcResult<Reply>;
    /// Runs the program file `path` with `args`; the child's descriptors
    /// 0, 1 and 2 are the caller's `fds`. The value is its process id.
    async fn spawn(&self, path: &RRef<Path>, args: &RRef<Args>, fds: [u32; 3]) -> RpcResult<Reply>;
    /// Waits for child `pid` (0: any child; `u32::MAX`: any child that has
    /// ended, without waiting) to end; the value is its pid shifted left
    /// by 32 plus its status (its code, or [`status`]). `ECHILD` (10) if
    /// there is none.
    async fn wait(&self, pid: u32) -> RpcResult<Reply>;
    /// Ends the calling process with `code` (0 to 255).
    async fn exit(&self, code: u32) -> RpcResult<Reply>;
    /// Kills process `pid`.
    async fn kill(&self, pid: u32) -> RpcResult<Reply>;
    /// One line per process: pid, parent, state, name.
    async fn ps(&self) -> RpcResult<RRef<crate::control::Text>>;
}

/// The console's side of rv6 (exported by the process domain as "tty"):
/// the kernel's console, once handed over (the monitor's `rv6` command),
/// passes every typed line here.
#[rrpc::interface]
pub trait Tty {
    /// The console is handed over: starts the shell if none runs; false if
    /// it cannot.
    fn attach(&self) -> RpcResult<bool>;
    /// A line typed on the console. False once no process reads the
    /// console any more (the shell exited): the console goes back to the
    /// monitor.
    fn input(&self, line: RRef<crate::control::Text>) -> RpcResult<bool>;
}
