//! The stack proper, apart from the driver calls: smoltcp's interface and
//! sockets over a [`Wire`] of `Packet` buffers, and the echo services on
//! port 7. The domain's task ([`crate::serve`]) moves frames between the
//! wire and the NIC; host tests move them between the wire and a second
//! smoltcp interface playing the client.

use alloc::vec;
use alloc::vec::Vec;

use domain_sdk::RRef;
use interfaces::net::{BATCH, FRAME, Packet};
use netwire::Frame;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// The echo port (RFC 862), TCP and UDP.
pub const ECHO_PORT: u16 = 7;
/// Sockets kept listening on the echo port: connections that can arrive
/// at once before the stack has seen them (a listen backlog).
pub const BACKLOG: usize = 16;
/// At most this many TCP sockets (listening and connected) at once.
pub const MAX_TCP: usize = 1100;
/// Receive and send buffer of each TCP socket.
pub const TCP_BUFFER: usize = 16 * 1024;
/// Ethernet MTU plus header (no jumbo frames).
pub const MAX_FRAME: usize = 1514;

/// Static configuration of the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addressing {
    pub address: Ipv4Address,
    pub prefix: u8,
    pub gateway: Option<Ipv4Address>,
}

impl Addressing {
    /// QEMU's user network: the guest is 10.0.2.15/24, the host's side is
    /// 10.0.2.2.
    pub const QEMU_USER: Addressing = Addressing {
        address: Ipv4Address::new(10, 0, 2, 15),
        prefix: 24,
        gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
    };
}

/// A NIC packet buffer on the shared heap, as the wire's frame.
pub struct Buf(pub RRef<Packet>);

impl Frame for Buf {
    fn fresh() -> Option<Buf> {
        RRef::try_new(Packet::empty()).ok().map(Buf)
    }

    fn bytes(&self) -> &[u8] {
        self.0.frame()
    }

    fn fill(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(FRAME);
        // `len` fits: FRAME is 2048.
        self.0.len = len as u16;
        &mut self.0.data[..len]
    }

    fn clear(&mut self) {
        self.0.len = 0;
    }
}

pub type Wire = netwire::Wire<Buf>;

/// Counters (`call netstack N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub tcp_bytes: u64,
    pub udp_datagrams: u64,
    pub udp_dropped: u64,
    pub open: u64,
    pub refused_backlog: u64,
}

/// The interface, its sockets and the echo services.
pub struct Stack {
    pub wire: Wire,
    iface: Interface,
    sockets: SocketSet<'static>,
    listening: Vec<SocketHandle>,
    connected: Vec<SocketHandle>,
    udp: SocketHandle,
    pub counters: Counters,
    pub addressing: Addressing,
    scratch: Vec<u8>,
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    );
    // smoltcp's defaults (Nagle on, 10 ms delayed ACK) cost an echo
    // service most of its rate: each small reply would wait.
    socket.set_nagle_enabled(false);
    socket.set_ack_delay(None);
    socket
}

impl Stack {
    pub fn new(mac: [u8; 6], addressing: Addressing, now_us: i64, seed: u64) -> Stack {
        let mut wire = Wire::new(MAX_FRAME, BATCH);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let now = Instant::from_micros(now_us);
        let mut iface = Interface::new(config, &mut wire, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(
                addressing.address,
                addressing.prefix,
            )));
        });
        if let Some(gateway) = addressing.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        }
        let mut sockets = SocketSet::new(Vec::new());
        let udp = sockets.add(udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 256 * 1024]),
        ));
        let _ = sockets.get_mut::<udp::Socket>(udp).bind(ECHO_PORT);
        let mut stack = Stack {
            wire,
            iface,
            sockets,
            listening: Vec::new(),
            connected: Vec::new(),
            udp,
            counters: Counters::default(),
            addressing,
            scratch: vec![0; 4096],
        };
        stack.fill_backlog();
        stack
    }

    /// Keeps [`BACKLOG`] sockets listening, within [`MAX_TCP`].
    fn fill_backlog(&mut self) {
        while self.listening.len() < BACKLOG
            && self.listening.len() + self.connected.len() < MAX_TCP
        {
            let mut socket = tcp_socket();
            if socket.listen(ECHO_PORT).is_err() {
                break;
            }
            let handle = self.sockets.add(socket);
            self.listening.push(handle);
        }
    }

    /// Processes what arrived, serves the echo services, and queues what
    /// is to be sent in `wire.outgoing`. Returns whether anything
    /// happened.
    pub fn poll(&mut self, now_us: i64) -> bool {
        let now = Instant::from_micros(now_us);
        let mut busy = self.wire.waiting() > 0;
        self.iface.poll_maintenance(now);
        // One frame at a time, so that a socket that took a connection is
        // replaced by a fresh listener before the next SYN: the backlog is
        // how many connections may arrive within one frame, not one batch.
        loop {
            match self
                .iface
                .poll_ingress_single(now, &mut self.wire, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => busy |= self.accept(),
            }
        }
        busy |= self.serve();
        // Send what the services wrote.
        self.iface
            .poll_egress(now, &mut self.wire, &mut self.sockets);
        busy | (self.wire.outgoing() > 0)
    }

    /// When smoltcp next needs a poll without new frames (retransmission,
    /// delayed ACK, TIME-WAIT), in microseconds, if ever.
    pub fn poll_at(&mut self, now_us: i64) -> Option<i64> {
        self.iface
            .poll_at(Instant::from_micros(now_us), &self.sockets)
            .map(|at| at.total_micros())
    }

    /// Listening sockets that got a connection become connected ones;
    /// fresh ones listen in their place.
    fn accept(&mut self) -> bool {
        let mut busy = false;
        let mut index = 0;
        while index < self.listening.len() {
            let handle = self.listening[index];
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            if socket.is_listening() {
                index += 1;
                continue;
            }
            self.listening.swap_remove(index);
            self.connected.push(handle);
            self.counters.accepted += 1;
            busy = true;
        }
        if self.listening.is_empty() {
            self.counters.refused_backlog += 1;
        }
        self.fill_backlog();
        busy
    }

    fn serve(&mut self) -> bool {
        let mut busy = self.accept();
        // Echo on every connection; closed ones go.
        let mut index = 0;
        while index < self.connected.len() {
            let handle = self.connected[index];
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            while socket.can_recv() {
                let room = socket.send_capacity() - socket.send_queue();
                let room = room.min(self.scratch.len());
                if room == 0 {
                    break;
                }
                let Ok(got) = socket.recv_slice(&mut self.scratch[..room]) else {
                    break;
                };
                if got == 0 {
                    break;
                }
                let sent = socket.send_slice(&self.scratch[..got]).unwrap_or(0);
                self.counters.tcp_bytes += sent as u64;
                busy = true;
            }
            // The peer closed its side and everything was echoed: close ours.
            if !socket.may_recv()
                && socket.send_queue() == 0
                && socket.state() == tcp::State::CloseWait
            {
                socket.close();
                busy = true;
            }
            if socket.state() == tcp::State::Closed {
                self.sockets.remove(handle);
                self.connected.swap_remove(index);
                busy = true;
                continue;
            }
            index += 1;
        }
        self.counters.open = self.connected.len() as u64;

        // UDP echo: each datagram back to its sender.
        let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
        let mut datagram = [0u8; MAX_FRAME];
        while let Ok((got, meta)) = socket.recv_slice(&mut datagram) {
            busy = true;
            match socket.send_slice(&datagram[..got], meta.endpoint) {
                Ok(()) => self.counters.udp_datagrams += 1,
                Err(_) => self.counters.udp_dropped += 1,
            }
        }
        busy
    }
}
