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
