//! Generated proxies entering their callee inline, through the gate the
//! runtime hands out with the entry capability (`Runtime::gate`), as the
//! kernel's runtime does: the proxy checks the gate, switches the running
//! incarnation, links a frame with the watchdog budget and room for the
//! runtime's fault record, and reports a failure to `Runtime::entry_failed`.
//!
//! A failure is what the kernel's failure path does: write a record into
//! the innermost frame's payload and resume it (no unwinding).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use rrpc::proxy::{EntryCap, FaultRoom, Runtime};
use rrpc::{Owner, RRef, RpcError, RpcResult, interface};

const SLOTS: usize = 8;
const BUDGET: u64 = 77;

/// One gate per slot (each test uses its own slot).
static GATES: [cont::Gate; SLOTS] = [const { cont::Gate::new(Owner::new(1, 1)) }; SLOTS];
static BUDGET_WORD: AtomicU64 = AtomicU64::new(BUDGET);

struct GateRuntime {
    /// Failures reported: (callee, the first word of its record).
    failed: Mutex<Vec<(Owner, u64)>>,
    /// Reports made while the failed frame was not the innermost one with
    /// its budget spent, or with the callee still running.
    exposed_reports: AtomicU32,
    /// Entries that went through `enter`/`enter_raw` (none should).
    slow_entries: AtomicU32,
}

// SAFETY: `enter` never runs `f` and returns an error; inline entries are
// made by `rrpc` through the gates below, whose failure path (`fail`)
// writes the record into the frame's payload before resuming it.
unsafe impl Runtime for GateRuntime {
    fn current(&self) -> Owner {
        rrpc::percpu::owner()
    }
    fn caller(&self) -> Owner {
        Owner::KERNEL
    }
    fn is_alive(&self, owner: Owner) -> bool {
        GATES[owner.slot()].is_alive_as(owner)
    }
    unsafe fn enter(&self, _: Owner, _: &mut dyn FnMut()) -> Result<(), RpcError> {
        self.slow_entries.fetch_add(1, Ordering::SeqCst);
        Err(RpcError::NoSuchDomain)
    }
    unsafe fn gate(&self, callee: Owner) -> Option<&'static cont::Gate> {
        GATES.get(callee.slot())
    }
    unsafe fn entry_budget(&self) -> Option<&'static AtomicU64> {
        Some(&BUDGET_WORD)
    }
    unsafe fn entry_failed(&self, callee: Owner, fault: &FaultRoom) {
        // SAFETY: `fail` wrote the first word.
        let code = unsafe { fault.0[0].assume_init() };
        // The report runs with the failed frame still linked and spent (so
        // nothing striking at a tick unwinds the caller before it), and as
        // the caller.
        let top = rrpc::percpu::top() as *const cont::Frame<FaultRoom>;
        // SAFETY: a linked frame is live.
        let shielded = !top.is_null()
            && unsafe {
                (*top).owner == callee
                    && (*top).budget.load(Ordering::SeqCst) == 0
                    && !(*top).regs.saved()
            }
            && rrpc::percpu::owner() != callee;
        if !shielded {
            self.exposed_reports.fetch_add(1, Ordering::SeqCst);
        }
        self.failed.lock().unwrap().push((callee, code));
        // What the kernel does: the incarnation is poisoned.
        GATES[callee.slot()].close(callee);
    }
}

static RUNTIME: GateRuntime = GateRuntime {
    failed: Mutex::new(Vec::new()),
    exposed_reports: AtomicU32::new(0),
    slow_entries: AtomicU32::new(0),
};

/// Installs the runtime and the host kit's heap; this thread runs as
/// `caller`; slot `slot`'s gate opens for incarnation 1.
fn setup(caller: Owner, slot: usize) -> Owner {
    rrpc::install_backend(&rrpc::host_kit::HEAP);
    rrpc::proxy::install_runtime(&RUNTIME);
    rrpc::host_kit::set_current(caller);
    let callee = Owner::new(slot, 1);
    GATES[slot].open(callee);
    callee
}

/// The kernel's failure path, on the host: the record into the innermost
/// frame, its budget spent, then a resume of it.
fn fail(code: u64) -> ! {
    let frame = rrpc::percpu::top() as *mut cont::Frame<FaultRoom>;
    assert!(!frame.is_null(), "a failure inside an entry has a frame");
    // SAFETY: the innermost frame is live (its entry is running below us
    // on this thread); its payload has room for a word.
    unsafe {
        (*frame).payload.as_mut_ptr().cast::<u64>().write(code);
        (*frame).budget.store(0, Ordering::SeqCst);
        cont::resume(&raw const (*frame).regs, 1)
    }
}

#[interface]
pub trait Probe {
    fn look(&self) -> RpcResult<(Owner, Owner, u64)>;
    fn fill(&self, buffer: RRef<[u8; 64]>, byte: u8) -> RpcResult<RRef<[u8; 64]>>;
    fn fail_with(&self, code: u64, buffer: RRef<[u8; 64]>) -> RpcResult<()>;
    async fn later(&self, x: u64) -> RpcResult<(Owner, u64)>;
}

struct Service {
    ran: AtomicBool,
}

impl Probe for Service {
    fn look(&self) -> RpcResult<(Owner, Owner, u64)> {
        self.ran.store(true, Ordering::SeqCst);
        let frame = rrpc::percpu::top() as *const cont::Frame<FaultRoom>;
        assert!(!frame.is_null());
        // SAFETY: the innermost frame is this entry's, live while it runs.
        let (owner, budget) = unsafe { ((*frame).owner, (*frame).budget.load(Ordering::SeqCst)) };
        Ok((rrpc::percpu::owner(), owner, budget))
    }
    fn fill(&self, mut buffer: RRef<[u8; 64]>, byte: u8) -> RpcResult<RRef<[u8; 64]>> {
        self.ran.store(true, Ordering::SeqCst);
        assert_eq!(buffer.owner(), rrpc::percpu::owner(), "moved in first");
        buffer.iter_mut().for_each(|b| *b = byte);
        Ok(buffer)
    }
    fn fail_with(&self, code: u64, _buffer: RRef<[u8; 64]>) -> RpcResult<()> {
        fail(code)
    }
    fn later(&self, x: u64) -> rrpc::RpcFuture<'_, (Owner, u64)> {
        rrpc::RpcFuture::new(async move {
            let frame = rrpc::percpu::top() as *const cont::Frame<FaultRoom>;
            assert!(!frame.is_null(), "polled under a frame");
            // SAFETY: the innermost frame is this poll's entry's.
            let budget = unsafe { (*frame).budget.load(Ordering::SeqCst) };
            Ok((rrpc::percpu::owner(), x + budget))
        })
    }
}

fn proxy(callee: Owner) -> ProbeProxy {
    let service = std::sync::Arc::new(Service {
        ran: AtomicBool::new(false),
    });
    // SAFETY: the capability goes straight into the proxy of `callee`'s
    // object (a test's stand-in for the name service).
    let cap = unsafe { EntryCap::new(callee) };
    assert!(cap.is_inline(), "the runtime hands out the callee's gate");
    ProbeProxy::new(service, cap)
}

#[test]
fn an_inline_entry_runs_as_the_callee_under_a_frame_and_restores_the_caller() {
    let caller = Owner::new(7, 3);
    let callee = setup(caller, 1);
    let probe = proxy(callee);
    let slow = RUNTIME.slow_entries.load(Ordering::SeqCst);
    for _ in 0..3 {
        let (running, frame_owner, budget) = probe.look().expect("the call returns");
        assert_eq!(running, callee, "the callee's code runs as the callee");
        assert_eq!(frame_owner, callee, "its frame names it");
        assert_eq!(budget, BUDGET, "with the runtime's watchdog budget");
        assert_eq!(rrpc::percpu::owner(), caller, "the caller runs again");
        assert!(rrpc::percpu::top().is_null(), "the frame is unlinked");
    }
    let buffer = RRef::new([0u8; 64]);
    let buffer = probe.fill(buffer, 9).expect("moved in and back");
    assert_eq!(buffer.owner(), caller, "the result is the caller's");
    assert!(buffer.iter().all(|&b| b == 9));
    assert_eq!(
        RUNTIME.slow_entries.load(Ordering::SeqCst),
        slow,
        "no entry went through the runtime"
    );
}

#[test]
fn an_async_call_is_polled_inside_the_callee_through_its_gate() {
    let caller = Owner::new(7, 7);
    let callee = setup(caller, 6);
    let probe = proxy(callee);
    let slow = RUNTIME.slow_entries.load(Ordering::SeqCst);
    let (running, value) = rrpc::host_kit::block_on(probe.later(1), 4).expect("the call completes");
    assert_eq!(running, callee);
    assert_eq!(
        value,
        1 + BUDGET,
        "polled under a frame with the runtime's budget"
    );
    assert_eq!(rrpc::percpu::owner(), caller);
    assert!(rrpc::percpu::top().is_null());
    assert_eq!(RUNTIME.slow_entries.load(Ordering::SeqCst), slow);
}

#[test]
fn a_closed_gate_refuses_without_running_the_callee() {
    let caller = Owner::new(7, 4);
    let callee = setup(caller, 2);
    let service = std::sync::Arc::new(Service {
        ran: AtomicBool::new(false),
    });
    // SAFETY: as in `proxy`.
    let probe = ProbeProxy::new(service.clone(), unsafe { EntryCap::new(callee) });
    assert!(GATES[2].close(callee));
    let buffer = RRef::new([1u8; 64]);
    assert_eq!(probe.fill(buffer, 5).err(), Some(RpcError::DomainNotAlive));
    assert_eq!(probe.look().err(), Some(RpcError::DomainNotAlive));
    assert!(
        !service.ran.load(Ordering::SeqCst),
        "nothing ran in the callee"
    );
    assert_eq!(rrpc::percpu::owner(), caller);
    assert!(rrpc::percpu::top().is_null());
    // A restarted incarnation has a gate of its own state: the old
    // capability still names the dead one.
    GATES[2].open(Owner::new(2, 2));
    assert_eq!(probe.look().err(), Some(RpcError::DomainNotAlive));
}

#[test]
fn a_failed_inline_entry_reports_its_record_and_restores_the_caller() {
    let caller = Owner::new(7, 5);
    let callee = setup(caller, 3);
    let probe = proxy(callee);
    let buffer = RRef::new([2u8; 64]);
    assert_eq!(
        probe.fail_with(0xfa11, buffer).err(),
        Some(RpcError::DomainCrashed)
    );
    assert_eq!(rrpc::percpu::owner(), caller, "the caller runs again");
    assert!(rrpc::percpu::top().is_null(), "the frame is unlinked");
    assert!(
        RUNTIME.failed.lock().unwrap().contains(&(callee, 0xfa11)),
        "the runtime got the failure path's record"
    );
    assert_eq!(
        RUNTIME.exposed_reports.load(Ordering::SeqCst),
        0,
        "the failure was reported under the failed frame, spent, as the caller"
    );
    // The runtime poisoned it: later calls are refused.
    assert_eq!(probe.look().err(), Some(RpcError::DomainNotAlive));
}

#[test]
fn a_failure_in_a_nested_inline_entry_resumes_only_the_inner_frame() {
    let caller = Owner::new(7, 6);
    let outer = setup(caller, 4);
    let inner = Owner::new(5, 1);
    GATES[5].open(inner);
    let inner_probe = std::sync::Arc::new(proxy(inner));
    /// What the outer callee saw: the inner call's result and who ran
    /// after it.
    type Seen = std::sync::Arc<Mutex<Option<(RpcResult<()>, Owner)>>>;
    let seen: Seen = std::sync::Arc::new(Mutex::new(None));

    struct Outer {
        inner: std::sync::Arc<ProbeProxy>,
        seen: Seen,
    }
    impl Probe for Outer {
        fn look(&self) -> RpcResult<(Owner, Owner, u64)> {
            let result = self.inner.fail_with(7, RRef::new([0u8; 64]));
            *self.seen.lock().unwrap() = Some((result, rrpc::percpu::owner()));
            Ok((rrpc::percpu::owner(), Owner::KERNEL, 0))
        }
        fn fill(&self, buffer: RRef<[u8; 64]>, _: u8) -> RpcResult<RRef<[u8; 64]>> {
            Ok(buffer)
        }
        fn fail_with(&self, code: u64, _: RRef<[u8; 64]>) -> RpcResult<()> {
            fail(code)
        }
        fn later(&self, _: u64) -> rrpc::RpcFuture<'_, (Owner, u64)> {
            rrpc::RpcFuture::failed(RpcError::NoSuchInterface)
        }
    }
    // SAFETY: as in `proxy`.
    let outer_probe = ProbeProxy::new(
        std::sync::Arc::new(Outer {
            inner: inner_probe,
            seen: seen.clone(),
        }),
        unsafe { EntryCap::new(outer) },
    );
    let (running, _, _) = outer_probe.look().expect("the outer call survives");
    assert_eq!(running, outer);
    let (inner_result, owner_after) = seen
        .lock()
        .unwrap()
        .take()
        .expect("the outer callee went on");
    assert_eq!(inner_result, Err(RpcError::DomainCrashed));
    assert_eq!(
        owner_after, outer,
        "back in the outer callee after the inner failure"
    );
    assert_eq!(rrpc::percpu::owner(), caller);
    assert!(rrpc::percpu::top().is_null());
    assert!(GATES[4].is_alive_as(outer), "the outer callee is alive");
    assert!(!GATES[5].is_alive_as(inner), "the inner one was poisoned");
}
