//! The executor: a slab of task slots, a lock-free ready queue, a timer
//! wheel, and the run loop body.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

use crossbeam_queue::{ArrayQueue, SegQueue};

use crate::id::TaskId;
use crate::join::{JoinError, JoinHandle, JoinSink, JoinState};
use crate::wheel::TimerWheel;
use crate::{OwnerId, Platform, PollOutcome, registry};

/// Timers each executor's wheel has room for from the start (it grows past
/// this if it must): 256 entries, a few KiB per core. Found by the fault
/// campaign, whose exact account of the kernel heap saw a wheel grow by
/// 272 bytes when a long run set a new record of timers pending at once.
const TIMERS_RESERVED: usize = 256;

/// Slot state word: generation in the high 32 bits, flags in the low.
const ALLOCATED: u64 = 1 << 0;
const QUEUED: u64 = 1 << 1;
const CANCEL: u64 = 1 << 2;
/// Freed while its id was still in the ready queue: goes back to the free
/// list when that entry is popped, so a slot is never queued twice.
const ZOMBIE: u64 = 1 << 3;
const FLAGS: u64 = 0xFFFF_FFFF;

/// Timer granularity.
const TICK_NS: u64 = 1_000_000;

fn generation_of(state: u64) -> u32 {
    (state >> 32) as u32
}

/// A spawned future, type-erased. It holds nothing but the future: the
/// join state lives beside it in the slot ([`TaskEntry`]), so forgetting
/// the future of a crashed owner leaks nothing of ours and calls none of
/// its code.
trait RawTask: Send {
    /// Polls; on completion hands the output to `join`, which is the
    /// `JoinState<Output>` made by the same `spawn`.
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>, join: &dyn JoinSink) -> Poll<()>;
}

impl<F> RawTask for F
where
    F: Future + Send,
    F::Output: Send + 'static,
{
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>, join: &dyn JoinSink) -> Poll<()> {
        match self.poll(cx) {
            Poll::Ready(value) => {
                // `spawn` pairs every future with the join state of its
                // own output type, so the downcast cannot fail.
                if let Some(join) = join.as_any().downcast_ref::<JoinState<F::Output>>() {
                    join.finish(Ok(value));
                }
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

type BoxedTask = Pin<Box<dyn RawTask>>;

/// What a live slot holds.
/// A task ready to spawn: its future boxed and its join state made (every
/// allocation a spawn needs), not yet on any executor. See
/// [`Executor::spawn_prepared_within`].
pub struct Prepared<T> {
    future: BoxedTask,
    join: Arc<JoinState<T>>,
}

impl<T: Send + 'static> Prepared<T> {
    pub fn new(fut: impl Future<Output = T> + Send + 'static) -> Prepared<T> {
        Prepared {
            future: Box::pin(fut),
            join: JoinState::new(TaskId::from_u64(0)),
        }
    }
}

struct TaskEntry {
    future: BoxedTask,
    join: Arc<dyn JoinSink>,
}

struct Slot {
    state: AtomicU64,
    owner: owner::AtomicOwnerId,
    /// Written by a spawner that popped this slot from the free list (so has
    /// it exclusively) before publishing `ALLOCATED`; afterwards read and
    /// cleared only by the owning executor.
    task: UnsafeCell<Option<TaskEntry>>,
}

/// Why a spawn failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// Every task slot of the executor is in use.
    Full,
    NoSuchExecutor,
    /// The owner has as many tasks on this executor as it may
    /// ([`Executor::spawn_within`]).
    Quota,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Full => write!(f, "executor has no free task slot"),
            SpawnError::NoSuchExecutor => write!(f, "no such executor"),
            SpawnError::Quota => write!(f, "the owner's task quota is used up"),
        }
    }
}

/// Owners are counted in this many groups for quotas: by the owner's
/// (the kernel's domain slot), modulo this.
pub const QUOTA_GROUPS: usize = 256;

fn quota_group(owner: OwnerId) -> usize {
    owner.slot() % QUOTA_GROUPS
}

/// What one call to [`Executor::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub polled: usize,
    pub completed: usize,
    pub cancelled: usize,
    pub purged: usize,
    pub timers_fired: usize,
    /// Polls the platform deferred ([`PollOutcome::Deferred`]).
    pub deferred: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Waiting,
    Cancelling,
}

#[derive(Debug, Clone, Copy)]
pub struct TaskInfo {
    pub id: TaskId,
    pub owner: OwnerId,
    pub state: TaskState,
}

pub(crate) enum TimerTarget {
    Task(TaskId),
    Waker(Waker),
}

/// A timer on the wheel: what it wakes, and the quota group of the task
/// that registered it (see [`Executor::timer_room`]).
pub(crate) struct Timer {
    pub(crate) target: TimerTarget,
    pub(crate) group: u16,
}

pub struct Executor {
    id: usize,
    platform: &'static dyn Platform,
    slots: Box<[Slot]>,
    free: ArrayQueue<u32>,
    ready: ArrayQueue<u64>,
    purges: SegQueue<OwnerId>,
    asleep: AtomicBool,
    /// Set while `run` is on the stack: `run` is a safe function, so it
    /// must itself refuse a second, reentrant or concurrent, caller (either
    /// would hand out a second `&mut` to a future being polled).
    running: AtomicBool,
    /// TaskId + 1 of the task being polled, 0 if none.
    current: AtomicU64,
    tasks: AtomicUsize,
    /// Live tasks per quota group (see [`quota_group`]).
    group_tasks: Box<[AtomicU32]>,
    /// Touched only by the owning executor, never across a poll.
    timers: UnsafeCell<TimerWheel<Timer>>,
    /// Timers on the wheel per quota group (owner-only, like the wheel).
    group_timers: Box<[AtomicU32]>,
}

// SAFETY: the `UnsafeCell`s are confined as documented on `Slot::task` and
// `timers`; everything shared between contexts is atomic or a lock-free
// queue.
unsafe impl Sync for Executor {}
// SAFETY: as above.
unsafe impl Send for Executor {}

#[cfg(any(test, feature = "std"))]
std::thread_local! {
    static CURRENT: core::cell::Cell<usize> = const { core::cell::Cell::new(usize::MAX) };
}

static DEFAULT_PLATFORM: spin::Once<&'static dyn Platform> = spin::Once::new();

impl Executor {
    /// Creates an executor with `capacity` task slots and registers it.
    ///
    /// # Panics
    /// If `MAX_EXECUTORS` executors exist already or `capacity` is 0 or
    /// too large.
    pub fn new(platform: &'static dyn Platform, capacity: usize) -> &'static Executor {
        assert!(
            capacity > 0 && capacity <= TaskId::MAX_SLOTS,
            "bad executor capacity {capacity}"
        );
        let id = registry::reserve_id().expect("too many executors");
        DEFAULT_PLATFORM.call_once(|| platform);
        let slots: Vec<Slot> = (0..capacity)
            .map(|_| Slot {
                state: AtomicU64::new(0),
                owner: owner::AtomicOwnerId::new(OwnerId::KERNEL),
                task: UnsafeCell::new(None),
            })
            .collect();
        let free = ArrayQueue::new(capacity);
        for i in 0..capacity {
            let _ = free.push(i as u32);
        }
        let exec = Box::leak(Box::new(Executor {
            id,
            platform,
            slots: slots.into_boxed_slice(),
            free,
            ready: ArrayQueue::new(capacity),
            purges: SegQueue::new(),
            asleep: AtomicBool::new(false),
            running: AtomicBool::new(false),
            current: AtomicU64::new(0),
            tasks: AtomicUsize::new(0),
            group_tasks: (0..QUOTA_GROUPS).map(|_| AtomicU32::new(0)).collect(),
            group_timers: (0..QUOTA_GROUPS).map(|_| AtomicU32::new(0)).collect(),
            timers: UnsafeCell::new(TimerWheel::with_capacity(
                TICK_NS,
                platform.now_ns(),
                TIMERS_RESERVED,
            )),
        }));
        registry::publish(id, exec);
        exec
    }

    /// The executor of the calling context.
    pub fn current() -> Option<&'static Executor> {
        #[cfg(any(test, feature = "std"))]
        {
            let id = CURRENT.with(|c| c.get());
            if id != usize::MAX {
                return registry::get(id);
            }
        }
        registry::get(DEFAULT_PLATFORM.get()?.current_executor()?)
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn platform(&self) -> &'static dyn Platform {
        self.platform
    }

    pub fn task_count(&self) -> usize {
        self.tasks.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Live tasks of every owner in `owner`'s quota group (for the kernel:
    /// every incarnation of its domain slot).
    pub fn group_task_count(&self, owner: OwnerId) -> usize {
        self.group_tasks[quota_group(owner)].load(Ordering::Relaxed) as usize
    }

    pub fn task_count_of(&self, owner: OwnerId) -> usize {
        self.snapshot().iter().filter(|t| t.owner == owner).count()
    }

    /// The live tasks (a racy but harmless snapshot, for diagnostics).
    pub fn snapshot(&self) -> Vec<TaskInfo> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let state = slot.state.load(Ordering::Acquire);
            if state & ALLOCATED == 0 {
                continue;
            }
            let task_state = if state & CANCEL != 0 {
                TaskState::Cancelling
            } else if state & QUEUED != 0 {
                TaskState::Queued
            } else {
                TaskState::Waiting
            };
            out.push(TaskInfo {
                id: TaskId::new(self.id, i, generation_of(state)),
                owner: slot.owner.load(Ordering::Relaxed),
                state: task_state,
            });
        }
        out
    }

    pub(crate) fn current_task(&self) -> Option<TaskId> {
        match self.current.load(Ordering::Relaxed) {
            0 => None,
            raw => Some(TaskId::from_u64(raw - 1)),
        }
    }

    /// Spawns `fut` owned by `owner`. Any context may call this.
    pub fn spawn<T: Send + 'static>(
        &'static self,
        owner: OwnerId,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<JoinHandle<T>, SpawnError> {
        self.spawn_within(owner, fut, usize::MAX)
    }

    /// [`spawn`](Self::spawn), unless `owner`'s quota group already has
    /// `limit` live tasks here ([`SpawnError::Quota`]): so that one owner
    /// cannot take every slot and deny the others.
    pub fn spawn_within<T: Send + 'static>(
        &'static self,
        owner: OwnerId,
        fut: impl Future<Output = T> + Send + 'static,
        limit: usize,
    ) -> Result<JoinHandle<T>, SpawnError> {
        // Allocated before the slot is taken: the rest must not be
        // abandoned half-way (see `Platform::critical`), and nothing in it
        // may allocate (a domain out of heap panics there, where its
        // failure would be the kernel's).
        self.spawn_prepared_within(owner, Prepared::new(fut), limit)
            .map_err(|(e, _prepared)| e)
    }

    /// [`spawn_within`](Self::spawn_within) of a task [`Prepared`] earlier:
    /// allocates nothing, so a spawner may call it where it must not
    /// allocate (holding a lock its allocator's failure path would take).
    /// On an error the task comes back, unspawned, to be dropped where it
    /// was made.
    #[allow(clippy::type_complexity)]
    pub fn spawn_prepared_within<T: Send + 'static>(
        &'static self,
        owner: OwnerId,
        prepared: Prepared<T>,
        limit: usize,
    ) -> Result<JoinHandle<T>, (SpawnError, Prepared<T>)> {
        let group = &self.group_tasks[quota_group(owner)];
        if group.fetch_add(1, Ordering::AcqRel) as usize >= limit {
            group.fetch_sub(1, Ordering::AcqRel);
            return Err((SpawnError::Quota, prepared));
        }
        let Prepared { future, join } = prepared;
        let mut future: Option<BoxedTask> = Some(future);
        let mut spawned = None;
        self.platform.critical(&mut || {
            let Some(index) = self.free.pop() else {
                return;
            };
            let index = index as usize;
            let slot = &self.slots[index];
            let generation = generation_of(slot.state.load(Ordering::Acquire));
            let id = TaskId::new(self.id, index, generation);
            join.set_task(id);
            let task = TaskEntry {
                future: future.take().expect("spawned once"),
                join: join.clone(),
            };
            // SAFETY: popping `index` from the free list gave us the slot
            // exclusively; nobody reads `task` until `ALLOCATED` is
            // published.
            unsafe { *slot.task.get() = Some(task) };
            slot.owner.store(owner, Ordering::Relaxed);
            slot.state.store(
                (u64::from(generation) << 32) | ALLOCATED | QUEUED,
                Ordering::Release,
            );
            self.tasks.fetch_add(1, Ordering::Relaxed);
            self.enqueue(id);
            spawned = Some(());
        });
        match spawned {
            Some(()) => Ok(JoinHandle::new(join)),
            None => {
                group.fetch_sub(1, Ordering::AcqRel);
                let future = future.take().expect("not spawned");
                Err((SpawnError::Full, Prepared { future, join }))
            }
        }
    }

    fn enqueue(&self, id: TaskId) {
        // Cannot fail: a slot is in the queue at most once and the queue
        // holds as many entries as there are slots.
        let pushed = self.ready.push(id.to_u64());
        debug_assert!(pushed.is_ok(), "ready queue overflow");
        if self.platform_current() != Some(self.id) {
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.asleep.load(Ordering::SeqCst) {
                self.platform.notify(self.id);
            }
        }
    }

    fn platform_current(&self) -> Option<usize> {
        #[cfg(any(test, feature = "std"))]
        {
            let id = CURRENT.with(|c| c.get());
            if id != usize::MAX {
                return Some(id);
            }
        }
        self.platform.current_executor()
    }

    /// Sets `flags` on the task if it is still this incarnation and
    /// allocated; queues it if it was not queued. Returns false if stale.
    fn mark(&self, id: TaskId, flags: u64) -> bool {
        let Some(slot) = self.slots.get(id.slot()) else {
            return false;
        };
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            if generation_of(state) != id.generation() || state & ALLOCATED == 0 {
                return false;
            }
            if state & (flags | QUEUED) == flags | QUEUED {
                return true; // nothing to add
            }
            match slot.state.compare_exchange_weak(
                state,
                state | flags | QUEUED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state & QUEUED == 0 {
            self.enqueue(id);
        }
        true
    }

    /// Whether `id` is a task this executor still holds (not completed,
    /// cancelled or purged).
    pub(crate) fn is_live(&self, id: TaskId) -> bool {
        self.slots.get(id.slot()).is_some_and(|slot| {
            let state = slot.state.load(Ordering::Acquire);
            generation_of(state) == id.generation() && state & ALLOCATED != 0
        })
    }

    pub(crate) fn wake(&self, id: TaskId) {
        self.platform.critical(&mut || {
            self.mark(id, 0);
        });
    }

    pub(crate) fn abort(&self, id: TaskId) {
        self.platform.critical(&mut || {
            self.mark(id, CANCEL);
        });
    }

    /// Removes every task of `owner` without polling or dropping it (their
    /// joiners get `OwnerCrashed`). Applied by this executor at the start
    /// of its next `run`; any context may call this.
    pub fn purge_owner(&self, owner: OwnerId) {
        self.purges.push(owner);
        if self.platform_current() != Some(self.id) {
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.asleep.load(Ordering::SeqCst) {
                self.platform.notify(self.id);
            }
        }
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.purges.is_empty()
    }

    pub fn next_timer_deadline(&self) -> Option<u64> {
        // SAFETY: owner-only access to the wheel (see `timers`).
        unsafe { (*self.timers.get()).next_deadline() }
    }

    /// Called with interrupts off before halting: announces the sleep, then
    /// re-checks for work. Returns true if the caller may halt.
    pub fn prepare_to_sleep(&self) -> bool {
        self.asleep.store(true, Ordering::SeqCst);
        let now = self.platform.now_ns();
        let timer_due = self.next_timer_deadline().is_some_and(|d| d <= now);
        if self.has_ready() || timer_due {
            self.asleep.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Called after the halt ends.
    pub fn woke_up(&self) {
        self.asleep.store(false, Ordering::SeqCst);
    }

    pub(crate) fn timers(&self) -> *mut TimerWheel<Timer> {
        self.timers.get()
    }

    /// The quota group of the task being polled (0 outside a task).
    pub(crate) fn current_group(&self) -> u16 {
        self.current_task().map_or(0, |id| {
            quota_group(self.slots[id.slot()].owner.load(Ordering::Relaxed)) as u16
        })
    }

    /// Whether quota group `group` may put one more timer on the wheel:
    /// every group but the kernel's (0) holds at most
    /// [`MAX_TIMERS_PER_GROUP`](crate::timer::MAX_TIMERS_PER_GROUP), so no
    /// domain can fill the wheel and leave the others polling.
    pub(crate) fn timer_room(&self, group: u16) -> bool {
        group == 0
            || (self.group_timers[group as usize].load(Ordering::Relaxed) as usize)
                < crate::timer::MAX_TIMERS_PER_GROUP
    }

    /// Accounts a timer put on (`added`) or taken off the wheel.
    pub(crate) fn count_timer(&self, group: u16, added: bool) {
        let count = &self.group_timers[group as usize];
        if added {
            count.fetch_add(1, Ordering::Relaxed);
        } else {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Timers quota group `group` (see [`quota_group`]) has on the wheel.
    pub fn group_timer_count(&self, owner: OwnerId) -> usize {
        self.group_timers[quota_group(owner)].load(Ordering::Relaxed) as usize
    }

    /// Applies purges, fires due timers, then polls up to `budget` ready
    /// tasks. Must be called only by the executor's own context.
    ///
    /// A call made while `run` is already active on this executor (from
    /// inside a task, or from another thread) does nothing and returns
    /// empty stats.
    pub fn run(&'static self, budget: usize) -> RunStats {
        if self.running.swap(true, Ordering::Acquire) {
            return RunStats::default();
        }
        #[cfg(any(test, feature = "std"))]
        let previous = CURRENT.with(|c| c.replace(self.id));
        let mut stats = RunStats::default();
        while let Some(owner) = self.purges.pop() {
            stats.purged += self.apply_purge(owner);
        }
        // SAFETY: owner-only; no other reference to the wheel is live here
        // (firing wakes tasks, which never touches the wheel).
        let timers = unsafe { &mut *self.timers.get() };
        // Reading the clock is the costliest step of an idle-wheel run.
        if !timers.is_empty() {
            let now = self.platform.now_ns();
            timers.advance(now, |timer| {
                stats.timers_fired += 1;
                self.count_timer(timer.group, false);
                match timer.target {
                    TimerTarget::Task(id) => crate::waker::wake_task(id),
                    TimerTarget::Waker(waker) => waker.wake(),
                }
            });
        }
        if budget > 0
            && let Some(first) = self.ready.pop()
        {
            self.platform.batch_begin();
            self.run_one(TaskId::from_u64(first), &mut stats);
            while stats.polled < budget && !self.platform.end_batch_early() {
                let Some(raw) = self.ready.pop() else {
                    break;
                };
                self.run_one(TaskId::from_u64(raw), &mut stats);
            }
            self.platform.batch_end();
        }
        #[cfg(any(test, feature = "std"))]
        CURRENT.with(|c| c.set(previous));
        self.running.store(false, Ordering::Release);
        stats
    }

    fn run_one(&self, id: TaskId, stats: &mut RunStats) {
        let index = id.slot();
        let slot = &self.slots[index];
        let state = slot.state.load(Ordering::Acquire);
        if state & ZOMBIE != 0 {
            slot.state.store(state & !FLAGS, Ordering::Release);
            let _ = self.free.push(index as u32);
            return;
        }
        if generation_of(state) != id.generation() || state & ALLOCATED == 0 {
            return;
        }
        let state = slot.state.fetch_and(!QUEUED, Ordering::AcqRel);
        let owner = slot.owner.load(Ordering::Relaxed);
        if state & CANCEL != 0 {
            self.finish(index, JoinError::Cancelled, true);
            stats.cancelled += 1;
            return;
        }
        // SAFETY: the slot is allocated to this incarnation and only this
        // executor's context touches its task.
        let task = unsafe { (*slot.task.get()).as_mut() }.expect("allocated slot without a task");
        let (future, join) = (&mut task.future, &*task.join);
        let waker = crate::waker::waker_for(id);
        let mut cx = Context::from_waker(&waker);
        self.current.store(id.to_u64() + 1, Ordering::Relaxed);
        let outcome = self
            .platform
            .poll_task(owner, &mut || future.as_mut().poll_task(&mut cx, join));
        self.current.store(0, Ordering::Relaxed);
        stats.polled += 1;
        match outcome {
            PollOutcome::Pending => {}
            PollOutcome::Ready => {
                // SAFETY: as above.
                let finished = unsafe { (*slot.task.get()).take() };
                drop(finished);
                self.release(index);
                stats.completed += 1;
            }
            PollOutcome::Crashed => {
                self.finish(index, JoinError::OwnerCrashed, false);
                stats.purged += 1;
            }
            PollOutcome::Deferred(at) => {
                stats.deferred += 1;
                self.poll_later(id, at);
            }
        }
    }

    /// Wakes `id` at `at` (a timer on the wheel); at once if the wheel is
    /// full. The timer is the executor's (group 0), not counted against the
    /// task's domain: a domain that used up its own timers would otherwise
    /// turn its deferrals into a busy loop of re-queues.
    fn poll_later(&self, id: TaskId, at: u64) {
        let mut queued = false;
        self.platform.run_as_kernel(&mut || {
            // SAFETY: owner-only access to the wheel, not across a poll.
            let wheel = unsafe { &mut *self.timers.get() };
            let group = 0;
            if wheel.len() < crate::timer::MAX_TIMERS {
                if wheel.is_empty() {
                    wheel.advance(self.platform.now_ns(), |_| {});
                }
                wheel.insert(
                    at,
                    Timer {
                        target: TimerTarget::Task(id),
                        group,
                    },
                );
                self.count_timer(group, true);
                queued = true;
            }
        });
        if !queued {
            crate::waker::wake_task(id);
        }
    }

    /// Ends a task that did not complete: drops (cancel) or forgets
    /// (crashed owner) its future, and only then tells the joiner why, so a
    /// joiner never sees the result while the future's destructors still
    /// run. Forgetting touches neither the future's memory nor its code.
    fn finish(&self, index: usize, error: JoinError, drop_it: bool) {
        let slot = &self.slots[index];
        // SAFETY: owner-only access, slot allocated.
        let task = unsafe { (*slot.task.get()).take() };
        if let Some(TaskEntry { future, join }) = task {
            let mut outcome = error;
            if drop_it {
                // Dropping runs the owner's destructors: a domain entry.
                let owner = slot.owner.load(Ordering::Relaxed);
                let mut future = Some(future);
                let mut dropped = false;
                self.platform.drop_task(owner, &mut || {
                    drop(future.take());
                    dropped = true;
                });
                if !dropped {
                    // The owner is dead or crashed while dropping: abandon.
                    core::mem::forget(future.take());
                    outcome = JoinError::OwnerCrashed;
                }
            } else {
                core::mem::forget(future);
            }
            join.fail(outcome);
        }
        self.release(index);
    }

    /// Retires the slot's incarnation (new generation) and frees it, or
    /// makes it a zombie if its id is still in the ready queue.
    fn release(&self, index: usize) {
        let slot = &self.slots[index];
        let mut state = slot.state.load(Ordering::Acquire);
        loop {
            let next_generation = u64::from(generation_of(state).wrapping_add(1)) << 32;
            let new = if state & QUEUED != 0 {
                next_generation | ZOMBIE
            } else {
                next_generation
            };
            match slot
                .state
                .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.tasks.fetch_sub(1, Ordering::Relaxed);
                    let owner = slot.owner.load(Ordering::Relaxed);
                    self.group_tasks[quota_group(owner)].fetch_sub(1, Ordering::AcqRel);
                    if new & ZOMBIE == 0 {
                        let _ = self.free.push(index as u32);
                    }
                    return;
                }
                Err(now) => state = now,
            }
        }
    }

    fn apply_purge(&self, owner: OwnerId) -> usize {
        let mut purged = 0;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let state = slot.state.load(Ordering::Acquire);
            if state & ALLOCATED != 0 && slot.owner.load(Ordering::Relaxed) == owner {
                self.finish(index, JoinError::OwnerCrashed, false);
                purged += 1;
            }
        }
        self.platform.purge_done(self.id, owner);
        purged
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Executor({}, {} tasks)", self.id, self.task_count())
    }
}
