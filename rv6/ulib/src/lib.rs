//! rv6's user library: what rv6 programs (and, until processes exist,
//! the test domains) call the file system through.
//!
//! [`Files`] wraps the `fs/files` interface: paths are `&str`, data are
//! byte slices and vectors (moved through one reused `RRef` chunk), and
//! every failure is an [`Errno`]: a POSIX error from the file system, or
//! the call itself failing (the file system crashed; [`Files::connect`]
//! again once it is back).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod process;

pub use process::{Process, STDERR, STDIN, STDOUT};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use domain_sdk::{RRef, RpcError, lookup};
use interfaces::rv6::{CHUNK, Chunk, FileStat, Files as FilesApi, FilesProxy, Path, ROOT, errno};

pub use interfaces::rv6::{APPEND, APPEND_FLAG, kind, open_flags, status};

/// Declares a program's entry (`init`): the image's task connects to
/// rv6's process domain, runs `$main(&mut process, args)` and exits with
/// the code it returns. A program that cannot reach the process domain
/// (it crashed, or the image was loaded by hand) crashes itself, so that
/// its domain is reclaimed.
#[macro_export]
macro_rules! program {
    ($main:path) => {
        pub fn init(
            _kernel: &'static dyn domain_sdk::Kernel,
        ) -> core::result::Result<domain_sdk::Exports, alloc::string::String> {
            domain_sdk::spawn(async {
                let ended = match $crate::Process::connect() {
                    Ok(mut process) => {
                        let args = process.args().await.unwrap_or_default();
                        let code = $main(&mut process, args).await;
                        process.exit(code).await.is_ok()
                    }
                    Err(_) => false,
                };
                if !ended {
                    // No process domain to end this process (it crashed,
                    // or this image was loaded by hand): end the domain by
                    // crashing it, which the kernel contains and reclaims.
                    panic!("rv6: no process domain to exit to");
                }
                // What is left is killed by the process domain.
                loop {
                    domain_sdk::sleep(core::time::Duration::from_secs(3600)).await;
                }
            })
            .map_err(|e| alloc::format!("spawn: {e}"))?;
            Ok(domain_sdk::Exports::new())
        }
    };
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// A POSIX error number from the file system.
    Os(i32),
    /// The call did not reach an answer (the file system crashed).
    Rpc(RpcError),
}

impl Errno {
    /// The error number (`EIO` for a failed call).
    pub fn code(self) -> i32 {
        match self {
            Errno::Os(e) => e,
            Errno::Rpc(_) => errno::EIO,
        }
    }
}

impl From<RpcError> for Errno {
    fn from(e: RpcError) -> Errno {
        Errno::Rpc(e)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Errno::Os(e) => write!(f, "{} (errno {e})", describe(*e)),
            Errno::Rpc(e) => write!(f, "the file system did not answer: {e:?}"),
        }
    }
}

/// The message for a POSIX error number.
pub fn describe(e: i32) -> &'static str {
    match e {
        errno::EPERM => "operation not permitted",
        errno::ENOENT => "no such file or directory",
        errno::EIO => "input/output error",
        errno::EBADF => "bad file descriptor",
        errno::ENOMEM => "out of memory",
        errno::EEXIST => "file exists",
        errno::ENOTDIR => "not a directory",
        errno::EISDIR => "is a directory",
        errno::EINVAL => "invalid argument",
        errno::EMFILE => "too many open files",
        errno::EFBIG => "file too large",
        errno::ENOSPC => "no space left on device",
        errno::EMLINK => "too many links",
        errno::ENAMETOOLONG => "file name too long",
        errno::ENOTEMPTY => "directory not empty",
        errno::EUCLEAN => "file system structure is corrupt",
        _ => "unknown error",
    }
}

pub type Result<T> = core::result::Result<T, Errno>;

fn check(e: i32) -> Result<()> {
    if e == 0 { Ok(()) } else { Err(Errno::Os(e)) }
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub inum: u32,
}

/// A connection to the file system.
pub struct Files {
    fs: FilesProxy,
    path: RRef<Path>,
    other: RRef<Path>,
    chunk: Option<RRef<Chunk>>,
    /// The directory relative paths start from (a handle; [`ROOT`]).
    cwd: u32,
}

impl Files {
    /// Connects to `fs/files`.
    pub fn connect() -> Result<Files> {
        Ok(Files {
            fs: lookup::<dyn FilesApi + Send + Sync>("fs/files")?,
            path: RRef::try_new(Path::new("").ok_or(Errno::Os(errno::EINVAL))?)?,
            other: RRef::try_new(Path::new("").ok_or(Errno::Os(errno::EINVAL))?)?,
            chunk: None,
            cwd: ROOT,
        })
    }

    fn set(&mut self, path: &str) -> Result<()> {
        if self.path.set(path) {
            Ok(())
        } else {
            Err(Errno::Os(errno::ENAMETOOLONG))
        }
    }

    fn set_two(&mut self, a: &str, b: &str) -> Result<()> {
        self.set(a)?;
        if self.other.set(b) {
            Ok(())
        } else {
            Err(Errno::Os(errno::ENAMETOOLONG))
        }
    }

    fn take_chunk(&mut self) -> Result<RRef<Chunk>> {
        match self.chunk.take() {
            Some(c) => Ok(c),
            None => Ok(RRef::try_new(Chunk::empty())?),
        }
    }

    /// Opens `path` with [`open_flags`]; returns the handle.
    pub async fn open(&mut self, path: &str, flags: u32) -> Result<u32> {
        self.set(path)?;
        let r = self.fs.open(self.cwd, &self.path, flags).await?;
        check(r.errno)?;
        Ok(r.value as u32)
    }

    pub async fn close(&mut self, handle: u32) -> Result<()> {
        check(self.fs.close(handle).await?.errno)
    }

    /// Makes `path` (a directory) where relative paths start.
    pub async fn chdir(&mut self, path: &str) -> Result<()> {
        let handle = self.open(path, open_flags::READ).await?;
        let st = self.fs.stat(handle).await?;
        if st.errno != 0 || st.kind != kind::DIR {
            let _ = self.close(handle).await;
            return Err(Errno::Os(if st.errno != 0 {
                st.errno
            } else {
                errno::ENOTDIR
            }));
        }
        if self.cwd != ROOT {
            let _ = self.close(self.cwd).await;
        }
        self.cwd = handle;
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at `off`; the bytes read (0 at the
    /// end).
    pub async fn read_at(&mut self, handle: u32, off: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let chunk = self.take_chunk()?;
            let chunk = self.fs.read(handle, off + done as u64, chunk).await?;
            let r = check(chunk.errno);
            let n = (chunk.len as usize).min(CHUNK).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk.data[..n]);
            self.chunk = Some(chunk);
            r?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// Writes all of `data` at `off` ([`APPEND`]: at the end); durable
    /// when it returns. With `APPEND`, each chunk goes at the end as it
    /// is then.
    pub async fn write_at(&mut self, handle: u32, off: u64, data: &[u8]) -> Result<usize> {
        let mut done = 0;
        while done < data.len() || data.is_empty() {
            let mut chunk = self.take_chunk()?;
            let n = chunk.set(&data[done..]);
            let at = if off == APPEND {
                APPEND
            } else {
                off + done as u64
            };
            let chunk = self.fs.write(handle, at, chunk).await?;
            let r = check(chunk.errno);
            let written = chunk.len as usize;
            self.chunk = Some(chunk);
            r?;
            if data.is_empty() {
                break;
            }
            done += written;
            if written < n {
                return Err(Errno::Os(errno::ENOSPC));
            }
        }
        Ok(done)
    }

    pub async fn fstat(&mut self, handle: u32) -> Result<FileStat> {
        let st = self.fs.stat(handle).await?;
        check(st.errno)?;
        Ok(st)
    }

    pub async fn stat(&mut self, path: &str) -> Result<FileStat> {
        let handle = self.open(path, open_flags::READ).await?;
        let st = self.fstat(handle).await;
        self.close(handle).await?;
        st
    }

    pub async fn truncate(&mut self, handle: u32, size: u64) -> Result<()> {
        check(self.fs.truncate(handle, size).await?.errno)
    }

    /// The whole file at `path`.
    pub async fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let handle = self.open(path, open_flags::READ).await?;
        let mut out = Vec::new();
        let mut buf = alloc::vec![0u8; CHUNK];
        let r = loop {
            match self.read_at(handle, out.len() as u64, &mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        self.close(handle).await?;
        r.map(|()| out)
    }

    /// Makes `path` hold `data` (created or truncated).
    pub async fn write_file(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let flags = open_flags::WRITE | open_flags::CREATE | open_flags::TRUNCATE;
        let handle = self.open(path, flags).await?;
        let r = self.write_at(handle, 0, data).await;
        self.close(handle).await?;
        r.map(|_| ())
    }

    pub async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.set(path)?;
        check(self.fs.mkdir(self.cwd, &self.path).await?.errno)
    }

    pub async fn mknod(&mut self, path: &str, major: i16, minor: i16) -> Result<()> {
        self.set(path)?;
        check(
            self.fs
                .mknod(self.cwd, &self.path, major, minor)
                .await?
                .errno,
        )
    }

    pub async fn unlink(&mut self, path: &str) -> Result<()> {
        self.set(path)?;
        check(self.fs.unlink(self.cwd, &self.path).await?.errno)
    }

    pub async fn rmdir(&mut self, path: &str) -> Result<()> {
        self.set(path)?;
        check(self.fs.rmdir(self.cwd, &self.path).await?.errno)
    }

    pub async fn link(&mut self, old: &str, new: &str) -> Result<()> {
        self.set_two(old, new)?;
        check(self.fs.link(self.cwd, &self.path, &self.other).await?.errno)
    }

    pub async fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        self.set_two(old, new)?;
        check(
            self.fs
                .rename(self.cwd, &self.path, &self.other)
                .await?
                .errno,
        )
    }

    /// The entries of directory `path`, `.` and `..` included.
    pub async fn list(&mut self, path: &str) -> Result<Vec<Entry>> {
        let handle = self.open(path, open_flags::READ).await?;
        let mut entries = Vec::new();
        let mut slot = 0;
        let r = loop {
            let e = match self.fs.read_dir(handle, slot).await {
                Ok(e) => e,
                Err(e) => break Err(Errno::Rpc(e)),
            };
            if e.errno != 0 {
                break Err(Errno::Os(e.errno));
            }
            if e.next == 0 {
                break Ok(());
            }
            entries.push(Entry {
                name: String::from(e.name()),
                inum: e.inum,
            });
            slot = e.next;
        };
        self.close(handle).await?;
        r.map(|()| entries)
    }

    /// Returns once everything so far is durable.
    pub async fn sync(&mut self) -> Result<()> {
        check(self.fs.sync().await?.errno)
    }
}
