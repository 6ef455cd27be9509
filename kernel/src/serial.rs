//! The serial console (a 16550 UART: COM1, or the port the firmware's ACPI
//! SPCR table names) output and input, and the `print!`/log macros.
//!
//! Output is polled and serialised by a spin lock taken with interrupts off,
//! so interrupt handlers and every core may log. Fatal paths (panic, kernel
//! exceptions) use [`emergency_write`], which never waits for the lock.
//! Input arrives by interrupt (IRQ 4 through the IOAPIC) into a lock-free
//! byte queue that the console task drains (see `console`).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, AtomicU16, Ordering};

use crossbeam_queue::ArrayQueue;
use spin::{Mutex, Once};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;

/// The console UART's I/O port: COM1 until the ACPI SPCR table names
/// another ([`move_to`]).
static PORT: AtomicU16 = AtomicU16::new(COM1);

struct Uart {
    base: u16,
}

impl Uart {
    fn reg(&self, offset: u16) -> Port<u8> {
        Port::new(self.base + offset)
    }

    fn init(&self) {
        // SAFETY: COM1's registers are owned by this module; the sequence is
        // the standard 16550 setup (8N1, 115200 baud, FIFOs on).
        unsafe {
            self.reg(1).write(0x00); // interrupts off while configuring
            self.reg(3).write(0x80); // DLAB
            self.reg(0).write(0x01); // divisor 1 = 115200 baud
            self.reg(1).write(0x00);
            self.reg(3).write(0x03); // 8 bits, no parity, 1 stop
            // Switching the FIFOs on discards what was received. If input
            // is already waiting (typed or piped in while the machine
            // booted), they stay off: reading the waiting byte first and
            // then switching them on loses whatever arrives in between
            // (the emulator hands over the next byte as soon as the
            // receive register is empty).
            if self.reg(5).read() & 1 == 0 {
                self.reg(2).write(0xC7); // FIFO on, clear, 14-byte threshold
            }
            self.reg(4).write(0x0B); // DTR, RTS, OUT2 (IRQ line enabled)
        }
    }

    fn write_byte(&self, byte: u8) {
        // SAFETY: reading the line-status and writing the data register of
        // our own UART has no memory effects.
        unsafe {
            let mut spins = 0u32;
            while self.reg(5).read() & 0x20 == 0 && spins < 100_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            self.reg(0).write(byte);
        }
    }

    fn try_read_byte(&self) -> Option<u8> {
        // SAFETY: as above; reading the data register pops the RX FIFO.
        unsafe {
            if self.reg(5).read() & 1 != 0 {
                Some(self.reg(0).read())
            } else {
                None
            }
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}

static UART: Mutex<Uart> = Mutex::new(Uart { base: COM1 });

/// The console's input line while it waits for a command: the bytes that
/// draw it again (prompt, typed text, cursor moves back). Output from
/// anywhere else clears the line first and draws it again after itself,
/// so a log line never lands in the middle of what is being typed. Only
/// touched with `UART` held.
struct InputLine {
    active: bool,
    len: usize,
    bytes: [u8; INPUT_LINE_BYTES],
}

/// Room for the prompt, a full line and as many cursor moves.
const INPUT_LINE_BYTES: usize = 16 + 2 * kcore::lineedit::MAX_LINE;

static INPUT_LINE: Mutex<InputLine> = Mutex::new(InputLine {
    active: false,
    len: 0,
    bytes: [0; INPUT_LINE_BYTES],
});

/// "Erase the whole line, cursor to its start" (carriage return, then
/// ANSI erase-in-line).
const CLEAR_LINE: &str = "\r\x1b[K";

/// Counts what it writes and remembers the last byte.
struct Tracking<'a> {
    uart: &'a mut Uart,
    last: u8,
}

impl Write for Tracking<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(&last) = s.as_bytes().last() {
            self.last = last;
        }
        self.uart.write_str(s)
    }
}
static RX: Once<ArrayQueue<u8>> = Once::new();

/// The input queue, created on first use.
fn rx_queue() -> &'static ArrayQueue<u8> {
    RX.call_once(|| ArrayQueue::new(1024))
}
/// Log level threshold: messages with a level above it are dropped.
static LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Log levels, most severe first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "error" => Level::Error,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => return None,
        })
    }

    /// The level numbered `bits` (1 error .. 5 trace).
    pub fn from_u8(bits: u8) -> Option<Level> {
        Some(match bits {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            5 => Level::Trace,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

pub fn init() {
    UART.lock().init();
}

/// Moves the console to the 16550 at I/O port `port` (the firmware's
/// serial console, from the ACPI SPCR table), set up as COM1 was. Called
/// on the BSP at boot, before input interrupts are on.
pub fn move_to(port: u16) {
    let mut uart = UART.lock();
    uart.base = port;
    uart.init();
    PORT.store(port, Ordering::SeqCst);
}

/// The console's I/O port.
pub fn port() -> u16 {
    PORT.load(Ordering::Relaxed)
}

/// Allocates the input queue and turns on the UART's receive interrupt.
/// Call once the heap exists and the IOAPIC routes IRQ 4.
pub fn enable_input_interrupts() {
    rx_queue();
    let uart = UART.lock();
    // SAFETY: IER bit 0 = "received data available" interrupt.
    unsafe { uart.reg(1).write(0x01) };
    INPUT_IRQ.store(true, Ordering::Release);
}

pub fn set_level(level: Level) {
    LOG_LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn level() -> Level {
    match LOG_LEVEL.load(Ordering::Relaxed) {
        1 => Level::Error,
        2 => Level::Warn,
        3 => Level::Info,
        4 => Level::Debug,
        _ => Level::Trace,
    }
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LOG_LEVEL.load(Ordering::Relaxed)
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut uart = UART.lock();
        let line = INPUT_LINE.lock();
        if !line.active {
            let _ = uart.write_fmt(args);
            return;
        }
        // Asynchronous output while a command is being typed: clear the
        // input line, print, then draw the input line again below.
        let _ = uart.write_str(CLEAR_LINE);
        let mut out = Tracking {
            uart: &mut uart,
            last: b'\n',
        };
        let _ = out.write_fmt(args);
        if out.last != b'\n' {
            let _ = uart.write_str("\n");
        }
        for &byte in &line.bytes[..line.len] {
            uart.write_byte(byte);
        }
    });
}

/// The console's own output (its echo, its prompt): written as it is, and
/// then `redraw` (the bytes that draw the input line again) becomes what
/// other output restores after itself, or, with `None`, the console is not
/// waiting for input (a command runs; its output is not interleaved).
pub fn console_write(bytes: &[u8], redraw: Option<&[u8]>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let uart = UART.lock();
        let mut line = INPUT_LINE.lock();
        for &byte in bytes {
            if byte == b'\n' {
                uart.write_byte(b'\r');
            }
            uart.write_byte(byte);
        }
        match redraw {
            Some(redraw) => {
                let len = redraw.len().min(INPUT_LINE_BYTES);
                line.bytes[..len].copy_from_slice(&redraw[..len]);
                line.len = len;
                line.active = true;
            }
            None => line.active = false,
        }
    });
}

/// Writes without taking the lock: for panic and fatal-exception paths
/// where the lock may be held by the code that failed.
pub fn emergency_write(args: fmt::Arguments) {
    let _ = Uart { base: port() }.write_fmt(args);
}

/// Called by the IRQ 4 handler: moves every received byte into the queue.
/// Returns true if anything arrived.
pub fn drain_rx_fifo() -> bool {
    let Some(queue) = RX.get() else {
        return false;
    };
    let uart = Uart { base: port() };
    let mut any = false;
    while let Some(byte) = uart.try_read_byte() {
        let _ = queue.push(byte); // a full queue drops input rather than block
        any = true;
    }
    any
}

/// Next received byte, if any (console task side).
pub fn pop_rx() -> Option<u8> {
    RX.get().and_then(|q| q.pop())
}

static INPUT_IRQ: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// True once COM1's receive interrupt is routed and enabled.
pub fn input_irq_enabled() -> bool {
    INPUT_IRQ.load(Ordering::Acquire)
}

/// Without an input interrupt, moves bytes from the UART into the queue.
pub fn poll_rx_if_no_irq() {
    if !input_irq_enabled() {
        rx_queue();
        x86_64::instructions::interrupts::without_interrupts(drain_rx_fifo);
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::serial::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::serial::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// Prints one log line at `level` (whatever the threshold: the caller
/// decided), in the format of the `log!` macros.
pub fn log_line(level: Level, args: fmt::Arguments) {
    _print(format_args!("[{:>5}] {}\n", level.name(), args));
}

#[macro_export]
macro_rules! log {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::serial::enabled($lvl) {
            $crate::serial::log_line($lvl, format_args!($($arg)*));
        }
    };
}
#[macro_export]
macro_rules! error { ($($arg:tt)*) => ($crate::log!($crate::serial::Level::Error, $($arg)*)); }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => ($crate::log!($crate::serial::Level::Warn, $($arg)*)); }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => ($crate::log!($crate::serial::Level::Info, $($arg)*)); }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => ($crate::log!($crate::serial::Level::Debug, $($arg)*)); }
