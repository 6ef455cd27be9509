//! The runtime behind generated proxies: the kernel installs how to enter
//! a domain; `#[interface]` proxies call [`call`] for every method.

use spin::Once;

use crate::{Owner, RpcError, RpcResult};

/// How to run code as another domain (the kernel's domain entry).
pub trait Runtime: Sync {
    /// The domain incarnation running now.
    fn current(&self) -> Owner;
    /// Runs `f` as `callee`: `Err(DomainCrashed)` if it failed there,
    /// `Err(DomainNotAlive)` without running it if `callee` is not alive.
    fn enter(&self, callee: Owner, f: &mut dyn FnMut()) -> Result<(), RpcError>;
    /// A caller's task is suspended on a call into `callee`: wake it if
    /// `callee` dies (so it sees the error). Default: nothing.
    fn suspended(&self, callee: Owner, waker: &core::task::Waker) {
        let _ = (callee, waker);
    }
}

/// Implemented by `#[interface]` for `dyn Trait + Send + Sync`: how to wrap
/// an exported object in the trait's generated proxy. The name service
/// uses it to hand out proxies by type.
pub trait Interface: Send + Sync + 'static {
    /// The generated proxy (`<Trait>Proxy`).
    type Proxy: Send + Sync;
    /// The trait's name (for messages).
    const NAME: &'static str;
    /// Wraps `object`, exported by domain incarnation `callee`.
    fn proxy(object: alloc::sync::Arc<Self>, callee: Owner) -> Self::Proxy;
}

static RUNTIME: Once<&'static dyn Runtime> = Once::new();

/// Installs the runtime (once).
pub fn install_runtime(runtime: &'static dyn Runtime) {
    RUNTIME.call_once(|| runtime);
}

/// The running domain (0 without a runtime).
pub fn current() -> Owner {
    RUNTIME.get().map_or(0, |r| r.current())
}

/// Runs `f` as `callee` (see [`Runtime::enter`]).
pub fn call<R>(callee: Owner, f: impl FnOnce() -> R) -> RpcResult<R> {
    let runtime = RUNTIME.get().ok_or(RpcError::DomainNotAlive)?;
    let mut f = Some(f);
    let mut result = None;
    let entered = runtime.enter(callee, &mut || {
        if let Some(f) = f.take() {
            result = Some(f());
        }
    });
    if let Err(error) = entered {
        // The closure may hold the callee's objects (a dead domain's
        // memory): never drop it, not even if it did not run.
        core::mem::forget(f);
        return Err(error);
    }
    result.ok_or(RpcError::DomainCrashed)
}

/// The callee's future inside a proxy future.
pub type CalleeFuture<'a, T> =
    core::pin::Pin<alloc::boxed::Box<dyn core::future::Future<Output = RpcResult<T>> + Send + 'a>>;

/// What an `#[interface]` proxy returns for an `async fn`: each poll of
/// the callee's future is an entry into the callee (the caller's task
/// migrates into it for the poll). If the callee dies, the future completes
/// with the error, and the callee's future is forgotten, never polled or
/// dropped again.
pub struct ProxyFuture<'a, T> {
    inner: Option<CalleeFuture<'a, T>>,
    callee: Owner,
    caller: Owner,
    /// Set if the call could not even start (the callee was not alive).
    failed: Option<RpcError>,
}

impl<'a, T: crate::Exchangeable> ProxyFuture<'a, T> {
    /// Starts a call: `start` runs inside the callee and returns its future.
    pub fn start(callee: Owner, start: impl FnOnce() -> CalleeFuture<'a, T>) -> Self {
        let caller = current();
        match call(callee, start) {
            Ok(inner) => ProxyFuture {
                inner: Some(inner),
                callee,
                caller,
                failed: None,
            },
            Err(error) => ProxyFuture {
                inner: None,
                callee,
                caller,
                failed: Some(error),
            },
        }
    }
}

impl<T: crate::Exchangeable> core::future::Future for ProxyFuture<'_, T> {
    type Output = RpcResult<T>;

    fn poll(
        self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<RpcResult<T>> {
        use core::task::Poll;
        let this = self.get_mut();
        if let Some(error) = this.failed.take() {
            return Poll::Ready(Err(error));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(RpcError::DomainNotAlive));
        };
        let callee = this.callee;
        match call(callee, || inner.as_mut().poll(cx)) {
            Ok(Poll::Ready(result)) => {
                let inner = this.inner.take();
                // The finished future may still hold the callee's state.
                let _ = call(callee, move || drop(inner));
                if let Ok(value) = &result {
                    value.move_roots(this.caller);
                }
                Poll::Ready(result)
            }
            Ok(Poll::Pending) => {
                if let Some(runtime) = RUNTIME.get() {
                    runtime.suspended(callee, cx.waker());
                }
                Poll::Pending
            }
            Err(error) => {
                core::mem::forget(this.inner.take());
                Poll::Ready(Err(error))
            }
        }
    }
}

impl<T> Drop for ProxyFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // Dropping a pending callee future runs the callee's code.
            let _ = call(self.callee, move || drop(inner));
        }
    }
}
