//! `make push`: a freshly built, signed archive of domain images sent to
//! the running kernel over the second serial port (COM2), so that a
//! rebuilt domain is loaded without a reboot.
//!
//! The host (`tools/push.py`) sends `RVPUSH01`, the archive's length (four
//! bytes, little endian) and the archive. The kernel checks it exactly as
//! it checks the boot archive (the manifest's Ed25519 signature with the
//! key built into the kernel; every image's size and SHA-256 digest when
//! it is loaded), and only then makes it the archive `load` and `restart`
//! use (`domain::loaded::replace_archive`). Domains already running keep
//! the image they were loaded from (a loaded image is a copy in frames of
//! its own). The kernel answers on the same port with one line, `push: ok
//! ...` or `push: refused: ...`, and logs it.
//!
//! Bad input loses nothing: a wrong magic is skipped byte by byte, a
//! length over [`MAX_ARCHIVE`] is refused before anything is stored, a
//! transfer that stops for [`STALL_NS`] is dropped, and an archive that
//! fails its checks leaves the current one in place.
//!
//! Received bytes go from the UART's interrupt into a queue that the
//! receiver task drains; when the queue is full the interrupt is masked
//! until the task has made room (QEMU then holds the rest back: nothing is
//! dropped). Without an IOAPIC the task polls.

use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Poll;
use core::time::Duration;

use crossbeam_queue::ArrayQueue;
use executor::WakeSlot;
use spin::Once;
use x86_64::instructions::port::Port;

const COM2: u16 = 0x2F8;
/// What a push starts with.
pub const MAGIC: &[u8; 8] = b"RVPUSH01";
/// The largest archive taken.
pub const MAX_ARCHIVE: usize = 8 << 20;
/// A transfer with no byte for this long is dropped.
pub const STALL_NS: u64 = 5_000_000_000;

static RX: Once<ArrayQueue<u8>> = Once::new();
static WAKE: WakeSlot = WakeSlot::new();
static PRESENT: AtomicBool = AtomicBool::new(false);
static INTERRUPTS: AtomicBool = AtomicBool::new(false);
/// The receive interrupt was masked because the queue was full.
static PAUSED: AtomicBool = AtomicBool::new(false);

fn reg(offset: u16) -> Port<u8> {
    Port::new(COM2 + offset)
}

/// Finds and sets up COM2 (8N1, FIFOs on). False if there is none (the
/// scratch register does not keep what is written to it).
pub fn init() -> bool {
    // SAFETY: COM2's registers are owned by this module; probing the
    // scratch register and the standard 16550 setup have no memory effects.
    let present = unsafe {
        reg(7).write(0x5A);
        let first = reg(7).read() == 0x5A;
        reg(7).write(0xA5);
        first && reg(7).read() == 0xA5
    };
    if !present {
        return false;
    }
    // SAFETY: as above.
    unsafe {
        reg(1).write(0x00);
        reg(3).write(0x80);
        reg(0).write(0x01);
        reg(1).write(0x00);
        reg(3).write(0x03);
        reg(2).write(0xC7);
        reg(4).write(0x0B);
    }
    RX.call_once(|| ArrayQueue::new(64 * 1024));
    PRESENT.store(true, Ordering::Release);
    true
}

/// Turns the receive interrupt on (once COM2's IRQ is routed to `irq`).
pub fn enable_interrupts() {
    if PRESENT.load(Ordering::Acquire) {
        INTERRUPTS.store(true, Ordering::Release);
        // SAFETY: IER bit 0: received data available.
        unsafe { reg(1).write(0x01) };
    }
}

/// Moves received bytes into the queue; masks the interrupt when it is
/// full. The IRQ 3 handler (and the poller).
pub fn irq() {
    let Some(queue) = RX.get() else {
        return;
    };
    // SAFETY: reading COM2's line status and data registers.
    unsafe {
        while reg(5).read() & 1 != 0 {
            if queue.is_full() {
                reg(1).write(0x00);
                PAUSED.store(true, Ordering::Release);
                break;
            }
            let _ = queue.push(reg(0).read());
        }
    }
    WAKE.wake();
}

fn write_line(line: &str) {
    for byte in line.bytes().chain(core::iter::once(b'\n')) {
        // SAFETY: COM2's line status and data registers.
        unsafe {
            let mut spins = 0u32;
            while reg(5).read() & 0x20 == 0 && spins < 100_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            reg(0).write(byte);
        }
    }
}

/// Next byte, or `None` if nothing came for `STALL_NS`.
async fn next_byte() -> Option<u8> {
    let deadline = crate::time::now_ns() + STALL_NS;
    loop {
        let queue = RX.get()?;
        if let Some(byte) = queue.pop() {
            if PAUSED.load(Ordering::Acquire) && queue.len() < queue.capacity() / 2 {
                PAUSED.store(false, Ordering::Release);
                if INTERRUPTS.load(Ordering::Acquire) {
                    // SAFETY: IER bit 0 back on.
                    unsafe { reg(1).write(0x01) };
                }
                x86_64::instructions::interrupts::without_interrupts(irq);
            }
            return Some(byte);
        }
        if crate::time::now_ns() >= deadline {
            return None;
        }
        if INTERRUPTS.load(Ordering::Acquire) {
            // Woken by the interrupt, or at the latest in 100 ms to look at
            // the deadline.
            let mut timeout = core::pin::pin!(executor::sleep(Duration::from_millis(100)));
            poll_fn(|cx| {
                WAKE.register(cx.waker());
                if !queue.is_empty() || timeout.as_mut().poll(cx).is_ready() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        } else {
            x86_64::instructions::interrupts::without_interrupts(irq);
            if queue.is_empty() {
                executor::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// The receiver task: one push after another, for as long as the kernel
/// runs.
pub async fn receiver() {
    if !PRESENT.load(Ordering::Acquire) {
        return;
    }
    loop {
        // The magic, byte by byte (anything else is skipped).
        let mut matched = 0;
        while matched < MAGIC.len() {
            let Some(byte) = next_byte().await else {
                matched = 0;
                continue;
            };
            matched = if byte == MAGIC[matched] {
                matched + 1
            } else {
                usize::from(byte == MAGIC[0])
            };
        }
        let mut length = [0u8; 4];
        let mut complete = true;
        for byte in &mut length {
            match next_byte().await {
                Some(b) => *byte = b,
                None => complete = false,
            }
        }
        if !complete {
            report(Err(alloc::string::String::from("timed out in the length")));
            continue;
        }
        let length = u32::from_le_bytes(length) as usize;
        if length == 0 || length > MAX_ARCHIVE {
            report(Err(alloc::format!(
                "length {length} is not 1 to {MAX_ARCHIVE} bytes"
            )));
            continue;
        }
        let mut archive = Vec::new();
        if archive.try_reserve_exact(length).is_err() {
            report(Err(alloc::format!(
                "no room for {length} bytes on the kernel heap"
            )));
            continue;
        }
        while archive.len() < length {
            match next_byte().await {
                Some(byte) => archive.push(byte),
                None => break,
            }
        }
        if archive.len() < length {
            report(Err(alloc::format!(
                "timed out after {} of {length} bytes",
                archive.len()
            )));
            continue;
        }
        report(crate::domain::loaded::replace_archive(archive));
    }
}

fn report(result: Result<usize, alloc::string::String>) {
    match result {
        Ok(images) => {
            crate::info!("push: archive with {images} signed images now in use");
            write_line(&alloc::format!("push: ok: {images} signed images"));
        }
        Err(reason) => {
            crate::warn!("push: refused: {reason}");
            write_line(&alloc::format!("push: refused: {reason}"));
        }
    }
}
