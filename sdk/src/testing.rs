//! A kernel for a domain's host tests (`cargo test -p domain-NAME`): the
//! SDK's [`Kernel`] on the host, so a domain's `init`, its exports, its
//! tasks and its timers run under the standard test harness. Enabled by
//! the `testing` feature, which a domain turns on for its tests only:
//!
//! ```toml
//! [dev-dependencies]
//! domain-sdk = { path = "../../sdk", features = ["testing"] }
//! ```
//!
//! What it models, and how:
//!
//! - **Domains**: [`TestKernel::load`] runs an entry function as a new
//!   domain incarnation (inside an entry, so a panic in it is a failed
//!   load) and keeps its exports for [`lookup`](crate::lookup), which
//!   returns the same generated proxies a real domain gets: every call
//!   through one is a contained entry (rrpc's host runtime). A panic in a
//!   callee is a crash: the caller gets `Err(RpcError::DomainCrashed)`, later
//!   calls `DomainNotAlive`. [`TestKernel::crash`] kills a domain from the
//!   outside (its tasks dropped, its `RRef`s reclaimed, its pending calls'
//!   callee futures dropped), [`TestKernel::restart`] runs its entry again
//!   as the next generation.
//! - **Tasks and time**: tasks spawned by domains run on the test's own
//!   thread when it calls [`run_for`](TestKernel::run_for) or
//!   [`block_on`](TestKernel::block_on), each poll as the task's domain
//!   (a panic in a task crashes its domain, as in the kernel). The clock is
//!   virtual and per thread: it starts at 0 and moves only when every task
//!   is waiting, straight to the next timer, so a test of a 10-second
//!   timeout takes no time and gives the same result on every run.
//! - **Logs**: [`log`](crate::log) lines are kept per domain
//!   ([`TestKernel::logs`]) and printed (the harness shows them for a
//!   failing test).
//! - Devices, supervision and restarts by a supervisor are not modelled:
//!   `claim_device` fails with `NoDevice`, `supervise` and `restart_domain`
//!   with `NotPermitted`.
//!
//! The registry of domains is shared by the whole test binary (tests run
//! in parallel threads): give each test's domains names of their own.

extern crate std;

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::cell::{Cell, RefCell};
use std::sync::Mutex;

use rrpc::host_kit;
use rrpc::proxy::Runtime;

use crate::{
    Device, DeviceError, Exports, Kernel, Owner, RestartError, RpcError, RpcResult, SpawnError,
    Task, Timer,
};

/// A domain's entry function (what `image!` names).
pub type Init = fn(&'static dyn Kernel) -> Result<Exports, String>;

struct Domain {
    name: String,
    init: Init,
    owner: Owner,
    alive: bool,
    exports: Option<Arc<Exports>>,
    logs: Vec<String>,
}

/// The host kernel. Get it with [`kernel`].
pub struct TestKernel {
    domains: Mutex<Vec<Domain>>,
}

std::thread_local! {
    /// This thread's tasks: (owner, task).
    static TASKS: RefCell<Vec<(Owner, Task)>> = const { RefCell::new(Vec::new()) };
    /// Tasks spawned while the list is being polled.
    static SPAWNED: RefCell<Vec<(Owner, Task)>> = const { RefCell::new(Vec::new()) };
    /// This thread's virtual clock (ns) and the earliest pending timer.
    static NOW: Cell<u64> = const { Cell::new(0) };
    static NEXT_TIMER: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Owner slots handed out so far (slot 0 is the kernel's; the rest of the
/// test binary's own rrpc tests use slots above 40, so start past them).
static NEXT_SLOT: AtomicU32 = AtomicU32::new(100);

static KERNEL: TestKernel = TestKernel {
    domains: Mutex::new(Vec::new()),
};

/// The test kernel, installed (with rrpc's host heap and runtime) on first
/// use. The calling thread runs as the kernel until it calls into a domain.
pub fn kernel() -> &'static TestKernel {
    // (Installing keeps whoever runs on this thread: this may be called
    // from inside a domain.)
    host_kit::install(host_kit::current());
    crate::install(&KERNEL);
    &KERNEL
}

impl TestKernel {
    /// Loads `init` as a new domain called `name` (its first generation),
    /// as the kernel loads an image: the entry runs inside the domain and
    /// returns its exports. `Err` with the reason if the name is taken by a
    /// live domain, the entry returned an error, or it panicked.
    pub fn load(&self, name: &str, init: Init) -> Result<(), String> {
        {
            let domains = self.domains.lock().unwrap();
            if domains.iter().any(|d| d.name == name && d.alive) {
                return Err(std::format!("a domain named '{name}' is alive already"));
            }
        }
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        let owner = host_kit::owner(slot, 1);
        self.start(name, init, owner)
    }

    fn start(&self, name: &str, init: Init, owner: Owner) -> Result<(), String> {
        {
            let mut domains = self.domains.lock().unwrap();
            domains.retain(|d| d.name != name);
            domains.push(Domain {
                name: name.to_string(),
                init,
                owner,
                alive: true,
                exports: None,
                logs: Vec::new(),
            });
        }
        let mut result = None;
        // SAFETY: host tests only: the closure is the domain's own entry.
        let entered = unsafe {
            host_kit::RUNTIME.enter(owner, &mut || result = Some(init(&KERNEL as &dyn Kernel)))
        };
        let outcome = match (entered, result) {
            (Ok(()), Some(Ok(exports))) => Ok(exports),
            (Ok(()), Some(Err(reason))) => Err(std::format!("'{name}' failed to start: {reason}")),
            _ => Err(std::format!("'{name}' crashed during initialisation")),
        };
        match outcome {
            Ok(exports) => {
                let mut domains = self.domains.lock().unwrap();
                if let Some(domain) = domains.iter_mut().find(|d| d.owner == owner) {
                    domain.exports = Some(Arc::new(exports));
                }
                Ok(())
            }
            Err(reason) => {
                self.bury(owner);
                Err(reason)
            }
        }
    }

    /// Kills the live domain `name`, as a crash does: later calls into it
    /// fail, its tasks on this thread are dropped without being polled, its
    /// `RRef`s are reclaimed and its callers' pending calls into others are
    /// dropped inside their callees.
    pub fn crash(&self, name: &str) -> Result<(), String> {
        let owner = self
            .alive(name)
            .ok_or_else(|| std::format!("no live domain named '{name}'"))?;
        host_kit::RUNTIME.kill(owner);
        self.bury(owner);
        Ok(())
    }

    /// Starts the next generation of `name` (dead or alive: a live one is
    /// crashed first), running its entry again.
    pub fn restart(&self, name: &str) -> Result<(), String> {
        if self.alive(name).is_some() {
            self.crash(name)?;
        }
        let (init, owner) = {
            let domains = self.domains.lock().unwrap();
            let domain = domains
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| std::format!("no domain named '{name}'"))?;
            (domain.init, domain.owner)
        };
        let next = host_kit::owner(owner.slot() as u32, owner.generation() + 1);
        self.start(name, init, next)
    }

    /// Whether `name` has a live incarnation.
    pub fn is_alive(&self, name: &str) -> bool {
        self.alive(name).is_some()
    }

    /// The lines domain `name` logged (its current or last incarnation).
    pub fn logs(&self, name: &str) -> Vec<String> {
        let domains = self.domains.lock().unwrap();
        domains
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.logs.clone())
            .unwrap_or_default()
    }

    /// Runs this thread's tasks for `duration` of virtual time: polls every
    /// task, and when all of them wait, moves the clock to the next timer
    /// (never past the end).
    pub fn run_for(&self, duration: Duration) {
        let end = NOW.get().saturating_add(duration.as_nanos() as u64);
        loop {
            self.poll_tasks();
            let next = NEXT_TIMER.replace(u64::MAX);
            if next > end {
                NOW.set(end);
                return;
            }
            NOW.set(NOW.get().max(next));
        }
    }

    /// Drives `future` (say, a call of an `async fn` through a proxy) to
    /// completion on this thread, running the tasks and the clock as
    /// [`run_for`](Self::run_for) does while it waits; at most `limit` of
    /// virtual time. `None` if it did not complete by then.
    pub fn block_on<F: Future>(&self, future: F, limit: Duration) -> Option<F::Output> {
        let mut future = core::pin::pin!(future);
        let end = NOW.get().saturating_add(limit.as_nanos() as u64);
        loop {
            if let Poll::Ready(output) = future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                return Some(output);
            }
            self.poll_tasks();
            let next = NEXT_TIMER.replace(u64::MAX);
            if next > end {
                // Nothing is due before the limit: one last look at it.
                NOW.set(end);
                return match future
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(output) => Some(output),
                    Poll::Pending => None,
                };
            }
            NOW.set(NOW.get().max(next));
        }
    }

    /// Nanoseconds on this thread's virtual clock.
    pub fn now_ns(&self) -> u64 {
        NOW.get()
    }

    /// Buries the domains that crashed inside a call since the last look
    /// (the runtime marks them dead; the rest of the cleanup is here).
    fn reap(&self) {
        let crashed: Vec<Owner> = {
            let domains = self.domains.lock().unwrap();
            domains
                .iter()
                .filter(|d| d.alive && host_kit::RUNTIME.is_dead(d.owner))
                .map(|d| d.owner)
                .collect()
        };
        for owner in crashed {
            self.bury(owner);
        }
    }

    fn alive(&self, name: &str) -> Option<Owner> {
        self.reap();
        let domains = self.domains.lock().unwrap();
        domains
            .iter()
            .find(|d| d.name == name && d.alive)
            .map(|d| d.owner)
    }

    /// What the kernel does after a domain died: no more lookups, its tasks
    /// on this thread dropped (not polled: their memory is the dead
    /// domain's, and dropping it on the host is harmless), its `RRef`s and
    /// its callers' pending calls reclaimed.
    fn bury(&self, owner: Owner) {
        host_kit::RUNTIME.kill(owner);
        {
            let mut domains = self.domains.lock().unwrap();
            if let Some(domain) = domains.iter_mut().find(|d| d.owner == owner) {
                domain.alive = false;
                domain.exports = None;
            }
        }
        for list in [&TASKS, &SPAWNED] {
            let dead: Vec<(Owner, Task)> = list.with(|tasks| {
                let mut tasks = tasks.borrow_mut();
                let (dead, live) = core::mem::take(&mut *tasks)
                    .into_iter()
                    .partition(|(o, _)| *o == owner);
                *tasks = live;
                dead
            });
            drop(dead);
        }
        host_kit::RUNTIME.caller_died(owner);
        // SAFETY: the domain is dead and nothing of it runs any more; its
        // handles are gone (tasks dropped above, exports dropped).
        unsafe { rrpc::registry::reclaim(owner) };
    }

    fn poll_tasks(&self) {
        self.reap();
        let mut tasks = TASKS.with(|tasks| core::mem::take(&mut *tasks.borrow_mut()));
        tasks.extend(SPAWNED.with(|s| core::mem::take(&mut *s.borrow_mut())));
        let mut kept = Vec::with_capacity(tasks.len());
        let mut crashed = Vec::new();
        for (owner, mut task) in tasks {
            if host_kit::RUNTIME.is_dead(owner) {
                continue;
            }
            let mut done = false;
            // SAFETY: host tests only: polling the domain's own task.
            let entered = unsafe {
                host_kit::RUNTIME.enter(owner, &mut || {
                    done = task
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                        .is_ready();
                })
            };
            match entered {
                Ok(()) if done => {}
                Ok(()) => kept.push((owner, task)),
                Err(_) => {
                    // The task's domain crashed while polling it.
                    core::mem::forget(task);
                    crashed.push(owner);
                }
            }
        }
        TASKS.with(|tasks| {
            let mut tasks = tasks.borrow_mut();
            tasks.extend(kept);
            tasks.extend(SPAWNED.with(|s| core::mem::take(&mut *s.borrow_mut())));
        });
        for owner in crashed {
            self.bury(owner);
        }
    }

    fn log_line(&self, owner: Owner, message: &str) {
        let mut domains = self.domains.lock().unwrap();
        let name = match domains.iter_mut().find(|d| d.owner == owner) {
            Some(domain) => {
                domain.logs.push(message.to_string());
                domain.name.clone()
            }
            None => "kernel".to_string(),
        };
        std::println!("[{name}] {message}");
    }
}

/// A timer on the virtual clock.
struct Sleep {
    deadline: u64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if NOW.get() >= self.deadline {
            return Poll::Ready(());
        }
        NEXT_TIMER.set(NEXT_TIMER.get().min(self.deadline));
        Poll::Pending
    }
}

impl Kernel for TestKernel {
    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        let owner = host_kit::current();
        if owner == Owner::KERNEL {
            return Err(SpawnError::NotInDomain);
        }
        // Polled from the next round of `run_for` / `block_on` on.
        SPAWNED.with(|s| s.borrow_mut().push((owner, task)));
        Ok(())
    }

    fn lookup(&self, name: &str, visit: &mut dyn FnMut(&Exports, &str, Owner)) -> RpcResult<()> {
        self.reap();
        let (domain_name, export) = match name.split_once('/') {
            Some((domain, export)) => (Some(domain), export),
            None => (None, name),
        };
        let found = {
            let domains = self.domains.lock().unwrap();
            if let Some(wanted) = domain_name
                && !domains.iter().any(|d| d.name == wanted)
            {
                return Err(RpcError::NoSuchDomain);
            }
            domains
                .iter()
                .filter(|d| d.alive && domain_name.is_none_or(|n| n == d.name))
                .find_map(|d| {
                    d.exports
                        .as_ref()
                        .filter(|e| e.contains(export))
                        .map(|e| (e.clone(), d.owner))
                })
        };
        match found {
            Some((exports, owner)) => {
                visit(&exports, export, owner);
                Ok(())
            }
            None if domain_name.is_some() => Err(RpcError::DomainNotAlive),
            None => Err(RpcError::NoSuchInterface),
        }
    }

    fn log(&self, message: &str) {
        self.log_line(host_kit::current(), message);
    }

    fn log_at(&self, level: crate::LogLevel, message: &str) {
        // Every level is kept: a test looks at what its domain said.
        let _ = level;
        self.log_line(host_kit::current(), message);
    }

    fn now_ns(&self) -> u64 {
        NOW.get()
    }

    fn sleep_until(&self, deadline_ns: u64) -> Timer {
        Box::pin(Sleep {
            deadline: deadline_ns,
        })
    }

    #[allow(unsafe_code)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded (a non-zero size, per the contract).
        unsafe { std::alloc::alloc(layout) }
    }

    #[allow(unsafe_code)]
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { std::alloc::dealloc(pointer, layout) }
    }

    fn crash(&self, message: &core::fmt::Arguments<'_>) -> ! {
        std::panic!("{message}")
    }

    fn rrpc_registry(&self) -> &'static dyn rrpc::registry::Remote {
        &rrpc::registry::LOCAL
    }

    fn rrpc_runtime(&self) -> &'static dyn rrpc::proxy::Runtime {
        &host_kit::RUNTIME
    }

    fn claim_device(
        &self,
        _class: (u8, u8, u8),
        _index: usize,
    ) -> Result<Box<dyn Device>, DeviceError> {
        Err(DeviceError::NoDevice)
    }

    fn supervise(&self, _name: &str) -> Result<(), RestartError> {
        Err(RestartError::NotPermitted)
    }

    fn restart_domain(&self, _name: &str) -> Result<(), RestartError> {
        Err(RestartError::NotPermitted)
    }

    fn core(&self) -> (usize, usize) {
        (0, 1)
    }
}
