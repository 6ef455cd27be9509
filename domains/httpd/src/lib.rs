//! `httpd`: an HTTP/1.1 server on port 80, as a client of the TCP/IP
//! domain's sockets ("netstack/tcp"). Each connection is a task of its
//! own: it reads into one `RRef` payload buffer, answers every whole
//! request it holds in order (keep-alive and pipelining), and writes the
//! response through the same buffer. GET and HEAD of files held in memory
//! (`http::Site::builtin`); requests are parsed by httparse within fixed
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

use domain_sdk::{Exports, Kernel, RRef, RpcResult, now_ns, sleep_until, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::socket::{Payload, Status, Tcp, TcpProxy};

use http::{Outcome, Site};

/// The HTTP port.
pub const PORT: u16 = 80;
/// Connections waiting to be accepted, at most.
pub const BACKLOG: u16 = 256;
/// How long a connection may go without sending a whole request.
pub const IDLE: Duration = Duration::from_secs(10);

pub struct Shared {
    site: Site,
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
            _ => self.restarts.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "HTTP/1.1 on port 80 (through netstack): /index.html, /hello.txt, /bytes/N \
                 (N = 64, 1024, 16384, 65536)\n0: connections\n1: requests answered\n\
                 2: of them with an error status (4xx, 5xx)\n3: connections closed idle \
                 (10 s without a whole request)\n4: times the server started again",
            ),
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
    'connection: while let Some(mut buf) = buffer.take() {
        loop {
            match http::handle(&pending, &shared.site) {
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

async fn server(shared: Arc<Shared>) {
    sockets::serve_tcp(PORT, BACKLOG, &shared.restarts, |tcp, id| {
        shared.connections.fetch_add(1, Ordering::Relaxed);
        connection(tcp, id, shared.clone())
    })
    .await
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let shared = Arc::new(Shared {
        site: Site::builtin(),
        connections: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        restarts: AtomicU64::new(0),
    });
    spawn(server(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", shared))
}
