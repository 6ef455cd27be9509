//! `nic-shadow` on the host test kernel, in front of a scripted driver
//! domain named `igb`: frames pass through as the driver takes them
//! (refusals included), and a driver that dies in a transmit call loses
//! none of the frames of that call: the next incarnation sends them
//! first, byte for byte, in order.
//!
//! The test kernel does not let a supervisor restart domains, so the
//! shadow's recovery task gives up (after its 4 s of virtual retries) and
//! the test restarts the driver itself; the shadow's next call finds the
//! new incarnation. One test: the driver's name is fixed (`igb`), and the
//! kernel's registry is shared by the binary's tests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use domain_sdk::{Exports, Kernel, RRef, RpcResult, lookup, testing};
use interfaces::control::Control;
use interfaces::net::{FRAME, Net, NetCounters, NetInfo, Packet, Packets};

/// Frames the scripted driver sent, in order (its incarnations share it).
static SENT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Frames it takes before its ring is full (reset by the test).
static ROOM: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Its next transmit call panics (a crash inside the call).
static CRASH: AtomicBool = AtomicBool::new(false);
/// Frames its next transmit call first sends through the shadow itself,
/// on the same queue (a second call on the queue while the first is in
/// the driver), before it panics.
static REENTER: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);

struct ScriptedNic;

impl Net for ScriptedNic {
    fn info(&self) -> RpcResult<NetInfo> {
        Ok(NetInfo {
            mac: [2, 0, 0, 0, 0, 9],
            link_up: true,
            speed: 1000,
            queues: 1,
        })
    }
    fn receive(&self, _queue: u16, buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        Ok(buffers) // nothing arrives
    }
    fn transmit(&self, _queue: u16, mut packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let inner = REENTER.lock().unwrap().take();
        if let Some(frames) = inner {
            let shadow = lookup::<dyn Net + Send + Sync>("nic-shadow/net").expect("shadow net");
            shadow.transmit(0, batch(&frames)).expect("the inner call");
            panic!("scripted crash in transmit, after a second call on the queue");
        }
        if CRASH.swap(false, Ordering::SeqCst) {
            panic!("scripted crash in transmit");
        }
        for packet in packets.iter_mut() {
            if packet.len == 0
                || usize::from(packet.len) > FRAME
                || ROOM.load(Ordering::SeqCst) == 0
            {
                continue; // refused: back as it was
            }
            ROOM.fetch_sub(1, Ordering::SeqCst);
            let len = usize::from(packet.len);
            SENT.lock().unwrap().push(packet.data[..len].to_vec());
            packet.len = 0;
        }
        Ok(packets)
    }
    fn counters(&self, _queue: u16) -> RpcResult<NetCounters> {
        Ok(NetCounters::default())
    }
}

fn scripted_igb(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    Ok(Exports::new().with::<dyn Net + Send + Sync>("net", Arc::new(ScriptedNic)))
}

/// A frame of `len` bytes, each `fill`.
fn frame(fill: u8, len: usize) -> Vec<u8> {
    vec![fill; len]
}

/// A batch holding `frames`.
fn batch(frames: &[Vec<u8>]) -> RRef<Packets> {
    let mut packets = Packets::new();
    for f in frames {
        let mut p = Packet::empty();
        p.data[..f.len()].copy_from_slice(f);
        p.len = f.len() as u16;
        assert!(packets.push_back(RRef::new(p)).is_ok());
    }
    RRef::new(packets)
}

fn sent() -> Vec<Vec<u8>> {
    std::mem::take(&mut *SENT.lock().unwrap())
}

#[test]
fn frames_pass_through_and_survive_a_driver_crash_in_the_call() {
    let kernel = testing::kernel();
    kernel.load("igb", scripted_igb).expect("load the driver");
    kernel
        .load("nic-shadow", domain_nic_shadow::init)
        .expect("load the shadow");
    let net = lookup::<dyn Net + Send + Sync>("nic-shadow/net").expect("shadow net");
    let control = lookup::<dyn Control + Send + Sync>("nic-shadow/control").expect("control");

    // Frames go to the driver as they are, in order; every buffer comes
    // back empty.
    let frames: Vec<_> = (1..=4).map(|i| frame(i, 60 + usize::from(i))).collect();
    let back = net.transmit(0, batch(&frames)).expect("transmit");
    assert_eq!(sent(), frames);
    assert_eq!(back.len(), 4);
    assert!(back.iter().all(|p| p.len == 0));

    // A full ring: what the driver refuses comes back to the client as it
    // was, as from the driver called directly (the shadow keeps nothing).
    ROOM.store(2, Ordering::SeqCst);
    let frames: Vec<_> = (10..14).map(|i| frame(i, 100)).collect();
    let back = net.transmit(0, batch(&frames)).expect("transmit");
    assert_eq!(sent(), frames[..2].to_vec());
    let refused: Vec<Vec<u8>> = back
        .iter()
        .filter(|p| p.len != 0)
        .map(|p| p.data[..usize::from(p.len)].to_vec())
        .collect();
    assert_eq!(refused, frames[2..].to_vec());
    assert_eq!(control.control(3, 0), Ok(0), "nothing kept waiting");
    ROOM.store(usize::MAX, Ordering::SeqCst);

    // The driver dies inside the call: the client gets as many empty
    // buffers as it gave, no error, and the frames wait in the shadow.
    CRASH.store(true, Ordering::SeqCst);
    let lost: Vec<_> = [20u8, 21, 22].iter().map(|&i| frame(i, 1514)).collect();
    let back = net
        .transmit(0, batch(&lost))
        .expect("a crash is no error for the client");
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|p| p.len == 0));
    assert!(sent().is_empty());
    assert!(!kernel.is_alive("igb"));
    assert_eq!(control.control(3, 0), Ok(3), "the three frames wait");

    // Frames sent while it is down wait behind them.
    let waiting = vec![frame(25, 64)];
    let back = net
        .transmit(0, batch(&waiting))
        .expect("transmit while down");
    assert!(back.iter().all(|p| p.len == 0));
    assert_eq!(control.control(3, 0), Ok(4));

    // The next incarnation gets them first, byte for byte, in order.
    kernel.run_for(Duration::from_secs(5)); // the recovery task gives up
    kernel.restart("igb").expect("restart the driver");
    let after = vec![frame(30, 64), frame(31, 64)];
    net.transmit(0, batch(&after))
        .expect("transmit after the restart");
    let mut expected = lost.clone();
    expected.extend(waiting);
    expected.extend(after);
    assert_eq!(sent(), expected);
    assert_eq!(control.control(3, 0), Ok(0));

    // Two calls on one queue at once (the second made while the first is
    // in the driver, which then dies): each keeps copies of its own
    // frames, and the first's are the ones sent again.
    let second = vec![frame(40, 80), frame(41, 80)];
    *REENTER.lock().unwrap() = Some(second.clone());
    let first: Vec<_> = (50..53).map(|i| frame(i, 90)).collect();
    net.transmit(0, batch(&first))
        .expect("a crash is no error for the client");
    assert_eq!(sent(), second, "the second call went through");
    assert!(!kernel.is_alive("igb"));
    kernel.run_for(Duration::from_secs(5));
    kernel.restart("igb").expect("restart the driver");
    net.transmit(0, batch(&[frame(60, 64)]))
        .expect("transmit after the restart");
    let mut expected = first.clone();
    expected.push(frame(60, 64));
    assert_eq!(
        sent(),
        expected,
        "the first call's frames, not the second's"
    );

    // A frame longer than a buffer is refused, as by the driver itself,
    // and not kept: a crash in its call re-sends the others, once each.
    let long = |mut batch: RRef<Packets>| {
        for (i, packet) in batch.iter_mut().enumerate() {
            if i == 1 {
                packet.len = FRAME as u16 + 1;
            }
        }
        batch
    };
    let frames = vec![frame(70, 64), frame(71, 64), frame(72, 64)];
    let back = net.transmit(0, long(batch(&frames))).expect("transmit");
    assert_eq!(sent(), vec![frames[0].clone(), frames[2].clone()]);
    let refused: Vec<u16> = back.iter().map(|p| p.len).filter(|&l| l != 0).collect();
    assert_eq!(refused, [FRAME as u16 + 1], "back to the client as it was");
    CRASH.store(true, Ordering::SeqCst);
    net.transmit(0, long(batch(&frames)))
        .expect("a crash is no error for the client");
    assert_eq!(control.control(3, 0), Ok(2), "the two sendable frames wait");
    kernel.run_for(Duration::from_secs(5));
    kernel.restart("igb").expect("restart the driver");
    net.transmit(0, batch(&[frame(80, 64)]))
        .expect("transmit after the restart");
    assert_eq!(
        sent(),
        vec![frames[0].clone(), frames[2].clone(), frame(80, 64)],
        "each once, in order"
    );
    assert_eq!(control.control(3, 0), Ok(0));
    assert_eq!(control.control(2, 0), Ok(0), "nothing dropped");
}
