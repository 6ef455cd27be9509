//! The per-core async executor.
//!
//! Every core runs one [`Executor`]; every task belongs to exactly one
//! executor and one owner (a domain id). The design follows from the
//! kernel's needs:
//!
//! - **Wakers are task ids.** A waker's data word *is* the packed
//!   [`TaskId`] (executor, slot, generation): cloning copies a word, dropping
//!   does nothing, waking allocates nothing and takes no lock. A killed
//!   domain therefore leaks nothing through wakers it stored, and waking a
//!   finished, aborted or reused slot is a harmless no-op (the generation no
//!   longer matches).
//! - **A task is queued at most once.** Each slot has one atomic state word
//!   holding its generation and flags; a wake sets `QUEUED` with a
//!   compare-and-swap that also checks the generation, and only the winner
//!   pushes the id into the lock-free ready queue. Interrupt handlers and
//!   other cores may wake tasks.
//! - **Only the owning executor touches futures.** Other contexts touch
//!   atomics and lock-free queues only. Spawning from anywhere takes a free
//!   slot from a lock-free free list, fills it, and publishes it.
//! - **Cancellation never polls again.** `abort` marks the slot and queues
//!   it; the owner sees the mark before polling and drops the future.
//!   `purge_owner` (crashed domains) *forgets* futures instead: their memory
//!   belongs to a heap that is reclaimed wholesale, and no code of a dead
//!   domain may run.
//! - **Idle without lost wake-ups.** [`Executor::prepare_to_sleep`] publishes
//!   "asleep" and then re-checks for work; a waker publishes work and then
//!   checks "asleep" (both sequentially consistent), so at least one side
//!   sees the other and the sleeper is notified (an IPI in the kernel).
//!
//! What it must never do: allocate or block in a wake path, poll a cancelled
//! or purged task, or drop a purged task's future.
//!
//! The crate is `no_std` + `alloc` and runs unchanged on the host, where the
//! tests drive it with a recording platform and real threads.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod exec;
mod id;
mod join;
mod registry;
mod timer;
mod waker;
mod wheel;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wheel_tests;

pub use exec::{Executor, Prepared, RunStats, SpawnError, TaskInfo, TaskState};
pub use id::TaskId;
pub use join::{JoinError, JoinHandle};
pub use timer::{
    Interval, MAX_TIMERS, MAX_TIMERS_PER_GROUP, Sleep, YieldNow, interval, now_ns, sleep,
    sleep_until, yield_now,
};
pub use waker::{WakeSlot, current_task, task_id_of, task_waker, task_waker_vtable, wake_task};
pub use wheel::{TimerKey, TimerWheel};

use core::future::Future;
use core::task::Poll;

/// The domain that owns a task ([`OwnerId::KERNEL`] for the kernel): the
/// owner type `rrpc` and the kernel use too.
pub use owner::{AtomicOwnerId, OwnerId};

/// Most executors that can exist at once (one per core in the kernel).
pub const MAX_EXECUTORS: usize = 256;

/// What a poll of a task came to, as reported by [`Platform::poll_task`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    Ready,
    Pending,
    /// The owner crashed during the poll: forget the task (never drop it).
    Crashed,
    /// Not polled now: its owner has had more than its share of the core
    /// (see the kernel's fair share). The executor polls it again at the
    /// given time (nanoseconds, [`Platform::now_ns`]), or sooner if it is
    /// woken.
    Deferred(u64),
}

/// What the executor needs from its environment (the kernel, or a test).
pub trait Platform: Sync + 'static {
    /// Monotonic nanoseconds.
    fn now_ns(&self) -> u64;
    /// Executor `executor_id` announced it was going to sleep and a task
    /// became ready on it: wake it up. Must not allocate or block.
    fn notify(&self, executor_id: usize);
    /// The executor running in the calling context, if any.
    fn current_executor(&self) -> Option<usize>;
    /// Every poll of a task goes through here, so the kernel can make it a
    /// domain entry (switch the current domain, contain a crash).
    fn poll_task(&self, owner: OwnerId, poll: &mut dyn FnMut() -> Poll<()>) -> PollOutcome {
        let _ = owner;
        match poll() {
            Poll::Ready(()) => PollOutcome::Ready,
            Poll::Pending => PollOutcome::Pending,
        }
    }
    /// Runs executor bookkeeping that may allocate (timer-wheel growth) on
    /// behalf of whatever task is running: the kernel makes it use the
    /// kernel heap, not the running domain's. Default: just run it.
    fn run_as_kernel(&self, f: &mut dyn FnMut()) {
        f();
    }
    /// Runs a short update of the executor's shared state (a wake-up's
    /// mark and enqueue, a spawn's slot) that must not be abandoned
    /// half-way: the kernel may unwind the running domain at any
    /// instruction outside such a section (its watchdog), and a queue slot
    /// reserved but never written would stall every later pop, a task
    /// marked queued but never enqueued would never run again.
    /// Allocations still belong to the running context. Default: just run.
    fn critical(&self, f: &mut dyn FnMut()) {
        f();
    }
    /// Dropping an aborted task runs its owner's destructors: the kernel
    /// makes this a domain entry too. If `drop` is not called (the owner is
    /// dead), the task is abandoned. Default: just drop.
    fn drop_task(&self, owner: OwnerId, drop: &mut dyn FnMut()) {
        let _ = owner;
        drop();
    }
    /// This executor has removed every task of `owner` after
    /// [`Executor::purge_owner`] and will never touch their memory again
    /// (the kernel waits for every core's call before reclaiming a dead
    /// domain's heap).
    fn purge_done(&self, executor_id: usize, owner: OwnerId) {
        let _ = (executor_id, owner);
    }
    /// A batch of task polls starts ([`Executor::run`] found a ready task);
    /// [`batch_end`](Self::batch_end) follows once the batch is over. The
    /// kernel holds its core's share of the RRef registry in between.
    /// Default: nothing.
    fn batch_begin(&self) {}
    /// The batch started by [`batch_begin`](Self::batch_begin) is over.
    fn batch_end(&self) {}
    /// Asked after each poll of a batch: true ends the batch early, so that
    /// timers fire and purges apply before more tasks are polled (a batch
    /// of long polls would otherwise hold every timer back). Default: never.
    fn end_batch_early(&self) -> bool {
        false
    }
}

/// Spawns on the executor of the calling context.
///
/// # Panics
/// If the calling context has no executor.
pub fn spawn<T: Send + 'static>(
    owner: OwnerId,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    Executor::current()
        .expect("spawn outside an executor")
        .spawn(owner, fut)
}

/// Spawns on executor `executor_id` (any context may call this).
pub fn spawn_on<T: Send + 'static>(
    executor_id: usize,
    owner: OwnerId,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    registry::get(executor_id)
        .ok_or(SpawnError::NoSuchExecutor)?
        .spawn(owner, fut)
}
