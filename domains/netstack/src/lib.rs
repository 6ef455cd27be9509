//! `netstack`: a TCP/IP stack domain. smoltcp (0.14, `no_std` + `alloc`)
//! runs over the `Net` interface of the NIC (through `nic-shadow` if it is
//! loaded, else the domain exporting "net"), with a static IPv4 address
//! (10.0.2.15/24, gateway 10.0.2.2: QEMU's user network). It answers ARP
//! and ICMP echo (ping), and serves the echo protocol (RFC 862) on port 7
//! over TCP (16 sockets listening as a backlog, up to 1,100 connections)
//! and UDP.
//!
//! The stack's state (connections, ARP cache) lives here, not in the
//! driver: when the driver crashes, this domain looks it up again (or the
//! shadow restarts it underneath), frames lost meanwhile are sent again by
//! TCP, and connections carry on.
//!
//! Frames move between this domain and the driver as batches of `RRef`
//! packet buffers; the buffers of sent frames come back as receive
//! buffers. The task polls the driver while there is traffic, and when
//! idle sleeps until smoltcp's next deadline (`poll_at`) or at most 8 ms.
//!
//! `call netstack help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod stack;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, RRef, RpcResult, log, lookup, now_ns, sleep, sleep_until, spawn, yield_now,
};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, Net, NetProxy, Packets};

use stack::{Addressing, Buf, Counters, Stack};

/// Counters shared between the task and `call`.
#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    tcp_bytes: AtomicU64,
    udp_datagrams: AtomicU64,
    udp_dropped: AtomicU64,
    open: AtomicU64,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    failed_calls: AtomicU64,
}

impl Stats {
    fn update(&self, counters: &Counters) {
        self.accepted.store(counters.accepted, Ordering::Relaxed);
        self.tcp_bytes.store(counters.tcp_bytes, Ordering::Relaxed);
        self.udp_datagrams
            .store(counters.udp_datagrams, Ordering::Relaxed);
        self.udp_dropped
            .store(counters.udp_dropped, Ordering::Relaxed);
        self.open.store(counters.open, Ordering::Relaxed);
    }
}

impl Control for Stats {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.accepted.load(Ordering::Relaxed),
            1 => self.tcp_bytes.load(Ordering::Relaxed),
            2 => self.udp_datagrams.load(Ordering::Relaxed),
            3 => self.udp_dropped.load(Ordering::Relaxed),
            4 => self.open.load(Ordering::Relaxed),
            5 => self.frames_in.load(Ordering::Relaxed),
            6 => self.frames_out.load(Ordering::Relaxed),
            _ => self.failed_calls.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "address 10.0.2.15/24, gateway 10.0.2.2; echo on TCP and UDP port 7\n\
                 0: TCP connections accepted\n1: TCP bytes echoed\n2: UDP datagrams echoed\n\
                 3: UDP datagrams dropped (send buffer full)\n4: TCP connections open\n\
                 5: frames received\n6: frames sent\n7: calls to the driver that failed",
            ),
            _ => Ok(None),
        }
    }
}

fn now_us() -> i64 {
    i64::try_from(now_ns() / 1000).unwrap_or(i64::MAX)
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
/// for stay queued. Err if a call failed.
fn transmit(driver: &NetProxy, stack: &Stack, stats: &Stats) -> Result<(), ()> {
    loop {
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
        let Ok(batch) = RRef::try_new(batch) else {
            return Ok(());
        };
        let mut back = driver.transmit(0, batch).map_err(|e| {
            log(&alloc::format!("transmit failed: {e}"));
        })?;
        // Frames it had no room for go first next time, in order.
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
        let unsent = unsent_count;
        stats
            .frames_out
            .fetch_add((count - unsent) as u64, Ordering::Relaxed);
        if unsent > 0 {
            // The ring is full: the rest waits for the next round.
            return Ok(());
        }
    }
}

async fn serve(stats: Arc<Stats>) {
    let mut driver: Option<NetProxy> = None;
    let mut stack: Option<Stack> = None;
    let mut idle_ms = 1;
    loop {
        if driver.is_none() {
            driver = find_driver();
            if driver.is_none() {
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let Some(net) = &driver else { continue };
        if stack.is_none() {
            let mac = match net.info() {
                Ok(info) => info.mac,
                Err(e) => {
                    log(&alloc::format!(
                        "the driver failed: {e}; looking it up again"
                    ));
                    stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                    driver = None;
                    continue;
                }
            };
            let seed = now_ns()
                ^ u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
            let addressing = Addressing::QEMU_USER;
            stack = Some(Stack::new(mac, addressing, now_us(), seed));
            log(&alloc::format!(
                "up: {}/{} gateway 10.0.2.2, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}; echo on TCP and UDP port 7",
                addressing.address,
                addressing.prefix,
                mac[0],
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5]
            ));
        }
        let Some(stack) = stack.as_mut() else {
            continue;
        };

        // Receive a batch.
        let Some(buffers) = receive_buffers(stack) else {
            sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut received = match net.receive(0, buffers) {
            Ok(received) => received,
            Err(e) => {
                log(&alloc::format!(
                    "receive failed: {e}; looking the driver up again"
                ));
                stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                driver = None;
                continue;
            }
        };
        let mut frames = 0;
        while let Some(packet) = received.pop_front() {
            if packet.len == 0 {
                stack.wire.recycle(Buf(packet));
            } else {
                frames += 1;
                stack.wire.deliver(Buf(packet));
            }
        }
        stats.frames_in.fetch_add(frames, Ordering::Relaxed);

        let busy = stack.poll(now_us());
        stats.update(&stack.counters);
        if transmit(net, stack, &stats).is_err() {
            stats.failed_calls.fetch_add(1, Ordering::Relaxed);
            driver = None;
            continue;
        }

        if busy || frames > 0 {
            idle_ms = 1;
            yield_now().await;
            continue;
        }
        // Idle: until smoltcp's next deadline, at most `idle_ms`.
        let limit = now_ns() + idle_ms * 1_000_000;
        let deadline = match stack.poll_at(now_us()) {
            Some(at) => u64::try_from(at)
                .unwrap_or(0)
                .saturating_mul(1000)
                .min(limit),
            None => limit,
        };
        sleep_until(deadline).await;
        idle_ms = (idle_ms * 2).min(8);
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let stats = Arc::new(Stats::default());
    spawn(serve(stats.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", stats))
}
