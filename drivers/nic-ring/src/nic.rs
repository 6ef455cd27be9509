//! What the Intel NIC drivers share above the rings: the driver's state
//! (the device capability, the queue pairs once the device is up, each
//! behind a lock of its own so that cores polling different queues never
//! meet, the MAC, why it failed) and the `Net` and `Control` interfaces over it. A
//! driver supplies the bring-up (its datasheet's) and how to read the
//! link; [`Nic::started`] records the outcome.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use domain_sdk::{Device, DeviceError, Mutex, Once, RRef, RpcResult, log, now_ns, sleep};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{Net, NetCounters, NetExerciser, NetInfo, Packets};

use crate::queue::{ENTRIES, QueuePair};

/// What a bring-up gives: the MAC and the queue pairs (at least one;
/// queue `i` is `queues[i]`), rings posted.
pub struct Started {
    pub mac: [u8; 6],
    pub queues: Vec<QueuePair>,
}

/// The MAC the EEPROM loaded into receive address 0 (RAL0/RAH0 at `ral0`
/// and `ral0 + 4`, the same on the 82576 and the 82599), or why not.
pub fn eeprom_mac(device: &dyn Device, ral0: u64) -> Result<[u8; 6], String> {
    /// RAH: address valid.
    const RAH_AV: u32 = 1 << 31;
    let (low, high) = (read(device, ral0)?, read(device, ral0 + 4)?);
    if high & RAH_AV == 0 {
        return Err(String::from("no MAC address in RAL0/RAH0"));
    }
    let [a, b, c, d] = low.to_le_bytes();
    let [e, f, _, _] = high.to_le_bytes();
    Ok([a, b, c, d, e, f])
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The RSS hash key both drivers program (ten 32-bit registers): fixed
/// pseudo-random words. (A key of 16-bit period would make the hash
/// symmetric, but it also cancels fields that vary together.)
pub const RSS_KEY: [u32; 10] = [
    0xeaa8_e3e7,
    0x1cf9_abe0,
    0x58b8_a0b7,
    0xd85b_1c36,
    0x97b6_678e,
    0xbe73_28c1,
    0x9d7d_ded0,
    0x5030_916d,
    0x1287_0b0f,
    0xc9b3_26d9,
];

/// Writes the RSS key (ten registers from `rssrk`) and the redirection
/// table (32 registers of four one-byte entries from `reta`, entry `i`
/// naming [`reta_entry`]`(i, queues)`): the same layout on the 82576 and
/// the 82599.
pub fn write_rss_tables(
    device: &dyn Device,
    rssrk: u64,
    reta: u64,
    queues: usize,
) -> Result<(), String> {
    for (i, &word) in RSS_KEY.iter().enumerate() {
        write(device, rssrk + 4 * i as u64, word)?;
    }
    for i in 0..32u32 {
        let entry = |k: u32| reta_entry(4 * i + k, queues);
        write(
            device,
            reta + 4 * u64::from(i),
            entry(0) | entry(1) << 8 | entry(2) << 16 | entry(3) << 24,
        )?;
    }
    Ok(())
}

/// The queue in receive-side scaling's redirection-table entry `index`
/// (0 to 127: the low seven bits of a frame's hash) for `queues` queues.
/// Not `index % queues`: the hash's lowest bits alone can be the same for
/// a whole set of flows whose fields vary together (generated traffic
/// whose source address and port both count up hashed to a single queue
/// that way). The entries go through a fixed nonlinear permutation of the
/// seven bits first (xor-shifts and odd multiplications, each a bijection
/// on 0..128), so every bit of the index counts, and every queue still
/// gets 128 / `queues` entries, give or take one.
pub fn reta_entry(index: u32, queues: usize) -> u32 {
    let mut x = index & 127;
    x ^= x >> 3;
    x = x.wrapping_mul(37) & 127;
    x ^= x >> 4;
    x = x.wrapping_mul(101) & 127;
    x ^= x >> 2;
    x % queues.clamp(1, 128) as u32
}

/// Queue pairs a driver sets up: one per core, at most `device_max` (what
/// the device has, or what its receive-side scaling can spread over).
pub fn queue_count(device_max: usize) -> usize {
    domain_sdk::core().1.clamp(1, device_max.max(1))
}

/// `register access: ...`, the message of a failed register access.
pub fn register_error(e: DeviceError) -> String {
    format!("register access: {e}")
}

/// Reads a 32-bit register of BAR 0.
pub fn read(device: &dyn Device, offset: u64) -> Result<u32, String> {
    device.read32(0, offset).map_err(register_error)
}

/// Writes a 32-bit register of BAR 0.
pub fn write(device: &dyn Device, offset: u64, value: u32) -> Result<(), String> {
    device.write32(0, offset, value).map_err(register_error)
}

/// Waits (1 ms at a time) until `done`, at most `timeout_ns`; the error
/// names `what`.
pub async fn wait(
    timeout_ns: u64,
    what: &str,
    mut done: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = now_ns() + timeout_ns;
    loop {
        if done()? {
            return Ok(());
        }
        if now_ns() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        sleep(Duration::from_millis(1)).await;
    }
}

/// Reads the link's state and speed (Mb/s) from the device: each driver's
/// own registers. (A trait rather than a function pointer: the vet refuses
/// `fn(..)` types in untrusted code.)
pub trait LinkReader: Send + Sync {
    fn link(&self, device: &dyn Device) -> Result<(bool, u32), String>;
}

/// An Intel NIC driver's state; it implements `Net` and `Control`.
pub struct Nic {
    device: Box<dyn Device>,
    /// "82576", "82599" (for the console).
    model: &'static str,
    /// Link state and speed (Mb/s), read from the device.
    link: Box<dyn LinkReader>,
    mac: Once<[u8; 6]>,
    failed: Once<String>,
    queues: Once<Vec<Mutex<QueuePair>>>,
    ready: AtomicBool,
}

impl Nic {
    pub fn new(device: Box<dyn Device>, model: &'static str, link: Box<dyn LinkReader>) -> Nic {
        Nic {
            device,
            model,
            link,
            mac: Once::new(),
            failed: Once::new(),
            queues: Once::new(),
            ready: AtomicBool::new(false),
        }
    }

    /// The device capability (for the bring-up).
    pub fn device(&self) -> &dyn Device {
        &*self.device
    }

    /// Records the bring-up's outcome (and logs it).
    pub fn started(&self, result: Result<Started, String>) {
        match result {
            Ok(up) => {
                let m = up.mac;
                self.mac.call_once(|| m);
                let count = up.queues.len();
                self.queues
                    .call_once(|| up.queues.into_iter().map(Mutex::new).collect());
                self.ready.store(true, Ordering::Release);
                let speed = self.info().map(|i| i.speed).unwrap_or(0);
                log(&format!(
                    "{} {}: link up at {speed} Mb/s, {count} queue pair{}, {} receive buffers posted",
                    self.model,
                    mac_text(m),
                    if count == 1 { "" } else { "s" },
                    (usize::from(ENTRIES) - 1) * count
                ));
            }
            Err(reason) => {
                log(&format!("the NIC did not start: {reason}"));
                self.failed.call_once(|| reason);
            }
        }
    }
}

impl Nic {
    /// Queue pair `queue`, once the device is up.
    fn queue(&self, queue: u16) -> Option<&Mutex<QueuePair>> {
        self.queues.get()?.get(usize::from(queue))
    }

    /// Every queue pair's counters, added up.
    fn total_counters(&self) -> NetCounters {
        let mut total = NetCounters::default();
        for queue in self.queues.get().map(Vec::as_slice).unwrap_or(&[]) {
            let c = queue.lock().counters;
            total.rx_packets += c.rx_packets;
            total.rx_bytes += c.rx_bytes;
            total.rx_dropped += c.rx_dropped;
            total.tx_packets += c.tx_packets;
            total.tx_bytes += c.tx_bytes;
            total.tx_dropped += c.tx_dropped;
        }
        total
    }
}

impl Net for Nic {
    fn info(&self) -> RpcResult<NetInfo> {
        let (link_up, speed) = if self.ready.load(Ordering::Acquire) {
            self.link.link(&*self.device).unwrap_or((false, 0))
        } else {
            (false, 0)
        };
        Ok(NetInfo {
            mac: self.mac.get().copied().unwrap_or([0; 6]),
            link_up,
            speed,
            queues: self.queues.get().map_or(0, |q| q.len() as u16),
        })
    }

    fn receive(&self, queue: u16, buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        match self.queue(queue) {
            Some(q) => Ok(q.lock().receive(&*self.device, buffers)),
            None => Ok(buffers), // not up (or no such queue): nothing arrived
        }
    }

    fn transmit(&self, queue: u16, packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        match self.queue(queue) {
            Some(q) => Ok(q.lock().transmit(&*self.device, packets)),
            None => Ok(packets), // not up (or no such queue): nothing sent, all given back
        }
    }

    fn counters(&self, queue: u16) -> RpcResult<NetCounters> {
        Ok(self
            .queue(queue)
            .map(|q| q.lock().counters)
            .unwrap_or_default())
    }
}

impl NetExerciser for Nic {
    fn run(&self, queue: u16, frames: u32, batch: u32, loopback: bool) -> RpcResult<u64> {
        interfaces::net::exercise(self, queue, frames, batch, loopback)
    }
}

impl Control for Nic {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        let counters = self.total_counters();
        Ok(match op {
            0 => u64::from(self.info()?.link_up),
            1 => counters.rx_packets,
            2 => counters.tx_packets,
            3 => counters.rx_dropped,
            _ => u64::from(self.failed.get().is_some()),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: 1 if the link is up\n1: frames received (all queues)\n2: frames sent (all queues)\n3: received frames refused\n4: 1 if the device failed to start\n5: the NIC, in words, with each queue pair's counters",
            ),
            5 => {
                let info = self.info()?;
                let m = info.mac;
                let state = match (self.failed.get(), self.ready.load(Ordering::Acquire)) {
                    (Some(reason), _) => format!("failed: {reason}"),
                    (None, true) if info.link_up => format!("link up at {} Mb/s", info.speed),
                    (None, true) => String::from("link down"),
                    (None, false) => String::from("starting"),
                };
                let mut text = format!(
                    "{} {}, {state}, {} queue pair{}",
                    self.model,
                    mac_text(m),
                    info.queues,
                    if info.queues == 1 { "" } else { "s" }
                );
                for (i, queue) in self.queues.get().into_iter().flatten().enumerate() {
                    let c = queue.lock().counters;
                    text.push_str(&format!(
                        "\nqueue {i}: {} frames received, {} sent, {} refused",
                        c.rx_packets, c.tx_packets, c.rx_dropped
                    ));
                }
                Text::answer(&text)
            }
            _ => Ok(None),
        }
    }
}
