//! `netstack`: the TCP/IP domain. smoltcp (0.14, `no_std` + `alloc`) runs
//! over the `Net` interface of the NIC (through `nic-shadow` if it is
//! loaded, else the domain exporting "net"). Its IPv4 address comes from
//! DHCP, or from `net=ADDRESS/PREFIX[,gw=GATEWAY]` on the kernel command
//! line (`net=dhcp` says DHCP explicitly). It answers ARP
//! and ICMP echo (ping) itself and exports sockets to other domains:
//! "tcp" (`interfaces::socket::Tcp`: listen with a backlog, accept, read,
//! write, shutdown, close), "udp" (`Udp`: bind, send_to, recv_from,
//! close), payloads in `RRef` buffers, and "icmp" (`Icmp`: one echo
//! request and its reply, what the console's `ping` uses). A call that has to wait registers
//! its task's waker with the socket and completes when the stack has
//! processed what it waits for.
//!
//! The connections live here, not in the driver: when the driver crashes,
//! this domain looks it up again (or the shadow restarts it underneath),
//! frames lost meanwhile are sent again by TCP, and connections carry on.
//! When this domain crashes its clients' calls fail with `DomainCrashed`;
//! restarted, it serves new sockets.
//!
//! Frames move between this domain and the driver as batches of `RRef`
//! packet buffers; the buffers of sent frames come back as receive
//! buffers. The task polls the driver while there is traffic, and when
//! idle sleeps until smoltcp's next deadline, at most 8 ms, or until a
//! client's call queued something to send.
//!
//! `call netstack help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod stack;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::future::{Future, poll_fn};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{Poll, Waker};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, Owner, RRef, RpcFuture, RpcResult, caller, is_alive, log, lookup,
    now_ns, sleep, sleep_until, spawn, yield_now,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, Net, NetProxy, Packets};
use interfaces::socket::{
    DATAGRAM, Datagram, Icmp, Opened, PAYLOAD, Payload, PingReply, Status, Tcp, Udp,
};

use stack::{Addressing, Buf, OwnerBits, Pong, Read, Setup, Stack};

/// The calling domain's incarnation: each socket belongs to the domain
/// that opened it (see `stack::OwnerBits`).
fn me() -> OwnerBits {
    caller().to_bits()
}

/// "address A/P, gateway G" or "no address".
fn describe(addressing: Option<Addressing>) -> String {
    match addressing {
        Some(a) => match a.gateway {
            Some(gateway) => {
                alloc::format!("address {}/{}, gateway {gateway}", a.address, a.prefix)
            }
            None => alloc::format!("address {}/{}, no gateway", a.address, a.prefix),
        },
        None => String::from("no address"),
    }
}

/// Wakes the stack's task early: a client queued bytes to send.
#[derive(Default)]
struct Kick {
    flag: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Kick {
    fn kick(&self) {
        self.flag.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
    }

    /// Waits until kicked or until `deadline_ns`.
    async fn wait(&self, deadline_ns: u64) {
        let mut timer = Box::pin(sleep_until(deadline_ns));
        poll_fn(|cx| {
            if self.flag.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            if self.flag.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            timer.as_mut().poll(cx)
        })
        .await
    }
}

/// What the task and the exported interfaces share.
struct Shared {
    setup: Setup,
    stack: Mutex<Option<Stack>>,
    kick: Kick,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    failed_calls: AtomicU64,
    /// Sockets closed because their owner died.
    swept: AtomicU64,
}

fn now_us() -> i64 {
    i64::try_from(now_ns() / 1000).unwrap_or(i64::MAX)
}

impl Shared {
    /// Waits until the stack is up (it comes up when the NIC answers).
    async fn up(&self) {
        while self.stack.lock().is_none() {
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// The stack once it is up, locked (None only if it went away since).
    async fn locked(&self) -> impl core::ops::DerefMut<Target = Option<Stack>> + '_ {
        self.up().await;
        self.stack.lock()
    }
}

impl Control for Shared {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        let counters = self
            .stack
            .lock()
            .as_ref()
            .map(|s| s.counters)
            .unwrap_or_default();
        Ok(match op {
            0 => counters.accepted,
            1 => counters.open,
            2 => counters.listeners,
            3 => counters.udp_sockets,
            4 => counters.backlog_full,
            5 => self.frames_in.load(Ordering::Relaxed),
            6 => self.frames_out.load(Ordering::Relaxed),
            7 => self.failed_calls.load(Ordering::Relaxed),
            8 => self.swept.load(Ordering::Relaxed),
            _ => counters.repeated_syns,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(&alloc::format!(
                "{}; sockets exported as netstack/tcp and netstack/udp\n\
                 0: TCP connections accepted\n1: TCP connections open\n2: TCP listeners\n\
                 3: UDP sockets\n4: connections refused (backlog full)\n\
                 5: frames received\n6: frames sent\n7: calls to the driver that failed\n\
                 8: sockets closed because their owner died\n\
                 9: repeated SYNs dropped (a connection already being made)",
                describe(self.stack.lock().as_ref().and_then(|s| s.addressing))
            )),
            _ => Ok(None),
        }
    }
}

fn opened(result: Result<u32, Status>) -> Opened {
    match result {
        Ok(socket) => Opened {
            socket,
            status: Status::Ok,
        },
        Err(status) => Opened { socket: 0, status },
    }
}

impl Tcp for Shared {
    fn listen(&self, port: u16, backlog: u16) -> RpcFuture<'_, Opened> {
        RpcFuture::new(async move {
            let owner = me();
            Ok(opened(
                self.locked()
                    .await
                    .as_mut()
                    .map(|s| s.tcp_listen(owner, port, backlog))
                    .unwrap_or(Err(Status::NoSuchSocket)),
            ))
        })
    }

    fn accept(&self, listener: u32) -> RpcFuture<'_, Opened> {
        RpcFuture::new(async move {
            let owner = me();
            self.up().await;
            let result = poll_fn(|cx| {
                let mut guard = self.stack.lock();
                let Some(stack) = guard.as_mut() else {
                    return Poll::Ready(Err(Status::NoSuchSocket));
                };
                match stack.tcp_accept(owner, listener, Some(cx.waker())) {
                    Ok(Some(id)) => Poll::Ready(Ok(id)),
                    Ok(None) => Poll::Pending,
                    Err(status) => Poll::Ready(Err(status)),
                }
            })
            .await;
            Ok(opened(result))
        })
    }

    fn read(&self, connection: u32, mut buffer: RRef<Payload>) -> RpcFuture<'_, RRef<Payload>> {
        RpcFuture::new(async move {
            let owner = me();
            let outcome = poll_fn(|cx| {
                let mut guard = self.stack.lock();
                let Some(stack) = guard.as_mut() else {
                    return Poll::Ready(Read::Failed(Status::NoSuchSocket));
                };
                match stack.tcp_read(owner, connection, &mut buffer.data, Some(cx.waker())) {
                    Read::Wait => Poll::Pending,
                    other => Poll::Ready(other),
                }
            })
            .await;
            let (len, status) = match outcome {
                Read::Data(len) => (len, Status::Ok),
                Read::End | Read::Wait => (0, Status::Ok),
                Read::Failed(status) => (0, status),
            };
            buffer.len = len as u32;
            buffer.status = status;
            // The window opened: let the stack tell the peer.
            if len > 0 {
                self.kick.kick();
            }
            Ok(buffer)
        })
    }

    fn write(&self, connection: u32, mut buffer: RRef<Payload>) -> RpcFuture<'_, RRef<Payload>> {
        RpcFuture::new(async move {
            let owner = me();
            let len = (buffer.len as usize).min(PAYLOAD);
            if buffer.len as usize > PAYLOAD {
                buffer.status = Status::Invalid;
                return Ok(buffer);
            }
            let mut done = 0;
            let status = poll_fn(|cx| {
                loop {
                    let mut guard = self.stack.lock();
                    let Some(stack) = guard.as_mut() else {
                        return Poll::Ready(Status::NoSuchSocket);
                    };
                    if done >= len {
                        return Poll::Ready(Status::Ok);
                    }
                    match stack.tcp_write(
                        owner,
                        connection,
                        &buffer.data[done..len],
                        Some(cx.waker()),
                    ) {
                        Ok(0) => return Poll::Pending,
                        Ok(n) => {
                            done += n;
                            drop(guard);
                            self.kick.kick();
                        }
                        Err(status) => return Poll::Ready(status),
                    }
                }
            })
            .await;
            if status != Status::Ok {
                buffer.len = done as u32;
            }
            buffer.status = status;
            Ok(buffer)
        })
    }

    fn shutdown(&self, connection: u32) -> RpcFuture<'_, Status> {
        RpcFuture::new(async move {
            let owner = me();
            let status = self
                .locked()
                .await
                .as_mut()
                .map(|s| s.tcp_shutdown(owner, connection))
                .unwrap_or(Status::NoSuchSocket);
            self.kick.kick();
            Ok(status)
        })
    }

    fn close(&self, socket: u32) -> RpcFuture<'_, Status> {
        RpcFuture::new(async move {
            let owner = me();
            let status = self
                .locked()
                .await
                .as_mut()
                .map(|s| s.tcp_close(owner, socket))
                .unwrap_or(Status::NoSuchSocket);
            self.kick.kick();
            Ok(status)
        })
    }
}

impl Udp for Shared {
    fn bind(&self, port: u16) -> RpcFuture<'_, Opened> {
        RpcFuture::new(async move {
            let owner = me();
            Ok(opened(
                self.locked()
                    .await
                    .as_mut()
                    .map(|s| s.udp_bind(owner, port))
                    .unwrap_or(Err(Status::NoSuchSocket)),
            ))
        })
    }

    fn send_to(&self, socket: u32, mut datagram: RRef<Datagram>) -> RpcFuture<'_, RRef<Datagram>> {
        RpcFuture::new(async move {
            let owner = me();
            let status = if datagram.len as usize > DATAGRAM {
                Status::Invalid
            } else {
                let to = (datagram.addr, datagram.port);
                let status = self
                    .locked()
                    .await
                    .as_mut()
                    .map(|s| s.udp_send(owner, socket, datagram.bytes(), to))
                    .unwrap_or(Status::NoSuchSocket);
                self.kick.kick();
                status
            };
            datagram.status = status;
            Ok(datagram)
        })
    }

    fn recv_from(&self, socket: u32, mut buffer: RRef<Datagram>) -> RpcFuture<'_, RRef<Datagram>> {
        RpcFuture::new(async move {
            let owner = me();
            self.up().await;
            let result = poll_fn(|cx| {
                let mut guard = self.stack.lock();
                let Some(stack) = guard.as_mut() else {
                    return Poll::Ready(Err(Status::NoSuchSocket));
                };
                match stack.udp_recv(owner, socket, &mut buffer.data, Some(cx.waker())) {
                    Ok(Some(got)) => Poll::Ready(Ok(got)),
                    Ok(None) => Poll::Pending,
                    Err(status) => Poll::Ready(Err(status)),
                }
            })
            .await;
            match result {
                Ok((len, addr, port)) => {
                    buffer.len = len as u32;
                    buffer.addr = addr;
                    buffer.port = port;
                    buffer.status = Status::Ok;
                }
                Err(status) => {
                    buffer.len = 0;
                    buffer.status = status;
                }
            }
            Ok(buffer)
        })
    }

    fn close(&self, socket: u32) -> RpcFuture<'_, Status> {
        RpcFuture::new(async move {
            let owner = me();
            Ok(self
                .locked()
                .await
                .as_mut()
                .map(|s| s.udp_close(owner, socket))
                .unwrap_or(Status::NoSuchSocket))
        })
    }
}

impl Icmp for Shared {
    fn ping(&self, address: u32, seq: u16, size: u16, timeout_ms: u32) -> RpcFuture<'_, PingReply> {
        RpcFuture::new(async move {
            let timeout_us = i64::from(timeout_ms.clamp(1, 10_000)) * 1000;
            let failed = |status| PingReply {
                status,
                rtt_us: 0,
                bytes: 0,
            };
            self.up().await;
            let started = now_us();
            let sent = self.stack.lock().as_mut().map(|s| {
                s.ping_send(
                    address.to_be_bytes(),
                    seq,
                    usize::from(size),
                    started,
                    timeout_us,
                )
            });
            let id = match sent {
                Some(Ok(id)) => id,
                Some(Err(status)) => return Ok(failed(status)),
                None => return Ok(failed(Status::Unreachable)),
            };
            self.kick.kick();
            let deadline_ns = u64::try_from(started + timeout_us).unwrap_or(0) * 1000;
            let mut timer = Box::pin(sleep_until(deadline_ns));
            let pong = poll_fn(|cx| {
                loop {
                    let pong = match self.stack.lock().as_mut() {
                        Some(stack) => stack.ping_poll(id, now_us(), Some(cx.waker())),
                        None => Pong::Failed(Status::NoSuchSocket),
                    };
                    if pong != Pong::Wait {
                        return Poll::Ready(pong);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The deadline passed: the next look says so (or
                    // finds the reply that came just in time).
                }
            })
            .await;
            if let Some(stack) = self.stack.lock().as_mut() {
                stack.ping_end(id);
            }
            Ok(match pong {
                Pong::Reply { rtt_us, bytes } => PingReply {
                    status: Status::Ok,
                    rtt_us,
                    bytes,
                },
                Pong::Wait => failed(Status::TimedOut),
                Pong::Failed(status) => failed(status),
            })
        })
    }
}

fn find_driver() -> Option<NetProxy> {
    lookup::<dyn Net + Send + Sync>("nic-shadow/net")
        .or_else(|_| lookup::<dyn Net + Send + Sync>("net"))
        .ok()
}

/// Up to [`BATCH`] empty buffers for the driver to receive into.
fn receive_buffers(stack: &Stack) -> Option<RRef<Packets>> {
    let mut batch = Packets::new();
    for _ in 0..BATCH {
        let Buf(packet) = stack.wire.buffer()?;
        if let Err(packet) = batch.push_back(packet) {
            stack.wire.recycle(Buf(packet));
            break;
        }
    }
    RRef::try_new(batch).ok()
}

/// Sends what the stack queued, in batches. Frames the driver had no room
/// for stay queued, first in line. Err if a call failed. The stack is
/// locked only to take frames out and put refused ones back, never
/// across the call into the driver (which may be restarting under its
/// shadow): clients' socket calls on other cores go on meanwhile.
fn transmit(driver: &NetProxy, shared: &Shared) -> Result<(), ()> {
    loop {
        let (batch, count) = {
            let guard = shared.stack.lock();
            let Some(stack) = guard.as_ref() else {
                return Ok(());
            };
            if stack.wire.outgoing() == 0 {
                return Ok(());
            }
            let mut batch = Packets::new();
            while !batch.is_full() {
                let Some(Buf(packet)) = stack.wire.next_outgoing() else {
                    break;
                };
                let _ = batch.push_back(packet);
            }
            let count = batch.len();
            match RRef::try_new(batch) {
                Ok(batch) => (batch, count),
                // The shared heap is short: the frames were dropped with
                // the batch; TCP sends them again.
                Err(_) => return Ok(()),
            }
        };
        let mut back = driver.transmit(0, batch).map_err(|e| {
            log(&alloc::format!("transmit failed: {e}"));
        })?;
        let guard = shared.stack.lock();
        let Some(stack) = guard.as_ref() else {
            return Ok(());
        };
        let mut unsent = alloc::vec::Vec::new();
        while let Some(packet) = back.pop_front() {
            if packet.len == 0 {
                stack.wire.recycle(Buf(packet));
            } else {
                unsent.push(packet);
            }
        }
        let unsent_count = unsent.len();
        for packet in unsent.into_iter().rev() {
            stack.wire.retry_outgoing(Buf(packet));
        }
        shared
            .frames_out
            .fetch_add(count.saturating_sub(unsent_count) as u64, Ordering::Relaxed);
        if unsent_count > 0 {
            // The ring is full: the rest waits for the next round.
            return Ok(());
        }
    }
}

async fn serve(shared: Arc<Shared>) {
    let mut driver: Option<NetProxy> = None;
    // The driver's queue pairs (0: not known yet): frames arrive on every
    // one (the NIC spreads flows over them), so each round receives from
    // all; frames go out by queue 0.
    let mut queues: u16 = 0;
    let mut idle_ms = 1;
    let mut next_sweep = 0;
    loop {
        if driver.is_none() {
            queues = 0;
            driver = find_driver();
            if driver.is_none() {
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let Some(net) = &driver else { continue };
        if queues == 0 {
            // Until the driver is up it may say 0; asked again each round
            // until it says how many (and once a second after).
            queues = net.info().map_or(0, |info| info.queues);
        }
        if shared.stack.lock().is_none() {
            let mac = match net.info() {
                Ok(info) => info.mac,
                Err(e) => {
                    log(&alloc::format!(
                        "the driver failed: {e}; looking it up again"
                    ));
                    shared.failed_calls.fetch_add(1, Ordering::Relaxed);
                    driver = None;
                    continue;
                }
            };
            let seed = now_ns()
                ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
            *shared.stack.lock() = Some(Stack::new(mac, shared.setup, now_us(), seed));
            log(&alloc::format!(
                "up: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {}",
                mac[0],
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5],
                match shared.setup {
                    Setup::Dhcp => "asking DHCP for an address",
                    Setup::Static(_) => "static address (net= on the command line)",
                }
            ));
        }
        // Sockets of clients that died (crashed, killed, restarted) are
        // closed once a second: nobody else may use them.
        if now_ns() >= next_sweep {
            next_sweep = now_ns() + 1_000_000_000;
            // A restarted driver may have come back with another count.
            queues = 0;
            if let Some(stack) = shared.stack.lock().as_mut() {
                stack.expire_pings(now_us());
                let closed = stack.sweep(|owner| is_alive(Owner::from_bits(owner)));
                if closed > 0 {
                    shared.swept.fetch_add(closed as u64, Ordering::Relaxed);
                    log(&alloc::format!(
                        "closed {closed} sockets of clients that are gone"
                    ));
                }
            }
        }
        if let Some(stack) = shared.stack.lock().as_mut().filter(|s| s.address_changed) {
            stack.address_changed = false;
            log(&describe(stack.addressing));
        }

        // One round: receive a batch, let the stack process it, send what
        // it queued.
        let Some((busy, deadline_us)) = round(net, &shared, queues.max(1)) else {
            shared.failed_calls.fetch_add(1, Ordering::Relaxed);
            driver = None;
            continue;
        };
        if busy {
            idle_ms = 1;
            yield_now().await;
            continue;
        }
        // Idle: until smoltcp's next deadline, a client's kick, or at
        // most `idle_ms`.
        let limit = now_ns() + idle_ms * 1_000_000;
        let deadline = match deadline_us {
            Some(at) => u64::try_from(at)
                .unwrap_or(0)
                .saturating_mul(1000)
                .min(limit),
            None => limit,
        };
        shared.kick.wait(deadline).await;
        idle_ms = (idle_ms * 2).min(8);
    }
}

/// Receive (from each of `queues` queue pairs), process, transmit. None
/// if a driver call failed; else whether anything happened and smoltcp's
/// next deadline. The stack is locked between the driver calls, not
/// across them.
fn round(net: &NetProxy, shared: &Shared, queues: u16) -> Option<(bool, Option<i64>)> {
    let mut frames = 0;
    for queue in 0..queues {
        let buffers = {
            let mut guard = shared.stack.lock();
            let stack = guard.as_mut()?;
            receive_buffers(stack)
        };
        // The shared heap is short: process what is queued, receive later.
        let Some(buffers) = buffers else { break };
        let mut received = match net.receive(queue, buffers) {
            Ok(received) => received,
            Err(e) => {
                log(&alloc::format!(
                    "receive failed: {e}; looking the driver up again"
                ));
                return None;
            }
        };
        let mut guard = shared.stack.lock();
        let stack = guard.as_mut()?;
        while let Some(packet) = received.pop_front() {
            if packet.len == 0 {
                stack.wire.recycle(Buf(packet));
            } else {
                frames += 1;
                stack.deliver(Buf(packet));
            }
        }
    }
    let busy = shared.stack.lock().as_mut()?.poll(now_us());
    shared.frames_in.fetch_add(frames, Ordering::Relaxed);
    transmit(net, shared).ok()?;
    let deadline = shared.stack.lock().as_mut()?.poll_at(now_us());
    Some((busy || frames > 0, deadline))
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    // `net=ADDRESS/PREFIX[,gw=GATEWAY]` or `net=dhcp` on the kernel command
    // line; DHCP without it. A malformed value fails the load, saying why.
    let setup = match domain_sdk::boot_option("net") {
        Some(text) => Setup::parse(&text).map_err(|e| alloc::format!("net={text}: {e}"))?,
        None => Setup::Dhcp,
    };
    let shared = Arc::new(Shared {
        setup,
        stack: Mutex::new(None),
        kick: Kick::default(),
        frames_in: AtomicU64::new(0),
        frames_out: AtomicU64::new(0),
        failed_calls: AtomicU64::new(0),
        swept: AtomicU64::new(0),
    });
    spawn(serve(shared.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Tcp + Send + Sync>("tcp", shared.clone())
        .with::<dyn Udp + Send + Sync>("udp", shared.clone())
        .with::<dyn Icmp + Send + Sync>("icmp", shared.clone())
        .with::<dyn Control + Send + Sync>("control", shared))
}
