//! Built-in domain images, linked into the kernel image.
//!
//! Until the IDL compiler and separately built images land (rrpc/, issue
//! 4), built-in domains export one object implementing [`Service`], a
//! deliberately tiny request interface (`call(op, arg) -> u64`). The object
//! lives in the domain's own heap; every call into it is a domain entry.
//! The examples exercise the machinery: a counter with a background task,
//! and a client that calls it in a loop and survives its crashes.

use alloc::boxed::Box;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use executor::OwnerId;
use spin::Mutex;

use super::{Domain, EntryError, State};

/// What a built-in domain exports.
pub trait Service: Send + Sync {
    fn call(&self, op: u32, arg: u64) -> u64;
}

pub struct Image {
    pub name: &'static str,
    pub description: &'static str,
    /// Runs inside the new domain (its heap, under its continuation).
    pub init: fn(OwnerId) -> Result<(), String>,
}

pub static IMAGES: &[Image] = &[
    Image {
        name: "counter",
        description: "counts calls; a background task ticks every 10 ms",
        init: counter_init,
    },
    Image {
        name: "client",
        description: "calls 'counter' every 20 ms, counting successes and errors",
        init: client_init,
    },
    Image {
        name: "idle",
        description: "exports a service that echoes its argument; no tasks",
        init: idle_init,
    },
    Image {
        name: "broken",
        description: "panics during initialisation (to show it is contained)",
        init: broken_init,
    },
];

pub fn image(name: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| i.name == name)
}

/// Exported objects, by domain slot. The `Box` points into the domain's
/// heap: it is only used inside an entry, and forgotten, never dropped, when
/// the domain dies.
static EXPORTS: [Mutex<Option<Box<dyn Service>>>; super::MAX_SLOTS] =
    [const { Mutex::new(None) }; super::MAX_SLOTS];

/// Called by a domain's init to publish its service.
pub fn export(owner: OwnerId, service: Box<dyn Service>) {
    let slot = (owner >> 16) as usize;
    let previous = crate::cpu::kernel_section(|| EXPORTS[slot].lock().replace(service));
    // A previous incarnation's object belongs to its (reclaimed) heap.
    core::mem::forget(previous);
}

/// Forgets a dead incarnation's export (its memory went with the heap).
pub fn forget_export(slot: usize) {
    core::mem::forget(EXPORTS[slot].lock().take());
}

/// Calls domain `domain`'s service as a domain entry.
pub fn call(domain: &'static Domain, op: u32, arg: u64) -> Result<u64, EntryError> {
    let owner = domain.owner();
    if domain.state() != State::Alive {
        return Err(EntryError::NotAlive);
    }
    super::enter(owner, || {
        // Never hold a kernel lock while domain code runs: if it crashed,
        // the lock would stay taken. The object cannot go away meanwhile:
        // exports change only at init and at reclaim, and reclaim waits until
        // no core is inside the domain (we are).
        let service: Option<*const dyn Service> = EXPORTS[domain.slot]
            .lock()
            .as_ref()
            .map(|s| &**s as *const dyn Service);
        // SAFETY: see above; the pointer is to a live object of this
        // incarnation, used only within this entry.
        service.map(|s| unsafe { (*s).call(op, arg) })
    })?
    .ok_or(EntryError::NotAlive)
}

// ---- counter ---------------------------------------------------------------

struct Counter {
    calls: AtomicU64,
    ticks: &'static AtomicU64,
}

impl Service for Counter {
    fn call(&self, op: u32, arg: u64) -> u64 {
        match op {
            0 => self.calls.fetch_add(1, Ordering::Relaxed) + 1,
            1 => self.ticks.load(Ordering::Relaxed),
            _ => arg,
        }
    }
}

fn counter_init(owner: OwnerId) -> Result<(), String> {
    let ticks: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    executor::spawn(owner, async move {
        let mut interval = executor::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
            ticks.fetch_add(1, Ordering::Relaxed);
        }
    })
    .map_err(|e| alloc::format!("spawn: {e}"))?
    .detach();
    export(
        owner,
        Box::new(Counter {
            calls: AtomicU64::new(0),
            ticks,
        }),
    );
    Ok(())
}

// ---- client ----------------------------------------------------------------

struct ClientStats {
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Service for &'static ClientStats {
    fn call(&self, op: u32, _arg: u64) -> u64 {
        match op {
            0 => self.ok.load(Ordering::Relaxed),
            _ => self.errors.load(Ordering::Relaxed),
        }
    }
}

fn client_init(owner: OwnerId) -> Result<(), String> {
    let stats: &'static ClientStats = Box::leak(Box::new(ClientStats {
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    }));
    executor::spawn(owner, async move {
        loop {
            executor::sleep(Duration::from_millis(20)).await;
            let result = crate::cpu::kernel_section(|| super::find("counter"))
                .map(|counter| call(counter, 0, 0));
            match result {
                Some(Ok(_)) => stats.ok.fetch_add(1, Ordering::Relaxed),
                _ => stats.errors.fetch_add(1, Ordering::Relaxed),
            };
        }
    })
    .map_err(|e| alloc::format!("spawn: {e}"))?
    .detach();
    export(owner, Box::new(stats));
    Ok(())
}

// ---- idle ------------------------------------------------------------------

struct Echo;

impl Service for Echo {
    fn call(&self, _op: u32, arg: u64) -> u64 {
        arg
    }
}

fn idle_init(owner: OwnerId) -> Result<(), String> {
    export(owner, Box::new(Echo));
    Ok(())
}

fn broken_init(_owner: OwnerId) -> Result<(), String> {
    let table: alloc::vec::Vec<u32> = alloc::vec![1, 2, 3];
    let index = core::hint::black_box(7);
    // Deliberately out of bounds: a bug in a domain's initialisation.
    Err(alloc::format!("unreachable: {}", table[index]))
}
