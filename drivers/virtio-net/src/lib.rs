//! `virtio-net`: the driver domain of a modern virtio network device
//! (virtio 1.x over PCI, 1af4:1041: QEMU's `virtio-net-pci` with
//! `disable-legacy=on`). It claims the first such function through the
//! kernel's device capability, finds its configuration structures by
//! walking the vendor capabilities in configuration space, negotiates
//! only VERSION_1 and MAC, sets up receive queue 0 and transmit queue 1
//! (split virtqueues of 256 descriptors: 128 buffers each, a buffer being
//! the 12-byte header and the frame, chained), and exports [`Net`] as
//! "net" and `Control` as "control", as the `igb` driver does. Frames
//! move in [`Packet`] buffers on the shared heap that the device reads
//! and writes directly: never copied. No interrupts: the queues are
//! polled by the callers of `receive` and `transmit`.
//!
//! What the device says is checked (`virtq`): capabilities must lie in
//! configuration space and point into a BAR (the kernel refuses any
//! register access outside one), used-ring entries must name buffers this
//! side made available, lengths must fit them; a used index that runs
//! past what is outstanding means the device is not to be trusted, and
//! the driver stops (crashes, contained) saying so.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod virtq;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use domain_sdk::{Device, Exports, Kernel, Mutex, Once, RRef, RpcResult, log, spawn};
use interfaces::bdev::DmaPage;
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{BATCH, FRAME, Net, NetCounters, NetExerciser, NetInfo, Packet, Packets};
use virtq::{QueueMemory, SplitQueue};

const CLASS: (u8, u8, u8) = (0x02, 0x00, 0x00);
const IDS: (u16, u16) = (0x1af4, 0x1041);
/// Descriptors per queue (128 buffers).
const QUEUE_SIZE: u16 = 256;
const RX: u16 = 0;
const TX: u16 = 1;

const FEATURE_MAC: u64 = 1 << 5;
const FEATURE_VERSION_1: u64 = 1 << 32;

const STATUS_ACKNOWLEDGE: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FEATURES_OK: u8 = 8;
const STATUS_FAILED: u8 = 128;

/// Common configuration fields (virtio 1.x, 4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0C;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_ENABLE: u64 = 0x1C;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1E;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// Where a configuration structure is: BAR and offset.
#[derive(Clone, Copy, Debug)]
struct Place {
    bar: usize,
    offset: u64,
}

/// The structures the driver uses, from the vendor capabilities.
#[derive(Clone, Copy, Debug)]
struct Layout {
    common: Place,
    notify: Place,
    notify_multiplier: u32,
    device: Place,
}

/// Walks the capability list (bounded: a looping list ends after 48).
fn find_layout(device: &dyn Device) -> Result<Layout, String> {
    let err = |e| format!("configuration space: {e}");
    let status = device.config_read32(0x04).map_err(err)? >> 16;
    if status & 0x10 == 0 {
        return Err(String::from("no capability list"));
    }
    let mut at = (device.config_read32(0x34).map_err(err)? & 0xFC) as u16;
    let (mut common, mut notify, mut config) = (None, None, None);
    let mut multiplier = 0;
    for _ in 0..48 {
        if at < 0x40 {
            break;
        }
        let head = device.config_read32(at).map_err(err)?;
        let (id, next, kind) = (head & 0xFF, (head >> 8) & 0xFC, (head >> 24) & 0xFF);
        if id == 0x09 {
            let bar = (device.config_read32(at + 4).map_err(err)? & 0xFF) as usize;
            let offset = u64::from(device.config_read32(at + 8).map_err(err)?);
            let place = Place { bar, offset };
            match kind {
                1 => common = common.or(Some(place)),
                2 if notify.is_none() => {
                    multiplier = device.config_read32(at + 16).map_err(err)?;
                    notify = Some(place);
                }
                4 => config = config.or(Some(place)),
                _ => {}
            }
        }
        at = next as u16;
    }
    match (common, notify, config) {
        (Some(common), Some(notify), Some(device))
            if bar_ok(common) && bar_ok(notify) && bar_ok(device) =>
        {
            Ok(Layout {
                common,
                notify,
                notify_multiplier: multiplier,
                device,
            })
        }
        _ => Err(String::from(
            "the virtio capabilities (common, notify, device) are missing or name no BAR",
        )),
    }
}

fn bar_ok(place: Place) -> bool {
    place.bar < 6
}

/// A queue's three areas and the headers of its buffers, each a DMA page.
struct QueuePages {
    areas: [RRef<DmaPage>; 3],
    headers: RRef<DmaPage>,
}

impl QueueMemory for QueuePages {
    fn read(&self, area: usize, word: usize) -> u32 {
        self.areas[area].0[word].load(Ordering::Acquire)
    }
    fn write(&self, area: usize, word: usize, value: u32) {
        self.areas[area].0[word].store(value, Ordering::Release);
    }
}

impl QueuePages {
    fn new() -> Result<QueuePages, String> {
        let page = || RRef::try_new(DmaPage::new()).map_err(|e| format!("queue memory: {e}"));
        Ok(QueuePages {
            areas: [page()?, page()?, page()?],
            headers: page()?,
        })
    }

    fn address(page: &RRef<DmaPage>) -> Result<u64, String> {
        page.device_address()
            .ok_or_else(|| String::from("the shared heap gave no device address"))
    }
}

struct Queues {
    rx: SplitQueue<RRef<Packet>>,
    tx: SplitQueue<RRef<Packet>>,
    rx_pages: QueuePages,
    tx_pages: QueuePages,
    rx_notify: u64,
    tx_notify: u64,
    counters: NetCounters,
}

struct Driver {
    device: Box<dyn Device>,
    layout: Layout,
    mac: Once<[u8; 6]>,
    failed: Once<String>,
    queues: Mutex<Option<Queues>>,
    ready: AtomicBool,
}

fn register_error(e: domain_sdk::DeviceError) -> String {
    format!("register access: {e}")
}

impl Driver {
    fn common_read8(&self, offset: u64) -> Result<u8, String> {
        let c = self.layout.common;
        self.device
            .read8(c.bar, c.offset + offset)
            .map_err(register_error)
    }
    fn common_write8(&self, offset: u64, value: u8) -> Result<(), String> {
        let c = self.layout.common;
        self.device
            .write8(c.bar, c.offset + offset, value)
            .map_err(register_error)
    }
    fn common_read16(&self, offset: u64) -> Result<u16, String> {
        let c = self.layout.common;
        self.device
            .read16(c.bar, c.offset + offset)
            .map_err(register_error)
    }
    fn common_write16(&self, offset: u64, value: u16) -> Result<(), String> {
        let c = self.layout.common;
        self.device
            .write16(c.bar, c.offset + offset, value)
            .map_err(register_error)
    }
    fn common_read32(&self, offset: u64) -> Result<u32, String> {
        let c = self.layout.common;
        self.device
            .read32(c.bar, c.offset + offset)
            .map_err(register_error)
    }
    fn common_write32(&self, offset: u64, value: u32) -> Result<(), String> {
        let c = self.layout.common;
        self.device
            .write32(c.bar, c.offset + offset, value)
            .map_err(register_error)
    }
    fn common_write64(&self, offset: u64, value: u64) -> Result<(), String> {
        // Two 32-bit halves, low first (the structure is 32-bit aligned).
        self.common_write32(offset, value as u32)?;
        self.common_write32(offset + 4, (value >> 32) as u32)
    }

    fn notify(&self, at: u64, queue: u16) {
        let _ = self.device.write16(self.layout.notify.bar, at, queue);
    }

    /// The initialisation of virtio 1.x, 3.1.1, and the two queues.
    fn start(&self) -> Result<([u8; 6], Queues), String> {
        self.common_write8(common::DEVICE_STATUS, 0)?;
        let mut status = STATUS_ACKNOWLEDGE;
        self.common_write8(common::DEVICE_STATUS, status)?;
        status |= STATUS_DRIVER;
        self.common_write8(common::DEVICE_STATUS, status)?;
        let mut offered = 0u64;
        for select in 0..2u32 {
            self.common_write32(common::DEVICE_FEATURE_SELECT, select)?;
            offered |= u64::from(self.common_read32(common::DEVICE_FEATURE)?) << (32 * select);
        }
        if offered & FEATURE_VERSION_1 == 0 {
            self.common_write8(common::DEVICE_STATUS, status | STATUS_FAILED)?;
            return Err(String::from(
                "the device does not offer VERSION_1 (a legacy device)",
            ));
        }
        let wanted = offered & (FEATURE_VERSION_1 | FEATURE_MAC);
        for select in 0..2u32 {
            self.common_write32(common::DRIVER_FEATURE_SELECT, select)?;
            self.common_write32(common::DRIVER_FEATURE, (wanted >> (32 * select)) as u32)?;
        }
        status |= STATUS_FEATURES_OK;
        self.common_write8(common::DEVICE_STATUS, status)?;
        if self.common_read8(common::DEVICE_STATUS)? & STATUS_FEATURES_OK == 0 {
            return Err(String::from("the device refused the features"));
        }
        let mut mac = [0u8; 6];
        if wanted & FEATURE_MAC != 0 {
            let d = self.layout.device;
            for (i, byte) in mac.iter_mut().enumerate() {
                *byte = self
                    .device
                    .read8(d.bar, d.offset + i as u64)
                    .map_err(register_error)?;
            }
        }
        if self.common_read16(common::NUM_QUEUES)? < 2 {
            return Err(String::from("fewer than two queues"));
        }
        self.device.set_bus_master(true);
        let rx_pages = QueuePages::new()?;
        let tx_pages = QueuePages::new()?;
        let rx_notify = self.setup_queue(RX, &rx_pages)?;
        let tx_notify = self.setup_queue(TX, &tx_pages)?;
        let rx_headers = QueuePages::address(&rx_pages.headers)?;
        let tx_header = QueuePages::address(&tx_pages.headers)?;
        let mut queues = Queues {
            rx: SplitQueue::new(QUEUE_SIZE, true, rx_headers, u64::from(virtq::HEADER))
                .ok_or("queue size")?,
            tx: SplitQueue::new(QUEUE_SIZE, false, tx_header, 0).ok_or("queue size")?,
            rx_pages,
            tx_pages,
            rx_notify,
            tx_notify,
            counters: NetCounters::default(),
        };
        status |= STATUS_DRIVER_OK;
        self.common_write8(common::DEVICE_STATUS, status)?;
        // Every receive buffer gets one of the driver's own to start.
        while queues.rx.room() > 0 {
            let buffer = RRef::try_new(Packet::empty()).map_err(|e| format!("rx buffers: {e}"))?;
            let data = buffer
                .device_address()
                .ok_or("the shared heap gave no device address")?;
            if queues
                .rx
                .post(&queues.rx_pages, buffer, data, FRAME as u32)
                .is_err()
            {
                break;
            }
        }
        if queues.rx.flush(&queues.rx_pages) {
            self.notify(queues.rx_notify, RX);
        }
        Ok((mac, queues))
    }

    /// Sets up queue `index` over `pages`; returns its notify address.
    fn setup_queue(&self, index: u16, pages: &QueuePages) -> Result<u64, String> {
        self.common_write16(common::QUEUE_SELECT, index)?;
        let max = self.common_read16(common::QUEUE_SIZE)?;
        if max < QUEUE_SIZE {
            return Err(format!("queue {index} holds only {max} descriptors"));
        }
        self.common_write16(common::QUEUE_SIZE, QUEUE_SIZE)?;
        self.common_write64(common::QUEUE_DESC, QueuePages::address(&pages.areas[0])?)?;
        self.common_write64(common::QUEUE_DRIVER, QueuePages::address(&pages.areas[1])?)?;
        self.common_write64(common::QUEUE_DEVICE, QueuePages::address(&pages.areas[2])?)?;
        let notify_off = self.common_read16(common::QUEUE_NOTIFY_OFF)?;
        self.common_write16(common::QUEUE_ENABLE, 1)?;
        Ok(self.layout.notify.offset
            + u64::from(notify_off) * u64::from(self.layout.notify_multiplier))
    }

    /// The device broke its side of the queue protocol: stop, saying so.
    fn distrust(&self, fault: virtq::Fault) -> ! {
        let _ = self.common_write8(common::DEVICE_STATUS, STATUS_FAILED);
        panic!("virtio-net: the device is not to be trusted: {fault}")
    }
}

impl NetExerciser for Driver {
    fn run(&self, queue: u16, frames: u32, batch: u32, loopback: bool) -> RpcResult<u64> {
        interfaces::net::exercise(self, queue, frames, batch, loopback)
    }
}

impl Net for Driver {
    fn info(&self) -> RpcResult<NetInfo> {
        let up = self.ready.load(Ordering::Acquire);
        Ok(NetInfo {
            mac: self.mac.get().copied().unwrap_or([0; 6]),
            link_up: up,
            speed: 0,
            queues: 1,
        })
    }

    fn receive(&self, queue: u16, mut buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queues.lock();
        let Some(q) = guard.as_mut().filter(|_| queue == 0) else {
            return Ok(buffers);
        };
        let mut out = Packets::new();
        let mut refused = alloc::vec::Vec::new();
        let counters = &mut q.counters;
        let reaped =
            q.rx.reap(&q.rx_pages, BATCH, |mut buffer, result| match result {
                Ok(len) => {
                    buffer.len = len as u16;
                    counters.rx_packets += 1;
                    counters.rx_bytes += u64::from(len);
                    let _ = out.push_back(buffer);
                }
                Err(_) => {
                    counters.rx_dropped += 1;
                    refused.push(buffer);
                }
            });
        if let Err(fault) = reaped {
            drop(guard);
            self.distrust(fault);
        }
        let mut leftover = Packets::new();
        let post = |q: &mut Queues, buffer: RRef<Packet>, leftover: &mut Packets| match buffer
            .device_address()
        {
            Some(data) => {
                if let Err(buffer) = q.rx.post(&q.rx_pages, buffer, data, FRAME as u32) {
                    let _ = leftover.push_back(buffer);
                }
            }
            None => {
                let _ = leftover.push_back(buffer);
            }
        };
        for buffer in refused {
            post(q, buffer, &mut leftover);
        }
        while let Some(mut buffer) = buffers.pop_front() {
            buffer.len = 0;
            post(q, buffer, &mut leftover);
        }
        if q.rx.flush(&q.rx_pages) {
            self.notify(q.rx_notify, RX);
        }
        while let Some(buffer) = leftover.pop_front() {
            let _ = out.push_back(buffer);
        }
        *buffers = out;
        Ok(buffers)
    }

    fn transmit(&self, queue: u16, mut packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queues.lock();
        let Some(q) = guard.as_mut().filter(|_| queue == 0) else {
            return Ok(packets);
        };
        // Sent buffers come off the ring first: with the ring full and a
        // whole batch refused, reaping afterwards (only as many as the
        // reply has room for) would reap none, and the queue would stall
        // for good.
        let mut sent = alloc::vec::Vec::new();
        let reaped = q.tx.reap(&q.tx_pages, BATCH, |mut buffer, _| {
            buffer.len = 0;
            sent.push(buffer);
        });
        if let Err(fault) = reaped {
            drop(guard);
            self.distrust(fault);
        }
        let mut unsent = Packets::new();
        while let Some(packet) = packets.pop_front() {
            let len = packet.len;
            match packet.device_address() {
                Some(data) if len > 0 && usize::from(len) <= FRAME => {
                    match q.tx.post(&q.tx_pages, packet, data, u32::from(len)) {
                        Ok(()) => {
                            q.counters.tx_packets += 1;
                            q.counters.tx_bytes += u64::from(len);
                        }
                        Err(packet) => {
                            let _ = unsent.push_back(packet);
                        }
                    }
                }
                _ => {
                    q.counters.tx_dropped += 1;
                    let _ = unsent.push_back(packet);
                }
            }
        }
        if q.tx.flush(&q.tx_pages) {
            self.notify(q.tx_notify, TX);
        }
        // The reply: the sent buffers it has room for (the rest are freed),
        // then the refused frames.
        let mut out = Packets::new();
        let room = BATCH - unsent.len();
        for buffer in sent.into_iter().take(room) {
            let _ = out.push_back(buffer);
        }
        while let Some(packet) = unsent.pop_front() {
            let _ = out.push_back(packet);
        }
        *packets = out;
        Ok(packets)
    }

    fn counters(&self, queue: u16) -> RpcResult<NetCounters> {
        let guard = self.queues.lock();
        Ok(guard
            .as_ref()
            .filter(|_| queue == 0)
            .map(|q| q.counters)
            .unwrap_or_default())
    }
}

impl Control for Driver {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        let counters = self.counters(0)?;
        Ok(match op {
            0 => u64::from(self.ready.load(Ordering::Acquire)),
            1 => counters.rx_packets,
            2 => counters.tx_packets,
            3 => counters.rx_dropped,
            _ => u64::from(self.failed.get().is_some()),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: 1 once the device is up\n1: frames received\n2: frames sent\n3: received frames refused\n4: 1 if the device failed to start\n5: the NIC, in words",
            ),
            5 => {
                let m = self.mac.get().copied().unwrap_or([0; 6]);
                let state = match (self.failed.get(), self.ready.load(Ordering::Acquire)) {
                    (Some(reason), _) => format!("failed: {reason}"),
                    (None, true) => String::from("up"),
                    (None, false) => String::from("starting"),
                };
                Text::answer(&format!(
                    "virtio-net {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {state}, 1 queue pair",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                ))
            }
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let device =
        domain_sdk::claim_device(CLASS, 0).map_err(|e| format!("no Ethernet controller: {e}"))?;
    if device.id() != IDS {
        let (vendor, id) = device.id();
        return Err(format!(
            "the first Ethernet controller is {vendor:04x}:{id:04x}, not a modern virtio-net device ({:04x}:{:04x})",
            IDS.0, IDS.1
        ));
    }
    let layout = find_layout(&*device)?;
    let driver = Arc::new(Driver {
        device,
        layout,
        mac: Once::new(),
        failed: Once::new(),
        queues: Mutex::new(None),
        ready: AtomicBool::new(false),
    });
    let starting = driver.clone();
    spawn(async move {
        match starting.start() {
            Ok((mac, queues)) => {
                starting.mac.call_once(|| mac);
                *starting.queues.lock() = Some(queues);
                starting.ready.store(true, Ordering::Release);
                log(&format!(
                    "virtio-net {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}: link up, {} receive buffers posted",
                    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], QUEUE_SIZE / 2
                ));
            }
            Err(reason) => {
                log(&format!("the NIC did not start: {reason}"));
                starting.failed.call_once(|| reason);
            }
        }
    })
    .map_err(|e| format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn Net + Send + Sync>("net", driver.clone())
        .with::<dyn NetExerciser + Send + Sync>("exerciser", driver.clone())
        .with::<dyn Control + Send + Sync>("control", driver))
}
