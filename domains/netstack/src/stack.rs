//! The stack proper, apart from the driver calls: smoltcp's interface and
//! sockets over a [`Wire`] of `Packet` buffers, and the socket operations
//! the `Tcp` and `Udp` interfaces are made of (numbered sockets; each
//! operation that would wait registers the caller's waker instead). The
//! domain's task moves frames between the wire and the NIC; host tests
//! move them between the wire and a second smoltcp interface playing the
//! client.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::task::Waker;

use domain_sdk::RRef;
use interfaces::net::{BATCH, FRAME, Packet};
use interfaces::socket::Status;
use netwire::Frame;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{dhcpv4, icmp, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint,
    Ipv4Address, Ipv4Cidr,
};

/// At most this many TCP sockets (listening and connected) at once.
pub const MAX_TCP: usize = 1100;
/// A connection whose peer has not answered for this long is dropped.
pub const TIMEOUT_S: u64 = 60;
/// Idle connections are probed this often (so a vanished peer is noticed).
pub const KEEP_ALIVE_S: u64 = 20;
/// At most this many UDP sockets.
pub const MAX_UDP: usize = 64;
/// Sockets listening ahead on each listener, at most: connections that
/// can arrive within one frame's processing.
pub const AHEAD: usize = 16;
/// Receive and send buffer of each TCP socket.
pub const TCP_BUFFER: usize = 64 * 1024;
/// Echo requests in flight at once (each has its own ICMP socket).
pub const MAX_PINGS: usize = 16;
/// Largest echo request payload: a datagram less the ICMP header.
pub const MAX_PING_PAYLOAD: usize = 1472 - 8;

/// Ethernet MTU plus header (no jumbo frames).
pub const MAX_FRAME: usize = 1514;

/// How the interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    Static(Addressing),
    Dhcp,
}

impl Setup {
    /// Parses the kernel command line's `net=` value: `dhcp`, or
    /// `ADDRESS/PREFIX` optionally followed by `,gw=GATEWAY`.
    pub fn parse(text: &str) -> Result<Setup, alloc::string::String> {
        if text == "dhcp" {
            return Ok(Setup::Dhcp);
        }
        let mut parts = text.split(',');
        let cidr = parts.next().unwrap_or("");
        let (address, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| alloc::format!("'{cidr}': expected ADDRESS/PREFIX or dhcp"))?;
        let address: Ipv4Address = address
            .parse()
            .map_err(|_| alloc::format!("'{address}' is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| alloc::format!("prefix '{prefix}' must be 1 to 32"))?;
        let mut gateway = None;
        for part in parts {
            let Some(value) = part.strip_prefix("gw=") else {
                return Err(alloc::format!("'{part}': expected gw=ADDRESS"));
            };
            gateway = Some(
                value
                    .parse()
                    .map_err(|_| alloc::format!("gateway '{value}' is not an IPv4 address"))?,
            );
        }
        Ok(Setup::Static(Addressing {
            address,
            prefix,
            gateway,
        }))
    }
}

/// The interface's address.
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
    pub open: u64,
    pub listeners: u64,
    pub udp_sockets: u64,
    /// Connections that arrived while a listener's backlog was full
    /// (left to the peer to retry).
    pub backlog_full: u64,
    /// Repeated SYNs of connections already being made, dropped.
    pub repeated_syns: u64,
}

/// What a read came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// This many bytes.
    Data(usize),
    /// Nothing yet (the waker, if any, is registered).
    Wait,
    /// The peer closed its side and everything was read.
    End,
    Failed(Status),
}

/// Who opened a socket: the caller's incarnation (`Owner` bits), as the
/// kernel recorded its entry. Only the owner may use a socket; another
/// domain naming its number is told there is no such socket, and the
/// sockets of an owner that died are closed by [`Stack::sweep`].
pub type OwnerBits = u32;

struct Listener {
    owner: OwnerBits,
    port: u16,
    backlog: usize,
    /// Listening, or in the middle of a handshake (SYN received).
    listening: Vec<SocketHandle>,
    /// Established, waiting for `accept`.
    ready: VecDeque<SocketHandle>,
    /// Tasks waiting in `accept` (all woken when one arrives).
    wakers: Vec<Waker>,
}

impl Listener {
    fn wake(&mut self) {
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }
}

/// An echo request in flight.
struct Ping {
    handle: SocketHandle,
    ident: u16,
    seq: u16,
    sent_us: i64,
    deadline_us: i64,
}

/// What waiting for an echo reply came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pong {
    /// The reply, after this many microseconds, of this many bytes.
    Reply {
        rtt_us: u32,
        bytes: u16,
    },
    /// Not yet (the waker, if any, is registered).
    Wait,
    Failed(Status),
}

/// The interface and its sockets, numbered for the interfaces.
pub struct Stack {
    pub wire: Wire,
    iface: Interface,
    sockets: SocketSet<'static>,
    listeners: BTreeMap<u32, Listener>,
    connections: BTreeMap<u32, (SocketHandle, OwnerBits)>,
    /// Connections closed by their owner, going once smoltcp is done.
    closing: Vec<SocketHandle>,
    udp: BTreeMap<u32, (SocketHandle, OwnerBits)>,
    pings: BTreeMap<u32, Ping>,
    next_ident: u16,
    next_id: u32,
    pub counters: Counters,
    /// The address in use (None while DHCP has none).
    pub addressing: Option<Addressing>,
    dhcp: Option<SocketHandle>,
    /// Set when the address changed (the task logs it and clears this).
    pub address_changed: bool,
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    );
    // smoltcp's defaults (Nagle on, 10 ms delayed ACK) make each small
    // request-reply exchange wait.
    socket.set_nagle_enabled(false);
    socket.set_ack_delay(None);
    // smoltcp's defaults are no timeout and no keep-alive: a half-open
    // handshake (a SYN flood), a peer that vanished or a FIN-WAIT-2 that
    // never ends would hold its socket, and its buffers, for good.
    socket.set_timeout(Some(smoltcp::time::Duration::from_secs(TIMEOUT_S)));
    socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(KEEP_ALIVE_S)));
    socket
}

impl Stack {
    pub fn new(mac: [u8; 6], setup: Setup, now_us: i64, seed: u64) -> Stack {
        let mut wire = Wire::new(MAX_FRAME, BATCH);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let now = Instant::from_micros(now_us);
        let iface = Interface::new(config, &mut wire, now);
        let mut sockets = SocketSet::new(Vec::new());
        let dhcp = match setup {
            Setup::Dhcp => Some(sockets.add(dhcpv4::Socket::new())),
            Setup::Static(_) => None,
        };
        let mut stack = Stack {
            wire,
            iface,
            sockets,
            listeners: BTreeMap::new(),
            connections: BTreeMap::new(),
            closing: Vec::new(),
            udp: BTreeMap::new(),
            pings: BTreeMap::new(),
            next_ident: (seed as u16) | 1,
            next_id: 1,
            counters: Counters::default(),
            addressing: None,
            dhcp,
            address_changed: false,
        };
        if let Setup::Static(addressing) = setup {
            stack.set_address(Some(addressing));
        }
        stack
    }

    fn set_address(&mut self, addressing: Option<Addressing>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            if let Some(a) = addressing {
                let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(a.address, a.prefix)));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(gateway) = addressing.and_then(|a| a.gateway) {
            let _ = routes.add_default_ipv4_route(gateway);
        }
        self.addressing = addressing;
        self.address_changed = true;
    }

    /// What the DHCP client learnt, applied.
    fn dhcp_events(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let learnt = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(config)) => Some(Addressing {
                address: config.address.address(),
                prefix: config.address.prefix_len(),
                gateway: config.router,
            }),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        self.set_address(learnt);
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn tcp_count(&self) -> usize {
        self.connections.len()
            + self.closing.len()
            + self
                .listeners
                .values()
                .map(|l| l.listening.len() + l.ready.len())
                .sum::<usize>()
    }

    /// Hands a received frame to the stack, unless it is a TCP SYN that
    /// repeats one a socket of ours already answered (same addresses and
    /// ports): a peer whose SYN-ACK is late sends its SYN again, and
    /// smoltcp would give the repeat to another listening socket, making a
    /// second half-open connection with its own sequence numbers for the
    /// same four-tuple, which breaks the first (seen as 41 of 400
    /// connections opened at once never answered). The socket that has
    /// the connection sends its SYN-ACK again on its own timer. Returns
    /// whether the frame was taken.
    pub fn deliver(&mut self, frame: Buf) -> bool {
        if let Some((from, to_port)) = repeated_syn(frame.0.frame())
            && self.has_connection(from, to_port)
        {
            self.counters.repeated_syns += 1;
            self.wire.recycle(frame);
            return false;
        }
        self.wire.deliver(frame);
        true
    }

    /// Whether a TCP socket of ours (listening ahead, handshaking,
    /// established or closing) is connected to `from` on local port
    /// `port`.
    fn has_connection(&mut self, from: IpEndpoint, port: u16) -> bool {
        let handles = self
            .listeners
            .values()
            .flat_map(|l| l.listening.iter().chain(l.ready.iter()))
            .chain(self.connections.values().map(|(h, _)| h))
            .chain(self.closing.iter());
        for &handle in handles {
            let socket = self.sockets.get::<tcp::Socket>(handle);
            if socket.remote_endpoint() == Some(from)
                && socket.local_endpoint().is_some_and(|l| l.port == port)
            {
                return true;
            }
        }
        false
    }

    /// Processes what arrived and queues what is to be sent in the wire.
    /// Returns whether anything happened.
    pub fn poll(&mut self, now_us: i64) -> bool {
        let now = Instant::from_micros(now_us);
        let mut busy = self.wire.waiting() > 0;
        self.iface.poll_maintenance(now);
        // One frame at a time, so that a listening socket that took a
        // connection is replaced before the next SYN is processed.
        loop {
            match self
                .iface
                .poll_ingress_single(now, &mut self.wire, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    busy = true;
                    self.sort_listeners();
                }
            }
        }
        self.sort_listeners();
        self.dhcp_events();
        self.iface
            .poll_egress(now, &mut self.wire, &mut self.sockets);
        // A lease that ran out is dropped on the way out.
        self.dhcp_events();
        // After the way out: an aborted socket's reset has been sent.
        self.reap();
        busy | (self.wire.outgoing() > 0)
    }

    /// When smoltcp next needs a poll without new frames (retransmission,
    /// TIME-WAIT), in microseconds, if ever.
    pub fn poll_at(&mut self, now_us: i64) -> Option<i64> {
        self.iface
            .poll_at(Instant::from_micros(now_us), &self.sockets)
            .map(|at| at.total_micros())
    }

    /// Listening sockets that got a connection join their listener's
    /// ready queue (or are dropped, if it is full); fresh ones listen in
    /// their place.
    fn sort_listeners(&mut self) {
        let mut total = self.tcp_count();
        for listener in self.listeners.values_mut() {
            let mut index = 0;
            let mut listening = 0;
            while index < listener.listening.len() {
                let handle = listener.listening[index];
                let socket = self.sockets.get_mut::<tcp::Socket>(handle);
                match socket.state() {
                    // Still listening (also after a reset mid-handshake,
                    // which smoltcp turns back into listening).
                    tcp::State::Listen => {
                        listening += 1;
                        index += 1;
                        continue;
                    }
                    // The handshake is not over: not a connection yet.
                    tcp::State::SynReceived | tcp::State::SynSent => {
                        index += 1;
                        continue;
                    }
                    _ => {}
                }
                listener.listening.swap_remove(index);
                if socket.state() == tcp::State::Closed {
                    // The handshake timed out.
                    self.closing.push(handle);
                } else if listener.ready.len() >= listener.backlog {
                    // Full: the peer sees a reset and may try again.
                    socket.abort();
                    self.closing.push(handle);
                    self.counters.backlog_full += 1;
                } else {
                    listener.ready.push_back(handle);
                    listener.wake();
                }
            }
            let ahead = AHEAD.min(listener.backlog.max(1));
            while listening < ahead && total < MAX_TCP {
                let mut socket = tcp_socket();
                if socket.listen(listener.port).is_err() {
                    break;
                }
                listener.listening.push(self.sockets.add(socket));
                listening += 1;
                total += 1;
            }
        }
    }

    /// Sockets closed by their owner go once smoltcp is done with them.
    fn reap(&mut self) {
        let mut index = 0;
        while index < self.closing.len() {
            let handle = self.closing[index];
            if self.sockets.get_mut::<tcp::Socket>(handle).state() == tcp::State::Closed {
                self.sockets.remove(handle);
                self.closing.swap_remove(index);
            } else {
                index += 1;
            }
        }
        self.counters.open = self.connections.len() as u64;
    }

    /// `owner`'s connection `id`.
    fn connection(&self, id: u32, owner: OwnerBits) -> Option<SocketHandle> {
        self.connections
            .get(&id)
            .filter(|(_, o)| *o == owner)
            .map(|(handle, _)| *handle)
    }

    /// `owner`'s UDP socket `id`.
    fn udp_socket(&self, id: u32, owner: OwnerBits) -> Option<SocketHandle> {
        self.udp
            .get(&id)
            .filter(|(_, o)| *o == owner)
            .map(|(handle, _)| *handle)
    }

    /// Closes every socket whose owner `alive` says is gone (crashed,
    /// killed or restarted): connections are reset, listeners stop, UDP
    /// sockets go. Returns how many it closed.
    pub fn sweep(&mut self, alive: impl Fn(OwnerBits) -> bool) -> usize {
        let mut dead: Vec<(u32, OwnerBits)> = Vec::new();
        dead.extend(
            self.connections
                .iter()
                .filter(|(_, (_, owner))| !alive(*owner))
                .map(|(id, (_, owner))| (*id, *owner)),
        );
        dead.extend(
            self.listeners
                .iter()
                .filter(|(_, l)| !alive(l.owner))
                .map(|(id, l)| (*id, l.owner)),
        );
        let mut closed = 0;
        for (id, owner) in dead {
            if let Some(&(handle, _)) = self.connections.get(&id) {
                // Nobody will read what is queued: reset, not close.
                self.sockets.get_mut::<tcp::Socket>(handle).abort();
            }
            if self.tcp_close(owner, id) == Status::Ok {
                closed += 1;
            }
        }
        let dead_udp: Vec<(u32, OwnerBits)> = self
            .udp
            .iter()
            .filter(|(_, (_, owner))| !alive(*owner))
            .map(|(id, (_, owner))| (*id, *owner))
            .collect();
        for (id, owner) in dead_udp {
            if self.udp_close(owner, id) == Status::Ok {
                closed += 1;
            }
        }
        closed
    }

    pub fn tcp_listen(&mut self, owner: OwnerBits, port: u16, backlog: u16) -> Result<u32, Status> {
        if port == 0 || backlog == 0 {
            return Err(Status::Invalid);
        }
        if self.listeners.values().any(|l| l.port == port) {
            return Err(Status::InUse);
        }
        if self.tcp_count() >= MAX_TCP {
            return Err(Status::TooMany);
        }
        let id = self.id();
        self.listeners.insert(
            id,
            Listener {
                owner,
                port,
                backlog: usize::from(backlog),
                listening: Vec::new(),
                ready: VecDeque::new(),
                wakers: Vec::new(),
            },
        );
        self.sort_listeners();
        self.counters.listeners = self.listeners.len() as u64;
        Ok(id)
    }

    /// A connection waiting on `listener`, if any (else `waker` is woken
    /// when one arrives).
    pub fn tcp_accept(
        &mut self,
        owner: OwnerBits,
        listener: u32,
        waker: Option<&Waker>,
    ) -> Result<Option<u32>, Status> {
        let Some(entry) = self
            .listeners
            .get_mut(&listener)
            .filter(|l| l.owner == owner)
        else {
            return Err(Status::NoSuchSocket);
        };
        let Some(handle) = entry.ready.pop_front() else {
            if let Some(waker) = waker
                && !entry.wakers.iter().any(|w| w.will_wake(waker))
            {
                entry.wakers.push(waker.clone());
            }
            return Ok(None);
        };
        let id = self.id();
        self.connections.insert(id, (handle, owner));
        self.counters.accepted += 1;
        self.counters.open = self.connections.len() as u64;
        Ok(Some(id))
    }

    pub fn tcp_read(
        &mut self,
        owner: OwnerBits,
        connection: u32,
        into: &mut [u8],
        waker: Option<&Waker>,
    ) -> Read {
        let Some(handle) = self.connection(connection, owner) else {
            return Read::Failed(Status::NoSuchSocket);
        };
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if matches!(
            socket.state(),
            tcp::State::SynReceived | tcp::State::SynSent
        ) {
            // Accepted while the handshake completes.
            if let Some(waker) = waker {
                socket.register_recv_waker(waker);
            }
            return Read::Wait;
        }
        if socket.can_recv() {
            return match socket.recv_slice(into) {
                Ok(got) => Read::Data(got),
                Err(_) => Read::End,
            };
        }
        if !socket.may_recv() {
            // FIN seen and all read: end of stream; never connected or
            // reset: a failure.
            return match socket.state() {
                tcp::State::Closed => Read::Failed(Status::Reset),
                _ => Read::End,
            };
        }
        if let Some(waker) = waker {
            socket.register_recv_waker(waker);
        }
        Read::Wait
    }

    /// Queues what fits of `bytes`: Ok(n) (0: the send buffer is full and
    /// `waker` is registered).
    pub fn tcp_write(
        &mut self,
        owner: OwnerBits,
        connection: u32,
        bytes: &[u8],
        waker: Option<&Waker>,
    ) -> Result<usize, Status> {
        let Some(handle) = self.connection(connection, owner) else {
            return Err(Status::NoSuchSocket);
        };
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if matches!(
            socket.state(),
            tcp::State::SynReceived | tcp::State::SynSent
        ) {
            if let Some(waker) = waker {
                socket.register_send_waker(waker);
            }
            return Ok(0);
        }
        if !socket.may_send() {
            return Err(match socket.state() {
                tcp::State::Closed => Status::Reset,
                _ => Status::Closed,
            });
        }
        let sent = socket.send_slice(bytes).map_err(|_| Status::Closed)?;
        if let (0, Some(waker)) = (sent, waker) {
            socket.register_send_waker(waker);
        }
        Ok(sent)
    }

    pub fn tcp_shutdown(&mut self, owner: OwnerBits, connection: u32) -> Status {
        match self.connection(connection, owner) {
            Some(handle) => {
                self.sockets.get_mut::<tcp::Socket>(handle).close();
                Status::Ok
            }
            None => Status::NoSuchSocket,
        }
    }

    /// Closes a connection (what is queued is still sent) or a listener
    /// (its sockets waiting to be accepted are reset).
    pub fn tcp_close(&mut self, owner: OwnerBits, socket: u32) -> Status {
        if let Some(handle) = self.connection(socket, owner) {
            self.connections.remove(&socket);
            self.sockets.get_mut::<tcp::Socket>(handle).close();
            self.closing.push(handle);
            self.counters.open = self.connections.len() as u64;
            return Status::Ok;
        }
        if self
            .listeners
            .get(&socket)
            .is_some_and(|l| l.owner == owner)
            && let Some(mut listener) = self.listeners.remove(&socket)
        {
            listener.wake();
            for handle in listener.listening.into_iter().chain(listener.ready) {
                self.sockets.get_mut::<tcp::Socket>(handle).abort();
                self.closing.push(handle);
            }
            self.counters.listeners = self.listeners.len() as u64;
            return Status::Ok;
        }
        Status::NoSuchSocket
    }

    /// Sends an echo request of `size` payload bytes to `to`; the number
    /// of the ping to wait on with [`ping_poll`](Self::ping_poll), which
    /// fails with `TimedOut` once `timeout_us` has passed.
    pub fn ping_send(
        &mut self,
        to: [u8; 4],
        seq: u16,
        size: usize,
        now_us: i64,
        timeout_us: i64,
    ) -> Result<u32, Status> {
        if self.addressing.is_none() {
            return Err(Status::Unreachable);
        }
        let to = Ipv4Address::from_octets(to);
        if size > MAX_PING_PAYLOAD || to.is_unspecified() || to.is_broadcast() {
            return Err(Status::Invalid);
        }
        if self.pings.len() >= MAX_PINGS {
            return Err(Status::TooMany);
        }
        let ident = self.next_ident;
        self.next_ident = self.next_ident.wrapping_add(1).max(1);
        let room = 2 * (size + 8);
        let mut socket = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 2], vec![0; room]),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 2], vec![0; room]),
        );
        socket
            .bind(icmp::Endpoint::Ident(ident))
            .map_err(|_| Status::InUse)?;
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let request = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: seq,
            data: &data,
        };
        let room = socket
            .send(request.buffer_len(), IpAddress::Ipv4(to))
            .map_err(|_| Status::Invalid)?;
        request.emit(
            &mut Icmpv4Packet::new_unchecked(room),
            &ChecksumCapabilities::default(),
        );
        let handle = self.sockets.add(socket);
        let id = self.id();
        self.pings.insert(
            id,
            Ping {
                handle,
                ident,
                seq,
                sent_us: now_us,
                deadline_us: now_us.saturating_add(timeout_us),
            },
        );
        Ok(id)
    }

    /// Whether ping `id` got its reply.
    pub fn ping_poll(&mut self, id: u32, now_us: i64, waker: Option<&Waker>) -> Pong {
        let Some(ping) = self.pings.get(&id) else {
            return Pong::Failed(Status::NoSuchSocket);
        };
        let socket = self.sockets.get_mut::<icmp::Socket>(ping.handle);
        while let Ok((payload, _from)) = socket.recv() {
            let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident, seq_no, .. }) =
                Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
                && ident == ping.ident
                && seq_no == ping.seq
            {
                return Pong::Reply {
                    rtt_us: u32::try_from(now_us.saturating_sub(ping.sent_us)).unwrap_or(u32::MAX),
                    bytes: payload.len() as u16,
                };
            }
        }
        if now_us >= ping.deadline_us {
            return Pong::Failed(Status::TimedOut);
        }
        if let Some(waker) = waker {
            socket.register_recv_waker(waker);
        }
        Pong::Wait
    }

    /// Ends ping `id` (answered or not).
    pub fn ping_end(&mut self, id: u32) {
        if let Some(ping) = self.pings.remove(&id) {
            self.sockets.remove(ping.handle);
        }
    }

    /// Pings whose caller went away without ending them (a second past
    /// their deadline) go.
    pub fn expire_pings(&mut self, now_us: i64) {
        let stale: Vec<u32> = self
            .pings
            .iter()
            .filter(|(_, p)| now_us > p.deadline_us.saturating_add(1_000_000))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.ping_end(id);
        }
    }

    pub fn udp_bind(&mut self, owner: OwnerBits, port: u16) -> Result<u32, Status> {
        if port == 0 {
            return Err(Status::Invalid);
        }
        if self.udp.len() >= MAX_UDP {
            return Err(Status::TooMany);
        }
        let mut socket = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 128 * 1024]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 256], vec![0; 128 * 1024]),
        );
        let taken = self
            .udp
            .values()
            .any(|(h, _)| self.sockets.get::<udp::Socket>(*h).endpoint().port == port);
        if taken || socket.bind(port).is_err() {
            return Err(Status::InUse);
        }
        let id = self.id();
        let handle = self.sockets.add(socket);
        self.udp.insert(id, (handle, owner));
        self.counters.udp_sockets = self.udp.len() as u64;
        Ok(id)
    }

    /// Queues a datagram to `to` (dropped if the send buffer is full: UDP
    /// promises nothing).
    pub fn udp_send(
        &mut self,
        owner: OwnerBits,
        socket: u32,
        bytes: &[u8],
        to: ([u8; 4], u16),
    ) -> Status {
        let Some(handle) = self.udp_socket(socket, owner) else {
            return Status::NoSuchSocket;
        };
        if to.1 == 0 {
            return Status::Invalid;
        }
        let endpoint = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from_octets(to.0)), to.1);
        match self
            .sockets
            .get_mut::<udp::Socket>(handle)
            .send_slice(bytes, endpoint)
        {
            Ok(()) => Status::Ok,
            Err(udp::SendError::BufferFull) => Status::Ok,
            Err(_) => Status::Invalid,
        }
    }

    /// A datagram, if one is waiting: its length and sender (else `waker`
    /// is registered).
    pub fn udp_recv(
        &mut self,
        owner: OwnerBits,
        socket: u32,
        into: &mut [u8],
        waker: Option<&Waker>,
    ) -> Result<Option<(usize, [u8; 4], u16)>, Status> {
        let Some(handle) = self.udp_socket(socket, owner) else {
            return Err(Status::NoSuchSocket);
        };
        let socket = self.sockets.get_mut::<udp::Socket>(handle);
        match socket.recv_slice(into) {
            Ok((len, meta)) => {
                let IpAddress::Ipv4(from) = meta.endpoint.addr;
                Ok(Some((len, from.octets(), meta.endpoint.port)))
            }
            // Larger than the client's buffer (smoltcp drops it).
            Err(udp::RecvError::Truncated) => Err(Status::Invalid),
            Err(udp::RecvError::Exhausted) => {
                if let Some(waker) = waker {
                    socket.register_recv_waker(waker);
                }
                Ok(None)
            }
        }
    }

    pub fn udp_close(&mut self, owner: OwnerBits, socket: u32) -> Status {
        match self.udp_socket(socket, owner) {
            Some(handle) => {
                self.udp.remove(&socket);
                self.sockets.remove(handle);
                self.counters.udp_sockets = self.udp.len() as u64;
                Status::Ok
            }
            None => Status::NoSuchSocket,
        }
    }
}

/// The sender and destination port of an IPv4 TCP SYN without ACK (the
/// first segment of a connection), if `frame` is one.
fn repeated_syn(frame: &[u8]) -> Option<(IpEndpoint, u16)> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let header = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ip[9] != 6 || header < 20 || ip.len() < header + 14 {
        return None;
    }
    let tcp = &ip[header..];
    let flags = tcp[13];
    if flags & 0x02 == 0 || flags & 0x10 != 0 {
        return None;
    }
    let from = Ipv4Address::new(ip[12], ip[13], ip[14], ip[15]);
    let from_port = u16::from_be_bytes([tcp[0], tcp[1]]);
    let to_port = u16::from_be_bytes([tcp[2], tcp[3]]);
    Some((IpEndpoint::new(IpAddress::Ipv4(from), from_port), to_port))
}
