//! Join handles: the spawner's view of a task's result.

use alloc::sync::Arc;
use core::any::Any;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};

use spin::Mutex;

use crate::id::TaskId;

/// Why a task produced no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// It was aborted.
    Cancelled,
    /// Its owner (a domain) crashed; the task was removed without running.
    OwnerCrashed,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => write!(f, "task was cancelled"),
            JoinError::OwnerCrashed => write!(f, "task's owner crashed"),
        }
    }
}

pub(crate) struct JoinState<T> {
    inner: Mutex<Inner<T>>,
    task: AtomicU64,
}

struct Inner<T> {
    result: Option<Result<T, JoinError>>,
    finished: bool,
    waker: Option<Waker>,
}

impl<T> JoinState<T> {
    pub(crate) fn new(task: TaskId) -> Arc<JoinState<T>> {
        Arc::new(JoinState {
            inner: Mutex::new(Inner {
                result: None,
                finished: false,
                waker: None,
            }),
            task: AtomicU64::new(task.to_u64()),
        })
    }

    /// Names the task once its slot is known (it is made before, so that
    /// nothing allocates inside the spawn's critical section).
    pub(crate) fn set_task(&self, task: TaskId) {
        self.task.store(task.to_u64(), Ordering::Relaxed);
    }

    /// Records the outcome (first call wins) and wakes the joiner.
    pub(crate) fn finish(&self, result: Result<T, JoinError>) {
        let waker = {
            let mut inner = self.inner.lock();
            if inner.finished {
                return;
            }
            inner.finished = true;
            inner.result = Some(result);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The executor's type-erased view of a task's join state.
pub(crate) trait JoinSink: Send + Sync {
    /// Ends the task without a value.
    fn fail(&self, error: JoinError);
    /// For the completing poll, which knows the output type.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Send + 'static> JoinSink for JoinState<T> {
    fn fail(&self, error: JoinError) {
        self.finish(Err(error));
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A future resolving to the task's output, or why there is none.
/// Dropping it detaches the task (it keeps running).
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    #[cfg(test)]
    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.state)
    }

    pub(crate) fn new(state: Arc<JoinState<T>>) -> JoinHandle<T> {
        JoinHandle { state }
    }

    pub fn id(&self) -> TaskId {
        TaskId::from_u64(self.state.task.load(Ordering::Relaxed))
    }

    /// Cancels the task: it is never polled again and its future is
    /// dropped by its executor. Joining then yields `Err(Cancelled)`
    /// (unless it had already finished).
    pub fn abort(&self) {
        let id = self.id();
        if let Some(exec) = crate::registry::get(id.executor()) {
            exec.abort(id);
        }
    }

    /// Lets the task run on with nobody waiting for it.
    pub fn detach(self) {}

    pub fn is_finished(&self) -> bool {
        self.state.inner.lock().finished
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.state.inner.lock();
        if let Some(result) = inner.result.take() {
            return Poll::Ready(result);
        }
        if inner.finished {
            // Polled again after it returned the value.
            return Poll::Ready(Err(JoinError::Cancelled));
        }
        match &inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinHandle({:?})", self.id())
    }
}
