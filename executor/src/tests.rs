//! Host tests: a recording platform (every `notify` is logged, in the
//! spirit of embassy's recording pender), a fake clock, and real threads.

extern crate std;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::task::Poll;
use core::time::Duration;
use std::sync::Mutex;

use crate::*;

/// Records notifications; the clock is manual.
struct Recording {
    now: AtomicU64,
    notified: Mutex<Vec<usize>>,
    crash_owner: AtomicU64,
    /// Polls of this owner are deferred until the clock reaches
    /// `defer_until` (a fair-share platform's answer).
    defer_owner: AtomicU64,
    defer_until: AtomicU64,
    /// Ends every batch after its first poll.
    short_batches: AtomicBool,
    /// `critical` sections run, and whether one is running now.
    criticals: AtomicUsize,
    in_critical: AtomicBool,
    /// Ready-queue pushes seen outside a critical section.
    notified_outside: AtomicUsize,
}

impl Recording {
    fn leak() -> &'static Recording {
        Box::leak(Box::new(Recording {
            now: AtomicU64::new(0),
            notified: Mutex::new(Vec::new()),
            crash_owner: AtomicU64::new(u64::MAX),
            defer_owner: AtomicU64::new(u64::MAX),
            defer_until: AtomicU64::new(0),
            short_batches: AtomicBool::new(false),
            criticals: AtomicUsize::new(0),
            in_critical: AtomicBool::new(false),
            notified_outside: AtomicUsize::new(0),
        }))
    }

    fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }

    fn notifications(&self) -> Vec<usize> {
        self.notified.lock().unwrap().clone()
    }
}

impl Platform for Recording {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn notify(&self, executor_id: usize) {
        if !self.in_critical.load(Ordering::SeqCst) {
            self.notified_outside.fetch_add(1, Ordering::SeqCst);
        }
        self.notified.lock().unwrap().push(executor_id);
    }

    fn critical(&self, f: &mut dyn FnMut()) {
        self.criticals.fetch_add(1, Ordering::SeqCst);
        let outer = self.in_critical.swap(true, Ordering::SeqCst);
        f();
        self.in_critical.store(outer, Ordering::SeqCst);
    }

    fn current_executor(&self) -> Option<usize> {
        None
    }

    fn poll_task(&self, owner: OwnerId, poll: &mut dyn FnMut() -> Poll<()>) -> PollOutcome {
        if u64::from(owner.to_bits()) == self.crash_owner.load(Ordering::SeqCst) {
            return PollOutcome::Crashed; // the "domain" dies on entry
        }
        let until = self.defer_until.load(Ordering::SeqCst);
        if u64::from(owner.to_bits()) == self.defer_owner.load(Ordering::SeqCst)
            && self.now_ns() < until
        {
            return PollOutcome::Deferred(until);
        }
        match poll() {
            Poll::Ready(()) => PollOutcome::Ready,
            Poll::Pending => PollOutcome::Pending,
        }
    }

    fn end_batch_early(&self) -> bool {
        self.short_batches.load(Ordering::SeqCst)
    }
}

use alloc::boxed::Box;

fn new_exec(capacity: usize) -> (&'static Executor, &'static Recording) {
    let platform = Recording::leak();
    (Executor::new(platform, capacity), platform)
}

fn run_until_idle(exec: &'static Executor) -> RunStats {
    let mut total = RunStats::default();
    for _ in 0..10_000 {
        let stats = exec.run(1000);
        total.polled += stats.polled;
        total.completed += stats.completed;
        total.cancelled += stats.cancelled;
        total.purged += stats.purged;
        total.timers_fired += stats.timers_fired;
        if !exec.has_ready() {
            break;
        }
    }
    total
}

/// Polls a future to completion on the calling thread with a no-op waker.
fn block_on<F: core::future::Future>(fut: F) -> F::Output {
    let mut fut = core::pin::pin!(fut);
    let waker = core::task::Waker::noop();
    let mut cx = core::task::Context::from_waker(waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A future that stays pending, counting polls, until `release` is set.
fn gate(
    polls: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
) -> impl core::future::Future<Output = u32> + Send {
    poll_fn(move |_cx| {
        polls.fetch_add(1, Ordering::SeqCst);
        if release.load(Ordering::SeqCst) {
            Poll::Ready(7)
        } else {
            Poll::Pending
        }
    })
}

#[test]
fn spawn_runs_and_join_yields_output() {
    let (exec, _) = new_exec(16);
    let handle = exec.spawn(OwnerId::KERNEL, async { 40 + 2 }).unwrap();
    assert!(!handle.is_finished());
    let stats = run_until_idle(exec);
    assert_eq!(stats.completed, 1);
    assert!(handle.is_finished());
    assert_eq!(block_on(handle), Ok(42));
    assert_eq!(exec.task_count(), 0);
}

#[test]
fn task_is_queued_at_most_once() {
    let (exec, _) = new_exec(16);
    let polls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let handle = exec
        .spawn(OwnerId::KERNEL, gate(polls.clone(), release.clone()))
        .unwrap();
    run_until_idle(exec);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    for _ in 0..100 {
        wake_task(handle.id());
    }
    let stats = exec.run(1000);
    assert_eq!(stats.polled, 1, "100 wakes must cause exactly one poll");
    release.store(true, Ordering::SeqCst);
    wake_task(handle.id());
    run_until_idle(exec);
    assert_eq!(block_on(handle), Ok(7));
}

#[test]
fn stale_wakes_are_ignored_and_slots_reused_with_new_generation() {
    let (exec, _) = new_exec(1);
    let first = exec.spawn(OwnerId::KERNEL, async {}).unwrap();
    let first_id = first.id();
    run_until_idle(exec);
    let second = exec.spawn(OwnerId::KERNEL, async { 1 }).unwrap();
    assert_eq!(second.id().slot(), first_id.slot());
    assert_ne!(second.id().generation(), first_id.generation());
    wake_task(first_id); // stale: must not disturb the new task
    assert_eq!(run_until_idle(exec).polled, 1);
    assert_eq!(block_on(second), Ok(1));
}

#[test]
fn capacity_exhaustion_is_an_error_not_a_panic() {
    let (exec, _) = new_exec(2);
    let release = Arc::new(AtomicBool::new(false));
    let a = exec
        .spawn(OwnerId::KERNEL, gate(Arc::default(), release.clone()))
        .unwrap();
    let b = exec
        .spawn(OwnerId::KERNEL, gate(Arc::default(), release.clone()))
        .unwrap();
    assert!(matches!(
        exec.spawn(OwnerId::KERNEL, async {}),
        Err(SpawnError::Full)
    ));
    release.store(true, Ordering::SeqCst);
    wake_task(a.id());
    wake_task(b.id());
    run_until_idle(exec);
    assert!(
        exec.spawn(OwnerId::KERNEL, async {}).is_ok(),
        "slots come back after tasks finish"
    );
}

#[test]
fn abort_drops_without_polling_again() {
    let (exec, _) = new_exec(8);
    let polls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let p = polls.clone();
    let handle = exec
        .spawn(OwnerId::KERNEL, async move {
            let _flag = flag;
            gate(p, Arc::default()).await
        })
        .unwrap();
    run_until_idle(exec);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    handle.abort();
    wake_task(handle.id()); // a wake racing with the abort changes nothing
    let stats = run_until_idle(exec);
    assert_eq!(stats.cancelled, 1);
    assert_eq!(polls.load(Ordering::SeqCst), 1, "aborted task was polled");
    assert!(dropped.load(Ordering::SeqCst), "aborted future not dropped");
    assert_eq!(block_on(handle), Err(JoinError::Cancelled));
    assert_eq!(exec.task_count(), 0);
}

#[test]
fn abort_from_another_thread() {
    let (exec, _) = new_exec(8);
    let polls = Arc::new(AtomicUsize::new(0));
    let handle = exec
        .spawn(OwnerId::KERNEL, gate(polls.clone(), Arc::default()))
        .unwrap();
    run_until_idle(exec);
    let id = handle.id();
    std::thread::spawn(move || {
        let h = handle;
        h.abort();
        block_on(h)
    });
    // The owner applies the abort on its next run.
    for _ in 0..1000 {
        run_until_idle(exec);
        if exec.task_count() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(exec.task_count(), 0);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    wake_task(id);
    assert_eq!(exec.run(10).polled, 0);
}

#[test]
fn purge_forgets_tasks_of_one_owner_only() {
    let (exec, _) = new_exec(16);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let victim = exec
        .spawn(OwnerId::from_bits(5), async move {
            let _flag = flag;
            gate(Arc::default(), Arc::default()).await
        })
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let survivor = exec
        .spawn(OwnerId::from_bits(6), gate(Arc::default(), release.clone()))
        .unwrap();
    run_until_idle(exec);
    wake_task(victim.id()); // queued when the purge arrives
    exec.purge_owner(OwnerId::from_bits(5));
    let stats = run_until_idle(exec);
    assert_eq!(stats.purged, 1);
    assert!(
        !dropped.load(Ordering::SeqCst),
        "a purged future must be forgotten, not dropped"
    );
    assert_eq!(block_on(victim), Err(JoinError::OwnerCrashed));
    assert_eq!(exec.task_count_of(OwnerId::from_bits(5)), 0);
    assert_eq!(exec.task_count_of(OwnerId::from_bits(6)), 1);
    release.store(true, Ordering::SeqCst);
    wake_task(survivor.id());
    run_until_idle(exec);
    assert_eq!(block_on(survivor), Ok(7));
    // The zombie slot (purged while queued) went back to the free list.
    for _ in 0..16 {
        exec.spawn(OwnerId::KERNEL, async {}).unwrap().detach();
    }
}

#[test]
fn crashed_poll_forgets_the_task() {
    let (exec, platform) = new_exec(4);
    platform.crash_owner.store(9, Ordering::SeqCst);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = exec
        .spawn(OwnerId::from_bits(9), async move { drop(flag) })
        .unwrap();
    run_until_idle(exec);
    assert_eq!(block_on(handle), Err(JoinError::OwnerCrashed));
    assert!(!dropped.load(Ordering::SeqCst));
    assert_eq!(exec.task_count(), 0);
}

#[test]
fn wake_slot_fired_from_another_thread() {
    let (exec, _) = new_exec(4);
    static SLOT: WakeSlot = WakeSlot::new();
    static FIRED: AtomicBool = AtomicBool::new(false);
    let handle = exec
        .spawn(
            OwnerId::KERNEL,
            poll_fn(|cx| {
                if FIRED.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                SLOT.register(cx.waker());
                if FIRED.load(Ordering::SeqCst) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        )
        .unwrap();
    run_until_idle(exec);
    assert!(!handle.is_finished());
    std::thread::spawn(|| {
        FIRED.store(true, Ordering::SeqCst);
        SLOT.wake();
    })
    .join()
    .unwrap();
    run_until_idle(exec);
    assert!(handle.is_finished());
    assert!(SLOT.take().is_none(), "wake consumes the registration");
}

#[test]
fn sleeping_executor_is_notified_exactly_once_per_wake() {
    let (exec, platform) = new_exec(4);
    let handle = exec
        .spawn(OwnerId::KERNEL, gate(Arc::default(), Arc::default()))
        .unwrap();
    run_until_idle(exec);
    assert!(exec.prepare_to_sleep(), "nothing to do: may sleep");
    let id = handle.id();
    std::thread::spawn(move || wake_task(id)).join().unwrap();
    assert_eq!(platform.notifications(), std::vec![exec.id()]);
    exec.woke_up();
    // Work pending: must not sleep, and no notification while awake.
    assert!(!exec.prepare_to_sleep());
    run_until_idle(exec);
    let before = platform.notifications().len();
    std::thread::spawn(move || wake_task(id)).join().unwrap();
    assert_eq!(
        platform.notifications().len(),
        before,
        "awake executors are not notified"
    );
}

#[test]
fn prepare_to_sleep_refuses_when_a_timer_is_due() {
    let (exec, platform) = new_exec(4);
    exec.spawn(OwnerId::KERNEL, sleep(Duration::from_millis(5)))
        .unwrap()
        .detach();
    run_until_idle(exec);
    assert!(exec.prepare_to_sleep());
    exec.woke_up();
    platform.advance(6_000_000);
    assert!(!exec.prepare_to_sleep(), "a due timer is work");
}

#[test]
fn sleep_never_completes_early() {
    let (exec, platform) = new_exec(4);
    let handle = exec
        .spawn(OwnerId::KERNEL, sleep(Duration::from_millis(10)))
        .unwrap();
    run_until_idle(exec);
    for _ in 0..9 {
        platform.advance(1_000_000);
        run_until_idle(exec);
        assert!(!handle.is_finished(), "woke at {} ns", platform.now_ns());
    }
    platform.advance(1_000_000);
    let stats = run_until_idle(exec);
    assert!(handle.is_finished());
    assert_eq!(stats.timers_fired, 1);
}

#[test]
fn dropping_a_pending_sleep_cancels_its_timer() {
    let (exec, platform) = new_exec(4);
    let handle = exec
        .spawn(OwnerId::KERNEL, async {
            let mut s = core::pin::pin!(sleep(Duration::from_secs(3600)));
            // Poll once to register, then drop it.
            poll_fn(|cx| {
                let _ = s.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
        })
        .unwrap();
    run_until_idle(exec);
    assert!(handle.is_finished());
    assert_eq!(
        exec.next_timer_deadline(),
        None,
        "dropped Sleep left its entry"
    );
    platform.advance(4_000_000_000_000);
    assert_eq!(run_until_idle(exec).timers_fired, 0);
}

#[test]
fn interval_ticks_at_its_period() {
    let (exec, platform) = new_exec(4);
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    exec.spawn(OwnerId::KERNEL, async move {
        let mut iv = interval(Duration::from_millis(5));
        loop {
            iv.tick().await;
            t.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap()
    .detach();
    run_until_idle(exec);
    assert_eq!(ticks.load(Ordering::SeqCst), 1, "first tick is immediate");
    for _ in 0..20 {
        platform.advance(1_000_000);
        run_until_idle(exec);
    }
    assert_eq!(ticks.load(Ordering::SeqCst), 5, "ticks at 5, 10, 15, 20 ms");
}

#[test]
fn yield_now_lets_others_run() {
    let (exec, _) = new_exec(4);
    let order = Arc::new(Mutex::new(Vec::new()));
    for name in [1, 2] {
        let order = order.clone();
        exec.spawn(OwnerId::KERNEL, async move {
            for step in 0..3 {
                order.lock().unwrap().push((name, step));
                yield_now().await;
            }
        })
        .unwrap()
        .detach();
    }
    run_until_idle(exec);
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order,
        std::vec![(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)]
    );
}

#[test]
fn waker_is_the_task_id() {
    let (exec, _) = new_exec(4);
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let handle = exec
        .spawn(
            OwnerId::KERNEL,
            poll_fn(move |cx| {
                let id = task_id_of(cx.waker()).unwrap();
                assert_eq!(Some(id), current_task());
                s.store(id.to_u64(), Ordering::SeqCst);
                Poll::Ready(())
            }),
        )
        .unwrap();
    let id = handle.id();
    run_until_idle(exec);
    assert_eq!(seen.load(Ordering::SeqCst), id.to_u64());
    assert!(task_id_of(core::task::Waker::noop()).is_none());
}

/// Several executors on real threads wake each other's tasks in a ring.
#[test]
fn cross_thread_ring_of_wakes() {
    const EXECUTORS: usize = 4;
    const ROUNDS: u64 = 2000;
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<Vec<AtomicU64>> =
        Arc::new((0..EXECUTORS).map(|_| AtomicU64::new(0)).collect());
    let slots: &'static [WakeSlot] = Box::leak(
        (0..EXECUTORS)
            .map(|_| WakeSlot::new())
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let tokens: &'static [AtomicU64] = Box::leak(
        (0..EXECUTORS)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let mut threads = Vec::new();
    let execs: Vec<&'static Executor> = (0..EXECUTORS).map(|_| new_exec(8).0).collect();
    for (i, exec) in execs.iter().copied().enumerate() {
        let counters = counters.clone();
        exec.spawn(OwnerId::KERNEL, async move {
            let next = (i + 1) % EXECUTORS;
            loop {
                poll_fn(|cx| {
                    if tokens[i].load(Ordering::SeqCst) > 0 {
                        return Poll::Ready(());
                    }
                    slots[i].register(cx.waker());
                    if tokens[i].load(Ordering::SeqCst) > 0 {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                tokens[i].fetch_sub(1, Ordering::SeqCst);
                let done = counters[i].fetch_add(1, Ordering::SeqCst) + 1;
                if i == EXECUTORS - 1 && done == ROUNDS {
                    return;
                }
                tokens[next].fetch_add(1, Ordering::SeqCst);
                slots[next].wake();
                if done == ROUNDS {
                    return;
                }
            }
        })
        .unwrap()
        .detach();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                exec.run(64);
                std::thread::yield_now();
            }
        }));
    }
    tokens[0].fetch_add(1, Ordering::SeqCst);
    slots[0].wake();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while counters[EXECUTORS - 1].load(Ordering::SeqCst) < ROUNDS
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    for c in counters.iter() {
        assert_eq!(c.load(Ordering::SeqCst), ROUNDS);
    }
}

#[test]
fn spawn_on_another_executor_from_a_thread() {
    let (exec, _) = new_exec(4);
    let id = exec.id();
    let handle =
        std::thread::spawn(move || spawn_on(id, OwnerId::from_bits(3), async { 5 }).unwrap())
            .join()
            .unwrap();
    assert_eq!(exec.task_count_of(OwnerId::from_bits(3)), 1);
    run_until_idle(exec);
    assert_eq!(block_on(handle), Ok(5));
    assert!(matches!(
        spawn_on(MAX_EXECUTORS + 1, OwnerId::KERNEL, async {}),
        Err(SpawnError::NoSuchExecutor)
    ));
}

/// Regression: the joiner of an aborted task must not see `Cancelled`
/// before the task's future has been dropped (found on 2 cores in QEMU).
#[test]
fn abort_result_is_published_after_the_drop() {
    let (exec, _) = new_exec(4);
    let dropped = Arc::new(AtomicBool::new(false));
    struct CheckOnDrop(Arc<AtomicBool>, &'static Mutex<Option<JoinHandle<()>>>);
    impl Drop for CheckOnDrop {
        fn drop(&mut self) {
            // While the future is being dropped, the joiner must still wait.
            let handle = self.1.lock().unwrap();
            assert!(
                !handle.as_ref().unwrap().is_finished(),
                "join finished before the drop"
            );
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let cell: &'static Mutex<Option<JoinHandle<()>>> = Box::leak(Box::new(Mutex::new(None)));
    let guard = CheckOnDrop(dropped.clone(), cell);
    let handle = exec
        .spawn(OwnerId::KERNEL, async move {
            let _guard = guard;
            gate(Arc::default(), Arc::default()).await;
        })
        .unwrap();
    run_until_idle(exec);
    handle.abort();
    *cell.lock().unwrap() = Some(handle);
    run_until_idle(exec);
    assert!(dropped.load(Ordering::SeqCst));
    let handle = cell.lock().unwrap().take().unwrap();
    assert_eq!(block_on(handle), Err(JoinError::Cancelled));
}

/// `run` is a safe function: a reentrant call (from inside a task) must not
/// poll a future that is already being polled.
#[test]
fn reentrant_run_is_refused() {
    static DEPTH: AtomicUsize = AtomicUsize::new(0);
    static MAX_DEPTH: AtomicUsize = AtomicUsize::new(0);
    let (exec, _) = new_exec(4);
    exec.spawn(
        OwnerId::KERNEL,
        poll_fn(move |cx| {
            let depth = DEPTH.fetch_add(1, Ordering::SeqCst) + 1;
            MAX_DEPTH.fetch_max(depth, Ordering::SeqCst);
            if depth == 1 {
                cx.waker().wake_by_ref();
                assert_eq!(exec.run(1), RunStats::default());
            }
            DEPTH.fetch_sub(1, Ordering::SeqCst);
            Poll::<()>::Pending
        }),
    )
    .unwrap()
    .detach();
    exec.run(1);
    assert_eq!(
        MAX_DEPTH.load(Ordering::SeqCst),
        1,
        "a future was polled inside its own poll"
    );
    assert_eq!(exec.run(1).polled, 1, "the self-wake is still pending");
}

/// Foreign wakers (wrapped by combinators) are kept under a lock.
#[test]
fn wake_slot_accepts_foreign_wakers() {
    struct Count(AtomicUsize);
    impl alloc::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let slot = WakeSlot::new();
    slot.register(&core::task::Waker::from(count.clone()));
    slot.wake();
    slot.wake();
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "woken once, then the slot is empty"
    );
    slot.register(&core::task::Waker::from(count.clone()));
    assert!(slot.take().is_some());
    slot.wake();
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "take removes without waking"
    );
}

/// Forgetting a crashed owner's future must not leak the join state with it.
#[test]
fn purge_does_not_leak_the_join_state() {
    let (exec, _) = new_exec(4);
    let handle = exec
        .spawn(OwnerId::from_bits(9), poll_fn(|_| Poll::<u8>::Pending))
        .unwrap();
    exec.run(10);
    exec.purge_owner(OwnerId::from_bits(9));
    exec.run(10);
    assert!(handle.is_finished());
    assert_eq!(
        handle.strong_count(),
        1,
        "the forgotten future still holds the join state"
    );
    assert_eq!(block_on(handle), Err(JoinError::OwnerCrashed));
}

/// A drop that the platform refuses (the owner is dead) abandons the future
/// and reports `OwnerCrashed`, and `purge_done` is reported per purge.
#[test]
fn refused_drop_abandons_and_purge_done_is_reported() {
    struct Refusing {
        inner: &'static Recording,
        purges: Mutex<Vec<(usize, OwnerId)>>,
    }
    impl Platform for Refusing {
        fn now_ns(&self) -> u64 {
            self.inner.now_ns()
        }
        fn notify(&self, id: usize) {
            self.inner.notify(id)
        }
        fn current_executor(&self) -> Option<usize> {
            None
        }
        fn drop_task(&self, owner: OwnerId, drop: &mut dyn FnMut()) {
            if owner != OwnerId::from_bits(4) {
                drop();
            }
        }
        fn purge_done(&self, executor_id: usize, owner: OwnerId) {
            self.purges.lock().unwrap().push((executor_id, owner));
        }
    }
    let platform: &'static Refusing = Box::leak(Box::new(Refusing {
        inner: Recording::leak(),
        purges: Mutex::new(Vec::new()),
    }));
    let exec = Executor::new(platform, 8);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = exec
        .spawn(OwnerId::from_bits(4), async move {
            let _flag = flag;
            gate(Arc::default(), Arc::default()).await
        })
        .unwrap();
    run_until_idle(exec);
    handle.abort();
    run_until_idle(exec);
    assert!(
        !dropped.load(Ordering::SeqCst),
        "a refused drop must not run destructors"
    );
    assert_eq!(block_on(handle), Err(JoinError::OwnerCrashed));
    exec.purge_owner(OwnerId::from_bits(7));
    run_until_idle(exec);
    assert_eq!(
        platform.purges.lock().unwrap().clone(),
        std::vec![(exec.id(), OwnerId::from_bits(7))]
    );
}

/// A task that polls `count` hour-long sleeps and never completes.
async fn hold_sleeps(count: usize) {
    let mut sleeps: Vec<_> = (0..count)
        .map(|_| Box::pin(sleep(Duration::from_secs(3600))))
        .collect();
    poll_fn(|cx| {
        for s in sleeps.iter_mut() {
            let _ = s.as_mut().poll(cx);
        }
        Poll::<()>::Pending
    })
    .await;
}

#[test]
fn a_full_timer_wheel_sweeps_dead_tasks_then_lets_sleeps_poll_again() {
    let (exec, platform) = new_exec(8);
    // A domain's task holds as many timers as the wheel takes, then the
    // domain dies: its task is purged, never polled or dropped again.
    let hog = exec
        .spawn(OwnerId::from_bits(7), hold_sleeps(MAX_TIMERS))
        .unwrap();
    run_until_idle(exec);
    assert!(!hog.is_finished());
    // A live task's sleep while the wheel is full: it still completes on
    // time (polling again instead of taking a slot), never early.
    let waiter = exec
        .spawn(OwnerId::from_bits(1), sleep(Duration::from_millis(5)))
        .unwrap();
    let _ = exec.run(1);
    assert!(!waiter.is_finished());
    platform.advance(5_000_000);
    run_until_idle(exec);
    assert!(waiter.is_finished(), "a sleep that found the wheel full");
    // The hog's owner dies: its timers are swept the next time the wheel
    // is full, and a new sleep gets a slot again.
    exec.purge_owner(OwnerId::from_bits(7));
    run_until_idle(exec);
    let registered = exec
        .spawn(OwnerId::from_bits(1), sleep(Duration::from_millis(5)))
        .unwrap();
    run_until_idle(exec);
    assert!(!registered.is_finished());
    assert!(
        exec.next_timer_deadline()
            .is_some_and(|d| d <= platform.now_ns() + 5_000_000),
        "the new sleep holds a slot of the swept wheel"
    );
    platform.advance(5_000_000);
    run_until_idle(exec);
    assert!(registered.is_finished());
}

#[test]
fn spawn_within_refuses_past_the_owners_quota_and_counts_back_down() {
    // Issue 10, item 10: one owner cannot take every task slot.
    let (exec, _) = new_exec(64);
    let flooder: OwnerId = OwnerId::new(5, 1);
    let release = Arc::new(AtomicBool::new(false));
    let mut spawned = 0;
    loop {
        let release = release.clone();
        let task = poll_fn(move |_| {
            if release.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        match exec.spawn_within(flooder, task, 16) {
            Ok(handle) => {
                handle.detach();
                spawned += 1;
            }
            Err(e) => {
                assert_eq!(e, SpawnError::Quota);
                break;
            }
        }
    }
    assert_eq!(spawned, 16);
    assert_eq!(exec.group_task_count(flooder), 16);
    // Another owner (and another incarnation of the same slot counts with
    // it) still has room.
    assert!(exec.spawn_within(OwnerId::new(7, 1), async {}, 16).is_ok());
    assert_eq!(
        exec.spawn_within(OwnerId::new(5, 2), async {}, 16).err(),
        Some(SpawnError::Quota)
    );
    release.store(true, Ordering::SeqCst);
    // The flooder's tasks were polled once already (pending); wake them by
    // running everything spawned since: they complete when polled again.
    for task in exec.snapshot() {
        crate::waker::wake_task(task.id);
    }
    run_until_idle(exec);
    assert_eq!(exec.group_task_count(flooder), 0);
    assert!(exec.spawn_within(flooder, async {}, 16).is_ok());
}

#[test]
fn a_deferred_poll_happens_when_its_time_comes() {
    // Issue 10, item 13: the platform may defer a task's poll (its owner
    // had more than its share); the executor polls it at that time.
    let (exec, platform) = new_exec(16);
    let owner: OwnerId = OwnerId::new(9, 1);
    platform
        .defer_owner
        .store(u64::from(owner.to_bits()), Ordering::SeqCst);
    platform.defer_until.store(5_000_000, Ordering::SeqCst);
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = polls.clone();
    exec.spawn(owner, async move {
        counted.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap()
    .detach();
    let stats = exec.run(10);
    assert_eq!(stats.deferred, 1);
    assert_eq!(polls.load(Ordering::SeqCst), 0, "deferred, not polled");
    assert!(!exec.has_ready(), "waits on the wheel, not in the queue");
    platform.advance(4_000_000);
    exec.run(10);
    assert_eq!(polls.load(Ordering::SeqCst), 0, "not before its time");
    platform.advance(2_000_000);
    exec.run(10); // fires the timer: ready again
    run_until_idle(exec);
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert_eq!(exec.task_count(), 0);
}

#[test]
fn a_batch_ends_early_when_the_platform_says_so() {
    // Timers fire between batches: a platform that sees a long poll ends
    // the batch so that a batch of long polls cannot hold them back.
    let (exec, platform) = new_exec(16);
    platform.short_batches.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        exec.spawn(OwnerId::KERNEL, async {}).unwrap().detach();
    }
    assert_eq!(exec.run(64).polled, 1);
    assert_eq!(exec.run(64).polled, 1);
    platform.short_batches.store(false, Ordering::SeqCst);
    assert_eq!(exec.run(64).polled, 2);
}

#[test]
fn one_groups_timers_are_bounded_and_the_others_still_register() {
    // Issue 10, item 10: one domain cannot fill the wheel.
    let (exec, platform) = new_exec(8);
    let hog_owner: OwnerId = OwnerId::new(3, 1);
    let hog = exec
        .spawn(hog_owner, hold_sleeps(MAX_TIMERS_PER_GROUP + 100))
        .unwrap();
    let _ = exec.run(1);
    assert_eq!(exec.group_timer_count(hog_owner), MAX_TIMERS_PER_GROUP);
    // Another domain's sleep takes a slot (its deadline is the wheel's
    // next one), and fires on time.
    let other: OwnerId = OwnerId::new(4, 1);
    let waiter = exec.spawn(other, sleep(Duration::from_millis(5))).unwrap();
    // (The hog's unregistered sleeps keep re-queueing it: run past it.)
    let _ = exec.run(8);
    assert_eq!(exec.group_timer_count(other), 1);
    platform.advance(5_000_000);
    let _ = exec.run(8);
    let _ = exec.run(8);
    assert!(waiter.is_finished());
    assert_eq!(
        exec.group_timer_count(other),
        0,
        "fired timers are counted off"
    );
    // The hog dies; its restarted successor (same slot, same group) finds
    // the dead one's timers swept when it needs room.
    exec.purge_owner(hog_owner);
    let _ = exec.run(1);
    drop(hog);
    let successor: OwnerId = OwnerId::new(3, 2);
    let next = exec
        .spawn(successor, sleep(Duration::from_millis(5)))
        .unwrap();
    let _ = exec.run(1);
    assert_eq!(
        exec.group_timer_count(successor),
        1,
        "the dead incarnation's timers were swept"
    );
    platform.advance(5_000_000);
    let _ = exec.run(8);
    let _ = exec.run(8);
    assert!(next.is_finished());
}

/// A wake-up and a spawn update the executor's queues inside the
/// platform's critical section, where the kernel never unwinds the running
/// domain (found by the fault campaign: a domain stopped half-way through
/// a wake-up left a task marked queued but never queued, and a ready-queue
/// slot reserved but never written, on which its core then spun for ever).
#[test]
fn wake_and_spawn_update_the_queues_inside_a_critical_section() {
    let (exec, platform) = new_exec(8);
    // Not the running executor (`current_executor` is None), asleep: every
    // enqueue notifies, so each one is seen.
    assert!(exec.prepare_to_sleep());
    let handle = exec.spawn(OwnerId::KERNEL, async {}).unwrap();
    let after_spawn = platform.criticals.load(Ordering::SeqCst);
    assert!(after_spawn >= 1, "spawn ran outside any critical section");
    run_until_idle(exec);
    let id = exec
        .spawn(OwnerId::KERNEL, core::future::pending::<()>())
        .unwrap();
    run_until_idle(exec);
    assert!(exec.prepare_to_sleep());
    crate::waker::wake_task(id.id());
    assert!(
        platform.criticals.load(Ordering::SeqCst) > after_spawn + 1,
        "a wake-up ran outside any critical section"
    );
    assert_eq!(
        platform.notified_outside.load(Ordering::SeqCst),
        0,
        "a queue was updated outside a critical section"
    );
    drop(handle);
}
