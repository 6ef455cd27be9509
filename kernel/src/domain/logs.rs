//! What domains log: a console level per domain (`log NAME LEVEL`; by
//! default the kernel's) and each domain's recent lines, kept for `log
//! show NAME` whether or not the console showed them.
//!
//! A line is kept if it is at least as severe as `info` or as the
//! domain's level, whichever lets more through; it is printed if it is at
//! least as severe as the domain's level. The ring (4 KiB per domain
//! slot, `kcore::logring`) is allocated on the kernel heap at the slot's
//! first line and kept across incarnations: the lines before a crash are
//! what one wants to read after it.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU8, Ordering};

use kcore::logring::LogRing;
use spin::Mutex;

use super::MAX_SLOTS;
use crate::serial::{self, Level};

/// Bytes of recent lines kept per domain slot.
pub const RING_BYTES: usize = 4096;

/// Each slot's console level (0: the kernel's).
static LEVELS: [AtomicU8; MAX_SLOTS] = [const { AtomicU8::new(0) }; MAX_SLOTS];
/// Each slot's recent lines. Taken only inside kernel sections (no fault
/// the kernel raises in a domain can unwind a holder).
static RINGS: [Mutex<Option<Box<LogRing<RING_BYTES>>>>; MAX_SLOTS] =
    [const { Mutex::new(None) }; MAX_SLOTS];

/// The console level of domain slot `slot` (`None`: the kernel's).
pub fn level(slot: usize) -> Option<Level> {
    match LEVELS.get(slot)?.load(Ordering::Relaxed) {
        0 => None,
        bits => Level::from_u8(bits),
    }
}

/// Sets (or, with `None`, clears) the console level of slot `slot`.
pub fn set_level(slot: usize, level: Option<Level>) {
    if let Some(cell) = LEVELS.get(slot) {
        cell.store(level.map_or(0, |l| l as u8), Ordering::Relaxed);
    }
}

/// Logs `message` for the domain in `slot` (named `name`) at `level`.
pub fn record(slot: usize, name: &str, level: Level, message: &str) {
    let console = level_or_kernel(slot);
    let keep = console.max(Level::Info);
    if level > keep {
        return;
    }
    crate::cpu::kernel_section(|| {
        let text = alloc::format!(
            "{}",
            kcore::fmt::Clipped::new(message, super::services::MAX_LOG)
        );
        if let Some(ring) = RINGS.get(slot) {
            ring.lock()
                .get_or_insert_with(|| Box::new(LogRing::new()))
                .push(crate::time::now_ns(), level as u8, &text);
        }
        if level <= console {
            serial::log_line(level, format_args!("[{name}] {text}"));
        }
    });
}

fn level_or_kernel(slot: usize) -> Level {
    level(slot).unwrap_or_else(serial::level)
}

/// Gives slot `slot` its ring now if it has none (as its first line
/// would): for the fault campaign, whose warm-up must leave the kernel
/// heap with everything it keeps. A domain that logs only when a call
/// fails (`client`) may otherwise log its first line, and get its ring,
/// only in the measured pass.
pub fn reserve(slot: usize) {
    crate::cpu::kernel_section(|| {
        if let Some(ring) = RINGS.get(slot) {
            ring.lock().get_or_insert_with(|| Box::new(LogRing::new()));
        }
    });
}

/// Calls `f(at_ns, level, text)` for the last `n` lines of slot `slot`,
/// oldest first; returns how many older lines were dropped to make room
/// (`None`: the slot never logged).
pub fn show(slot: usize, n: usize, mut f: impl FnMut(u64, Level, &str)) -> Option<u64> {
    crate::cpu::kernel_section(|| {
        let ring = RINGS.get(slot)?.lock();
        // A ring reserved but never written to: nothing logged either.
        let ring = ring.as_ref().filter(|r| !r.is_empty() || r.dropped() > 0)?;
        let mut scratch = alloc::vec![0u8; LogRing::<RING_BYTES>::MAX_TEXT];
        ring.for_each_last(n, &mut scratch, |at, level, text| {
            f(at, Level::from_u8(level).unwrap_or(Level::Info), text)
        });
        Some(ring.dropped())
    })
}
