//! `kvstore`: a key-value store speaking memcached's text protocol on
//! TCP and UDP port 11211, as a client of the TCP/IP domain's sockets
//! ("netstack/tcp", "netstack/udp"). The index is an open-addressing FNV
//! hash table (`store`); the protocol (`protocol`) handles get, gets,
//! set, add, replace, append, prepend, cas, delete, incr, decr, touch,
//! flush_all, version, verbosity, stats and quit, values up to 1 MiB and
//! expiry. Each TCP connection is a task of its own that answers the
//! commands it has read, in order; each UDP datagram (with memcached's
//! 8-byte frame header) gets its reply in as many datagrams as it needs.
//! The store holds at most 64 MiB of items (`kv_bytes=N` on the kernel
//! command line, in MiB, changes it); past it, stores are refused with
//! `SERVER_ERROR out of memory`.
//!
//! If `netstack` crashes, the servers listen and bind again once it is
//! back; the items stay (they live here).
//!
//! `call kvstore help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod protocol;
pub mod store;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, Mutex, RRef, RpcResult, log, lookup, now_ns, sleep, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::socket::{DATAGRAM, Datagram, Payload, Status, Tcp, TcpProxy, Udp, UdpProxy};

use protocol::{MAX_VALUE, Outcome, Server};

/// The memcached port.
pub const PORT: u16 = 11211;
/// Connections waiting to be accepted, at most.
pub const BACKLOG: u16 = 256;
/// Default byte budget of the store.
pub const DEFAULT_MIB: usize = 64;

pub struct Shared {
    server: Mutex<Server>,
    datagrams: AtomicU64,
    restarts: AtomicU64,
}

impl Control for Shared {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        let server = self.server.lock();
        Ok(match op {
            0 => server.store.len() as u64,
            1 => server.store.bytes() as u64,
            2 => server.stats.cmd_get,
            3 => server.stats.cmd_set,
            4 => server.stats.get_hits,
            5 => server.stats.connections,
            6 => self.datagrams.load(Ordering::Relaxed),
            _ => self.restarts.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "memcached text protocol on TCP and UDP port 11211 (through netstack)\n\
                 0: items\n1: bytes held\n2: keys asked for (get, gets)\n3: stores\n\
                 4: keys found\n5: TCP connections\n6: UDP datagrams answered\n\
                 7: times the servers started again",
            ),
            _ => Ok(None),
        }
    }
}

/// One connection: run the commands read, in order, until the client is
/// done or says quit.
async fn connection(tcp: Arc<TcpProxy>, id: u32, shared: Arc<Shared>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut skip = 0usize;
    let Ok(mut buffer) = RRef::try_new(Payload::empty()) else {
        let _ = tcp.close(id).await;
        return;
    };
    'connection: loop {
        loop {
            let outcome = shared.server.lock().execute(&pending, now_ns());
            match outcome {
                Outcome::Incomplete => break,
                Outcome::Reply {
                    consumed,
                    skip: more,
                    reply,
                    close,
                } => {
                    if !reply.is_empty() {
                        buffer = match sockets::write_all(&tcp, id, buffer, &reply).await {
                            Some(buffer) => buffer,
                            None => break 'connection,
                        };
                    }
                    pending.drain(..consumed.min(pending.len()));
                    skip = more;
                    if close {
                        break 'connection;
                    }
                }
            }
        }
        buffer = match tcp.read(id, buffer).await {
            Ok(buffer) => buffer,
            Err(_) => return,
        };
        if buffer.status != Status::Ok || buffer.len == 0 {
            break;
        }
        let bytes = buffer.bytes();
        let skipped = skip.min(bytes.len());
        skip -= skipped;
        pending.extend_from_slice(&bytes[skipped..]);
        // Bounded by the protocol: a line, or a value of at most 1 MiB.
        if pending.len() > MAX_VALUE + 2 * protocol::MAX_LINE {
            break;
        }
    }
    shared.server.lock().stats.curr_connections -= 1;
    let _ = tcp.close(id).await;
}

async fn tcp_server(shared: Arc<Shared>) {
    sockets::serve_tcp(PORT, BACKLOG, &shared.restarts, |tcp, id| {
        {
            let mut server = shared.server.lock();
            server.stats.connections += 1;
            server.stats.curr_connections += 1;
        }
        connection(tcp, id, shared.clone())
    })
    .await
}

async fn udp_server(shared: Arc<Shared>) {
    loop {
        let Ok(udp) = lookup::<dyn Udp + Send + Sync>("netstack/udp") else {
            sleep(Duration::from_millis(50)).await;
            continue;
        };
        serve_udp(&udp, &shared).await;
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_udp(udp: &UdpProxy, shared: &Shared) {
    let opened = match udp.bind(PORT).await {
        Ok(opened) if opened.status == Status::Ok => opened,
        Ok(opened) => return log(&alloc::format!("UDP: bind: {:?}", opened.status)),
        Err(e) => return log(&alloc::format!("UDP: bind: {e}")),
    };
    log(&alloc::format!("UDP: bound to port {PORT}"));
    let Ok(mut datagram) = RRef::try_new(Datagram::empty()) else {
        return;
    };
    loop {
        datagram = match udp.recv_from(opened.socket, datagram).await {
            Ok(datagram) if datagram.status == Status::Ok => datagram,
            _ => return,
        };
        let replies = shared.server.lock().datagram(datagram.bytes(), now_ns());
        // Back to the sender: its address and port are in the datagram.
        for reply in replies {
            let len = reply.len().min(DATAGRAM);
            datagram.data[..len].copy_from_slice(&reply[..len]);
            datagram.len = len as u32;
            datagram = match udp.send_to(opened.socket, datagram).await {
                Ok(datagram) => datagram,
                Err(_) => return,
            };
        }
        shared.datagrams.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let mib = match domain_sdk::boot_option("kv_bytes") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=4096).contains(m))
            .ok_or_else(|| alloc::format!("kv_bytes={text}: MiB from 1 to 4096"))?,
        None => DEFAULT_MIB,
    };
    let shared = Arc::new(Shared {
        server: Mutex::new(Server::new(mib << 20, now_ns())),
        datagrams: AtomicU64::new(0),
        restarts: AtomicU64::new(0),
    });
    spawn(tcp_server(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    spawn(udp_server(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", shared))
}
