//! Wakers whose whole state is a [`TaskId`], and [`WakeSlot`], the cell an
//! interrupt handler fires to wake a task.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::{RawWaker, RawWakerVTable, Waker};

use crate::id::TaskId;
use crate::registry;

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop);

fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

fn wake(data: *const ()) {
    wake_task(TaskId::from_u64(data as usize as u64));
}

fn drop(_: *const ()) {}

pub(crate) fn waker_for(id: TaskId) -> Waker {
    // SAFETY: the vtable's functions treat the data word as a plain integer
    // (never dereferenced), so any value is valid and nothing needs freeing.
    unsafe { Waker::from_raw(RawWaker::new(id.to_u64() as usize as *const (), &VTABLE)) }
}

/// Wakes a task by id. Safe from any context, including interrupt
/// handlers: no allocation, no lock. A stale id is ignored.
pub fn wake_task(id: TaskId) {
    if let Some(exec) = registry::get(id.executor()) {
        exec.wake(id);
    }
}

/// The task id behind `waker`, if it is one of ours.
pub fn task_id_of(waker: &Waker) -> Option<TaskId> {
    core::ptr::eq(waker.vtable(), &VTABLE).then(|| TaskId::from_u64(waker.data() as usize as u64))
}

/// The vtable of every executor waker (what [`task_id_of`] recognises).
pub fn task_waker_vtable() -> &'static RawWakerVTable {
    &VTABLE
}

/// The waker of task `id` (an executor waker: the id, no allocation).
pub fn task_waker(id: TaskId) -> Waker {
    waker_for(id)
}

/// The task being polled in the calling context, if any.
pub fn current_task() -> Option<TaskId> {
    crate::exec::Executor::current()?.current_task()
}

const EMPTY: u64 = 0;

/// A cell holding (at most) one waker, fireable from an interrupt handler.
///
/// Our own wakers (the common case: a task of this executor registering
/// `cx.waker()`) are stored as the task id in one atomic word: registering
/// and waking allocate nothing and take no lock, so an interrupt handler may
/// call [`WakeSlot::wake`].
///
/// A foreign waker (one wrapped by a combinator, or from another executor)
/// is kept under a spin lock instead. That path is **not interrupt-safe**:
/// an interrupt handler that fires the slot while the interrupted code holds
/// the lock would spin forever. Code that registers foreign wakers must
/// only be woken from task context.
///
/// Register and wake are both read-modify-writes of `task` (and of
/// `has_foreign`), so "set a flag, then `wake`" against "`register`, then
/// check the flag" cannot lose a wake-up: whichever RMW comes second reads
/// what the first wrote and so sees the other side's flag.
pub struct WakeSlot {
    // TaskId + 1, so that 0 means empty (ids may legitimately be 0).
    task: AtomicU64,
    has_foreign: AtomicBool,
    foreign: spin::Mutex<Option<Waker>>,
}

impl WakeSlot {
    pub const fn new() -> WakeSlot {
        WakeSlot {
            task: AtomicU64::new(EMPTY),
            has_foreign: AtomicBool::new(false),
            foreign: spin::Mutex::new(None),
        }
    }

    /// Registers `waker`, replacing any earlier registration.
    pub fn register(&self, waker: &Waker) {
        match task_id_of(waker) {
            Some(id) => {
                self.task
                    .swap(id.to_u64().wrapping_add(1), Ordering::AcqRel);
                if self.has_foreign.load(Ordering::Acquire)
                    && self.has_foreign.swap(false, Ordering::AcqRel)
                {
                    core::mem::drop(self.foreign.lock().take());
                }
            }
            None => {
                let previous = self.foreign.lock().replace(waker.clone());
                core::mem::drop(previous);
                self.task.swap(EMPTY, Ordering::AcqRel);
                self.has_foreign.swap(true, Ordering::AcqRel);
            }
        }
    }

    /// Wakes and forgets the registered waker, if any.
    pub fn wake(&self) {
        if let Some(id) = self.take_task() {
            wake_task(id);
        }
        if let Some(waker) = self.take_foreign() {
            waker.wake();
        }
    }

    /// Removes the registered waker without waking it.
    pub fn take(&self) -> Option<Waker> {
        let ours = self.take_task().map(waker_for);
        let foreign = self.take_foreign();
        ours.or(foreign)
    }

    fn take_task(&self) -> Option<TaskId> {
        match self.task.swap(EMPTY, Ordering::AcqRel) {
            EMPTY => None,
            raw => Some(TaskId::from_u64(raw.wrapping_sub(1))),
        }
    }

    fn take_foreign(&self) -> Option<Waker> {
        // An RMW, not a load: see the ordering argument on `WakeSlot`.
        // `register` stores the waker before setting the flag, so a set
        // flag always finds it; the lock is taken only when one is there.
        if self.has_foreign.swap(false, Ordering::AcqRel) {
            self.foreign.lock().take()
        } else {
            None
        }
    }
}

impl Default for WakeSlot {
    fn default() -> Self {
        Self::new()
    }
}
