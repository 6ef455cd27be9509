//! Wakers whose whole state is a [`TaskId`], and [`WakeSlot`], the cell an
//! interrupt handler fires to wake a task.

use core::sync::atomic::{AtomicU64, Ordering};
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

/// The task being polled in the calling context, if any.
pub fn current_task() -> Option<TaskId> {
    crate::exec::Executor::current()?.current_task()
}

const EMPTY: u64 = 0;

/// A cell holding (at most) one task to wake, fireable from an interrupt
/// handler without allocating or locking.
///
/// Only our own wakers can be registered: a foreign waker's `wake` may
/// allocate or lock, which an interrupt handler must not do, so
/// registering one panics.
pub struct WakeSlot {
    // TaskId + 1, so that 0 means empty (ids may legitimately be 0).
    task: AtomicU64,
}

impl WakeSlot {
    pub const fn new() -> WakeSlot {
        WakeSlot {
            task: AtomicU64::new(EMPTY),
        }
    }

    /// Registers the task behind `waker` (replacing any earlier one).
    pub fn register(&self, waker: &Waker) {
        let id = task_id_of(waker).expect("WakeSlot::register: not an executor waker");
        self.task
            .store(id.to_u64().wrapping_add(1), Ordering::Release);
    }

    /// Wakes and forgets the registered task, if any.
    pub fn wake(&self) {
        if let Some(id) = self.take() {
            wake_task(id);
        }
    }

    /// Removes the registered task without waking it.
    pub fn take(&self) -> Option<TaskId> {
        match self.task.swap(EMPTY, Ordering::AcqRel) {
            EMPTY => None,
            raw => Some(TaskId::from_u64(raw.wrapping_sub(1))),
        }
    }
}

impl Default for WakeSlot {
    fn default() -> Self {
        Self::new()
    }
}
