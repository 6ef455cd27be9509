//! `net::exercise` against a NIC model that takes a few frames per call,
//! holds its receive buffers, and (looped back) returns what it sent,
//! losing frames when no receive buffer is posted.

use std::collections::VecDeque;
use std::sync::Mutex;

use interfaces::net::{BENCH_FRAME, Net, NetCounters, NetInfo, Packet, Packets, exercise};
use rrpc::{RRef, RpcResult};

/// A NIC that sends at most `per_call` frames per call, completing them
/// at once, and, looped back, delivers each into a posted buffer (or
/// drops it if none is posted).
struct Model {
    per_call: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    posted: VecDeque<RRef<Packet>>,
    arrived: VecDeque<RRef<Packet>>,
    sent: u64,
    dropped: u64,
    bad: u64,
}

impl Net for Model {
    fn info(&self) -> RpcResult<NetInfo> {
        Ok(NetInfo {
            mac: [2, 0, 0, 0, 0, 1],
            link_up: true,
            speed: 1000,
            queues: 1,
        })
    }

    fn receive(&self, _queue: u16, mut buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut state = self.state.lock().unwrap();
        while let Some(buffer) = buffers.pop_front() {
            state.posted.push_back(buffer);
        }
        while !buffers.is_full() {
            let Some(frame) = state.arrived.pop_front() else {
                break;
            };
            let _ = buffers.push_back(frame);
        }
        Ok(buffers)
    }

    fn transmit(&self, _queue: u16, mut packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut state = self.state.lock().unwrap();
        let mut back = Packets::new();
        let mut taken = 0;
        while let Some(mut packet) = packets.pop_front() {
            if taken == self.per_call {
                let _ = back.push_back(packet);
                continue;
            }
            taken += 1;
            state.sent += 1;
            let frame = packet.frame();
            if frame.len() != BENCH_FRAME
                || frame[..6] != [0xff; 6]
                || frame[12..14] != [0x88, 0xb5]
            {
                state.bad += 1;
            }
            // Looped back into a posted buffer, if there is one.
            match state.posted.pop_front() {
                Some(mut buffer) => {
                    buffer.data[..BENCH_FRAME].copy_from_slice(&packet.data[..BENCH_FRAME]);
                    buffer.len = BENCH_FRAME as u16;
                    state.arrived.push_back(buffer);
                }
                None => state.dropped += 1,
            }
            packet.len = 0;
            let _ = back.push_back(packet);
        }
        Ok(RRef::new(back))
    }

    fn counters(&self, _queue: u16) -> RpcResult<NetCounters> {
        Ok(NetCounters::default())
    }
}

fn model(per_call: usize) -> Model {
    rrpc::host_kit::install(rrpc::host_kit::owner(30, 1));
    Model {
        per_call,
        state: Mutex::new(State::default()),
    }
}

#[test]
fn transmit_sends_every_frame_in_batches_even_when_the_ring_takes_fewer() {
    for (batch, per_call) in [(1, 1), (32, 32), (32, 5)] {
        let nic = model(per_call);
        assert_eq!(exercise(&nic, 0, 1000, batch, false), Ok(1000));
        let state = nic.state.lock().unwrap();
        assert_eq!(state.sent, 1000, "batch {batch}, {per_call} per call");
        assert_eq!(
            state.bad, 0,
            "every frame is a 60-byte broadcast of type 0x88B5"
        );
    }
}

#[test]
fn loopback_keeps_two_batches_in_flight_and_loses_nothing() {
    for batch in [1, 8, 32] {
        let nic = model(32);
        assert_eq!(
            exercise(&nic, 0, 2000, batch, true),
            Ok(2000),
            "batch {batch}"
        );
        let state = nic.state.lock().unwrap();
        assert_eq!(state.sent, 2000);
        assert_eq!(
            state.dropped, 0,
            "more in flight than receive buffers posted"
        );
    }
}

#[test]
fn a_nic_that_never_sends_ends_the_run_with_what_it_has() {
    let nic = model(0);
    assert_eq!(exercise(&nic, 0, 10, 4, false), Ok(0));
}
