//! Sockets of the TCP/IP domain (`netstack`), for other domains: TCP
//! listen / accept / read / write / shutdown / close and UDP bind /
//! send_to / recv_from, payloads in `RRef` buffers moved in and handed
//! back. Calls that wait (accept, read, a write into a full send buffer,
//! recv_from) are futures that complete when the stack has something;
//! none of them spins.
//!
//! Errors are a [`Status`] in the reply (the call itself fails only with
//! an `RpcError`, as when the stack crashed: its sockets are gone then,
//! and a client starts again with `listen` or `bind` once it restarts).

use rrpc::{RRef, RpcResult};

/// Bytes one [`Payload`] carries.
pub const PAYLOAD: usize = 8192;
/// Bytes of one datagram (an Ethernet MTU less the IPv4 and UDP headers).
pub const DATAGRAM: usize = 1472;

/// What a socket call came to.
#[derive(rrpc::Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// No socket of that number (never one, or closed).
    NoSuchSocket,
    /// The port is taken.
    InUse,
    /// The stack has no room for another socket.
    TooMany,
    /// The connection was reset or timed out.
    Reset,
    /// Writing after `shutdown` or `close`, or the peer is gone.
    Closed,
    /// An argument out of range (port 0, length beyond the buffer).
    Invalid,
    /// No answer in the time allowed (a ping).
    TimedOut,
    /// The stack has no address yet (DHCP has not answered).
    Unreachable,
}

/// A buffer of TCP bytes: `data[..len]`.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Payload {
    pub data: [u8; PAYLOAD],
    pub len: u32,
    pub status: Status,
}

impl Payload {
    pub fn empty() -> Payload {
        Payload {
            data: [0; PAYLOAD],
            len: 0,
            status: Status::Ok,
        }
    }

    /// The bytes it holds (empty if `len` is out of range).
    pub fn bytes(&self) -> &[u8] {
        self.data.get(..self.len as usize).unwrap_or(&[])
    }

    /// Makes it hold `bytes` (at most [`PAYLOAD`] of them); returns how
    /// many it took.
    pub fn set(&mut self, bytes: &[u8]) -> usize {
        let len = bytes.len().min(PAYLOAD);
        self.data[..len].copy_from_slice(&bytes[..len]);
        self.len = len as u32;
        len
    }
}

/// A UDP datagram and the other end's address.
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct Datagram {
    pub data: [u8; DATAGRAM],
    pub len: u32,
    /// IPv4 address and port of the sender (received) or destination
    /// (to send).
    pub addr: [u8; 4],
    pub port: u16,
    pub status: Status,
}

impl Datagram {
    pub fn empty() -> Datagram {
        Datagram {
            data: [0; DATAGRAM],
            len: 0,
            addr: [0; 4],
            port: 0,
            status: Status::Ok,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.data.get(..self.len as usize).unwrap_or(&[])
    }
}

/// A socket number and the status of the call that made it (the number is
/// 0 unless the status is `Ok`).
#[derive(rrpc::Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub socket: u32,
    pub status: Status,
}

#[rrpc::interface]
pub trait Tcp {
    /// Listens on `port` with up to `backlog` connections waiting to be
    /// accepted (and as many sockets listening ahead for connections
    /// arriving together).
    async fn listen(&self, port: u16, backlog: u16) -> RpcResult<Opened>;
    /// Waits for a connection on `listener`.
    async fn accept(&self, listener: u32) -> RpcResult<Opened>;
    /// Waits for bytes on `connection` and fills `buffer` with what has
    /// arrived (up to its size). `len` 0 with status `Ok`: the peer closed
    /// its side and everything was read.
    async fn read(&self, connection: u32, buffer: RRef<Payload>) -> RpcResult<RRef<Payload>>;
    /// Queues all of `buffer`'s bytes for sending, waiting for room in the
    /// send buffer as needed; hands the buffer back (`len` as given, or
    /// the bytes queued if the connection failed midway, with the status).
    async fn write(&self, connection: u32, buffer: RRef<Payload>) -> RpcResult<RRef<Payload>>;
    /// Closes the sending side (the peer reads end of stream); reading
    /// goes on.
    async fn shutdown(&self, connection: u32) -> RpcResult<Status>;
    /// Closes a connection or a listener: what is queued is still sent,
    /// then the socket goes.
    async fn close(&self, socket: u32) -> RpcResult<Status>;
}

#[rrpc::interface]
pub trait Udp {
    /// A socket bound to `port`.
    async fn bind(&self, port: u16) -> RpcResult<Opened>;
    /// Sends the datagram to its `addr`:`port` (drops it, status
    /// `Invalid`, if it is larger than [`DATAGRAM`]); hands the buffer
    /// back.
    async fn send_to(&self, socket: u32, datagram: RRef<Datagram>) -> RpcResult<RRef<Datagram>>;
    /// Waits for a datagram on `socket`.
    async fn recv_from(&self, socket: u32, buffer: RRef<Datagram>) -> RpcResult<RRef<Datagram>>;
    /// Closes the socket.
    async fn close(&self, socket: u32) -> RpcResult<Status>;
}

/// What one echo request came to.
#[derive(rrpc::Exchangeable, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingReply {
    /// `Ok`: the reply came back after `rtt_us`; `TimedOut`: none came in
    /// the time allowed; `Unreachable`: the stack has no address yet.
    pub status: Status,
    pub rtt_us: u32,
    /// Bytes of the reply's ICMP message (header and payload).
    pub bytes: u16,
}

/// ICMP echo from the stack (the console's `ping`).
#[rrpc::interface]
pub trait Icmp {
    /// Sends one echo request with `size` bytes of payload (at most
    /// [`DATAGRAM`] - 8) and sequence number `seq` to the IPv4 address
    /// `address` (most significant byte first), and waits up to
    /// `timeout_ms` (at most 10,000) for its reply.
    async fn ping(
        &self,
        address: u32,
        seq: u16,
        size: u16,
        timeout_ms: u32,
    ) -> RpcResult<PingReply>;
}
