//! `rv6`: rv6's process domain. A process is a program file of the file
//! system (a signed archive of one image, see `Kernel::spawn_program`)
//! running as a domain, with its arguments, a descriptor table, a working
//! directory and, once it ends, an exit status. This domain holds all of
//! that and exports it to programs as "proc" (`interfaces::rv6::Proc`):
//! every call names its process by the caller's incarnation, so a program
//! can only act as itself. It also exports "tty": the kernel's console,
//! handed over with the monitor's `rv6` command, passes typed lines here,
//! and the console's shell (`/bin/sh`) reads them from descriptor 0.
//!
//! Descriptors are files (a handle of `fs/files` with an offset, shared
//! by the descriptors `dup2` and `spawn` copy), pipe ends (64 KiB
//! buffers; a reader sees the end once no write end is left, a writer
//! gets `EPIPE` once no read end is left) and the console. A process ends
//! by `exit` (its code), by a crash (status 139) or by `kill` (137); the
//! domain's reaper task then kills what is left of its domain, closes its
//! descriptors and wakes its parent's `wait`. Children of a process that
//! ended are reaped by the domain itself.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod path;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, Owner, RRef, RpcError, RpcFuture, RpcResult, caller, is_alive, log,
    lookup, sleep, spawn,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::rv6::{
    Args, CHUNK, Chunk, DirEntry, FileStat, Files, FilesProxy, NAME, Path, Proc, ROOT, Reply, Tty,
    errno, kind, open_flags, path_op, status,
};

/// Descriptors per process.
const MAX_FDS: usize = 64;
/// Bytes a pipe holds.
const PIPE_BYTES: usize = 64 * 1024;
/// Processes at once.
const MAX_PROCS: usize = 48;
/// `ECHILD` and `EPIPE`, which the file system never returns.
const ECHILD: i32 = 10;
const EPIPE: i32 = 32;
const ESRCH: i32 = 3;
const ESPIPE: i32 = 29;

struct Pipe {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
    wakers: Vec<Waker>,
}

impl Pipe {
    fn wake(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }
}

enum Kind {
    File {
        handle: u32,
        read: bool,
        write: bool,
        append: bool,
        offset: Mutex<u64>,
    },
    PipeRead(Arc<Mutex<Pipe>>),
    PipeWrite(Arc<Mutex<Pipe>>),
    Console,
}

/// An open file: what descriptors refer to (several, after `dup2` or
/// `spawn`), with how many do.
struct OpenFile {
    kind: Kind,
    refs: AtomicUsize,
}

type Fd = Arc<OpenFile>;

/// Takes `len` bytes from `offset` for a call about to be made; where
/// they start.
fn reserve(offset: &Mutex<u64>, len: u64) -> u64 {
    let mut at = offset.lock();
    let start = *at;
    *at = start.saturating_add(len);
    start
}

/// After a call given `[start, start + len)`: only `done` bytes moved, so
/// the rest is given back, if no other call has taken a range since.
fn give_back(offset: &Mutex<u64>, start: u64, len: u64, done: u64) {
    let mut at = offset.lock();
    if *at == start.saturating_add(len) {
        *at = start + done.min(len);
    }
}

/// A descriptor slot now refers to `of`.
fn attach(of: &Fd) {
    of.refs.fetch_add(1, Ordering::SeqCst);
    match &of.kind {
        Kind::PipeRead(p) => p.lock().readers += 1,
        Kind::PipeWrite(p) => p.lock().writers += 1,
        _ => {}
    }
}

/// A descriptor slot no longer refers to `of`: the file handle to close
/// if it was the last.
fn detach(of: &Fd) -> Option<u32> {
    let last = of.refs.fetch_sub(1, Ordering::SeqCst) == 1;
    match &of.kind {
        Kind::PipeRead(p) => {
            let mut p = p.lock();
            p.readers -= 1;
            p.wake();
        }
        Kind::PipeWrite(p) => {
            let mut p = p.lock();
            p.writers -= 1;
            p.wake();
        }
        Kind::File { handle, .. } if last => return Some(*handle),
        _ => {}
    }
    None
}

struct Process {
    parent: u32,
    /// Its domain's name.
    domain: String,
    owner: Owner,
    args: Vec<String>,
    cwd: String,
    fds: Vec<Option<Fd>>,
    /// The code it gave `exit`.
    exited: Option<u64>,
    killed: bool,
    /// Its status once it has ended and its domain is gone.
    status: Option<u64>,
}

#[derive(Default)]
struct Console {
    lines: VecDeque<String>,
    wakers: Vec<Waker>,
    /// The console's shell.
    shell: Option<u32>,
    /// The shell is being started.
    starting: bool,
}

struct State {
    procs: BTreeMap<u32, Process>,
    by_owner: BTreeMap<u32, u32>,
    next_pid: u32,
    console: Console,
    /// Wakers of `wait` calls.
    waiters: Vec<Waker>,
}

struct Core {
    state: Mutex<State>,
    fs: Mutex<Option<Arc<FilesProxy>>>,
    spawned: AtomicU64,
    crashed: AtomicU64,
}

type Shared = Arc<Core>;

fn err(e: i32) -> Reply {
    Reply::error(e)
}

impl Core {
    fn fs(&self) -> Result<Arc<FilesProxy>, i32> {
        let mut fs = self.fs.lock();
        if let Some(f) = fs.as_ref() {
            return Ok(f.clone());
        }
        let f = Arc::new(lookup::<dyn Files + Send + Sync>("fs/files").map_err(|_| errno::EIO)?);
        *fs = Some(f.clone());
        Ok(f)
    }

    /// After a failed call the file system may have restarted: look it up
    /// again next time.
    fn forget_fs(&self) {
        *self.fs.lock() = None;
    }

    /// The calling process's id.
    fn me(&self) -> Option<u32> {
        self.state.lock().by_owner.get(&caller().to_bits()).copied()
    }

    fn fd(&self, pid: u32, fd: u32) -> Result<Fd, i32> {
        let st = self.state.lock();
        st.procs
            .get(&pid)
            .and_then(|p| p.fds.get(fd as usize))
            .and_then(Option::clone)
            .ok_or(errno::EBADF)
    }

    fn cwd(&self, pid: u32) -> String {
        self.state
            .lock()
            .procs
            .get(&pid)
            .map_or_else(|| String::from("/"), |p| p.cwd.clone())
    }

    fn resolve(&self, pid: u32, path: &str) -> Result<String, i32> {
        if path.is_empty() {
            return Err(errno::ENOENT);
        }
        let abs = path::absolute(&self.cwd(pid), path);
        if abs.len() > interfaces::rv6::PATH_MAX {
            return Err(errno::ENAMETOOLONG);
        }
        Ok(abs)
    }

    /// Puts `of` in the lowest free descriptor of `pid`.
    fn install(&self, pid: u32, of: Fd) -> Result<u32, i32> {
        let mut st = self.state.lock();
        let p = st.procs.get_mut(&pid).ok_or(errno::EBADF)?;
        let slot = match p.fds.iter().position(Option::is_none) {
            Some(i) => i,
            None if p.fds.len() < MAX_FDS => {
                p.fds.push(None);
                p.fds.len() - 1
            }
            None => return Err(errno::EMFILE),
        };
        attach(&of);
        p.fds[slot] = Some(of);
        Ok(slot as u32)
    }

    async fn close_handles(&self, handles: Vec<u32>) {
        if handles.is_empty() {
            return;
        }
        if let Ok(fs) = self.fs() {
            for h in handles {
                let _ = fs.close(h).await;
            }
        }
    }

    async fn open_path(&self, pid: u32, path: &str, flags: u32) -> Reply {
        let abs = match self.resolve(pid, path) {
            Ok(a) => a,
            Err(e) => return err(e),
        };
        let Some(p) = Path::new(&abs) else {
            return err(errno::ENAMETOOLONG);
        };
        let (Ok(fs), Ok(p)) = (self.fs(), RRef::try_new(p)) else {
            return err(errno::EIO);
        };
        let r = match fs.open(ROOT, &p, flags & 0x1f).await {
            Ok(r) => r,
            Err(_) => {
                self.forget_fs();
                return err(errno::EIO);
            }
        };
        if r.errno != 0 {
            return r;
        }
        // The console's device node: the console itself.
        if let Ok(st) = fs.stat(r.value as u32).await
            && st.errno == 0
            && st.kind == kind::DEVICE
            && st.major == interfaces::rv6::CONSOLE_MAJOR
        {
            let _ = fs.close(r.value as u32).await;
            let of = Arc::new(OpenFile {
                kind: Kind::Console,
                refs: AtomicUsize::new(0),
            });
            return match self.install(pid, of) {
                Ok(fd) => Reply::ok(fd as u64),
                Err(e) => err(e),
            };
        }
        let write = flags & open_flags::WRITE != 0;
        let of = Arc::new(OpenFile {
            kind: Kind::File {
                handle: r.value as u32,
                read: flags & open_flags::READ != 0 || !write,
                write,
                append: flags & interfaces::rv6::APPEND_FLAG != 0,
                offset: Mutex::new(0),
            },
            refs: AtomicUsize::new(0),
        });
        match self.install(pid, of) {
            Ok(fd) => Reply::ok(fd as u64),
            Err(e) => {
                let _ = fs.close(r.value as u32).await;
                err(e)
            }
        }
    }

    async fn read_fd(&self, pid: u32, fd: u32, mut chunk: RRef<Chunk>) -> RRef<Chunk> {
        // The chunk's length on the way in is how much the caller wants
        // (0: a whole chunk); no more is taken from the file, the pipe or
        // the console line, so nothing is lost to a small buffer.
        let want = match chunk.len as usize {
            0 => CHUNK,
            n => n.min(CHUNK),
        };
        chunk.len = 0;
        chunk.errno = 0;
        let of = match self.fd(pid, fd) {
            Ok(of) => of,
            Err(e) => {
                chunk.errno = e;
                return chunk;
            }
        };
        match &of.kind {
            Kind::File {
                handle,
                read,
                offset,
                ..
            } => {
                if !read {
                    chunk.errno = errno::EBADF;
                    return chunk;
                }
                // The range is taken before the call, so that processes
                // sharing this open file (after spawn or dup2) read
                // consecutive data, never the same bytes twice.
                let want = want as u64;
                let off = reserve(offset, want);
                let Ok(fs) = self.fs() else {
                    give_back(offset, off, want, 0);
                    chunk.errno = errno::EIO;
                    return chunk;
                };
                match fs.read(*handle, off, chunk).await {
                    Ok(mut c) => {
                        c.len = c.len.min(want as u32);
                        let done = if c.errno == 0 { u64::from(c.len) } else { 0 };
                        give_back(offset, off, want, done);
                        c
                    }
                    Err(_) => {
                        self.forget_fs();
                        let mut c = RRef::new(Chunk::empty());
                        c.errno = errno::EIO;
                        c
                    }
                }
            }
            Kind::PipeRead(pipe) => {
                let n = poll_fn(|cx| {
                    let mut p = pipe.lock();
                    if !p.buf.is_empty() {
                        let n = p.buf.len().min(want);
                        for (i, b) in p.buf.drain(..n).enumerate() {
                            chunk.data[i] = b;
                        }
                        p.wake();
                        return Poll::Ready(n);
                    }
                    if p.writers == 0 {
                        return Poll::Ready(0);
                    }
                    p.wakers.push(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                chunk.len = n as u32;
                chunk
            }
            Kind::PipeWrite(_) => {
                chunk.errno = errno::EBADF;
                chunk
            }
            Kind::Console => {
                let line = poll_fn(|cx| {
                    let mut st = self.state.lock();
                    if let Some(line) = st.console.lines.pop_front() {
                        return Poll::Ready(line);
                    }
                    st.console.wakers.push(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                let bytes = line.as_bytes();
                if bytes.len() < want {
                    chunk.data[..bytes.len()].copy_from_slice(bytes);
                    chunk.data[bytes.len()] = b'\n';
                    chunk.len = bytes.len() as u32 + 1;
                } else {
                    // Part of the line now, the rest (and its newline) by
                    // the next read.
                    let mut cut = want;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    let cut = cut.max(1).min(bytes.len());
                    chunk.data[..cut].copy_from_slice(&bytes[..cut]);
                    chunk.len = cut as u32;
                    let rest = String::from(line.get(cut..).unwrap_or(""));
                    self.state.lock().console.lines.push_front(rest);
                }
                chunk
            }
        }
    }

    async fn write_fd(&self, pid: u32, fd: u32, mut chunk: RRef<Chunk>) -> RRef<Chunk> {
        chunk.errno = 0;
        let of = match self.fd(pid, fd) {
            Ok(of) => of,
            Err(e) => {
                chunk.errno = e;
                chunk.len = 0;
                return chunk;
            }
        };
        let len = (chunk.len as usize).min(CHUNK);
        match &of.kind {
            Kind::File {
                handle,
                write,
                append,
                offset,
                ..
            } => {
                if !write {
                    chunk.errno = errno::EBADF;
                    chunk.len = 0;
                    return chunk;
                }
                // As for reads: the range is taken before the call, so
                // that processes writing through one open file never
                // write over each other (as xv6 writes under the inode's
                // lock).
                let want = len as u64;
                let off = if *append {
                    interfaces::rv6::APPEND
                } else {
                    reserve(offset, want)
                };
                let Ok(fs) = self.fs() else {
                    if !*append {
                        give_back(offset, off, want, 0);
                    }
                    chunk.errno = errno::EIO;
                    return chunk;
                };
                match fs.write(*handle, off, chunk).await {
                    Ok(c) => {
                        if !*append {
                            let done = if c.errno == 0 { c.len as u64 } else { 0 };
                            give_back(offset, off, want, done);
                        }
                        c
                    }
                    Err(_) => {
                        self.forget_fs();
                        let mut c = RRef::new(Chunk::empty());
                        c.errno = errno::EIO;
                        c
                    }
                }
            }
            Kind::PipeWrite(pipe) => {
                let mut done = 0;
                while done < len {
                    let step = poll_fn(|cx| {
                        let mut p = pipe.lock();
                        if p.readers == 0 {
                            return Poll::Ready(Err(EPIPE));
                        }
                        let room = PIPE_BYTES.saturating_sub(p.buf.len());
                        if room == 0 {
                            p.wakers.push(cx.waker().clone());
                            return Poll::Pending;
                        }
                        let n = room.min(len - done);
                        p.buf.extend(&chunk.data[done..done + n]);
                        p.wake();
                        Poll::Ready(Ok(n))
                    })
                    .await;
                    match step {
                        Ok(n) => done += n,
                        Err(e) => {
                            chunk.errno = if done == 0 { e } else { 0 };
                            break;
                        }
                    }
                }
                chunk.len = done as u32;
                chunk
            }
            Kind::PipeRead(_) => {
                chunk.errno = errno::EBADF;
                chunk.len = 0;
                chunk
            }
            Kind::Console => {
                domain_sdk::console_write(&chunk.data[..len]);
                chunk
            }
        }
    }

    /// Reads the whole program file `abs` (a signed archive).
    async fn read_program(&self, abs: &str) -> Result<Vec<u8>, i32> {
        let r = self.read_program_from_fs(abs).await;
        if r == Err(errno::EIO) {
            // The file system may have crashed: find its successor next.
            self.forget_fs();
        }
        r
    }

    async fn read_program_from_fs(&self, abs: &str) -> Result<Vec<u8>, i32> {
        let fs = self.fs()?;
        let p =
            RRef::try_new(Path::new(abs).ok_or(errno::ENAMETOOLONG)?).map_err(|_| errno::ENOMEM)?;
        let r = fs
            .open(ROOT, &p, open_flags::READ)
            .await
            .map_err(|_| errno::EIO)?;
        if r.errno != 0 {
            return Err(r.errno);
        }
        let h = r.value as u32;
        let mut out = Vec::new();
        let mut chunk = RRef::try_new(Chunk::empty()).map_err(|_| errno::ENOMEM)?;
        let result = loop {
            chunk = match fs.read(h, out.len() as u64, chunk).await {
                Ok(c) => c,
                Err(_) => break Err(errno::EIO),
            };
            if chunk.errno != 0 {
                break Err(chunk.errno);
            }
            if chunk.len == 0 {
                break Ok(());
            }
            out.extend_from_slice(chunk.bytes());
            if out.len() > 16 << 20 {
                break Err(errno::EFBIG);
            }
        };
        let _ = fs.close(h).await;
        result.map(|()| out)
    }

    /// Starts program `path` as a child of `parent` with `args` and the
    /// parent's descriptors `fds` as 0, 1, 2 (for the console's shell,
    /// `parent` 0 and console descriptors).
    async fn spawn_process(
        &self,
        parent: u32,
        path: &str,
        args: Vec<String>,
        fds: [Option<Fd>; 3],
    ) -> Result<u32, i32> {
        let abs = self.resolve(parent, path)?;
        let archive = self.read_program(&abs).await?;
        let cwd = if parent == 0 {
            String::from("/")
        } else {
            self.cwd(parent)
        };
        let pid = {
            let mut st = self.state.lock();
            if st.procs.len() >= MAX_PROCS {
                return Err(errno::ENOMEM);
            }
            st.next_pid += 1;
            st.next_pid
        };
        // A domain name not in use by a live process (names are reused,
        // so dead domains do not pile up).
        let mut started = None;
        for n in 0..MAX_PROCS * 2 {
            let name = format!("rv6-p{n}");
            if self.state.lock().procs.values().any(|p| p.domain == name) {
                continue;
            }
            // Registered before the program's code runs (its first call
            // names it by its incarnation, known only after the spawn: the
            // spawn runs its init, whose task runs after this returns).
            match domain_sdk::spawn_program(&archive, &name) {
                Ok(owner) => {
                    started = Some((name, owner));
                    break;
                }
                Err(e) if e.contains("exists") || e.contains("still") || e.contains("reclaim") => {
                    continue;
                }
                Err(e) => {
                    log(&format!("rv6: {abs}: {e}"));
                    return Err(errno::EINVAL);
                }
            }
        }
        let Some((domain, owner)) = started else {
            return Err(errno::ENOMEM);
        };
        let mut table: Vec<Option<Fd>> = Vec::new();
        for of in fds {
            if let Some(of) = &of {
                attach(of);
            }
            table.push(of);
        }
        let mut st = self.state.lock();
        st.by_owner.insert(owner.to_bits(), pid);
        st.procs.insert(
            pid,
            Process {
                parent,
                domain,
                owner,
                args,
                cwd,
                fds: table,
                exited: None,
                killed: false,
                status: None,
            },
        );
        self.spawned.fetch_add(1, Ordering::Relaxed);
        Ok(pid)
    }

    /// Ends every process whose domain is gone or that called `exit`:
    /// kills what is left of its domain, closes its descriptors, records
    /// its status and wakes `wait`. What the reaper task runs.
    async fn reap(&self) {
        let mut to_kill = Vec::new();
        let mut handles = Vec::new();
        {
            let mut st = self.state.lock();
            let mut ended = Vec::new();
            for (&pid, p) in st.procs.iter_mut() {
                if p.status.is_some() {
                    continue;
                }
                let alive = is_alive(p.owner);
                if p.exited.is_some() && alive {
                    to_kill.push(p.domain.clone());
                }
                if p.exited.is_some() || !alive {
                    let code = match (p.exited, p.killed) {
                        (Some(c), _) => c,
                        (None, true) => status::KILLED,
                        (None, false) => {
                            self.crashed.fetch_add(1, Ordering::Relaxed);
                            status::CRASHED
                        }
                    };
                    p.status = Some(code);
                    for of in p.fds.drain(..).flatten() {
                        if let Some(h) = detach(&of) {
                            handles.push(h);
                        }
                    }
                    ended.push(pid);
                }
            }
            for pid in ended {
                let owner = st.procs[&pid].owner.to_bits();
                st.by_owner.remove(&owner);
                if st.console.shell == Some(pid) {
                    st.console.shell = None;
                }
                // Its children are nobody's now.
                for p in st.procs.values_mut() {
                    if p.parent == pid {
                        p.parent = 0;
                    }
                }
            }
            // Ended processes nobody waits for.
            st.procs
                .retain(|_, p| !(p.parent == 0 && p.status.is_some()));
            for w in st.waiters.drain(..) {
                w.wake();
            }
        }
        for name in to_kill {
            let _ = domain_sdk::kill_domain(&name);
        }
        self.close_handles(handles).await;
    }

    fn text(&self) -> String {
        let st = self.state.lock();
        let mut out = String::from("  PID  PPID STATE    COMMAND\n");
        for (pid, p) in &st.procs {
            let state = match p.status {
                Some(s) => format!("exit {s}"),
                None => String::from("running"),
            };
            out.push_str(&format!(
                "{pid:5} {:5} {state:8} {}\n",
                p.parent,
                p.args.join(" ")
            ));
        }
        out
    }
}

async fn reaper(core: Shared) {
    loop {
        sleep(Duration::from_millis(20)).await;
        core.reap().await;
    }
}

fn fs_failed() -> RRef<Chunk> {
    let mut c = RRef::new(Chunk::empty());
    c.errno = errno::EPERM;
    c
}

fn path_of(p: &RRef<Path>) -> Result<String, i32> {
    p.as_str().map(String::from).ok_or(errno::EINVAL)
}

impl Proc for Core {
    fn args(&self) -> RpcFuture<'_, RRef<Args>> {
        RpcFuture::new(async move {
            let args = self
                .me()
                .and_then(|pid| self.state.lock().procs.get(&pid).map(|p| p.args.clone()))
                .unwrap_or_default();
            match Args::new(args.iter().map(String::as_str)).or_else(|| Args::new([])) {
                Some(list) => RRef::try_new(list),
                None => Err(RpcError::OutOfMemory),
            }
        })
    }

    fn read(&self, fd: u32, chunk: RRef<Chunk>) -> RpcFuture<'_, RRef<Chunk>> {
        RpcFuture::new(async move {
            match self.me() {
                Some(pid) => Ok(self.read_fd(pid, fd, chunk).await),
                None => {
                    drop(chunk);
                    Ok(fs_failed())
                }
            }
        })
    }

    fn write(&self, fd: u32, chunk: RRef<Chunk>) -> RpcFuture<'_, RRef<Chunk>> {
        RpcFuture::new(async move {
            match self.me() {
                Some(pid) => Ok(self.write_fd(pid, fd, chunk).await),
                None => {
                    drop(chunk);
                    Ok(fs_failed())
                }
            }
        })
    }

    fn open<'a>(&'a self, path: &'a RRef<Path>, flags: u32) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            match path_of(path) {
                Ok(p) => Ok(self.open_path(pid, &p, flags).await),
                Err(e) => Ok(err(e)),
            }
        })
    }

    fn close(&self, fd: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            let of = {
                let mut st = self.state.lock();
                st.procs
                    .get_mut(&pid)
                    .and_then(|p| p.fds.get_mut(fd as usize))
                    .and_then(Option::take)
            };
            let Some(of) = of else {
                return Ok(err(errno::EBADF));
            };
            if let Some(h) = detach(&of) {
                self.close_handles(alloc::vec![h]).await;
            }
            Ok(Reply::ok(0))
        })
    }

    fn seek(&self, fd: u32, offset: i64, whence: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            let of = match self
                .me()
                .ok_or(errno::EPERM)
                .and_then(|pid| self.fd(pid, fd))
            {
                Ok(of) => of,
                Err(e) => return Ok(err(e)),
            };
            let Kind::File {
                handle, offset: at, ..
            } = &of.kind
            else {
                return Ok(err(ESPIPE));
            };
            let base = match whence {
                0 => 0i64,
                1 => *at.lock() as i64,
                2 => match self.fs() {
                    Ok(fs) => match fs.stat(*handle).await {
                        Ok(st) if st.errno == 0 => st.size as i64,
                        Ok(st) => return Ok(err(st.errno)),
                        Err(_) => {
                            self.forget_fs();
                            return Ok(err(errno::EIO));
                        }
                    },
                    Err(e) => return Ok(err(e)),
                },
                _ => return Ok(err(errno::EINVAL)),
            };
            match base.checked_add(offset) {
                Some(new) if new >= 0 => {
                    *at.lock() = new as u64;
                    Ok(Reply::ok(new as u64))
                }
                _ => Ok(err(errno::EINVAL)),
            }
        })
    }

    fn dup2(&self, from: u32, to: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            if to as usize >= MAX_FDS {
                return Ok(err(errno::EBADF));
            }
            let of = match self.fd(pid, from) {
                Ok(of) => of,
                Err(e) => return Ok(err(e)),
            };
            if from == to {
                return Ok(Reply::ok(to as u64));
            }
            let old = {
                let mut st = self.state.lock();
                let Some(p) = st.procs.get_mut(&pid) else {
                    return Ok(err(errno::EPERM));
                };
                while p.fds.len() <= to as usize {
                    p.fds.push(None);
                }
                attach(&of);
                p.fds[to as usize].replace(of)
            };
            if let Some(h) = old.as_ref().and_then(detach) {
                self.close_handles(alloc::vec![h]).await;
            }
            Ok(Reply::ok(to as u64))
        })
    }

    fn pipe(&self) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            let pipe = Arc::new(Mutex::new(Pipe {
                buf: VecDeque::new(),
                readers: 0,
                writers: 0,
                wakers: Vec::new(),
            }));
            let r = Arc::new(OpenFile {
                kind: Kind::PipeRead(pipe.clone()),
                refs: AtomicUsize::new(0),
            });
            let w = Arc::new(OpenFile {
                kind: Kind::PipeWrite(pipe),
                refs: AtomicUsize::new(0),
            });
            let rfd = match self.install(pid, r) {
                Ok(fd) => fd,
                Err(e) => return Ok(err(e)),
            };
            match self.install(pid, w) {
                Ok(wfd) => Ok(Reply::ok(rfd as u64 | (wfd as u64) << 32)),
                Err(e) => Ok(err(e)),
            }
        })
    }

    fn fstat(&self, fd: u32) -> RpcFuture<'_, FileStat> {
        RpcFuture::new(async move {
            let mut out = FileStat {
                errno: 0,
                inum: 0,
                kind: kind::DEVICE,
                nlink: 1,
                size: 0,
                major: 0,
                minor: 0,
            };
            let of = match self
                .me()
                .ok_or(errno::EPERM)
                .and_then(|pid| self.fd(pid, fd))
            {
                Ok(of) => of,
                Err(e) => {
                    out.errno = e;
                    return Ok(out);
                }
            };
            match &of.kind {
                Kind::File { handle, .. } => match self.fs() {
                    Ok(fs) => fs.stat(*handle).await.or_else(|_| {
                        self.forget_fs();
                        out.errno = errno::EIO;
                        Ok(out)
                    }),
                    Err(e) => {
                        out.errno = e;
                        Ok(out)
                    }
                },
                Kind::PipeRead(p) | Kind::PipeWrite(p) => {
                    out.size = p.lock().buf.len() as u64;
                    Ok(out)
                }
                Kind::Console => Ok(out),
            }
        })
    }

    fn read_dir(&self, fd: u32, slot: u32) -> RpcFuture<'_, DirEntry> {
        RpcFuture::new(async move {
            let mut out = DirEntry {
                errno: errno::ENOTDIR,
                next: 0,
                inum: 0,
                name: [0; NAME],
                name_len: 0,
            };
            let of = match self
                .me()
                .ok_or(errno::EPERM)
                .and_then(|pid| self.fd(pid, fd))
            {
                Ok(of) => of,
                Err(e) => {
                    out.errno = e;
                    return Ok(out);
                }
            };
            let Kind::File { handle, .. } = &of.kind else {
                return Ok(out);
            };
            match self.fs() {
                Ok(fs) => fs.read_dir(*handle, slot).await.or_else(|_| {
                    self.forget_fs();
                    out.errno = errno::EIO;
                    Ok(out)
                }),
                Err(e) => {
                    out.errno = e;
                    Ok(out)
                }
            }
        })
    }

    fn chdir<'a>(&'a self, path: &'a RRef<Path>) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            let abs = match path_of(path).and_then(|p| self.resolve(pid, &p)) {
                Ok(a) => a,
                Err(e) => return Ok(err(e)),
            };
            // It must be a directory: open it and look.
            let r = self.open_path(pid, &abs, open_flags::READ).await;
            if r.errno != 0 {
                return Ok(r);
            }
            let fd = r.value as u32;
            let st = self.fstat(fd).await?;
            let _ = self.close(fd).await;
            if st.errno != 0 {
                return Ok(err(st.errno));
            }
            if st.kind != kind::DIR {
                return Ok(err(errno::ENOTDIR));
            }
            let clean = abs.trim_end_matches('/');
            if let Some(p) = self.state.lock().procs.get_mut(&pid) {
                p.cwd = if clean.is_empty() {
                    String::from("/")
                } else {
                    String::from(clean)
                };
            }
            Ok(Reply::ok(0))
        })
    }

    fn path_op<'a>(
        &'a self,
        op: u32,
        a: &'a RRef<Path>,
        b: &'a RRef<Path>,
    ) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            // Removing or renaming a path that ends in `.` or `..` names
            // a directory by one of its own entries: POSIX refuses it
            // (EINVAL), and resolving first would turn `rmdir .` into
            // removing the working directory itself.
            if matches!(op, path_op::RMDIR | path_op::RENAME)
                && path_of(a).is_ok_and(|p| {
                    matches!(p.trim_end_matches('/').rsplit('/').next(), Some("." | ".."))
                })
            {
                return Ok(err(errno::EINVAL));
            }
            let pa = match path_of(a).and_then(|p| self.resolve(pid, &p)) {
                Ok(p) => p,
                Err(e) => return Ok(err(e)),
            };
            let two = matches!(op, path_op::LINK | path_op::RENAME);
            let pb = if two {
                match path_of(b).and_then(|p| self.resolve(pid, &p)) {
                    Ok(p) => p,
                    Err(e) => return Ok(err(e)),
                }
            } else {
                String::new()
            };
            let fs = match self.fs() {
                Ok(fs) => fs,
                Err(e) => return Ok(err(e)),
            };
            let (Some(ra), Some(rb)) = (Path::new(&pa), Path::new(&pb)) else {
                return Ok(err(errno::ENAMETOOLONG));
            };
            let (Ok(ra), Ok(rb)) = (RRef::try_new(ra), RRef::try_new(rb)) else {
                return Ok(err(errno::ENOMEM));
            };
            let r = match op {
                path_op::MKDIR => fs.mkdir(ROOT, &ra).await,
                path_op::UNLINK => fs.unlink(ROOT, &ra).await,
                path_op::RMDIR => fs.rmdir(ROOT, &ra).await,
                path_op::LINK => fs.link(ROOT, &ra, &rb).await,
                path_op::RENAME => fs.rename(ROOT, &ra, &rb).await,
                _ => return Ok(err(errno::EINVAL)),
            };
            Ok(r.unwrap_or_else(|_| {
                self.forget_fs();
                err(errno::EIO)
            }))
        })
    }

    fn spawn<'a>(
        &'a self,
        path: &'a RRef<Path>,
        args: &'a RRef<Args>,
        fds: [u32; 3],
    ) -> RpcFuture<'a, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            let Ok(path) = path_of(path) else {
                return Ok(err(errno::EINVAL));
            };
            let Some(list) = args.list() else {
                return Ok(err(errno::EINVAL));
            };
            let list: Vec<String> = list.into_iter().map(String::from).collect();
            let mut inherited: [Option<Fd>; 3] = [None, None, None];
            for (i, fd) in fds.iter().enumerate() {
                match self.fd(pid, *fd) {
                    Ok(of) => inherited[i] = Some(of),
                    Err(e) => return Ok(err(e)),
                }
            }
            Ok(
                match self.spawn_process(pid, &path, list, inherited).await {
                    Ok(child) => Reply::ok(child as u64),
                    Err(e) => err(e),
                },
            )
        })
    }

    fn wait(&self, pid: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            let Some(me) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            // `u32::MAX`: any child that has ended, without waiting.
            let poll_only = pid == u32::MAX;
            let pid = if poll_only { 0 } else { pid };
            Ok(poll_fn(|cx| {
                let mut st = self.state.lock();
                let children: Vec<u32> = st
                    .procs
                    .iter()
                    .filter(|(id, p)| p.parent == me && (pid == 0 || **id == pid))
                    .map(|(id, _)| *id)
                    .collect();
                if children.is_empty() {
                    return Poll::Ready(err(ECHILD));
                }
                for child in children {
                    if let Some(code) = st.procs[&child].status {
                        st.procs.remove(&child);
                        return Poll::Ready(Reply::ok((child as u64) << 32 | code));
                    }
                }
                if poll_only {
                    return Poll::Ready(err(ECHILD));
                }
                st.waiters.push(cx.waker().clone());
                Poll::Pending
            })
            .await)
        })
    }

    fn exit(&self, code: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            let Some(pid) = self.me() else {
                return Ok(err(errno::EPERM));
            };
            if let Some(p) = self.state.lock().procs.get_mut(&pid) {
                p.exited = Some((code & 0xff) as u64);
            }
            Ok(Reply::ok(0))
        })
    }

    fn kill(&self, pid: u32) -> RpcFuture<'_, Reply> {
        RpcFuture::new(async move {
            if self.me().is_none() {
                return Ok(err(errno::EPERM));
            }
            let name = {
                let mut st = self.state.lock();
                match st.procs.get_mut(&pid) {
                    Some(p) if p.status.is_none() => {
                        p.killed = true;
                        p.domain.clone()
                    }
                    _ => return Ok(err(ESRCH)),
                }
            };
            let _ = domain_sdk::kill_domain(&name);
            Ok(Reply::ok(0))
        })
    }

    fn ps(&self) -> RpcFuture<'_, RRef<Text>> {
        RpcFuture::new(async move { RRef::try_new(Text::new(&self.text())) })
    }
}

/// The console's side.
struct TtySide(Shared);

/// Makes `/dev/console` (the console's device node) if it is missing.
async fn make_console_node(core: &Core) {
    let Ok(fs) = core.fs() else {
        return;
    };
    let (Some(dev), Some(console)) = (Path::new("/dev"), Path::new("/dev/console")) else {
        return;
    };
    let (Ok(dev), Ok(console)) = (RRef::try_new(dev), RRef::try_new(console)) else {
        return;
    };
    let _ = fs.mkdir(ROOT, &dev).await;
    let _ = fs
        .mknod(ROOT, &console, interfaces::rv6::CONSOLE_MAJOR, 0)
        .await;
}

async fn start_shell(core: Shared) {
    make_console_node(&core).await;
    let console = || {
        Some(Arc::new(OpenFile {
            kind: Kind::Console,
            refs: AtomicUsize::new(0),
        }))
    };
    let c = console();
    let fds = [c.clone(), c.clone(), c];
    match core
        .spawn_process(0, "/bin/sh", alloc::vec![String::from("sh")], fds)
        .await
    {
        Ok(pid) => {
            let mut st = core.state.lock();
            st.console.shell = Some(pid);
            st.console.starting = false;
        }
        Err(e) => {
            core.state.lock().console.starting = false;
            domain_sdk::console_write(
                format!("rv6: cannot start /bin/sh (errno {e})\n").as_bytes(),
            );
        }
    }
}

impl Tty for TtySide {
    fn attach(&self) -> RpcResult<bool> {
        {
            let mut st = self.0.state.lock();
            if st.console.shell.is_some() || st.console.starting {
                return Ok(true);
            }
            st.console.starting = true;
            st.console.lines.clear();
        }
        Ok(spawn(start_shell(self.0.clone())).is_ok())
    }

    fn input(&self, line: RRef<Text>) -> RpcResult<bool> {
        let mut st = self.0.state.lock();
        if st.console.shell.is_none() && !st.console.starting {
            return Ok(false);
        }
        if st.console.lines.len() < 64 {
            st.console.lines.push_back(String::from(line.as_str()));
        }
        for w in st.console.wakers.drain(..) {
            w.wake();
        }
        Ok(true)
    }
}

struct Ctl(Shared);

impl Control for Ctl {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.0.state.lock().procs.len() as u64,
            1 => self.0.spawned.load(Ordering::Relaxed),
            _ => self.0.crashed.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "rv6's processes, exported as rv6/proc and rv6/tty\n\
                 0: processes\n1: spawned so far\n2: crashed so far\n3: the process table",
            ),
            3 => Text::answer(&self.0.text()),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let core = Arc::new(Core {
        state: Mutex::new(State {
            procs: BTreeMap::new(),
            by_owner: BTreeMap::new(),
            next_pid: 0,
            console: Console::default(),
            waiters: Vec::new(),
        }),
        fs: Mutex::new(None),
        spawned: AtomicU64::new(0),
        crashed: AtomicU64::new(0),
    });
    spawn(reaper(core.clone())).map_err(|e| format!("spawn: {e}"))?;
    Ok(Exports::new()
        .with::<dyn Proc + Send + Sync>("proc", core.clone())
        .with::<dyn Tty + Send + Sync>("tty", Arc::new(TtySide(core.clone())))
        .with::<dyn Control + Send + Sync>("control", Arc::new(Ctl(core))))
}
