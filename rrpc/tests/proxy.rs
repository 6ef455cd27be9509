//! Generated proxies against a host runtime that contains panics the way
//! the kernel contains crashes (the callee is marked dead; later calls fail
//! without running it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rrpc::host_kit::{RUNTIME, cap, poll_once, set_current};
use rrpc::{Exchangeable, Owner, RRef, RpcError, RpcFuture, RpcResult, interface};

/// Installs the host kit's heap and runtime; this thread runs as `caller`.
fn setup(caller: Owner) {
    rrpc::host_kit::install(caller);
}

#[derive(Exchangeable)]
pub struct Packet {
    pub header: [u8; 4],
    pub payload: RRef<[u8; 64]>,
    pub length: u16,
}

#[interface]
pub trait Block {
    fn echo(&self, value: u64) -> RpcResult<u64>;
    fn fill(&self, buffer: RRef<[u8; 64]>, byte: u8) -> RpcResult<RRef<[u8; 64]>>;
    fn sum(&self, buffer: &RRef<[u8; 64]>) -> RpcResult<u64>;
    fn who(&self) -> RpcResult<Owner>;
    fn packet(&self, packet: RRef<Packet>) -> RpcResult<u16>;
    fn crash(&self) -> RpcResult<()>;
}

struct Device {
    seen_owner: owner::AtomicOwnerId,
    seen_borrows: AtomicU32,
    seen_nested: AtomicU32,
}

impl Block for Device {
    fn echo(&self, value: u64) -> RpcResult<u64> {
        Ok(value)
    }
    fn fill(&self, mut buffer: RRef<[u8; 64]>, byte: u8) -> RpcResult<RRef<[u8; 64]>> {
        self.seen_owner.store(buffer.owner(), Ordering::SeqCst);
        buffer.iter_mut().for_each(|b| *b = byte);
        Ok(buffer)
    }
    fn sum(&self, buffer: &RRef<[u8; 64]>) -> RpcResult<u64> {
        self.seen_borrows.store(buffer.borrows(), Ordering::SeqCst);
        Ok(buffer.iter().map(|&b| u64::from(b)).sum())
    }
    fn who(&self) -> RpcResult<Owner> {
        Ok(rrpc::proxy::current())
    }
    fn packet(&self, packet: RRef<Packet>) -> RpcResult<u16> {
        self.seen_owner.store(packet.owner(), Ordering::SeqCst);
        self.seen_nested
            .store(packet.payload.owner().to_bits(), Ordering::SeqCst);
        Ok(packet.length + u16::from(packet.payload[0]))
    }
    fn crash(&self) -> RpcResult<()> {
        panic!("device crashed");
    }
}

fn device(slot: u32) -> (BlockProxy, Arc<Device>, Owner) {
    let callee = Owner::new(slot as usize, 1);
    let inner = Arc::new(Device {
        seen_owner: owner::AtomicOwnerId::new(Owner::KERNEL),
        seen_borrows: AtomicU32::new(0),
        seen_nested: AtomicU32::new(0),
    });
    (BlockProxy::new(inner.clone(), cap(callee)), inner, callee)
}

#[test]
fn calls_run_as_the_callee_and_return_values() {
    let caller = Owner::new(1, 1);
    setup(caller);
    let (proxy, _, callee) = device(2);
    assert_eq!(proxy.echo(41), Ok(41));
    assert_eq!(proxy.who(), Ok(callee));
    assert_eq!(
        rrpc::proxy::current(),
        caller,
        "the caller is current again"
    );
}

#[test]
fn rrefs_move_to_the_callee_and_back() {
    let caller = Owner::new(3, 1);
    setup(caller);
    let (proxy, device, callee) = device(4);
    let buffer = RRef::new([0u8; 64]);
    let filled = proxy.fill(buffer, 9).unwrap();
    assert_eq!(
        device.seen_owner.load(Ordering::SeqCst),
        callee,
        "the callee owned it during the call"
    );
    assert_eq!(filled.owner(), caller, "the result came back to the caller");
    assert!(filled.iter().all(|&b| b == 9));
    assert_eq!(proxy.sum(&filled), Ok(9 * 64));
    assert_eq!(
        device.seen_borrows.load(Ordering::SeqCst),
        1,
        "lent for the call"
    );
    assert_eq!(filled.borrows(), 0, "and given back");
    assert_eq!(filled.owner(), caller, "a lent RRef does not move");
}

#[test]
fn derived_structs_cross_with_their_nested_rrefs() {
    let caller = Owner::new(5, 1);
    setup(caller);
    let (proxy, device, callee) = device(6);
    let packet = RRef::new(Packet {
        header: [1, 2, 3, 4],
        payload: RRef::new([7; 64]),
        length: 10,
    });
    assert_eq!(
        packet.payload.owner(),
        caller,
        "the payload is owned like the packet"
    );
    assert_eq!(proxy.packet(packet), Ok(17));
    assert_eq!(device.seen_owner.load(Ordering::SeqCst), callee);
    assert_eq!(
        device.seen_nested.load(Ordering::SeqCst),
        callee.to_bits(),
        "the nested payload moved with the packet"
    );
}

/// After refused calls into the dead `callee`: it was given none of the
/// arguments, and the caller dropped them.
fn nothing_given_to_the_dead(caller: Owner, callee: Owner) {
    assert_eq!(rrpc::registry::owned_by(callee).0, 0, "given to the dead");
    assert_eq!(
        rrpc::registry::owned_by(caller).0,
        0,
        "not dropped by the caller"
    );
}

#[test]
fn a_call_into_a_dead_callee_gives_it_nothing() {
    // Issue 10, item 9: arguments move inside the callee, so a call that
    // is refused (the callee died) drops them in the caller instead of
    // leaving them owned by a dead incarnation forever.
    let caller = Owner::new(18, 1);
    setup(caller);
    let (proxy, _, callee) = device(19);
    assert_eq!(proxy.crash(), Err(RpcError::DomainCrashed));
    let entries = RUNTIME.entries(19);
    for _ in 0..3 {
        assert_eq!(
            proxy.fill(RRef::new([1; 64]), 2).map(|_| ()),
            Err(RpcError::DomainNotAlive)
        );
    }
    assert_eq!(RUNTIME.entries(19), entries);
    nothing_given_to_the_dead(caller, callee);
}

#[test]
fn a_crash_is_an_error_and_later_calls_fail_without_entering() {
    setup(Owner::new(7, 1));
    let (proxy, _, _) = device(8);
    assert_eq!(proxy.echo(1), Ok(1));
    assert_eq!(proxy.crash(), Err(RpcError::DomainCrashed));
    let before = RUNTIME.entries(8);
    assert_eq!(proxy.echo(2), Err(RpcError::DomainNotAlive));
    assert_eq!(RUNTIME.entries(8), before, "a dead callee is not entered");
}

// ---- async methods -------------------------------------------------------

use std::pin::Pin;
use std::task::Poll;

#[interface]
pub trait Storage {
    async fn read(&self, block: u64) -> RpcResult<RRef<[u8; 64]>>;
    async fn wait(&self) -> RpcResult<u32>;
    async fn crash_on_second_poll(&self) -> RpcResult<()>;
    async fn keep(&self, data: RRef<[u8; 64]>) -> RpcResult<u64>;
}

static RELEASE: AtomicBool = AtomicBool::new(false);
static INNER_DROPPED: AtomicBool = AtomicBool::new(false);

struct Disk;

struct DropFlag;
impl Drop for DropFlag {
    fn drop(&mut self) {
        INNER_DROPPED.store(true, Ordering::SeqCst);
    }
}

impl Storage for Disk {
    fn read(&self, block: u64) -> RpcFuture<'_, RRef<[u8; 64]>> {
        // Created inside the callee: the buffer starts out as the callee's.
        RpcFuture::new(async move { Ok(RRef::new([block as u8; 64])) })
    }
    fn wait(&self) -> RpcFuture<'_, u32> {
        RpcFuture::new(std::future::poll_fn(|_| {
            if RELEASE.load(Ordering::SeqCst) {
                Poll::Ready(Ok(5))
            } else {
                Poll::Pending
            }
        }))
    }
    fn crash_on_second_poll(&self) -> RpcFuture<'_, ()> {
        let flag = DropFlag;
        let mut polls = 0;
        RpcFuture::new(std::future::poll_fn(move |_| {
            let _keep = &flag;
            polls += 1;
            if polls == 2 {
                panic!("disk crashed mid-request");
            }
            Poll::Pending
        }))
    }
    fn keep(&self, data: RRef<[u8; 64]>) -> RpcFuture<'_, u64> {
        let owner = data.owner();
        RpcFuture::new(async move { Ok(u64::from(owner.to_bits())) })
    }
}

#[test]
fn async_call_returns_the_callees_rref_to_the_caller() {
    let caller = Owner::new(9, 1);
    setup(caller);
    let proxy = StorageProxy::new(Arc::new(Disk), cap(Owner::new(10, 1)));
    let mut future = Box::pin(proxy.read(3));
    match poll_once(future.as_mut()) {
        Poll::Ready(Ok(buffer)) => {
            assert_eq!(buffer.owner(), caller, "the result moved to the caller");
            assert!(buffer.iter().all(|&b| b == 3));
        }
        other => panic!("read gave {:?}", other.map(|r| r.map(|_| ()))),
    }
}

#[test]
fn suspended_async_call_completes_later() {
    setup(Owner::new(11, 1));
    let proxy = StorageProxy::new(Arc::new(Disk), cap(Owner::new(12, 1)));
    let mut future = Box::pin(proxy.wait());
    assert!(poll_once(future.as_mut()).is_pending());
    RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(poll_once(future.as_mut()), Poll::Ready(Ok(5)));
}

#[test]
fn a_crash_during_a_poll_fails_the_call_and_forgets_the_callee_future() {
    setup(Owner::new(13, 1));
    let proxy = StorageProxy::new(Arc::new(Disk), cap(Owner::new(14, 1)));
    let mut future = Box::pin(proxy.crash_on_second_poll());
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(
        poll_once(future.as_mut()),
        Poll::Ready(Err(RpcError::DomainCrashed))
    );
    drop(future);
    assert!(
        !INNER_DROPPED.load(Ordering::SeqCst),
        "a crashed callee's future must be forgotten, not dropped"
    );
    let mut next = Box::pin(proxy.read(1));
    assert!(matches!(
        poll_once(next.as_mut()),
        Poll::Ready(Err(RpcError::DomainNotAlive))
    ));
}

// ---- interface handles -----------------------------------------------------

#[interface]
pub trait Registry {
    /// Takes a handle to another interface and calls through it.
    fn probe(&self, device: BlockProxy) -> RpcResult<Owner>;
}

struct RegistryImpl;

impl Registry for RegistryImpl {
    fn probe(&self, device: BlockProxy) -> RpcResult<Owner> {
        // Calling through the handle enters the device's domain, not ours.
        device.who()
    }
}

#[test]
fn interface_handles_cross_calls_as_proxies() {
    setup(Owner::new(15, 1));
    let (device_proxy, _, device_owner) = device(16);
    let registry = RegistryProxy::new(Arc::new(RegistryImpl), cap(Owner::new(17, 1)));
    assert_eq!(registry.probe(device_proxy), Ok(device_owner));
}

/// An async method that borrows an `RRef`: the proxy keeps it lent until
/// the call finishes, and a crash of the callee leaves it with the caller.
#[interface]
pub trait Summer {
    async fn sum(&self, data: &RRef<[u8; 16]>) -> RpcResult<u32>;
    async fn crash_on(&self, data: &RRef<[u8; 16]>) -> RpcResult<u32>;
}

struct SummerImpl;

impl Summer for SummerImpl {
    fn sum<'a>(&'a self, data: &'a RRef<[u8; 16]>) -> RpcFuture<'a, u32> {
        RpcFuture::new(async move {
            assert_eq!(data.borrows(), 1, "lent while the callee runs");
            Ok(data.iter().map(|&b| u32::from(b)).sum())
        })
    }
    fn crash_on<'a>(&'a self, _data: &'a RRef<[u8; 16]>) -> RpcFuture<'a, u32> {
        RpcFuture::new(async move { panic!("callee crashed while borrowing") })
    }
}

#[test]
fn async_calls_can_borrow_rrefs_and_a_crash_leaves_them_with_the_caller() {
    // Slots of its own: the crash below marks the callee's slot dead.
    let caller = Owner::new(40, 1);
    setup(caller);
    let proxy = SummerProxy::new(Arc::new(SummerImpl), cap(Owner::new(41, 1)));
    let data = RRef::new([3u8; 16]);
    let mut future = Box::pin(proxy.sum(&data));
    assert_eq!(poll_once(future.as_mut()), Poll::Ready(Ok(48)));
    drop(future);
    assert_eq!(data.borrows(), 0, "the lend ended with the call");
    assert_eq!(data.owner(), caller, "a borrowed RRef never moves");
    let mut future = Box::pin(proxy.crash_on(&data));
    assert_eq!(
        poll_once(future.as_mut()),
        Poll::Ready(Err(RpcError::DomainCrashed))
    );
    drop(future);
    assert_eq!(data.owner(), caller);
    assert_eq!(data.borrows(), 0);
    assert!(data.iter().all(|&b| b == 3), "still the caller's, intact");
}

// ---- RpcFuture: when a proxied call runs, what dropping it does --------------

#[interface]
pub trait Jobs {
    /// A small call (kept in the future): starts at the first poll.
    async fn take(&self, buffer: RRef<[u8; 64]>) -> RpcResult<u8>;
    /// Larger than the words kept inline: starts when it is made.
    async fn wide(&self, a: u64, b: u64, c: u64) -> RpcResult<u64>;
    /// Panics in the method itself, before it has a future.
    async fn panic_at_start(&self) -> RpcResult<()>;
    /// Never completes; records who drops its future.
    async fn forever(&self) -> RpcResult<()>;
    /// Pending until `release` is set.
    async fn later(&self) -> RpcResult<u32>;
}

#[derive(Default)]
struct JobsImpl {
    started: AtomicU32,
    dropped_as: Arc<AtomicU32>,
    release: AtomicBool,
}

struct RecordDrop(Arc<AtomicU32>);
impl Drop for RecordDrop {
    fn drop(&mut self) {
        self.0
            .store(rrpc::proxy::current().to_bits(), Ordering::SeqCst);
    }
}

impl Jobs for JobsImpl {
    fn take(&self, buffer: RRef<[u8; 64]>) -> RpcFuture<'_, u8> {
        self.started.fetch_add(1, Ordering::SeqCst);
        RpcFuture::new(async move { Ok(buffer[0]) })
    }
    fn wide(&self, a: u64, b: u64, c: u64) -> RpcFuture<'_, u64> {
        self.started.fetch_add(1, Ordering::SeqCst);
        RpcFuture::new(async move { Ok(a + b + c) })
    }
    fn panic_at_start(&self) -> RpcFuture<'_, ()> {
        panic!("the method itself failed")
    }
    fn later(&self) -> RpcFuture<'_, u32> {
        RpcFuture::new(std::future::poll_fn(|_| {
            if self.release.load(Ordering::SeqCst) {
                Poll::Ready(Ok(9))
            } else {
                Poll::Pending
            }
        }))
    }
    fn forever(&self) -> RpcFuture<'_, ()> {
        let guard = RecordDrop(self.dropped_as.clone());
        RpcFuture::new(std::future::poll_fn(move |_| {
            let _keep = &guard;
            Poll::Pending
        }))
    }
}

fn jobs(slot: u32) -> (JobsProxy, Arc<JobsImpl>, Owner) {
    let callee = Owner::new(slot as usize, 1);
    let inner = Arc::new(JobsImpl::default());
    (JobsProxy::new(inner.clone(), cap(callee)), inner, callee)
}

#[test]
fn a_small_async_call_starts_at_its_first_poll_and_costs_one_entry() {
    setup(Owner::new(50, 1));
    let (proxy, jobs, callee) = jobs(51);
    let before = RUNTIME.entries(51);
    let mut future = Box::pin(proxy.take(RRef::new([7; 64])));
    assert_eq!(jobs.started.load(Ordering::SeqCst), 0, "lazy, like `async`");
    assert_eq!(RUNTIME.entries(51), before);
    assert_eq!(future.callee(), callee);
    assert_eq!(poll_once(future.as_mut()), Poll::Ready(Ok(7)));
    assert_eq!(jobs.started.load(Ordering::SeqCst), 1);
    drop(future);
    assert_eq!(
        RUNTIME.entries(51),
        before + 1,
        "start, poll and drop of the callee's future in one entry"
    );
    assert_eq!(
        poll_once(Box::pin(proxy.take(RRef::new([9; 64]))).as_mut()),
        Poll::Ready(Ok(9))
    );
}

#[test]
fn dropping_an_unstarted_call_drops_its_arguments_in_the_caller() {
    // Arguments move to the callee when the call starts, inside it: until
    // then they are the caller's, and a call dropped unstarted frees them
    // without entering the callee.
    let caller = Owner::new(52, 1);
    setup(caller);
    let (proxy, jobs, callee) = jobs(53);
    let future = proxy.take(RRef::new([1; 64]));
    assert_eq!(rrpc::registry::owned_by(callee).0, 0, "not moved yet");
    assert_eq!(rrpc::registry::owned_by(caller).0, 1);
    let before = RUNTIME.entries(53);
    drop(future);
    assert_eq!(RUNTIME.entries(53), before, "no entry");
    assert_eq!(jobs.started.load(Ordering::SeqCst), 0, "never started");
    assert_eq!(
        rrpc::registry::owned_by(caller).0,
        0,
        "dropped by the caller"
    );
}

#[test]
fn a_call_too_wide_to_keep_inline_is_boxed_and_still_starts_at_its_first_poll() {
    setup(Owner::new(54, 1));
    let (proxy, jobs, _) = jobs(55);
    let before = RUNTIME.entries(55);
    let mut future = Box::pin(proxy.wide(1, 2, 3));
    assert_eq!(
        jobs.started.load(Ordering::SeqCst),
        0,
        "lazy, like the others"
    );
    assert_eq!(RUNTIME.entries(55), before);
    assert_eq!(poll_once(future.as_mut()), Poll::Ready(Ok(6)));
    assert_eq!(jobs.started.load(Ordering::SeqCst), 1);
    assert_eq!(RUNTIME.entries(55), before + 1);
    // Dropped before it started: its box (the caller's) is dropped here.
    let unstarted = Box::pin(proxy.wide(4, 5, 6));
    drop(unstarted);
    assert_eq!(RUNTIME.entries(55), before + 1);
    assert_eq!(jobs.started.load(Ordering::SeqCst), 1, "never started");
}

#[test]
fn a_wide_call_to_a_dead_callee_fails_without_entering_it() {
    setup(Owner::new(29, 1));
    let (proxy, jobs, _) = jobs(30);
    let mut crash = Box::pin(proxy.panic_at_start());
    assert_eq!(
        poll_once(crash.as_mut()),
        Poll::Ready(Err(RpcError::DomainCrashed))
    );
    let before = RUNTIME.entries(30);
    let mut polled = Box::pin(proxy.wide(1, 2, 3));
    assert_eq!(
        poll_once(polled.as_mut()),
        Poll::Ready(Err(RpcError::DomainNotAlive))
    );
    let dropped = Box::pin(proxy.wide(4, 5, 6));
    drop(dropped);
    drop(polled);
    assert_eq!(RUNTIME.entries(30), before, "never entered");
    assert_eq!(jobs.started.load(Ordering::SeqCst), 0);
}

#[test]
fn a_crash_while_a_call_starts_fails_it_and_the_callee_stays_dead() {
    setup(Owner::new(56, 1));
    let (proxy, _, _) = jobs(57);
    let mut future = Box::pin(proxy.panic_at_start());
    assert_eq!(
        poll_once(future.as_mut()),
        Poll::Ready(Err(RpcError::DomainCrashed))
    );
    assert_eq!(
        poll_once(future.as_mut()),
        Poll::Ready(Err(RpcError::DomainCrashed)),
        "polled again: the same error"
    );
    drop(future);
    let before = RUNTIME.entries(57);
    let mut next = Box::pin(proxy.take(RRef::new([0; 64])));
    assert_eq!(
        poll_once(next.as_mut()),
        Poll::Ready(Err(RpcError::DomainNotAlive))
    );
    drop(next);
    assert_eq!(
        RUNTIME.entries(57),
        before,
        "a dead callee is not entered, not even to drop the arguments"
    );
}

#[test]
fn dropping_a_pending_call_drops_the_callees_future_inside_the_callee() {
    let caller = Owner::new(58, 1);
    setup(caller);
    let (proxy, jobs, callee) = jobs(59);
    let mut future = Box::pin(proxy.forever());
    assert!(poll_once(future.as_mut()).is_pending());
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(jobs.dropped_as.load(Ordering::SeqCst), 0);
    drop(future);
    assert_eq!(jobs.dropped_as.load(Ordering::SeqCst), callee.to_bits());
    assert_eq!(rrpc::proxy::current(), caller);
}

/// A domain whose method returns another domain's proxied future.
struct Relay(StorageProxy);

impl Storage for Relay {
    fn read(&self, block: u64) -> RpcFuture<'_, RRef<[u8; 64]>> {
        self.0.read(block + 1)
    }
    fn wait(&self) -> RpcFuture<'_, u32> {
        self.0.wait()
    }
    fn crash_on_second_poll(&self) -> RpcFuture<'_, ()> {
        self.0.crash_on_second_poll()
    }
    fn keep(&self, data: RRef<[u8; 64]>) -> RpcFuture<'_, u64> {
        self.0.keep(data)
    }
}

#[test]
fn a_forwarded_async_call_enters_each_domain_in_turn() {
    let caller = Owner::new(60, 1);
    setup(caller);
    let disk = StorageProxy::new(Arc::new(Disk), cap(Owner::new(61, 1)));
    let relay = StorageProxy::new(Arc::new(Relay(disk)), cap(Owner::new(62, 1)));
    let (disk_before, relay_before) = (RUNTIME.entries(61), RUNTIME.entries(62));
    let mut future = Box::pin(relay.read(4));
    match poll_once(future.as_mut()) {
        Poll::Ready(Ok(buffer)) => {
            assert!(buffer.iter().all(|&b| b == 5), "the disk's data");
            assert_eq!(buffer.owner(), caller, "moved back through both");
        }
        other => panic!("read gave {:?}", other.map(|r| r.map(|_| ()))),
    }
    drop(future);
    assert_eq!(RUNTIME.entries(62), relay_before + 1);
    assert_eq!(RUNTIME.entries(61), disk_before + 1);
}

#[test]
fn an_implementations_own_future_is_polled_in_place() {
    setup(Owner::new(63, 1));
    let direct = JobsImpl::default();
    let mut future = Box::pin(direct.wide(4, 5, 6));
    assert_eq!(future.callee(), Owner::KERNEL);
    assert_eq!(poll_once(future.as_mut()), Poll::Ready(Ok(15)));
    let mut failed = Box::pin(RpcFuture::<'_, u64>::failed(RpcError::OutOfMemory));
    assert_eq!(
        poll_once(failed.as_mut()),
        Poll::Ready(Err(RpcError::OutOfMemory))
    );
}

#[test]
fn a_pending_call_is_registered_until_it_completes_or_is_dropped() {
    let caller = Owner::new(24, 1);
    setup(caller);
    let (proxy, jobs, callee) = jobs(20);
    let mut future = Box::pin(proxy.forever());
    assert!(poll_once(future.as_mut()).is_pending());
    assert!(poll_once(future.as_mut()).is_pending());
    let parked = RUNTIME.parked_by(caller);
    assert_eq!(parked.len(), 1, "registered once, however often polled");
    assert_eq!((parked[0].caller, parked[0].callee), (caller, callee));
    drop(future);
    assert!(RUNTIME.parked_by(caller).is_empty(), "dropping unregisters");
    // A call that completes after a pending poll unregisters too.
    let mut later = Box::pin(proxy.later());
    assert!(poll_once(later.as_mut()).is_pending());
    assert_eq!(RUNTIME.parked_by(caller).len(), 1);
    jobs.release.store(true, Ordering::SeqCst);
    assert_eq!(poll_once(later.as_mut()), Poll::Ready(Ok(9)));
    assert!(
        RUNTIME.parked_by(caller).is_empty(),
        "completion unregisters"
    );
    // The kernel never dies: its calls are not registered.
    set_current(Owner::KERNEL);
    let mut kernel_call = Box::pin(proxy.forever());
    assert!(poll_once(kernel_call.as_mut()).is_pending());
    assert!(RUNTIME.parked_by(Owner::KERNEL).is_empty());
}

#[test]
fn a_dead_callers_pending_call_is_dropped_inside_the_callee() {
    let caller = Owner::new(22, 1);
    setup(caller);
    let (proxy, jobs, callee) = jobs(23);
    let mut future = Box::pin(proxy.forever());
    assert!(poll_once(future.as_mut()).is_pending());
    // The caller dies: its task (here, `future`) is never polled or
    // dropped again; the kernel drops the callee's part inside the callee.
    RUNTIME.caller_died(caller);
    assert_eq!(
        jobs.dropped_as.load(Ordering::SeqCst),
        callee.to_bits(),
        "dropped inside the callee"
    );
    std::mem::forget(future);
    assert!(RUNTIME.parked_by(caller).is_empty());
}

#[test]
fn async_arguments_move_when_the_call_starts_inside_the_callee() {
    let caller = Owner::new(44, 1);
    let callee = Owner::new(45, 1);
    setup(caller);
    let proxy = StorageProxy::new(Arc::new(Disk), cap(callee));
    // Made but not started: the argument is still the caller's, and
    // dropping the call drops it here without entering the callee.
    let entries = RUNTIME.entries(45);
    let unstarted = proxy.keep(RRef::new([1; 64]));
    assert_eq!(rrpc::registry::owned_by(caller).0, 1);
    drop(unstarted);
    assert_eq!(rrpc::registry::owned_by(caller).0, 0);
    assert_eq!(RUNTIME.entries(45), entries);
    // Started: the callee saw it as its own.
    let mut call = Box::pin(proxy.keep(RRef::new([2; 64])));
    assert_eq!(
        poll_once(call.as_mut()),
        Poll::Ready(Ok(u64::from(callee.to_bits())))
    );
    assert_eq!(
        rrpc::registry::owned_by(callee).0,
        0,
        "dropped by the callee"
    );
}

#[test]
fn an_async_call_into_a_dead_callee_gives_it_nothing() {
    let caller = Owner::new(42, 1);
    let callee = Owner::new(43, 1);
    setup(caller);
    let proxy = StorageProxy::new(Arc::new(Disk), cap(callee));
    let mut crash = Box::pin(proxy.crash_on_second_poll());
    assert!(poll_once(crash.as_mut()).is_pending());
    assert_eq!(
        poll_once(crash.as_mut()),
        Poll::Ready(Err(RpcError::DomainCrashed))
    );
    for _ in 0..3 {
        let mut call = Box::pin(proxy.keep(RRef::new([3; 64])));
        assert_eq!(
            poll_once(call.as_mut()),
            Poll::Ready(Err(RpcError::DomainNotAlive))
        );
    }
    nothing_given_to_the_dead(caller, callee);
}

// ---- abandoned calls: what the kernel may touch after the caller died ----

#[interface]
pub trait Lender {
    async fn hold(&self, data: &RRef<[u8; 64]>) -> RpcResult<u32>;
}

static PEEKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Reads the lent buffer when the callee's future is dropped (a driver
/// cancelling I/O on it would, and so would a hostile callee).
struct Peek<'a>(&'a RRef<[u8; 64]>);
impl Drop for Peek<'_> {
    fn drop(&mut self) {
        PEEKED.store(u64::from(self.0[0]) | 0x100, Ordering::SeqCst);
    }
}

struct LenderImpl;
impl Lender for LenderImpl {
    fn hold<'a>(&'a self, data: &'a RRef<[u8; 64]>) -> RpcFuture<'a, u32> {
        RpcFuture::new(async move {
            let _peek = Peek(data);
            core::future::pending::<()>().await;
            Ok(0)
        })
    }
}

#[test]
fn an_abandoned_lending_call_reads_only_the_real_object_when_dropped() {
    // Found by review: the caller forgets a pending call that borrows its
    // RRef (safe: the borrow ends), frees the handle's memory and reuses
    // it with a forged header pointer, then dies; the kernel drops the
    // callee's future, which read through the forged pointer. Now the
    // callee's reference is to a copy of the handle kept in the call's own
    // (leaked) state, and a lent object is frozen: dropping it leaves it
    // alive until its owner dies.
    let caller = Owner::new(25, 1);
    setup(caller);
    let proxy = LenderProxy::new(Arc::new(LenderImpl), cap(Owner::new(26, 1)));
    let fake: &'static [u8; 128] = Box::leak(Box::new([0x5Au8; 128]));
    let data = Box::new(RRef::new([7u8; 64]));
    let mut future = Box::pin(proxy.hold(&data));
    assert!(poll_once(future.as_mut()).is_pending());
    assert_eq!(RUNTIME.parked_by(caller).len(), 1, "registered");
    std::mem::forget(future);
    assert!(
        data.is_lent(),
        "still lent: the call was abandoned, not ended"
    );
    drop(data); // the handle's box is freed; the object is not
    assert_eq!(rrpc::registry::owned_by(caller).0, 1, "the object stays");
    let forged: Box<usize> = Box::new(fake.as_ptr() as usize);
    RUNTIME.caller_died(caller);
    assert_eq!(
        PEEKED.load(Ordering::SeqCst),
        0x100 | 7,
        "the callee read the real object, not the forged one"
    );
    drop(forged);
    // The owner's death frees it (after its abandoned calls were dropped).
    // SAFETY: test-only: `caller` is "dead" and holds nothing.
    assert_eq!(unsafe { rrpc::registry::reclaim(caller) }.0, 1);
}

#[test]
fn a_lent_rref_cannot_be_changed_moved_or_given_away() {
    let caller = Owner::new(27, 1);
    setup(caller);
    let lender = LenderProxy::new(Arc::new(LenderImpl), cap(Owner::new(28, 1)));
    let (device, _, device_owner) = device(31);
    let mut data = RRef::new([1u8; 64]);
    let mut call = Box::pin(lender.hold(&data));
    assert!(poll_once(call.as_mut()).is_pending());
    std::mem::forget(call);
    // Changing it (a callee may still read it) crashes the holder.
    let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| data[0] = 2));
    assert!(changed.is_err(), "a lent RRef was changed");
    // Giving it to another domain is refused (its new owner could free it).
    let mut packet = RRef::new([0u8; 64]);
    core::mem::swap(&mut packet, &mut data); // `data` is now a fresh one
    let refused = device.fill(packet, 3);
    assert_eq!(refused.map(|_| ()), Err(RpcError::Lent));
    assert_eq!(rrpc::registry::owned_by(device_owner).0, 0, "nothing moved");
    // Moving it out of the shared heap is refused too.
    let lent = RRef::new([9u8; 64]);
    let mut again = Box::pin(lender.hold(&lent));
    assert!(poll_once(again.as_mut()).is_pending());
    std::mem::forget(again);
    let moved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lent.into_inner()));
    assert!(moved.is_err(), "a lent RRef was moved out");
}

#[test]
fn the_kernel_drops_an_abandoned_call_without_touching_the_callers_memory() {
    // Found by review: the registration named the caller's `RpcFuture`,
    // which a caller can pin on its stack and abandon by crashing (the
    // stack is then reused); the kernel wrote into that memory. Now it
    // names a cell on the callee's heap.
    let caller = Owner::new(32, 1);
    setup(caller);
    let (proxy, jobs, callee) = jobs(33);
    let layout = std::alloc::Layout::new::<RpcFuture<'static, ()>>();
    // SAFETY: test-only: a place for the future that the test then
    // scribbles over, as a reused stack would be.
    let place = unsafe { std::alloc::alloc(layout) } as *mut RpcFuture<'_, ()>;
    // SAFETY: `place` is fresh memory of the future's layout.
    unsafe { place.write(proxy.forever()) };
    // SAFETY: the future stays at `place` until the test scribbles over it
    // (it is never used as a future again, nor dropped).
    let pinned = unsafe { Pin::new_unchecked(&mut *place) };
    assert!(poll_once(pinned).is_pending());
    // SAFETY: the memory is ours; the future in it is given up.
    unsafe { std::ptr::write_bytes(place as *mut u8, 0xAB, layout.size()) };
    RUNTIME.caller_died(caller);
    assert_eq!(
        jobs.dropped_as.load(Ordering::SeqCst),
        callee.to_bits(),
        "the callee's future was dropped inside the callee"
    );
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(place as *mut u8, layout) };
}

// ---- wakers a callee is polled with ------------------------------------------

#[interface]
pub trait WakerProbe {
    /// The waker it is polled with: its data pointer times two, plus one if
    /// it is one of the runtime's task wakers.
    async fn waker_seen(&self) -> RpcResult<u64>;
}

struct WakerProbeImpl;

impl WakerProbe for WakerProbeImpl {
    fn waker_seen(&self) -> RpcFuture<'_, u64> {
        RpcFuture::new(std::future::poll_fn(|cx| {
            let task = std::ptr::eq(cx.waker().vtable(), rrpc::host_kit::task_waker(0).vtable());
            Poll::Ready(Ok(cx.waker().data() as u64 * 2 + u64::from(task)))
        }))
    }
}

/// The runtime's own wakers reach the callee as they are (the fast path: one
/// comparison, no call into the runtime); any other is replaced before the
/// callee sees it, so a caller's own waker code never runs in the callee.
#[test]
fn a_callee_is_polled_only_with_the_runtimes_wakers() {
    struct Foreign(AtomicU32);
    impl std::task::Wake for Foreign {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    setup(Owner::new(40, 1));
    let proxy = WakerProbeProxy::new(Arc::new(WakerProbeImpl), cap(Owner::new(41, 1)));
    let poll_with = |waker: &std::task::Waker| {
        let mut future = std::pin::pin!(proxy.waker_seen());
        match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            Poll::Ready(result) => result.unwrap(),
            Poll::Pending => panic!("ready at once"),
        }
    };
    assert_eq!(poll_with(&rrpc::host_kit::task_waker(7)), 7 * 2 + 1);
    let foreign = Arc::new(Foreign(AtomicU32::new(0)));
    let waker = std::task::Waker::from(foreign.clone());
    // Replaced by the runtime's waker of task 0.
    assert_eq!(poll_with(&waker), 1);
    assert_eq!(foreign.0.load(Ordering::SeqCst), 0);
}
