//! [`Net`]: network interface drivers (the Intel 82576 `igb` today; the
//! 82599 and virtio-net to come), and the packets they move.

use rrpc::{RRef, RRefDeque, RpcResult};

/// Bytes of frame a [`Packet`] holds (an Ethernet frame of the standard
/// MTU fits; jumbo frames are not taken).
pub const FRAME: usize = 2048;
/// Most packets in one batch.
pub const BATCH: usize = 32;

/// One frame buffer: an Ethernet frame without its FCS, and its length.
/// It moves between the network stack and the driver without a copy: the
/// driver hands `data`'s address to the device, which reads it to send or
/// writes it on receive.
///
/// `repr(C)` with the data first: its address is the buffer's.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Packet {
    pub data: [u8; FRAME],
    /// Bytes of `data` in use.
    pub len: u16,
}

impl Packet {
    /// An empty buffer (to receive into).
    pub fn empty() -> Packet {
        Packet {
            data: [0; FRAME],
            len: 0,
        }
    }

    /// The frame (empty if `len` is out of range).
    pub fn frame(&self) -> &[u8] {
        self.data.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// A batch of packets.
pub type Packets = RRefDeque<Packet, BATCH>;

/// What a NIC is.
#[derive(rrpc::Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetInfo {
    pub mac: [u8; 6],
    pub link_up: bool,
    /// Megabits per second (0 if the link is down or unknown).
    pub speed: u32,
    /// Queue pairs (one per core, up to what the device has).
    pub queues: u16,
}

/// A queue pair's counters since the driver started.
#[derive(rrpc::Exchangeable, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames the device delivered that were refused (a length beyond the
    /// buffer, receive errors, ...): their buffers were posted again.
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames refused for sending (empty or longer than [`FRAME`]).
    pub tx_dropped: u64,
}

/// A network interface, batch by batch: buffers and frames move in and
/// out as [`Packets`] batches, never copied.
#[rrpc::interface]
pub trait Net {
    /// MAC address, link state, speed, queue pairs.
    fn info(&self) -> RpcResult<NetInfo>;
    /// Receives on queue `queue`: the driver keeps the empty buffers of
    /// `buffers` to receive into (posting as many as its ring has room
    /// for) and hands back a batch of the frames that arrived (each
    /// `len` set), followed by the buffers it had no room for. Never waits:
    /// a batch without frames means none arrived yet.
    fn receive(&self, queue: u16, buffers: RRef<Packets>) -> RpcResult<RRef<Packets>>;
    /// Sends the frames of `packets` on queue `queue` (one tail write for
    /// the batch) and hands back, for reuse, buffers whose frames were
    /// sent (these or earlier ones), with `len` 0, and the frames it had
    /// no room for or refused (empty, longer than [`FRAME`]), as they were.
    fn transmit(&self, queue: u16, packets: RRef<Packets>) -> RpcResult<RRef<Packets>>;
    /// Queue `queue`'s counters.
    fn counters(&self, queue: u16) -> RpcResult<NetCounters>;
}

/// Bytes of the frames [`exercise`] sends: the smallest Ethernet frame
/// (without its FCS: 64 on the wire).
pub const BENCH_FRAME: usize = 60;

/// The driver's own loop, for benchmarks: [`exercise`] run inside the
/// driver domain, so no batch crosses a domain boundary (the baseline the
/// crossing and the shadow are compared with).
#[rrpc::interface]
pub trait NetExerciser {
    /// [`exercise`] on the driver's own [`Net`].
    fn run(&self, queue: u16, frames: u32, batch: u32, loopback: bool) -> RpcResult<u64>;
}

/// What a client of [`Net`] does at full rate: `frames` broadcast frames
/// of [`BENCH_FRAME`] bytes (EtherType 0x88B5, for experiments) sent in
/// batches of `batch` (1 to [`BATCH`]), reusing the buffers that come
/// back. With `loopback` (the NIC's other end returns every frame: QEMU's
/// `dgram` netdev sending to itself), each round also receives, at most
/// two batches are in flight (more would overrun the receive buffers the
/// loop has posted, and the frames would be lost), and the count is of
/// frames received. Returns the frames sent (or received); stops early,
/// with what it has, after 100,000 rounds in a row without progress (a
/// ring that stays full), or, with `loopback`, 2,000 once everything is
/// sent (frames lost on the way back).
pub fn exercise<N: Net + ?Sized>(
    net: &N,
    queue: u16,
    frames: u32,
    batch: u32,
    loopback: bool,
) -> RpcResult<u64> {
    let size = (batch as usize).clamp(1, BATCH);
    let frames = u64::from(frames);
    let frame = |p: &mut Packet| {
        p.data[..6].fill(0xff);
        p.data[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0xbe, 0x01]);
        p.data[12..14].copy_from_slice(&[0x88, 0xb5]);
        p.len = BENCH_FRAME as u16;
    };
    let mut tx = RRef::new(Packets::new());
    let mut rx = RRef::new(Packets::new());
    let (mut sent, mut received, mut stalls) = (0u64, 0u64, 0u32);
    let done = |sent: u64, received: u64| {
        if loopback {
            received >= frames
        } else {
            sent >= frames
        }
    };
    let window = 2 * size as u64;
    loop {
        let patience = if loopback && sent >= frames {
            2_000
        } else {
            100_000
        };
        if done(sent, received) || stalls >= patience {
            break;
        }
        let mut progress = false;
        // Receive buffers first: a frame that comes back before any is
        // posted is lost.
        if loopback {
            while rx.len() < size {
                if rx.push_back(RRef::new(Packet::empty())).is_err() {
                    break;
                }
            }
            for p in rx.iter_mut() {
                p.len = 0;
            }
            rx = net.receive(queue, rx)?;
            let got = rx.iter().filter(|p| p.len != 0).count() as u64;
            received += got;
            progress |= got > 0;
        }
        if sent < frames && (!loopback || sent < received + window) {
            // Top the batch up (buffers the driver still holds come back
            // in a later call) and mark every buffer as a frame to send.
            let mut want = size.min((frames - sent) as usize);
            if loopback {
                want = want.min((received + window - sent) as usize);
            }
            while tx.len() < want {
                if tx.push_back(RRef::new(Packet::empty())).is_err() {
                    break;
                }
            }
            while tx.len() > want {
                tx.pop_front();
            }
            for p in tx.iter_mut() {
                frame(p);
            }
            let posted = tx.len() as u64;
            tx = net.transmit(queue, tx)?;
            let refused = tx.iter().filter(|p| p.len != 0).count() as u64;
            sent += posted.saturating_sub(refused);
            progress |= posted > refused;
        }
        stalls = if progress { 0 } else { stalls + 1 };
    }
    Ok(if loopback { received } else { sent })
}
