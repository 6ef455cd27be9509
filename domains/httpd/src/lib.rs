//! `httpd`: an HTTP/1.1 server on port 80, as a client of the TCP/IP
//! domain's sockets ("netstack/tcp"). Each connection is a task of its
//! own: it reads into one `RRef` payload buffer, answers every whole
//! request it holds in order (keep-alive and pipelining), and writes the
//! response through the same buffer. GET and HEAD of files held in memory
//! (`http::Site::builtin`), or, with the boot option `httpd_root=DIR`, of
//! the files under DIR in rv6's file system (`fs/files`), streamed in
//! 16 KiB pieces (500 and 503 join the statuses below); requests are parsed by httparse within fixed
//! bounds (`http`), and what cannot be answered gets its status (400,
//! 404, 405, 413, 414, 431, 505) and a closed connection. A connection
//! that sends no whole request for 10 s is told 408 (if it started one)
//! and closed, so slow clients hold nothing for long.
//!
//! If `netstack` crashes, the calls fail with `DomainCrashed`; the tasks
//! end and the server listens again once it is back.
//!
//! `call httpd help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod http;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::Poll;
use core::time::Duration;

use domain_sdk::{Exports, Kernel, Mutex, RRef, RpcResult, lookup, now_ns, sleep_until, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::rv6::{Chunk, Files, FilesProxy, Path, ROOT, errno, kind, open_flags};
use interfaces::socket::{PAYLOAD, Payload, Status, Tcp, TcpProxy};

use http::{Outcome, Parsed, Site};

/// The HTTP port.
pub const PORT: u16 = 80;
/// Connections waiting to be accepted, at most.
pub const BACKLOG: u16 = 256;
/// How long a connection may go without sending a whole request.
pub const IDLE: Duration = Duration::from_secs(10);

/// Where the files come from.
pub enum Content {
    /// `http::Site::builtin`.
    Memory(Site),
    /// Under this directory of rv6's file system.
    Files(String),
}

pub struct Shared {
    content: Content,
    /// `fs/files`, once looked up (again after a failed call).
    fs: Mutex<Option<Arc<FilesProxy>>>,
    from_files: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    restarts: AtomicU64,
}

impl Control for Shared {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.connections.load(Ordering::Relaxed),
            1 => self.requests.load(Ordering::Relaxed),
            2 => self.errors.load(Ordering::Relaxed),
            3 => self.timeouts.load(Ordering::Relaxed),
            5 => self.from_files.load(Ordering::Relaxed),
            _ => self.restarts.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(&alloc::format!(
                "HTTP/1.1 on port 80 (through netstack), serving {}\n0: connections\n\
                 1: requests answered\n2: of them with an error status (4xx, 5xx)\n\
                 3: connections closed idle (10 s without a whole request)\n\
                 4: times the server started again\n5: files sent from rv6's file system",
                match &self.content {
                    Content::Memory(_) => String::from(
                        "from memory: /index.html, /hello.txt, /bytes/N (N = 64, 1024, 16384, 65536)",
                    ),
                    Content::Files(root) =>
                        alloc::format!("the files under {root} in rv6's file system"),
                }
            )),
            _ => Ok(None),
        }
    }
}

/// Reads on `id` into `buffer`, giving up at `deadline_ns` (`None`; the
/// buffer went with the abandoned call).
async fn read_until(
    tcp: &TcpProxy,
    id: u32,
    buffer: RRef<Payload>,
    deadline_ns: u64,
) -> Option<RpcResult<RRef<Payload>>> {
    let mut read = core::pin::pin!(tcp.read(id, buffer));
    let mut timer = core::pin::pin!(sleep_until(deadline_ns));
    poll_fn(|cx| {
        if let Poll::Ready(result) = read.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// One connection: answer whole requests, read more, until the client is
/// done, a response closes it, or it goes quiet.
async fn connection(tcp: Arc<TcpProxy>, id: u32, shared: Arc<Shared>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = RRef::try_new(Payload::empty()).ok();
    // The connection's file buffer, kept from one request to the next
    // (a 16 KiB allocation per request cost more than the read).
    let mut chunk = None;
    'connection: while let Some(mut buf) = buffer.take() {
        loop {
            let outcome = match (&shared.content, http::parse(&pending)) {
                (_, Parsed::Incomplete) => break,
                (_, Parsed::Refused(outcome)) => outcome,
                (Content::Memory(site), _) => http::handle(&pending, site),
                (
                    Content::Files(root),
                    Parsed::Get {
                        consumed,
                        path,
                        head,
                        close,
                    },
                ) => {
                    let path = http::file_path(root, path);
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                    let sent =
                        send_file(&tcp, id, buf, &mut chunk, &shared, path, head, close).await;
                    buf = match sent {
                        Sent::Whole(buf, status) => {
                            if status >= 400 {
                                shared.errors.fetch_add(1, Ordering::Relaxed);
                            }
                            buf
                        }
                        Sent::Broken => break 'connection,
                    };
                    pending.drain(..consumed.min(pending.len()));
                    if close {
                        break 'connection;
                    }
                    continue;
                }
            };
            match outcome {
                Outcome::Incomplete => break,
                Outcome::Respond {
                    consumed,
                    status,
                    response,
                    close,
                } => {
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                    if status >= 400 {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    buf = match sockets::write_all(&tcp, id, buf, &response).await {
                        Some(buf) => buf,
                        None => break 'connection,
                    };
                    pending.drain(..consumed.min(pending.len()));
                    if close {
                        break 'connection;
                    }
                }
            }
        }
        let deadline = now_ns() + IDLE.as_nanos() as u64;
        match read_until(&tcp, id, buf, deadline).await {
            None => {
                shared.timeouts.fetch_add(1, Ordering::Relaxed);
                if !pending.is_empty()
                    && let Ok(buf) = RRef::try_new(Payload::empty())
                {
                    let _ = sockets::write_all(&tcp, id, buf, &http::timed_out()).await;
                }
                break;
            }
            Some(Ok(buf)) => {
                if buf.status != Status::Ok || buf.len == 0 {
                    break;
                }
                pending.extend_from_slice(buf.bytes());
                buffer = Some(buf);
            }
            Some(Err(_)) => return,
        }
    }
    let _ = tcp.close(id).await;
}

/// How sending a file went.
enum Sent {
    /// A whole response of this status went out; the buffer, to go on.
    Whole(RRef<Payload>, u16),
    /// The connection (or the buffer) is gone, or the file failed after
    /// its head was sent: the connection must close.
    Broken,
}

impl Shared {
    fn fs(&self) -> Option<Arc<FilesProxy>> {
        let mut fs = self.fs.lock();
        if fs.is_none() {
            *fs = lookup::<dyn Files + Send + Sync>("fs/files")
                .ok()
                .map(Arc::new);
        }
        fs.clone()
    }

    /// After a failed call: `fs` may have restarted; look it up again.
    fn forget_fs(&self) {
        *self.fs.lock() = None;
    }
}

/// Why a file cannot be sent: a status, or the file system's call failed
/// (`None`: it may have crashed).
type Refusal = Option<u16>;

/// Opens `path` for reading: its handle, size and whether it is a
/// directory. Anything but a regular file or a directory is 404.
async fn open_file(fs: &FilesProxy, path: &str) -> Result<(u32, u64, bool), Refusal> {
    let path = RRef::try_new(Path::new(path).ok_or(Some(404))?).map_err(|_| Some(503))?;
    let opened = fs
        .open(ROOT, &path, open_flags::READ)
        .await
        .map_err(|_| None)?;
    match opened.errno {
        0 => {}
        e => return Err(Some(status_of(e))),
    }
    let handle = opened.value as u32;
    match fs.stat(handle).await {
        Ok(stat) if stat.errno == 0 && (stat.kind == kind::FILE || stat.kind == kind::DIR) => {
            Ok((handle, stat.size, stat.kind == kind::DIR))
        }
        Ok(_) => {
            let _ = fs.close(handle).await;
            Err(Some(404))
        }
        Err(_) => Err(None),
    }
}

/// Answers a GET or HEAD of `path` (`None`: a path never served) from
/// rv6's file system: a directory by its `index.html`, anything else but
/// a regular file 404, the file system unreachable 503. The body is read
/// and written 16 KiB at a time, so a file of any size takes no more
/// memory than that, read into `chunk` (allocated if `None`, left there
/// for the next request).
#[allow(clippy::too_many_arguments)]
async fn send_file(
    tcp: &TcpProxy,
    id: u32,
    buf: RRef<Payload>,
    chunk: &mut Option<RRef<Chunk>>,
    shared: &Shared,
    path: Option<String>,
    head: bool,
    close: bool,
) -> Sent {
    let Some(mut path) = path else {
        return refuse(tcp, id, buf, 404, head, close).await;
    };
    let Some(fs) = shared.fs() else {
        return refuse(tcp, id, buf, 503, head, close).await;
    };
    // A file that fits in a chunk is read whole in one call (a directory
    // by its index.html); a larger one is read through a handle.
    match read_small(&fs, &mut path, chunk).await {
        Ok(true) => {
            let body = chunk.as_ref().map_or(&[][..], |c| c.bytes());
            let result = send_whole(tcp, id, buf, &path, body, head, close).await;
            if matches!(result, Sent::Whole(..)) {
                shared.from_files.fetch_add(1, Ordering::Relaxed);
            }
            return result;
        }
        Ok(false) => {}
        Err(None) => {
            shared.forget_fs();
            return refuse(tcp, id, buf, 503, head, close).await;
        }
        Err(Some(status)) => return refuse(tcp, id, buf, status, head, close).await,
    }
    let mut opened = open_file(&fs, &path).await;
    if let Ok((handle, _, true)) = opened {
        let _ = fs.close(handle).await;
        path.push_str("/index.html");
        opened = open_file(&fs, &path).await;
    }
    let (handle, size) = match opened {
        Ok((handle, _, true)) => {
            let _ = fs.close(handle).await;
            return refuse(tcp, id, buf, 404, head, close).await;
        }
        Ok((handle, size, false)) => (handle, size),
        Err(None) => {
            shared.forget_fs();
            return refuse(tcp, id, buf, 503, head, close).await;
        }
        Err(Some(status)) => return refuse(tcp, id, buf, status, head, close).await,
    };
    let result = stream(tcp, id, buf, chunk, &fs, handle, &path, size, head, close).await;
    if fs.close(handle).await.is_err() {
        shared.forget_fs();
    }
    if matches!(result, Sent::Whole(..)) {
        shared.from_files.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// The status a file-system error number gives.
fn status_of(errno: i32) -> u16 {
    match errno {
        errno::ENOENT | errno::ENOTDIR | errno::ENAMETOOLONG | errno::EINVAL | errno::ENODEV => 404,
        _ => 500,
    }
}

/// A chunk to read into: `spare`'s, or a new one.
fn take_chunk(spare: &mut Option<RRef<Chunk>>) -> Option<RRef<Chunk>> {
    spare.take().or_else(|| RRef::try_new(Chunk::empty()).ok())
}

/// Reads `path` into `spare` whole if it fits in a chunk (a directory:
/// its `index.html`, and `path` becomes that): whether it did (false:
/// the file is larger), or why not.
async fn read_small(
    fs: &FilesProxy,
    path: &mut String,
    spare: &mut Option<RRef<Chunk>>,
) -> Result<bool, Refusal> {
    for _ in 0..2 {
        let name = RRef::try_new(Path::new(path).ok_or(Some(404))?).map_err(|_| Some(503))?;
        let chunk = take_chunk(spare).ok_or(Some(503))?;
        let chunk = spare.insert(
            fs.read_path(ROOT, &name, 0, chunk)
                .await
                .map_err(|_| None)?,
        );
        match chunk.errno {
            0 => return Ok(u64::from(chunk.len) == chunk.size),
            errno::EISDIR if !path.ends_with("/index.html") => path.push_str("/index.html"),
            errno::EISDIR => return Err(Some(404)),
            e => return Err(Some(status_of(e))),
        }
    }
    Err(Some(404))
}

/// A whole 200 response: the head and `body` in one payload (or as few
/// as it takes).
async fn send_whole(
    tcp: &TcpProxy,
    id: u32,
    buf: RRef<Payload>,
    path: &str,
    body: &[u8],
    head: bool,
    close: bool,
) -> Sent {
    let response = http::response_head(200, http::content_type(path), body.len() as u64, close);
    let mut out = Out {
        buf: Some(buf),
        len: 0,
    };
    if !out.put(tcp, id, &response).await || (!head && !out.put(tcp, id, body).await) {
        return Sent::Broken;
    }
    match (out.flush(tcp, id).await, out.buf) {
        (true, Some(buf)) => Sent::Whole(buf, 200),
        _ => Sent::Broken,
    }
}

/// A whole response of `status` with its reason as the body.
async fn refuse(
    tcp: &TcpProxy,
    id: u32,
    buf: RRef<Payload>,
    status: u16,
    head: bool,
    close: bool,
) -> Sent {
    let Outcome::Respond { response, .. } = http::status_only(status, 0, head, close) else {
        return Sent::Broken;
    };
    match sockets::write_all(tcp, id, buf, &response).await {
        Some(buf) => Sent::Whole(buf, status),
        None => Sent::Broken,
    }
}

/// The head, then (unless `head`) `size` bytes of the open file, written
/// a whole payload at a time: the head shares its payload with the start
/// of the body (written apart, each went out as a segment of its own:
/// two frames and two writes for a small file where one does), and each
/// chunk read from the file (into `spare`, as in `send_file`) fills what
/// the last one left of a payload.
#[allow(clippy::too_many_arguments)]
async fn stream(
    tcp: &TcpProxy,
    id: u32,
    buf: RRef<Payload>,
    spare: &mut Option<RRef<Chunk>>,
    fs: &FilesProxy,
    handle: u32,
    path: &str,
    size: u64,
    head: bool,
    close: bool,
) -> Sent {
    let response = http::response_head(200, http::content_type(path), size, close);
    let mut out = Out {
        buf: Some(buf),
        len: 0,
    };
    if !out.put(tcp, id, &response).await {
        return Sent::Broken;
    }
    if !head {
        let mut offset = 0u64;
        while offset < size {
            let Some(chunk) = take_chunk(spare) else {
                return Sent::Broken;
            };
            let chunk = match fs.read(handle, offset, chunk).await {
                Ok(chunk) => spare.insert(chunk),
                Err(_) => return Sent::Broken,
            };
            // An error, or the file shrank under us: the promised length
            // cannot be kept, so the connection ends short.
            if chunk.errno != 0 || chunk.len == 0 {
                return Sent::Broken;
            }
            let bytes = chunk.bytes();
            let bytes = &bytes[..bytes.len().min((size - offset) as usize)];
            if !out.put(tcp, id, bytes).await {
                return Sent::Broken;
            }
            offset += bytes.len() as u64;
        }
    }
    match (out.flush(tcp, id).await, out.buf) {
        (true, Some(buf)) => Sent::Whole(buf, 200),
        _ => Sent::Broken,
    }
}

/// A payload being filled: written when full, and by [`Out::flush`].
struct Out {
    /// `None` once a write failed (the call took the buffer).
    buf: Option<RRef<Payload>>,
    len: usize,
}

impl Out {
    /// Appends `bytes`, writing each payload that fills; false if the
    /// connection failed.
    async fn put(&mut self, tcp: &TcpProxy, id: u32, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let Some(buf) = self.buf.as_mut() else {
                return false;
            };
            let take = bytes.len().min(PAYLOAD - self.len);
            buf.data[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            if self.len == PAYLOAD && !self.flush(tcp, id).await {
                return false;
            }
        }
        true
    }

    /// Writes what the payload holds (nothing if empty).
    async fn flush(&mut self, tcp: &TcpProxy, id: u32) -> bool {
        if self.len == 0 {
            return self.buf.is_some();
        }
        let Some(mut buf) = self.buf.take() else {
            return false;
        };
        buf.len = self.len as u32;
        self.len = 0;
        match tcp.write(id, buf).await {
            Ok(buf) if buf.status == Status::Ok => {
                self.buf = Some(buf);
                true
            }
            _ => false,
        }
    }
}

async fn server(shared: Arc<Shared>) {
    sockets::serve_tcp(PORT, BACKLOG, &shared.restarts, |tcp, id| {
        shared.connections.fetch_add(1, Ordering::Relaxed);
        connection(tcp, id, shared.clone())
    })
    .await
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let content = match domain_sdk::boot_option("httpd_root") {
        Some(root) if root.starts_with('/') && !root.split('/').any(|s| s == "..") => {
            Content::Files(root)
        }
        Some(root) => {
            return Err(alloc::format!(
                "httpd_root={root}: an absolute path without '..' is needed"
            ));
        }
        None => Content::Memory(Site::builtin()),
    };
    let shared = Arc::new(Shared {
        content,
        fs: Mutex::new(None),
        from_files: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        restarts: AtomicU64::new(0),
    });
    spawn(server(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", shared))
}
