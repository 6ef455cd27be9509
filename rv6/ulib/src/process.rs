//! A program's side of rv6's process domain (`rv6/proc`): its arguments,
//! descriptors (files, pipes, the console), the working directory,
//! running other programs and waiting for them, and its exit.
//!
//! A program is written as `async fn main(p: &mut Process, args:
//! Vec<String>) -> u32` and declared with [`program!`](crate::program):
//!
//! ```ignore
//! async fn main(p: &mut Process, args: Vec<String>) -> u32 {
//!     p.print(&format!("hello, {}\n", args.len())).await;
//!     0
//! }
//! rv6_ulib::program!(main);
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use domain_sdk::{RRef, lookup};
use interfaces::rv6::{Args, CHUNK, Chunk, FileStat, Path, Proc, ProcProxy, errno, path_op};

use crate::{Entry, Errno, Result};

/// The descriptors every program starts with.
pub const STDIN: u32 = 0;
pub const STDOUT: u32 = 1;
pub const STDERR: u32 = 2;

fn check(e: i32) -> Result<()> {
    if e == 0 { Ok(()) } else { Err(Errno::Os(e)) }
}

/// The calling program's process.
pub struct Process {
    proc: ProcProxy,
    path: RRef<Path>,
    other: RRef<Path>,
    chunk: Option<RRef<Chunk>>,
}

impl Process {
    /// Connects to `rv6/proc`.
    pub fn connect() -> Result<Process> {
        Ok(Process {
            proc: lookup::<dyn Proc + Send + Sync>("rv6/proc")?,
            path: RRef::try_new(Path::new("").ok_or(Errno::Os(errno::EINVAL))?)?,
            other: RRef::try_new(Path::new("").ok_or(Errno::Os(errno::EINVAL))?)?,
            chunk: None,
        })
    }

    fn set(&mut self, path: &str) -> Result<()> {
        if self.path.set(path) {
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

    /// The program's arguments (the first is its name).
    pub async fn args(&mut self) -> Result<Vec<String>> {
        let args = self.proc.args().await?;
        Ok(args
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(String::from)
            .collect())
    }

    /// Reads what `fd` has (at most `buf.len()` bytes; 0 at the end).
    pub async fn read(&mut self, fd: u32, buf: &mut [u8]) -> Result<usize> {
        let mut chunk = self.take_chunk()?;
        if buf.is_empty() {
            self.chunk = Some(chunk);
            return Ok(0);
        }
        // How much is wanted (the process domain takes no more).
        chunk.len = buf.len().min(CHUNK) as u32;
        let chunk = self.proc.read(fd, chunk).await?;
        let r = check(chunk.errno);
        let n = (chunk.len as usize).min(CHUNK).min(buf.len());
        buf[..n].copy_from_slice(&chunk.data[..n]);
        self.chunk = Some(chunk);
        r.map(|()| n)
    }

    /// Everything `fd` has until its end.
    pub async fn read_all(&mut self, fd: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = alloc::vec![0u8; CHUNK];
        loop {
            let n = self.read(fd, &mut buf).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Writes all of `data` to `fd`.
    pub async fn write(&mut self, fd: u32, data: &[u8]) -> Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let mut chunk = self.take_chunk()?;
            let n = chunk.set(&data[done..]);
            let chunk = self.proc.write(fd, chunk).await?;
            let r = check(chunk.errno);
            let written = chunk.len as usize;
            self.chunk = Some(chunk);
            r?;
            if written == 0 && n > 0 {
                return Err(Errno::Os(errno::EIO));
            }
            done += written;
        }
        Ok(done)
    }

    /// Writes `text` to standard output (errors are dropped, as `print!`
    /// would panic instead).
    pub async fn print(&mut self, text: &str) {
        let _ = self.write(STDOUT, text.as_bytes()).await;
    }

    /// Writes `text` to standard error.
    pub async fn eprint(&mut self, text: &str) {
        let _ = self.write(STDERR, text.as_bytes()).await;
    }

    /// Opens `path` (flags of [`open_flags`](crate::open_flags), and
    /// [`APPEND_FLAG`](interfaces::rv6::APPEND_FLAG)); the descriptor.
    pub async fn open(&mut self, path: &str, flags: u32) -> Result<u32> {
        self.set(path)?;
        let r = self.proc.open(&self.path, flags).await?;
        check(r.errno)?;
        Ok(r.value as u32)
    }

    pub async fn close(&mut self, fd: u32) -> Result<()> {
        check(self.proc.close(fd).await?.errno)
    }

    /// Moves `fd`'s offset (`whence` 0: to `offset`, 1: from where it
    /// is, 2: from the end); the new offset.
    pub async fn seek(&mut self, fd: u32, offset: i64, whence: u32) -> Result<u64> {
        let r = self.proc.seek(fd, offset, whence).await?;
        check(r.errno)?;
        Ok(r.value)
    }

    pub async fn dup2(&mut self, from: u32, to: u32) -> Result<()> {
        check(self.proc.dup2(from, to).await?.errno)
    }

    /// A pipe: (read end, write end).
    pub async fn pipe(&mut self) -> Result<(u32, u32)> {
        let r = self.proc.pipe().await?;
        check(r.errno)?;
        Ok((r.value as u32, (r.value >> 32) as u32))
    }

    pub async fn fstat(&mut self, fd: u32) -> Result<FileStat> {
        let st = self.proc.fstat(fd).await?;
        check(st.errno)?;
        Ok(st)
    }

    pub async fn stat(&mut self, path: &str) -> Result<FileStat> {
        let fd = self.open(path, crate::open_flags::READ).await?;
        let st = self.fstat(fd).await;
        let _ = self.close(fd).await;
        st
    }

    /// The entries of directory `path` (`.` and `..` included).
    pub async fn list(&mut self, path: &str) -> Result<Vec<Entry>> {
        let fd = self.open(path, crate::open_flags::READ).await?;
        let mut out = Vec::new();
        let mut slot = 0;
        let r = loop {
            let e = match self.proc.read_dir(fd, slot).await {
                Ok(e) => e,
                Err(e) => break Err(Errno::Rpc(e)),
            };
            if e.errno != 0 {
                break Err(Errno::Os(e.errno));
            }
            if e.next == 0 {
                break Ok(());
            }
            out.push(Entry {
                name: String::from(e.name()),
                inum: e.inum,
            });
            slot = e.next;
        };
        let _ = self.close(fd).await;
        r.map(|()| out)
    }

    pub async fn chdir(&mut self, path: &str) -> Result<()> {
        self.set(path)?;
        check(self.proc.chdir(&self.path).await?.errno)
    }

    async fn path_op(&mut self, op: u32, a: &str, b: &str) -> Result<()> {
        self.set(a)?;
        if !self.other.set(b) {
            return Err(Errno::Os(errno::ENAMETOOLONG));
        }
        check(self.proc.path_op(op, &self.path, &self.other).await?.errno)
    }

    pub async fn mkdir(&mut self, path: &str) -> Result<()> {
        self.path_op(path_op::MKDIR, path, "").await
    }

    pub async fn unlink(&mut self, path: &str) -> Result<()> {
        self.path_op(path_op::UNLINK, path, "").await
    }

    pub async fn rmdir(&mut self, path: &str) -> Result<()> {
        self.path_op(path_op::RMDIR, path, "").await
    }

    pub async fn link(&mut self, old: &str, new: &str) -> Result<()> {
        self.path_op(path_op::LINK, old, new).await
    }

    pub async fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        self.path_op(path_op::RENAME, old, new).await
    }

    /// Runs program `path` with `args`, its descriptors 0, 1, 2 being
    /// this process's `fds`; its process id.
    pub async fn spawn(&mut self, path: &str, args: &[&str], fds: [u32; 3]) -> Result<u32> {
        self.set(path)?;
        let list = Args::new(args.iter().copied()).ok_or(Errno::Os(errno::EINVAL))?;
        let list = RRef::try_new(list)?;
        let r = self.proc.spawn(&self.path, &list, fds).await?;
        check(r.errno)?;
        Ok(r.value as u32)
    }

    /// Waits for child `pid` (0: any); (its pid, its status).
    pub async fn wait(&mut self, pid: u32) -> Result<(u32, u32)> {
        let r = self.proc.wait(pid).await?;
        check(r.errno)?;
        Ok(((r.value >> 32) as u32, r.value as u32))
    }

    pub async fn kill(&mut self, pid: u32) -> Result<()> {
        check(self.proc.kill(pid).await?.errno)
    }

    /// The process table, as text.
    pub async fn ps(&mut self) -> Result<String> {
        let text = self.proc.ps().await?;
        Ok(String::from(text.as_str()))
    }

    /// Ends the process with `code` (the process domain then kills what
    /// is left of it). An error: the process domain is gone.
    pub async fn exit(&mut self, code: u32) -> Result<()> {
        check(self.proc.exit(code).await?.errno)
    }
}
