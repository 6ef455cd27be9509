//! Parked calls: the proxied calls a domain has pending in others, and
//! what becomes of them when it dies.
//!
//! A generated proxy whose call is suspended in the callee registers it
//! here ([`park`], see `rrpc::proxy::Runtime::park`) under its caller's
//! slot, and ends the registration when the call completes or is dropped
//! ([`unpark`]). If the caller dies first, its registrations are the
//! *orphans*: the callee's futures, which may hold a device queue, a lock
//! or memory, are dropped inside the callees when the caller is reclaimed
//! ([`drop_orphans`]).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use executor::OwnerId;
use spin::Mutex;

use super::MAX_SLOTS;
use super::entry::enter;
use super::lifecycle::{Domain, get, slot_of};
use crate::{cpu, sched, time};

/// Pending proxied calls per caller slot (see `rrpc::proxy::Runtime::park`).
static PARKED: [Mutex<Vec<rrpc::proxy::Parked>>; MAX_SLOTS] =
    [const { Mutex::new(Vec::new()) }; MAX_SLOTS];
/// Whether a slot's current incarnation was told it has too many.
static PARKED_FULL_WARNED: [AtomicBool; MAX_SLOTS] = [const { AtomicBool::new(false) }; MAX_SLOTS];

/// Pending calls registered per domain at most: the registrations are
/// kernel memory, and a domain must not be able to exhaust it (256 domains
/// at the limit take 2 MiB). Past it a call goes unregistered (if its
/// caller then dies, the callee's future is left as it is) and the first
/// refusal is logged.
pub const MAX_PARKED: usize = 256;

/// Registers a pending proxied call of `parked.caller` (a domain); false if
/// it already has [`MAX_PARKED`].
pub fn park(parked: rrpc::proxy::Parked) -> bool {
    let Some(list) = PARKED.get(slot_of(parked.caller)) else {
        return false;
    };
    let accepted = cpu::kernel_section(|| {
        let mut list = list.lock();
        let room = list.len() < MAX_PARKED;
        if room {
            list.push(parked);
        }
        room
    });
    let slot = slot_of(parked.caller);
    if !accepted
        && !PARKED_FULL_WARNED[slot].swap(true, Ordering::Relaxed)
        && let Some(domain) = get(slot)
    {
        crate::warn!(
            "domain {}: more than {MAX_PARKED} calls pending at once; the rest are not dropped in their callees if it dies",
            domain.name
        );
    }
    accepted
}

/// Ends a registration made by [`park`].
pub fn unpark(caller: OwnerId, cell: *mut ()) {
    if let Some(list) = PARKED.get(slot_of(caller)) {
        cpu::kernel_section(|| {
            let mut list = list.lock();
            if let Some(at) = list
                .iter()
                .position(|p| p.caller == caller && p.cell == cell)
            {
                list.swap_remove(at);
            }
        });
    }
}

/// Pending proxied calls `domain`'s current incarnation has registered.
#[cfg(feature = "ktest")]
pub fn parked_calls(domain: &Domain) -> usize {
    let owner = domain.owner();
    cpu::kernel_section(|| {
        PARKED[domain.slot]
            .lock()
            .iter()
            .filter(|p| p.caller == owner)
            .count()
    })
}

/// The next call the dead incarnation `owner` left pending in another
/// domain (registrations of older incarnations of the slot are stale and
/// skipped: they were handled when those died).
fn next_orphan(slot: usize, owner: OwnerId) -> Option<rrpc::proxy::Parked> {
    cpu::kernel_section(|| {
        let mut list = PARKED[slot].lock();
        while let Some(parked) = list.pop() {
            if parked.caller == owner {
                return Some(parked);
            }
        }
        None
    })
}

/// Drops one call the dead caller left pending: its callee's future,
/// which may hold a device queue, a lock or memory, is dropped inside the
/// callee (an entry: refused if the callee is dead too, contained if it
/// crashes), on the callee's share of the core.
fn drop_orphan(orphan: rrpc::proxy::Parked) {
    let start = time::now_ns();
    // SAFETY: `park`'s contract: the caller is dead and purged, and the
    // cell (on the callee's heap) has not been unregistered, so the drop
    // function may run on it inside the callee. What the callee's future
    // may read of the caller's (lent `RRef`s, kept alive while lent, and
    // the copies of their handles in the caller's heap) is still there:
    // the caller's `RRef`s and heap are reclaimed only after this.
    let dropped = enter(orphan.callee, || unsafe { (orphan.drop)(orphan.cell) });
    crate::share::charge(orphan.callee, start, time::now_ns());
    if let Err(e) = dropped {
        crate::debug!("orphaned call into {} not dropped: {e}", orphan.callee);
    }
}

/// Reclaim's step for the calls `domain`'s dead (current) incarnation left
/// pending in others: drops each, then runs `then(domain)` (the rest of
/// the reclaim). They are dropped by a kernel task that yields between
/// them (each may take up to the watchdog's budget, and there may be
/// `MAX_PARKED`: done inline, they would hold this core for seconds),
/// unless the core's task table is (nearly) full.
pub(super) fn drop_orphans(domain: &'static Domain, then: fn(&'static Domain)) {
    let (slot, owner) = (domain.slot, domain.owner());
    PARKED_FULL_WARNED[slot].store(false, Ordering::Relaxed);
    let has_orphans = cpu::kernel_section(|| !PARKED[slot].lock().is_empty());
    if has_orphans {
        let exec = sched::this_executor();
        // Leave the kernel room: if the core's table is (nearly) full,
        // do it here (the orphans wait in `PARKED`, so nothing is lost
        // if the spawn fails).
        // (The task is the kernel's memory, whoever runs this.)
        if exec.task_count() + 16 < exec.capacity()
            && cpu::kernel_section(|| {
                sched::spawn(async move {
                    while let Some(orphan) = next_orphan(slot, owner) {
                        drop_orphan(orphan);
                        executor::yield_now().await;
                    }
                    then(domain);
                })
                .map(|h| h.detach())
                .is_ok()
            })
        {
            return;
        }
        while let Some(orphan) = next_orphan(slot, owner) {
            drop_orphan(orphan);
        }
    }
    then(domain);
}

/// Forgets every registration left under `slot` (at the end of reclaim).
pub(super) fn forget(slot: usize) {
    // Its capacity too: a dead domain keeps nothing on the kernel heap
    // (the fault campaign checks the heap to the byte).
    cpu::kernel_section(|| *PARKED[slot].lock() = Vec::new());
}
