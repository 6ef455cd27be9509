//! The domain manager: domains, their incarnations, entry, crash and
//! reclaim.
//!
//! A domain is a named slot (1..MAX_SLOTS) with a private heap and a
//! generation. Each *incarnation* (a start or restart) is identified by an
//! owner id (`executor::OwnerId`: slot and generation, the type the executor
//! and `rrpc` share): tasks, heap allocations and
//! entries carry it, so nothing of an old incarnation can be confused with
//! the new one after a restart.
//!
//! Life cycle: `Alive` → (crash or kill) `Poisoned` → (no core inside, every
//! executor has dropped its tasks) `Dead`, when its heap is reclaimed
//! wholesale → (restart) `Alive` with the next generation.
//!
//! Every execution of domain code goes through [`enter`]: a call, each poll
//! of one of its tasks, the drop of one of its tasks. `enter` checks the
//! incarnation is alive, makes it the core's current owner (so allocations
//! go to its heap) and runs the code under a continuation with a watchdog
//! budget. A panic, CPU exception or overrun there poisons the incarnation:
//! later entries fail at once, tasks suspended on it are woken, its tasks
//! are purged from every executor without being polled or dropped, and its
//! heap is reclaimed once every executor has confirmed the purge. Each
//! confirms at the top of its run loop, where its core runs no domain code,
//! so this is also a grace period after which no core is inside the dead
//! incarnation (entries need no shared counter: see `cont::Gate`).
//!
//! | module        | what                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `lifecycle`   | the `Domain` record and table; create, start, restart, kill, poison, reclaim |
//! | `entry`       | `enter`/`enter_raw` (one core), the watchdog budget, the proxy runtime |
//! | `parking`     | proxied calls pending in other domains; dropping a dead caller's |
//! | `supervision` | which domain may restart which after a crash              |
//! | `names`       | the name service: exports by slot, `lookup`, `proxy`, `call` |
//! | `services`    | the kernel services a domain sees (`domain_sdk::Kernel`)   |
//! | `heap`        | private domain heaps                                        |
//! | `loaded`      | images from the signed boot archive, mapped per slot        |
//! | `policy`      | what the signed manifest grants each image                  |
//!
//! The rest of the kernel uses the items re-exported here.

mod entry;
mod error;
pub mod heap;
mod lifecycle;
pub mod loaded;
pub mod logs;
mod names;
mod parking;
pub mod policy;
mod services;
mod supervision;

#[cfg(feature = "ktest")]
pub use entry::EntryError;
pub use entry::{DEFAULT_BUDGET_NS, budget_ns, enter, proxy_runtime, set_budget_ns};
#[cfg_attr(not(feature = "ktest"), allow(unused_imports))]
pub use error::{DomainError, ImageError, InitError};
pub use heap::MAX_SLOTS;
use lifecycle::slot_of;
pub use lifecycle::{
    Domain, Source, State, all, create_from, find, get, kill, purge_done, restart, wait_dead,
};
#[cfg(feature = "ktest")]
pub use names::entry_cap;
pub use names::lookup;
pub use names::{call, call_text, check_name, export_names, proxy};
#[cfg(feature = "ktest")]
pub use parking::{MAX_PARKED, parked_calls};
#[cfg(feature = "ktest")]
pub use services::MAX_TASKS;
pub use services::SERVICES;
pub use supervision::supervisor_name;
