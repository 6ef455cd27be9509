//! Each domain's share of a core, bounded over time (not only per entry:
//! the watchdog bounds one entry to its budget, but a domain whose tasks
//! each run just under it, one after another, would otherwise hold the
//! core for as long as it likes).
//!
//! Per core and domain slot, a token bucket in nanoseconds: it fills at
//! [`SHARE_NUM`]/[`SHARE_DEN`] of wall time up to [`BURST_NS`], and every
//! poll of the domain's tasks (with the calls those make into other
//! domains: the task migrates, as in RedLeaf) spends what it took. A domain
//! whose bucket is empty while other work waits on the core (a ready task,
//! or a timer due) has its task polls deferred until the bucket is full
//! enough again: it keeps at least its share when others compete and the
//! whole core when nobody does. What it runs while nobody competes is not
//! a debt: the bucket stands at zero after each such poll starts, so the
//! most a domain can owe when competition appears is one poll (which the
//! watchdog bounds). Kernel tasks are never deferred.
//!
//! Only the owning core touches its buckets, at the top of a task poll
//! (never inside one), so they are plain cells.

use core::cell::Cell;

use crate::cpu;
use crate::domain::MAX_SLOTS;
use executor::OwnerId;

/// A domain's share of a contended core: half.
pub const SHARE_NUM: u64 = 1;
pub const SHARE_DEN: u64 = 2;
/// Most time a domain may run ahead of its share before it is deferred.
pub const BURST_NS: i64 = 20_000_000;
/// Longest single deferral.
pub const MAX_DEFER_NS: u64 = 500_000_000;

/// One domain slot's bucket on one core.
pub struct Bucket {
    /// Nanoseconds it may still run (negative: it ran ahead).
    tokens: Cell<i64>,
    /// When `tokens` was last brought up to date.
    stamp: Cell<u64>,
    /// The incarnation the bucket is for (a new one starts full).
    owner: Cell<OwnerId>,
}

/// A core's buckets.
pub struct Buckets([Bucket; MAX_SLOTS]);

impl Buckets {
    pub const fn new() -> Buckets {
        Buckets(
            [const {
                Bucket {
                    tokens: Cell::new(BURST_NS),
                    stamp: Cell::new(0),
                    owner: Cell::new(OwnerId::KERNEL),
                }
            }; MAX_SLOTS],
        )
    }
}

fn bucket(owner: OwnerId) -> &'static Bucket {
    &cpu::current().shares.0[owner.slot() % MAX_SLOTS]
}

/// Brings `owner`'s bucket up to `now` and returns its tokens.
fn refill(bucket: &Bucket, owner: OwnerId, now: u64) -> i64 {
    if bucket.owner.get() != owner {
        bucket.owner.set(owner);
        bucket.tokens.set(BURST_NS);
        bucket.stamp.set(now);
    }
    let earned = now.saturating_sub(bucket.stamp.get()) * SHARE_NUM / SHARE_DEN;
    let tokens = bucket
        .tokens
        .get()
        .saturating_add(earned.min(i64::MAX as u64) as i64)
        .min(BURST_NS);
    bucket.tokens.set(tokens);
    bucket.stamp.set(now);
    tokens
}

/// Whether a poll of `owner`'s task should wait, and until when: its
/// bucket is empty and something else wants this core.
pub fn defer(owner: OwnerId, now: u64) -> Option<u64> {
    let tokens = refill(bucket(owner), owner, now);
    if tokens >= 0 {
        return None;
    }
    let wait = (tokens.unsigned_abs() * SHARE_DEN / SHARE_NUM).clamp(1, MAX_DEFER_NS);
    let until = now + wait;
    let exec = crate::sched::this_executor();
    // Only a ready task or a timer due before the deferral would end
    // competes for the core. A timer far off does not: counting it held
    // a busy domain (netstack) to half a core, in pauses of a tick, for
    // as long as any task on the core slept (the NIC shadow's recovery
    // task in its 5 ms loop halved TCP through the shadow).
    let contended = exec.has_ready() || exec.next_timer_deadline().is_some_and(|due| due < until);
    if !contended {
        // Nobody competes: the whole core is its share, and what it takes
        // of it now is no debt. (Kept as debt, a domain busy alone on its
        // core for seconds owed hundreds of milliseconds, and the first
        // task that woke there, the console's or a shadow's, stopped it
        // for the longest deferral: half a second without a call to the
        // NIC, every time a driver was crashed under TCP load.) Only what
        // it spends from here on counts if someone comes to want the core.
        bucket(owner).tokens.set(0);
        return None;
    }
    Some(until)
}

/// Sets `owner`'s bucket on this core to `tokens` as of `now` (tests).
#[cfg(feature = "ktest")]
pub fn set_tokens(owner: OwnerId, now: u64, tokens: i64) {
    let bucket = bucket(owner);
    bucket.owner.set(owner);
    bucket.tokens.set(tokens);
    bucket.stamp.set(now);
}

/// `owner`'s task was polled from `start` to `end`.
pub fn charge(owner: OwnerId, start: u64, end: u64) {
    let bucket = bucket(owner);
    let spent = end.saturating_sub(start).min(i64::MAX as u64) as i64;
    bucket.tokens.set(bucket.tokens.get().saturating_sub(spent));
}
