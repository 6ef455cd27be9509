//! What the Intel NIC drivers share above the rings: the driver's state
//! (the device capability, the queue pair once the device is up, the MAC,
//! why it failed) and the `Net` and `Control` interfaces over it. A
//! driver supplies the bring-up (its datasheet's) and how to read the
//! link; [`Nic::started`] records the outcome.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use domain_sdk::{Device, DeviceError, Mutex, Once, RRef, RpcResult, log, now_ns, sleep};
use interfaces::control::{Control, HELP, Text};
use interfaces::net::{Net, NetCounters, NetExerciser, NetInfo, Packets};

use crate::queue::{ENTRIES, QueuePair};

/// What a bring-up gives: the MAC and the queue pair, rings posted.
pub struct Started {
    pub mac: [u8; 6],
    pub queue: QueuePair,
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
    queue: Mutex<Option<QueuePair>>,
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
            queue: Mutex::new(None),
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
                *self.queue.lock() = Some(up.queue);
                self.ready.store(true, Ordering::Release);
                let speed = self.info().map(|i| i.speed).unwrap_or(0);
                log(&format!(
                    "{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}: link up at {speed} Mb/s, {} receive buffers posted",
                    self.model,
                    m[0],
                    m[1],
                    m[2],
                    m[3],
                    m[4],
                    m[5],
                    ENTRIES - 1
                ));
            }
            Err(reason) => {
                log(&format!("the NIC did not start: {reason}"));
                self.failed.call_once(|| reason);
            }
        }
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
            queues: 1,
        })
    }

    fn receive(&self, queue: u16, buffers: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queue.lock();
        match guard.as_mut().filter(|_| queue == 0) {
            Some(q) => Ok(q.receive(&*self.device, buffers)),
            None => Ok(buffers), // not up (or no such queue): nothing arrived
        }
    }

    fn transmit(&self, queue: u16, packets: RRef<Packets>) -> RpcResult<RRef<Packets>> {
        let mut guard = self.queue.lock();
        match guard.as_mut().filter(|_| queue == 0) {
            Some(q) => Ok(q.transmit(&*self.device, packets)),
            None => Ok(packets), // not up: nothing sent, all given back
        }
    }

    fn counters(&self, queue: u16) -> RpcResult<NetCounters> {
        let guard = self.queue.lock();
        Ok(guard
            .as_ref()
            .filter(|_| queue == 0)
            .map(|q| q.counters)
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
        let counters = self.counters(0)?;
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
                "0: 1 if the link is up\n1: frames received\n2: frames sent\n3: received frames refused\n4: 1 if the device failed to start\n5: the NIC, in words",
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
                Text::answer(&format!(
                    "{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {state}, {} queue pair",
                    self.model, m[0], m[1], m[2], m[3], m[4], m[5], info.queues
                ))
            }
            _ => Ok(None),
        }
    }
}
