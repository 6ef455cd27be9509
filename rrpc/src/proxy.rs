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
