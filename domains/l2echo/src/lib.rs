//! `l2echo`: sends every Ethernet frame that arrives on the NIC (through
//! `nic-shadow` if it is loaded, else the domain exporting "net") back
//! where it came from: destination and
//! source addresses swapped (the source becomes the NIC's own address),
//! the rest as it was. Frames move as batches of `RRef` buffers between
//! this domain and the driver, never copied: a received batch is turned
//! around in place and transmitted, and the buffers the driver hands back
//! from sent frames are the next receive buffers. When nothing arrives it
//! polls less often (1 ms, doubling up to 16 ms), so an idle NIC costs
//! little. Frames shorter than an Ethernet header are counted and dropped.
//!
//! `call l2echo help` lists the counters.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, RRef, RpcResult, log, lookup, sleep, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, Net, NetProxy, Packet, Packets};

#[derive(Default)]
struct Stats {
    echoed: AtomicU64,
    too_short: AtomicU64,
    failed_calls: AtomicU64,
}

impl Control for Stats {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.echoed.load(Ordering::Relaxed),
            1 => self.too_short.load(Ordering::Relaxed),
            _ => self.failed_calls.load(Ordering::Relaxed),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: frames echoed\n1: frames too short to echo (dropped)\n2: calls to the driver that failed",
            ),
            _ => Ok(None),
        }
    }
}

/// A batch of empty receive buffers.
fn fresh_buffers() -> Option<RRef<Packets>> {
    let mut batch = Packets::new();
    for _ in 0..BATCH {
        let _ = batch.push_back(RRef::try_new(Packet::empty()).ok()?);
    }
    RRef::try_new(batch).ok()
}

/// Turns a received frame around: destination := its source, source :=
/// `mac`. False if it is too short to have an Ethernet header.
fn turn_around(packet: &mut Packet, mac: [u8; 6]) -> bool {
    if packet.len < 14 {
        return false;
    }
    let mut source = [0u8; 6];
    source.copy_from_slice(&packet.data[6..12]);
    packet.data[0..6].copy_from_slice(&source);
    packet.data[6..12].copy_from_slice(&mac);
    true
}

async fn serve(stats: Arc<Stats>) {
    let mut net: Option<NetProxy> = None;
    let mut buffers: Option<RRef<Packets>> = None;
    let mut idle_ms = 1;
    let mut queue: u16 = 0;
    // Whether this pass over the queues has found any frame so far.
    let mut pass_busy = false;
    loop {
        if net.is_none() {
            // Through the NIC shadow if there is one, else the driver.
            net = lookup::<dyn Net + Send + Sync>("nic-shadow/net")
                .or_else(|_| lookup::<dyn Net + Send + Sync>("net"))
                .ok();
            if net.is_none() {
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let Some(driver) = &net else { continue };
        let batch = match buffers.take() {
            Some(batch) => batch,
            None => match fresh_buffers() {
                Some(batch) => batch,
                None => {
                    sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (mac, queues) = match driver.info() {
            Ok(info) => (info.mac, info.queues.max(1)),
            Err(e) => {
                log(&alloc::format!(
                    "the driver failed: {e}; looking it up again"
                ));
                stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                net = None;
                continue;
            }
        };
        // Each queue pair in turn (the NIC spreads flows over them); a
        // queue's frames go back out on it.
        queue = (queue + 1) % queues;
        if queue == 0 {
            pass_busy = false;
        }
        let mut received = match driver.receive(queue, batch) {
            Ok(received) => received,
            Err(e) => {
                log(&alloc::format!(
                    "receive failed: {e}; looking the driver up again"
                ));
                stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                net = None;
                continue;
            }
        };
        // Frames (len > 0) are turned around; empty buffers wait in the
        // same batch for the next receive.
        let mut frames = 0;
        for packet in received.iter_mut() {
            if packet.len == 0 {
                continue;
            }
            if turn_around(packet, mac) {
                frames += 1;
            } else {
                stats.too_short.fetch_add(1, Ordering::Relaxed);
                packet.len = 0;
            }
        }
        pass_busy |= frames > 0;
        if frames == 0 {
            buffers = Some(received);
            // Idle only once a whole pass over the queues found nothing.
            if !pass_busy && queue + 1 == queues {
                sleep(Duration::from_millis(idle_ms)).await;
                idle_ms = (idle_ms * 2).min(16);
            }
            continue;
        }
        idle_ms = 1;
        match driver.transmit(queue, received) {
            Ok(back) => {
                stats.echoed.fetch_add(frames, Ordering::Relaxed);
                // Sent buffers come back with len 0: the next receive
                // buffers (frames it had no room for are dropped here).
                let mut back = back;
                for packet in back.iter_mut() {
                    packet.len = 0;
                }
                buffers = Some(back);
            }
            Err(e) => {
                log(&alloc::format!(
                    "transmit failed: {e}; looking the driver up again"
                ));
                stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                net = None;
            }
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let stats = Arc::new(Stats::default());
    spawn(serve(stats.clone())).map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", stats))
}
