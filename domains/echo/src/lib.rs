//! `echo`: the echo protocol (RFC 862) on TCP and UDP port 7, as a client
//! of the TCP/IP domain's sockets ("netstack/tcp", "netstack/udp"). Every
//! TCP connection is a task of its own that reads into one `RRef` payload
//! buffer and writes the same buffer back, so the bytes are never copied
//! in this domain; every UDP datagram goes back to its sender.
//!
//! If `netstack` crashes, the calls fail with `DomainCrashed`; the tasks
//! end and the servers start again (listen, bind) once it is back.
//!
//! `call echo help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, RRef, RpcResult, log, lookup, sleep, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::socket::{Datagram, Payload, Status, Tcp, TcpProxy, Udp, UdpProxy};

/// The echo port.
pub const PORT: u16 = 7;
/// Connections waiting to be accepted, at most.
pub const BACKLOG: u16 = 128;

#[derive(Default)]
pub struct Stats {
    connections: AtomicU64,
    bytes: AtomicU64,
    datagrams: AtomicU64,
    restarts: AtomicU64,
}

impl Control for Stats {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.connections.load(Ordering::Relaxed),
            1 => self.bytes.load(Ordering::Relaxed),
            2 => self.datagrams.load(Ordering::Relaxed),
            _ => self.restarts.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "echo on TCP and UDP port 7 (through netstack)\n0: TCP connections served\n\
                 1: TCP bytes echoed\n2: UDP datagrams echoed\n3: times the servers started again",
            ),
            _ => Ok(None),
        }
    }
}

/// One connection: read, write the same buffer back, until end of stream
/// or an error; then close.
async fn connection(tcp: Arc<TcpProxy>, id: u32, stats: Arc<Stats>) {
    let Ok(mut buffer) = RRef::try_new(Payload::empty()) else {
        let _ = tcp.close(id).await;
        return;
    };
    loop {
        buffer = match tcp.read(id, buffer).await {
            Ok(buffer) => buffer,
            Err(_) => return,
        };
        if buffer.status != Status::Ok || buffer.len == 0 {
            break;
        }
        let len = u64::from(buffer.len);
        buffer = match tcp.write(id, buffer).await {
            Ok(buffer) => buffer,
            Err(_) => return,
        };
        if buffer.status != Status::Ok {
            break;
        }
        stats.bytes.fetch_add(len, Ordering::Relaxed);
    }
    let _ = tcp.close(id).await;
}

async fn tcp_server(stats: Arc<Stats>) {
    sockets::serve_tcp(PORT, BACKLOG, &stats.restarts, |tcp, id| {
        stats.connections.fetch_add(1, Ordering::Relaxed);
        connection(tcp, id, stats.clone())
    })
    .await
}

async fn udp_server(stats: Arc<Stats>) {
    loop {
        let Ok(udp) = lookup::<dyn Udp + Send + Sync>("netstack/udp") else {
            sleep(Duration::from_millis(50)).await;
            continue;
        };
        serve_udp(&udp, &stats).await;
        stats.restarts.fetch_add(1, Ordering::Relaxed);
        sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_udp(udp: &UdpProxy, stats: &Stats) {
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
        // Back to where it came from: the sender's address and port are
        // already in it.
        datagram = match udp.send_to(opened.socket, datagram).await {
            Ok(datagram) => datagram,
            Err(_) => return,
        };
        if datagram.status == Status::Ok {
            stats.datagrams.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let stats = Arc::new(Stats::default());
    spawn(tcp_server(stats.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    spawn(udp_server(stats.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", stats))
}
