//! Domain entry: the one path by which domain code runs, and the proxy
//! runtime that generated proxies drive it through.
//!
//! [`enter`] (a closure) and [`enter_raw`] (a type-erased `cont::RawCall`,
//! what generated proxies use when they have no gate) find the domain,
//! read the watchdog budget, let the domain's `cont::Gate` run the code as
//! the incarnation, and turn a refusal or a failure into an
//! [`EntryError`], poisoning the incarnation on failure while the failed
//! frame is still the innermost. Generated proxies holding the callee's
//! gate make the same entry themselves (`ProxyRuntime::gate`).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use executor::OwnerId;

use super::lifecycle::{self, get, slot_of};
use crate::catch::{self, Fault};
use crate::{cpu, time};

/// Default watchdog budget for one domain entry.
pub const DEFAULT_BUDGET_NS: u64 = 100_000_000;
static BUDGET_NS: AtomicU64 = AtomicU64::new(DEFAULT_BUDGET_NS);
/// The same budget in timer ticks (0 until `set_budget_ns` runs, once the
/// timer is calibrated).
static BUDGET_TICKS: AtomicU64 = AtomicU64::new(0);

/// Sets the watchdog budget. Call after the TSC is calibrated.
pub fn set_budget_ns(ns: u64) {
    BUDGET_NS.store(ns, Ordering::Relaxed);
    // +1: the next tick may come at once, so n+1 ticks last at least n
    // tick periods.
    BUDGET_TICKS.store(time::ns_to_ticks(ns) + 1, Ordering::Relaxed);
}

pub fn budget_ns() -> u64 {
    BUDGET_NS.load(Ordering::Relaxed)
}

/// Why an entry into a domain did not return a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// The domain crashed during this entry (it is now poisoned).
    Crashed,
    /// The incarnation was already poisoned or dead, or restarted since.
    NotAlive,
    NoSuchDomain,
    /// The domain answered with an error of its own (or exports no
    /// control interface).
    Refused(rrpc::RpcError),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Crashed => write!(f, "domain crashed"),
            EntryError::NotAlive => write!(f, "domain is not alive"),
            EntryError::NoSuchDomain => write!(f, "no such domain"),
            EntryError::Refused(e) => write!(f, "the domain answered: {e}"),
        }
    }
}

impl From<EntryError> for rrpc::RpcError {
    fn from(error: EntryError) -> rrpc::RpcError {
        match error {
            EntryError::Crashed => rrpc::RpcError::DomainCrashed,
            EntryError::NotAlive => rrpc::RpcError::DomainNotAlive,
            EntryError::NoSuchDomain => rrpc::RpcError::NoSuchDomain,
            EntryError::Refused(e) => e,
        }
    }
}

/// A failed entry into `owner` of `domain`: poisons the incarnation with
/// `fault` (run while the failed frame is still the innermost, its budget
/// spent by the failure path, so nothing unwinds the caller first).
#[cold]
fn failed(domain: &'static lifecycle::Domain, fault: &Fault, owner: OwnerId) -> EntryError {
    lifecycle::poison(domain, owner, Some(fault), "crashed");
    EntryError::Crashed
}

/// The domain of incarnation `owner` (not the kernel) and the watchdog
/// budget of an entry (0, none, until the timer is calibrated): a budget,
/// not a point in time, so that what the domain waits for in kernel
/// services or in other domains it calls is not charged to it.
#[inline(always)]
fn domain_and_budget(owner: OwnerId) -> Result<(&'static lifecycle::Domain, u64), EntryError> {
    let domain = get(slot_of(owner)).ok_or(EntryError::NoSuchDomain)?;
    Ok((domain, BUDGET_TICKS.load(Ordering::Relaxed)))
}

/// Runs `f` as domain incarnation `owner` (see the module doc of
/// `domain`); the kernel (owner 0) runs it directly. The fast path is
/// `cont::Gate::enter`, the same code the host benchmarks time. A refused
/// entry is `NotAlive`; a failed one (panic, CPU exception, overrun)
/// poisons the incarnation and is `Crashed`.
#[inline]
pub fn enter<R>(owner: OwnerId, f: impl FnOnce() -> R) -> Result<R, EntryError> {
    if owner == executor::OwnerId::KERNEL {
        return Ok(f());
    }
    let (domain, budget) = domain_and_budget(owner)?;
    domain.gate.enter_with::<Fault, R, EntryError>(
        &catch::ThisCore,
        owner,
        budget,
        f,
        || EntryError::NotAlive,
        |fault, owner| failed(domain, fault, owner),
    )
}

/// [`enter`] for a type-erased [`cont::RawCall`] (what generated proxies
/// use through `rrpc::proxy::Runtime::enter_raw`).
///
/// # Safety
/// As for `cont::guarded_raw`.
#[inline]
pub unsafe fn enter_raw(owner: OwnerId, call: *mut cont::RawCall) -> Result<(), EntryError> {
    if owner == executor::OwnerId::KERNEL {
        // SAFETY: forwarded; the kernel needs no entry.
        unsafe { cont::RawCall::run_unguarded(call) };
        return Ok(());
    }
    let (domain, budget) = domain_and_budget(owner)?;
    // SAFETY: forwarded.
    unsafe {
        domain.gate.enter_raw_with::<Fault, EntryError>(
            &catch::ThisCore,
            owner,
            budget,
            call,
            || EntryError::NotAlive,
            |fault, owner| failed(domain, fault, owner),
        )
    }
}

/// The runtime generated proxies use (installed at boot, handed to domain
/// images too).
pub fn proxy_runtime() -> &'static dyn rrpc::proxy::Runtime {
    &PROXY_RUNTIME
}

/// What generated proxies call: a domain entry.
struct ProxyRuntime;

static PROXY_RUNTIME: ProxyRuntime = ProxyRuntime;

// SAFETY: both entries return `Ok` only when the gate's `cont::call`
// returned 0, which only the closure's (or `run`'s) own return makes (a
// failure resumes with 1), or, for the kernel, after running it directly.
unsafe impl rrpc::proxy::Runtime for ProxyRuntime {
    fn current(&self) -> rrpc::Owner {
        cpu::current_owner()
    }

    fn caller(&self) -> rrpc::Owner {
        // SAFETY: this core's frames are the continuations `catch` links,
        // each live while linked.
        unsafe { cont::caller(&catch::ThisCore) }
    }

    fn is_alive(&self, owner: rrpc::Owner) -> bool {
        get(slot_of(owner))
            .is_some_and(|d| d.owner() == owner && d.state() == lifecycle::State::Alive)
    }

    fn callee_waker(&self, waker: &core::task::Waker) -> Option<core::task::Waker> {
        // The kernel's own wakers (made while no domain runs) are trusted;
        // a domain's caller may hand its callee only executor wakers.
        if executor::task_id_of(waker).is_some()
            || cpu::current_owner() == executor::OwnerId::KERNEL
        {
            return None;
        }
        Some(match executor::current_task() {
            Some(task) => executor::task_waker(task),
            // Polled outside any task: nothing safe to wake later.
            None => core::task::Waker::noop().clone(),
        })
    }

    fn trusted_wakers(&self) -> Option<&'static core::task::RawWakerVTable> {
        Some(executor::task_waker_vtable())
    }

    fn suspended(&self, callee: rrpc::Owner, waker: &core::task::Waker) {
        if let (Some(task), Some(domain)) = (executor::task_id_of(waker), get(slot_of(callee))) {
            domain.add_waiter(task);
            // The callee may have died since the poll that left the call
            // pending: its death woke the tasks listed then, not this one,
            // which would sleep for ever (found by the fault campaign: a
            // workload left hanging in a call to a killed shadow). The
            // fence pairs with the one in `wake_waiters`: either the death
            // sees this registration, or this sees the death.
            core::sync::atomic::fence(Ordering::SeqCst);
            if domain.owner() != callee || domain.state() != lifecycle::State::Alive {
                executor::wake_task(task);
            }
        }
    }

    unsafe fn park(&self, parked: rrpc::proxy::Parked) -> bool {
        super::parking::park(parked)
    }

    unsafe fn unpark(&self, caller: rrpc::Owner, cell: *mut ()) {
        super::parking::unpark(caller, cell);
    }

    // Proxies enter a domain through its gate themselves (the steps of
    // `through_gate`: the gate's check and switch, a frame with the
    // budget, room for a `Fault`, which the failure path writes into the
    // innermost frame whatever linked it), and report a failure here.
    unsafe fn gate(&self, callee: rrpc::Owner) -> Option<&'static cont::Gate> {
        if callee == OwnerId::KERNEL {
            return None;
        }
        // Domain records are never freed and a slot keeps its record, so
        // the gate outlives the capability; the gate refuses any entry
        // but its open incarnation's.
        get(slot_of(callee)).map(|domain| &domain.gate)
    }

    unsafe fn entry_budget(&self) -> Option<&'static AtomicU64> {
        Some(&BUDGET_TICKS)
    }

    unsafe fn entry_failed(&self, callee: rrpc::Owner, fault: &rrpc::proxy::FaultRoom) {
        // SAFETY: the failure path wrote a `Fault` into the frame's payload
        // (it fits: asserted below) before resuming it.
        let fault = unsafe { &*(fault as *const rrpc::proxy::FaultRoom as *const Fault) };
        if let Some(domain) = get(slot_of(callee)) {
            lifecycle::poison(domain, callee, Some(fault), "crashed");
        }
    }

    unsafe fn enter(&self, callee: rrpc::Owner, f: &mut dyn FnMut()) -> Result<(), rrpc::RpcError> {
        enter(callee, f).map_err(rrpc::RpcError::from)
    }

    unsafe fn enter_raw(
        &self,
        callee: rrpc::Owner,
        call: *mut cont::RawCall,
    ) -> Result<(), rrpc::RpcError> {
        // SAFETY: forwarded.
        unsafe { enter_raw(callee, call) }.map_err(rrpc::RpcError::from)
    }
}

// A proxy's inline entry links a `cont::Frame<FaultRoom>`; the failure
// path writes a `Fault` into the innermost frame's payload as if it were a
// `cont::Frame<Fault>` (`catch::Continuation`): same offset, and room
// enough.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    use rrpc::proxy::FaultRoom;
    assert!(size_of::<Fault>() <= size_of::<FaultRoom>());
    assert!(align_of::<Fault>() <= align_of::<FaultRoom>());
    assert!(offset_of!(cont::Frame<Fault>, payload) == offset_of!(cont::Frame<FaultRoom>, payload));
};
