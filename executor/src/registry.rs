//! The global table of executors, so a waker (a bare task id) can find its
//! executor from any context. Executors live forever; ids are handed out in
//! order (the kernel creates core 0's first, then each core's as it starts).

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::MAX_EXECUTORS;
use crate::exec::Executor;

static EXECUTORS: [AtomicPtr<Executor>; MAX_EXECUTORS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_EXECUTORS];
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// Reserves the next executor id, if any is left.
pub(crate) fn reserve_id() -> Option<usize> {
    let id = NEXT_ID.fetch_add(1, Ordering::AcqRel);
    (id < MAX_EXECUTORS).then_some(id)
}

/// Publishes `exec` under the id it reserved.
pub(crate) fn publish(id: usize, exec: &'static Executor) {
    EXECUTORS[id].store(exec as *const Executor as *mut Executor, Ordering::Release);
}

pub(crate) fn get(id: usize) -> Option<&'static Executor> {
    let ptr = EXECUTORS.get(id)?.load(Ordering::Acquire);
    // SAFETY: only `publish` stores here, always a leaked `&'static`.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}
