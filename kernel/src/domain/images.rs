//! Built-in domain images: domain crates (`domains/*`, each
//! `#![forbid(unsafe_code)]`) linked into the kernel image until domains
//! are built and loaded as separate images.
//!
//! Each exports an entry of type [`domain_sdk::Entry`]; the kernel runs it
//! inside the new domain and keeps the returned [`Service`] object, which
//! lives in the domain's heap: it is only used inside entries and is
//! forgotten, never dropped, when the domain dies. Domains reach the kernel
//! through a per-slot [`domain_sdk::Kernel`] handle.

use alloc::boxed::Box;
use alloc::string::String;

use domain_sdk::{Entry, Kernel, RpcError, RpcResult, SpawnError, Task};
use executor::OwnerId;
pub use interfaces::service::Service;
use spin::Mutex;

use super::{Domain, EntryError, State};

pub struct Image {
    pub name: &'static str,
    pub description: &'static str,
    pub entry: Entry,
}

pub static IMAGES: &[Image] = &[
    Image {
        name: "counter",
        description: "counts calls; a background task ticks every 10 ms",
        entry: domain_counter::init,
    },
    Image {
        name: "client",
        description: "calls 'counter' every 20 ms, counting successes and errors",
        entry: domain_client::init,
    },
    Image {
        name: "idle",
        description: "exports a service that echoes its argument; no tasks",
        entry: domain_idle::init,
    },
    Image {
        name: "broken",
        description: "panics during initialisation (to show it is contained)",
        entry: domain_broken::init,
    },
];

pub fn image(name: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| i.name == name)
}

/// Exported objects, by domain slot (see the module doc).
static EXPORTS: [Mutex<Option<Box<dyn Service>>>; super::MAX_SLOTS] =
    [const { Mutex::new(None) }; super::MAX_SLOTS];

/// Kernel services for the domain in one slot (always its current
/// incarnation).
pub struct Handle {
    slot: usize,
}

static HANDLES: [Handle; super::MAX_SLOTS] = {
    let mut handles = [const { Handle { slot: 0 } }; super::MAX_SLOTS];
    let mut i = 0;
    while i < super::MAX_SLOTS {
        handles[i] = Handle { slot: i };
        i += 1;
    }
    handles
};

impl Kernel for Handle {
    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        let owner = super::get(self.slot).map(|d| d.owner()).unwrap_or(0);
        if owner == 0 || crate::cpu::current_owner() != owner {
            // Only the domain itself, while running, may spawn as itself.
            return Err(SpawnError::NotInDomain);
        }
        crate::sched::this_executor()
            .spawn(owner, task)
            .map(|h| h.detach())
            .map_err(|_| SpawnError::Full)
    }

    fn call(&self, domain: &str, op: u32, arg: u64) -> RpcResult<u64> {
        let target = super::find(domain).ok_or(RpcError::NoSuchDomain)?;
        Ok(call(target, op, arg)?)
    }

    fn log(&self, message: &str) {
        let name = super::get(self.slot).map_or("?", |d| d.name.as_str());
        crate::info!("[{name}] {message}");
    }
}

/// Runs a domain's entry function (inside the domain) and keeps what it
/// exports.
pub fn run_entry(owner: OwnerId, entry: Entry) -> Result<(), String> {
    let slot = (owner >> 16) as usize;
    let service = entry(&HANDLES[slot])?;
    let previous = crate::cpu::kernel_section(|| EXPORTS[slot].lock().replace(service));
    // A previous incarnation's object belongs to its (reclaimed) heap.
    core::mem::forget(previous);
    Ok(())
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
