//! Domains: private heaps, containment of every fault kind, nesting,
//! poisoning, task purging, waking suspended callers, no leaks.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::Poll;
use core::time::Duration;

use super::{BoxedTest, KTest, TestFn, TestResult};
use crate::domain::{self, EntryError, Source, State};
use crate::inject::{self, Kind};
use crate::{cpu, mem, sched};
use interfaces::counter::Counter;

pub static TESTS: &[KTest] = &[
    KTest {
        name: "domain_a_callee_failing_before_the_arguments_moved_leaves_them_to_the_caller",
        run: TestFn::Async(failed_before_the_moves),
    },
    KTest {
        name: "domain_heap_is_private_and_reclaimed",
        run: TestFn::Async(heap_private_and_reclaimed),
    },
    KTest {
        name: "domain_every_fault_kind_is_contained",
        run: TestFn::Async(every_fault_kind_contained),
    },
    KTest {
        name: "domain_nested_crash_returns_to_caller",
        run: TestFn::Async(nested_crash),
    },
    KTest {
        name: "domain_async_proxy_call_woken_by_callee_crash",
        run: TestFn::Async(async_proxy_crash),
    },
    KTest {
        name: "domain_generated_proxy_moves_rrefs_and_reports_crashes",
        run: TestFn::Async(generated_proxy),
    },
    KTest {
        name: "domain_a_proxys_inline_entry_records_every_fault_kind",
        run: TestFn::Async(inline_entry_faults),
    },
    KTest {
        name: "domain_rrefs_reclaimed_on_crash_moved_ones_survive",
        run: TestFn::Async(rrefs_reclaimed),
    },
    KTest {
        name: "domain_timer_never_keeps_a_domain_waker",
        run: TestFn::Async(timer_keeps_no_domain_waker),
    },
    KTest {
        name: "domain_rrefs_cross_cores",
        run: TestFn::Async(rrefs_cross_cores),
    },
    KTest {
        name: "domain_heap_exhaustion_is_contained",
        run: TestFn::Async(heap_exhaustion_contained),
    },
    KTest {
        name: "domain_heap_reuse_and_isolation_under_core_caches",
        run: TestFn::Async(heap_reuse_and_isolation),
    },
    KTest {
        name: "domain_task_faults_contained_async_every_core",
        run: TestFn::Async(task_faults_async),
    },
    KTest {
        name: "domain_tasks_purged_not_polled",
        run: TestFn::Async(tasks_purged),
    },
    KTest {
        name: "domain_suspended_caller_is_woken",
        run: TestFn::Async(suspended_caller_woken),
    },
    KTest {
        name: "domain_crashes_on_every_core_at_once",
        run: TestFn::Async(crashes_on_every_core),
    },
    KTest {
        name: "domain_init_crash_is_contained",
        run: TestFn::Async(init_crash_contained),
    },
    KTest {
        name: "domain_restart_and_client_survives",
        run: TestFn::Async(restart_client_survives),
    },
    KTest {
        name: "domain_no_leak_over_1000_crash_cycles",
        run: TestFn::Async(no_leak_1000_cycles),
    },
    KTest {
        name: "domain_only_its_supervisor_restarts_it_and_only_after_a_crash",
        run: TestFn::Async(supervision),
    },
    KTest {
        name: "domain_a_dead_callers_pending_call_is_dropped_in_the_callee",
        run: TestFn::Async(orphaned_call),
    },
    KTest {
        name: "domain_a_lookup_visitor_that_panics_crashes_only_its_domain",
        run: TestFn::Async(lookup_visitor_panics),
    },
    KTest {
        name: "domain_pending_call_registrations_are_bounded",
        run: TestFn::Async(parked_bounded),
    },
    KTest {
        name: "domain_a_call_left_pending_as_its_callee_died_is_woken",
        run: TestFn::Async(suspended_after_death),
    },
    KTest {
        name: "domain_racing_restarts_make_one_incarnation",
        run: TestFn::Async(racing_restarts),
    },
];

const DEAD_WITHIN: Duration = Duration::from_secs(5);

/// A fresh domain from `image` under a unique name.
fn fresh(image: &str) -> Result<&'static domain::Domain, domain::DomainError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = alloc::format!("t{}-{image}", NEXT.fetch_add(1, Ordering::Relaxed));
    domain::create_from(Source::Archive(alloc::string::String::from(image)), &name)
}

/// Waits (up to 5 s) until `d` is reclaimed.
pub(super) async fn dead(d: &'static domain::Domain) -> TestResult {
    ensure!(
        domain::wait_dead(d, DEAD_WITHIN).await,
        "{} still {} after 5 s",
        d.name,
        d.state().name()
    );
    Ok(())
}

fn heap_private_and_reclaimed() -> BoxedTest {
    Box::pin(async {
        // A first incarnation maps the page tables of the heap's window,
        // which stay for the next one; measure from the second.
        let d = fresh("idle")?;
        let fill = || {
            let data: Vec<u64> = (0..20_000).collect();
            let address = data.as_ptr() as u64;
            core::mem::forget(data);
            address
        };
        domain::enter(d.owner(), fill).map_err(|e| alloc::format!("warm-up: {e}"))?;
        domain::kill(d, "warm-up");
        dead(d).await?;
        let free_before = mem::frames::free_count();
        domain::restart(d)?;
        let (bytes0, _) = d.heap_usage();
        // Allocations made inside the domain land in its heap...
        let address = domain::enter(d.owner(), fill).map_err(|e| alloc::format!("enter: {e}"))?;
        ensure!(
            domain::heap::in_region(address),
            "domain allocation at {address:#x} is outside its heap region"
        );
        let (bytes1, pages1) = d.heap_usage();
        ensure!(
            bytes1 >= bytes0 + 160_000,
            "heap grew only from {bytes0} to {bytes1} bytes"
        );
        ensure!(pages1 >= 40, "only {pages1} pages mapped");
        // ...and the kernel's do not.
        let kernel_box = Box::new(5u64);
        ensure!(
            !domain::heap::in_region(&*kernel_box as *const u64 as u64),
            "kernel allocation in a domain heap"
        );
        ensure!(domain::kill(d, "test"), "kill failed");
        dead(d).await?;
        ensure!(
            d.heap_usage() == (0, 0),
            "heap not reclaimed: {:?}",
            d.heap_usage()
        );
        ensure!(
            mem::paging::translate(address).is_none(),
            "reclaimed heap page still mapped"
        );
        ensure!(
            mem::frames::free_count() == free_before,
            "frames: {} free before, {} after",
            free_before,
            mem::frames::free_count()
        );
        Ok(())
    })
}

/// What the record of a fault of `kind` says.
fn recorded_as(kind: Kind) -> &'static str {
    match kind {
        Kind::Panic => "panic",
        Kind::PageFault => "page fault",
        Kind::GeneralProtection => "general protection",
        Kind::DivideByZero => "divide error",
        Kind::InvalidOpcode => "invalid opcode",
        Kind::StackOverflow => "stack overflow",
        Kind::Loop => "watchdog",
    }
}

fn every_fault_kind_contained() -> BoxedTest {
    Box::pin(async {
        for kind in Kind::ALL {
            let d = fresh("idle")?;
            let owner = d.owner();
            let result = domain::enter(owner, || inject::trigger(kind));
            ensure!(
                result == Err(EntryError::Crashed),
                "{kind:?}: entry gave {result:?}"
            );
            ensure!(d.state() != State::Alive, "{kind:?}: domain still alive");
            let fault = d.last_fault().unwrap_or_default();
            let expected = recorded_as(kind);
            ensure!(
                fault.contains(expected),
                "{kind:?}: recorded fault '{fault}' lacks '{expected}'"
            );
            // Later calls fail at once, without entering.
            let entered = AtomicBool::new(false);
            let again = domain::enter(owner, || entered.store(true, Ordering::SeqCst));
            ensure!(
                again == Err(EntryError::NotAlive),
                "{kind:?}: second entry gave {again:?}"
            );
            ensure!(
                !entered.load(Ordering::SeqCst),
                "{kind:?}: a dead domain's code ran"
            );
            ensure!(
                domain::call(d, 2, 9) == Err(EntryError::NotAlive),
                "{kind:?}: call after crash did not fail"
            );
            dead(d).await?;
        }
        Ok(())
    })
}

fn nested_crash() -> BoxedTest {
    Box::pin(async {
        let a = fresh("idle")?;
        let b = fresh("idle")?;
        let (a_owner, b_owner) = (a.owner(), b.owner());
        let outcome = domain::enter(a_owner, || {
            ensure!(cpu::current_owner() == a_owner, "A is not current inside A");
            let inner = domain::enter(b_owner, || {
                // B's code runs as B: its allocations land in B's heap.
                let probe = Box::new(1u8);
                let in_b = domain::heap::in_region(&*probe as *const u8 as u64);
                core::mem::forget(probe);
                assert!(in_b, "B's allocation outside the domain heaps");
                inject::trigger(Kind::DivideByZero);
            });
            ensure!(inner == Err(EntryError::Crashed), "A saw {inner:?} from B");
            ensure!(
                cpu::current_owner() == a_owner,
                "A is not current after B crashed"
            );
            Ok(42)
        });
        ensure!(
            matches!(outcome, Ok(Ok(42))),
            "A's entry returned {outcome:?}"
        );
        ensure!(a.state() == State::Alive, "A was poisoned by B's crash");
        ensure!(b.state() != State::Alive, "B survived");
        ensure!(domain::call(a, 2, 5) == Ok(5), "A no longer answers");
        ensure!(
            cpu::current_owner() == executor::OwnerId::KERNEL,
            "kernel is not current after the calls"
        );
        domain::kill(a, "test");
        dead(a).await?;
        dead(b).await
    })
}

fn tasks_purged() -> BoxedTest {
    Box::pin(async {
        let d = fresh("counter")?;
        ensure!(d.task_count() == 1, "counter has {} tasks", d.task_count());
        executor::sleep(Duration::from_millis(50)).await;
        let ticks = domain::call(d, 1, 0).map_err(|e| alloc::format!("call: {e}"))?;
        ensure!(ticks > 0, "counter task never ran");
        let result = domain::enter(d.owner(), || inject::trigger(Kind::PageFault));
        ensure!(result == Err(EntryError::Crashed), "crash gave {result:?}");
        dead(d).await?;
        ensure!(d.task_count() == 0, "{} tasks left", d.task_count());
        let total: usize = cpu::all()
            .filter_map(|c| sched::executor(c.index))
            .map(|e| e.task_count_of(d.owner()))
            .sum();
        ensure!(total == 0, "{total} tasks of the dead incarnation remain");
        Ok(())
    })
}

/// A kernel task awaits a call that stays pending inside a domain; the
/// domain then crashes on another core. The task must be woken and get the
/// error (it would hang otherwise, failing the test by its time limit).
fn suspended_caller_woken() -> BoxedTest {
    Box::pin(async {
        let d = fresh("idle")?;
        let owner = d.owner();
        let waiter = sched::spawn(async move {
            poll_fn(|cx| match domain::enter(owner, || Poll::<()>::Pending) {
                Ok(Poll::Pending) => {
                    if let Some(task) = executor::task_id_of(cx.waker()) {
                        d.add_waiter(task);
                    }
                    Poll::Pending
                }
                Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
                Err(e) => Poll::Ready(Err(e)),
            })
            .await
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        executor::sleep(Duration::from_millis(10)).await;
        ensure!(!waiter.is_finished(), "the call finished before the crash");
        let crasher = sched::spawn_on(cpu::count() - 1, async move {
            domain::enter(owner, || inject::trigger(Kind::Panic))
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        let crash = crasher.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        let result = waiter.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        ensure!(
            result == Err(EntryError::NotAlive),
            "suspended caller got {result:?}"
        );
        dead(d).await
    })
}

fn crashes_on_every_core() -> BoxedTest {
    Box::pin(async {
        let mut handles = Vec::new();
        for core in 0..cpu::count() {
            handles.push(
                sched::spawn_on(core, async move {
                    let mut contained = 0;
                    for round in 0..10 {
                        let Ok(d) = fresh("idle") else {
                            return Err(alloc::format!("core {core}: create failed"));
                        };
                        let kind = Kind::ALL[(core + round) % 6]; // all but the 100 ms loop
                        if domain::enter(d.owner(), || inject::trigger(kind))
                            == Err(EntryError::Crashed)
                        {
                            contained += 1;
                        }
                        if !domain::wait_dead(d, DEAD_WITHIN).await {
                            return Err(alloc::format!("core {core}: {} not dead", d.name));
                        }
                    }
                    Ok(contained)
                })
                .map_err(|e| alloc::format!("spawn: {e:?}"))?,
            );
        }
        for (core, handle) in handles.into_iter().enumerate() {
            let contained = handle.await.map_err(|e| alloc::format!("join: {e:?}"))??;
            ensure!(
                contained == 10,
                "core {core}: only {contained} of 10 crashes contained"
            );
        }
        Ok(())
    })
}

fn init_crash_contained() -> BoxedTest {
    Box::pin(async {
        let result = fresh("broken");
        ensure!(
            matches!(result, Err(domain::DomainError::InitCrashed { .. })),
            "a panicking init gave {:?}",
            result.err()
        );
        let d = domain::all()
            .filter(|d| d.image_name() == "broken")
            .last()
            .ok_or("no broken domain record")?;
        ensure!(d.state() != State::Alive, "broken domain is alive");
        ensure!(
            d.last_fault()
                .unwrap_or_default()
                .contains("index out of bounds"),
            "fault: {:?}",
            d.last_fault()
        );
        dead(d).await
    })
}

fn restart_client_survives() -> BoxedTest {
    Box::pin(async {
        let archive = |image: &str| Source::Archive(alloc::string::String::from(image));
        let counter = match domain::find("counter") {
            Some(d) if d.state() == State::Alive => d,
            _ => domain::create_from(archive("counter"), "counter")?,
        };
        if domain::find("checksum").is_none_or(|d| d.state() != State::Alive) {
            domain::create_from(archive("checksum"), "checksum")?;
        }
        let client = fresh("client")?;
        executor::sleep(Duration::from_millis(150)).await;
        let ok_before = domain::call(client, 0, 0).map_err(|e| alloc::format!("client: {e}"))?;
        ensure!(ok_before > 0, "client made no successful calls");
        let verified = domain::call(client, 2, 0).map_err(|e| alloc::format!("client: {e}"))?;
        ensure!(verified > 0, "client verified no RRef buffers");
        let generation = counter.generation();
        let crash = domain::enter(counter.owner(), || inject::trigger(Kind::GeneralProtection));
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        executor::sleep(Duration::from_millis(60)).await;
        let errors = domain::call(client, 1, 0).map_err(|e| alloc::format!("client: {e}"))?;
        ensure!(errors > 0, "client saw no errors while counter was dead");
        dead(counter).await?;
        domain::restart(counter)?;
        ensure!(
            counter.generation() == generation + 1,
            "generation did not advance"
        );
        let ok_mid = domain::call(client, 0, 0).map_err(|e| alloc::format!("client: {e}"))?;
        executor::sleep(Duration::from_millis(100)).await;
        let ok_after = domain::call(client, 0, 0).map_err(|e| alloc::format!("client: {e}"))?;
        ensure!(
            ok_after > ok_mid,
            "client did not recover after restart ({ok_mid} -> {ok_after})"
        );
        ensure!(client.state() == State::Alive, "client died");
        let mismatches = domain::call(client, 3, 0).map_err(|e| alloc::format!("client: {e}"))?;
        ensure!(mismatches == 0, "{mismatches} digest mismatches");
        domain::kill(client, "test");
        dead(client).await
    })
}

/// 1,000 cycles of start, use (heap, a task), crash, reclaim leave free
/// frames, kernel heap use and task count exactly where they were.
fn no_leak_1000_cycles() -> BoxedTest {
    Box::pin(async {
        // Warm up with one cycle ending like the last one (same fault kind,
        // so the recorded fault message has the same size).
        let d = fresh("counter")?;
        let counter_name = alloc::format!("{}/counter", d.name);
        // Use: a call through the name service's proxy, and shared objects
        // the domain then owns when it dies.
        let use_it = |cycle: u32| -> TestResult {
            let counter = domain::proxy::<dyn Counter + Send + Sync>(&counter_name)
                .map_err(|e| alloc::format!("cycle {cycle}: lookup: {e}"))?;
            ensure!(
                counter.increment() == Ok(1),
                "cycle {cycle}: first call failed"
            );
            drop(counter);
            domain::enter(d.owner(), || {
                core::mem::forget(rrpc::RRef::new([cycle as u8; 256]));
                let mut batch = rrpc::RRef::new(rrpc::RRefDeque::<[u8; 64], 4>::new());
                let _ = batch.push_back(rrpc::RRef::new([1; 64]));
                core::mem::forget(batch);
            })
            .map_err(|e| alloc::format!("cycle {cycle}: enter: {e}"))?;
            // A buffer, a batch and the item in it (nested objects are
            // listed under their root's owner).
            ensure!(
                d.rrefs() == 3,
                "cycle {cycle}: domain owns {} RRefs",
                d.rrefs()
            );
            Ok(())
        };
        use_it(0)?;
        let last_kind = Kind::ALL[999 % 6];
        let crash = domain::enter(d.owner(), || inject::trigger(last_kind));
        ensure!(
            crash == Err(EntryError::Crashed),
            "warm-up crash gave {crash:?}"
        );
        dead(d).await?;
        let frames_before = mem::frames::free_count();
        let heap_before = mem::heap::usage().0;
        let (shared_before, _) = crate::shared_heap::usage();
        let tasks_before: usize = cpu::all()
            .filter_map(|c| sched::executor(c.index))
            .map(|e| e.task_count())
            .sum();
        for cycle in 0..1000u32 {
            domain::restart(d).map_err(|e| alloc::format!("cycle {cycle}: {e}"))?;
            use_it(cycle)?;
            let kind = Kind::ALL[cycle as usize % 6];
            let crash = domain::enter(d.owner(), || inject::trigger(kind));
            ensure!(
                crash == Err(EntryError::Crashed),
                "cycle {cycle}: crash gave {crash:?}"
            );
            dead(d).await?;
        }
        let frames_after = mem::frames::free_count();
        let heap_after = mem::heap::usage().0;
        let (shared_after, _) = crate::shared_heap::usage();
        let tasks_after: usize = cpu::all()
            .filter_map(|c| sched::executor(c.index))
            .map(|e| e.task_count())
            .sum();
        crate::println!(
            "    1000 cycles: free frames {frames_before} -> {frames_after}, kernel heap {heap_before} -> {heap_after} B, shared heap {shared_before} -> {shared_after} B, tasks {tasks_before} -> {tasks_after}"
        );
        ensure!(
            shared_after == shared_before,
            "shared heap: {shared_before} -> {shared_after} bytes"
        );
        ensure!(d.rrefs() == 0, "{} RRefs left", d.rrefs());
        ensure!(
            frames_after == frames_before,
            "frames leaked: {frames_before} -> {frames_after}"
        );
        ensure!(
            tasks_after == tasks_before,
            "tasks leaked: {tasks_before} -> {tasks_after}"
        );
        ensure!(
            heap_after == heap_before,
            "kernel heap: {heap_before} -> {heap_after} bytes"
        );
        Ok(())
    })
}

/// The asynchronous path: a domain's own task faults while the executor
/// polls it (a domain entry made by the executor, not by a caller), for
/// every fault kind, spread over every core. The joiner gets
/// `OwnerCrashed`, the domain dies and is reclaimed, the core runs on.
fn task_faults_async() -> BoxedTest {
    Box::pin(async {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let d = fresh("idle")?;
            let core = i % cpu::count();
            let handle = executor::spawn_on(core, d.owner(), async move {
                executor::sleep(Duration::from_millis(2)).await;
                inject::trigger(kind);
                7u32
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))?;
            let result = handle.await;
            ensure!(
                result == Err(executor::JoinError::OwnerCrashed),
                "{kind:?} on core {core}: join gave {result:?}"
            );
            dead(d).await?;
            ensure!(d.crashes() == 1, "{kind:?}: crash not recorded");
            // The core that ran the task still runs tasks.
            let alive = sched::spawn_on(core, async { cpu::current().index })
                .map_err(|e| alloc::format!("spawn: {e:?}"))?
                .await
                .map_err(|e| alloc::format!("join: {e:?}"))?;
            ensure!(
                alive == core,
                "core {core} did not run a task after the crash"
            );
        }
        Ok(())
    })
}

/// Small objects freed and reallocated in a loop reuse memory (the heap
/// stops growing), values stay intact, and two domains interleaving on one
/// core never receive each other's memory (the per-core cache is tagged).
fn heap_reuse_and_isolation() -> BoxedTest {
    Box::pin(async {
        let a = fresh("idle")?;
        let b = fresh("idle")?;
        let churn = |seed: u64| {
            let mut total = 0u64;
            for round in 0..20u64 {
                let boxes: Vec<Box<[u64; 4]>> = core::hint::black_box(
                    (0..500)
                        .map(|i| Box::new([seed, round, i, seed ^ i]))
                        .collect(),
                );
                for (i, item) in boxes.iter().enumerate() {
                    assert!(
                        item[0] == seed && item[2] == i as u64 && item[3] == seed ^ i as u64,
                        "corrupted"
                    );
                    total += item[1];
                }
            }
            total
        };
        domain::enter(a.owner(), || churn(1)).map_err(|e| alloc::format!("a: {e}"))?;
        let (_, pages_after_first) = a.heap_usage();
        for _ in 0..5 {
            domain::enter(a.owner(), || churn(1)).map_err(|e| alloc::format!("a: {e}"))?;
        }
        let (_, pages_after_more) = a.heap_usage();
        ensure!(
            pages_after_more == pages_after_first,
            "heap kept growing: {pages_after_first} -> {pages_after_more} pages"
        );
        // Interleave: A frees (its objects go to this core's cache), then B
        // allocates: B must get memory from its own heap window.
        for _ in 0..200 {
            let in_a = domain::enter(a.owner(), || {
                let x = Box::new(0xAAu64);
                let address = &*x as *const u64 as u64;
                drop(x);
                address
            })
            .map_err(|e| alloc::format!("a: {e}"))?;
            let in_b = domain::enter(b.owner(), || {
                let y = Box::new(0xBBu64);
                let address = &*y as *const u64 as u64;
                core::mem::forget(y);
                address
            })
            .map_err(|e| alloc::format!("b: {e}"))?;
            let heaps = mem::layout::DOMAIN_HEAPS.start;
            let window = |addr: u64| (addr - heaps) / mem::layout::DOMAIN_HEAP_SIZE;
            ensure!(
                window(in_a) == a.slot as u64,
                "A's object at {in_a:#x} outside A's window"
            );
            ensure!(
                window(in_b) == b.slot as u64,
                "B got {in_b:#x}, outside its window (from A's cache?)"
            );
        }
        domain::kill(a, "test");
        domain::kill(b, "test");
        dead(a).await?;
        dead(b).await
    })
}

/// A domain that allocates without bound hits its heap quota, fails its
/// allocation (a panic, contained), and the kernel and its memory are fine.
/// It allocates 8 MiB per entry, so no single entry runs into the watchdog
/// before the quota is reached.
fn heap_exhaustion_contained() -> BoxedTest {
    Box::pin(async {
        const CHUNK: usize = 8 << 20;
        let frames_before = mem::frames::free_count();
        let d = fresh("idle")?;
        let quota = domain::heap::quota();
        let mut entries = 0u64;
        let result = loop {
            let result = domain::enter(d.owner(), || {
                core::mem::forget(core::hint::black_box(alloc::vec![7u8; CHUNK]))
            });
            if result.is_err() || entries > quota / CHUNK as u64 + 2 {
                break result;
            }
            entries += 1;
        };
        ensure!(
            result == Err(EntryError::Crashed),
            "after {entries} chunks: {result:?} (quota {quota}, heap {:?})",
            d.heap_usage()
        );
        ensure!(
            entries * CHUNK as u64 <= quota,
            "{entries} chunks of 8 MiB exceed the {quota} B quota"
        );
        let fault = d.last_fault().unwrap_or_default();
        ensure!(fault.contains("memory allocation"), "fault was '{fault}'");
        dead(d).await?;
        // The kernel can still allocate, and the domain's memory came back,
        // except the page tables of its heap window, which stay for reuse
        // (one per 2 MiB mapped, plus the levels above).
        let probe: Vec<u64> = (0..10_000).collect();
        ensure!(probe.len() == 10_000, "kernel allocation failed");
        let tables = quota / (2 << 20) + 4;
        let frames_after = mem::frames::free_count();
        ensure!(
            frames_after + tables >= frames_before,
            "frames {frames_before} -> {frames_after}"
        );
        Ok(())
    })
}

/// RRefs a domain owns are freed when it dies (found through the registry,
/// values dropped, shared heap back); one it gave away survives with its
/// new owner; nested ones go with their root.
fn rrefs_reclaimed() -> BoxedTest {
    Box::pin(async {
        use rrpc::{RRef, RRefDeque};
        let (shared_before, _) = crate::shared_heap::usage();
        let d = fresh("idle")?;
        let owner = d.owner();
        let given: RRef<[u8; 64]> = domain::enter(owner, || {
            // Kept by the domain (its handles vanish with it).
            for i in 0..20u8 {
                core::mem::forget(RRef::new([i; 256]));
            }
            let mut batch = RRef::new(RRefDeque::<[u8; 1500], 8>::new());
            for i in 0..8u8 {
                let _ = batch.push_back(RRef::new([i; 1500]));
            }
            core::mem::forget(batch);
            // Given to the kernel, as a call result would be.
            let gift = RRef::new([0x42u8; 64]);
            // SAFETY: the domain gives it away for good (the test keeps it).
            gift.move_to(&unsafe { rrpc::Transfer::new(rrpc::Owner::KERNEL) });
            gift
        })
        .map_err(|e| alloc::format!("enter: {e}"))?;
        // 20 buffers, the batch and its 8 items (nested objects are
        // listed under their root's owner); the gift is the kernel's.
        ensure!(
            d.rrefs() == 29,
            "domain owns {} RRefs, expected 29",
            d.rrefs()
        );
        ensure!(
            given.owner() == executor::OwnerId::KERNEL,
            "the gift is not the kernel's"
        );
        ensure!(
            given.device_address().is_some(),
            "shared object without a device address"
        );
        let crash = domain::enter(owner, || inject::trigger(Kind::Panic));
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        dead(d).await?;
        ensure!(d.rrefs() == 0, "{} RRefs left after reclaim", d.rrefs());
        ensure!(
            given.iter().all(|&b| b == 0x42),
            "the kernel's RRef changed when its creator died"
        );
        drop(given);
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap: {shared_before} -> {shared_after} bytes"
        );
        Ok(())
    })
}

/// A domain polls a kernel timer with a waker of its own (code and data of
/// the domain), then dies before the timer fires. The kernel must not keep
/// that waker: when the timer fires after the domain's heap is gone, the
/// kernel wakes the polling task instead, and nothing faults.
fn timer_keeps_no_domain_waker() -> BoxedTest {
    Box::pin(async {
        use domain_sdk::Kernel;
        struct Own(AtomicUsize);
        impl alloc::task::Wake for Own {
            fn wake(self: alloc::sync::Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let d = fresh("idle")?;
        let deadline = crate::time::now_ns() + 30_000_000;
        domain::enter(d.owner(), || {
            let own = alloc::sync::Arc::new(Own(AtomicUsize::new(0)));
            let waker = core::task::Waker::from(own);
            let mut timer = domain::SERVICES.sleep_until(deadline);
            let pending = timer
                .as_mut()
                .poll(&mut core::task::Context::from_waker(&waker))
                .is_pending();
            // Left registered: the domain "forgets" it (as a crash would).
            core::mem::forget(timer);
            pending
        })
        .map_err(|e| alloc::format!("enter: {e}"))?
        .then_some(())
        .ok_or("the timer fired at once")?;
        domain::kill(d, "test");
        dead(d).await?;
        // Let the timer fire after the domain's heap is gone.
        executor::sleep(Duration::from_millis(60)).await;
        Ok(())
    })
}

/// RRefs made on one core are moved, dropped and reclaimed on another
/// while both cores run batches: the registry's cross-core path (requests
/// queued for the home core, or its shard locked while idle). Counts are
/// exact afterwards and the shared heap is back where it started.
fn rrefs_cross_cores() -> BoxedTest {
    Box::pin(async {
        use rrpc::RRef;
        let here = cpu::current().index;
        let Some(other) = (0..cpu::count()).find(|&c| c != here) else {
            crate::println!("ktest:   (one core: the cross-core path is not reachable)");
            return Ok(());
        };
        let (shared_before, _) = crate::shared_heap::usage();
        let d = fresh("idle")?;
        let owner = d.owner();
        type Batch = Vec<RRef<[u32; 16]>>;
        type Job = core::pin::Pin<Box<dyn core::future::Future<Output = Batch> + Send>>;
        let spawn = |f: Job| sched::spawn_on(other, f).map_err(|e| alloc::format!("spawn: {e:?}"));
        // Made on the other core (homed there).
        let mut made = spawn(Box::pin(async {
            (0..300u32).map(|i| RRef::new([i; 16])).collect()
        }))?
        .await
        .map_err(|e| alloc::format!("join: {e:?}"))?;
        // Keep the other core inside one long batch (one poll that spins
        // until released), so the work below must be queued for it.
        static HOLD: AtomicBool = AtomicBool::new(false);
        static HOLDING: AtomicBool = AtomicBool::new(false);
        HOLD.store(true, Ordering::SeqCst);
        HOLDING.store(false, Ordering::SeqCst);
        let holder = sched::spawn_on(other, async {
            let start = crate::time::now_ns();
            HOLDING.store(true, Ordering::SeqCst);
            while HOLD.load(Ordering::SeqCst) && crate::time::now_ns() - start < 2_000_000_000 {
                core::hint::spin_loop();
            }
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        while !HOLDING.load(Ordering::SeqCst) {
            executor::yield_now().await;
        }
        let queued_before = rrpc::registry::requests_queued();
        // Here: 200 go to the domain, 50 die, 50 stay the kernel's.
        let mut moved = made.split_off(100);
        for object in &moved {
            // SAFETY: given to the domain; the test reads them only after
            // they come back (below).
            object.move_to(&unsafe { rrpc::Transfer::new(owner) });
        }
        let kept = made.split_off(50);
        drop(made);
        let queued = rrpc::registry::requests_queued() - queued_before;
        HOLD.store(false, Ordering::SeqCst);
        holder.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        ensure!(
            queued >= 250,
            "{queued} requests queued for the busy core, expected 250 (200 moves, 50 frees)"
        );
        // Half of the domain's come back and are dropped on their home core.
        let returned = moved.split_off(100);
        for object in &returned {
            // SAFETY: back to the kernel, which holds them.
            object.move_to(&unsafe { rrpc::Transfer::new(rrpc::Owner::KERNEL) });
        }
        let back = spawn(Box::pin(async move {
            for (i, object) in returned.iter().enumerate() {
                assert_eq!(object[0], 200 + i as u32, "value changed in transit");
            }
            drop(returned);
            Vec::new()
        }))?
        .await
        .map_err(|e| alloc::format!("join: {e:?}"))?;
        drop(back);
        ensure!(
            d.rrefs() == 100,
            "the domain owns {} RRefs, expected 100",
            d.rrefs()
        );
        ensure!(
            kept.iter()
                .enumerate()
                .all(|(i, o)| o.owner() == executor::OwnerId::KERNEL && o[15] == 50 + i as u32),
            "the kernel's RRefs changed"
        );
        // The domain dies holding its 100 (their handles are its memory).
        core::mem::forget(moved);
        let crash = domain::enter(owner, || inject::trigger(Kind::Panic));
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        dead(d).await?;
        ensure!(d.rrefs() == 0, "{} RRefs left after reclaim", d.rrefs());
        drop(kept);
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap: {shared_before} -> {shared_after} bytes"
        );
        Ok(())
    })
}

#[rrpc::interface]
pub trait Filler {
    fn fill(
        &self,
        buffer: rrpc::RRef<[u8; 128]>,
        byte: u8,
    ) -> rrpc::RpcResult<rrpc::RRef<[u8; 128]>>;
    fn crash(&self, kind: u8) -> rrpc::RpcResult<()>;
    /// Raises `Kind::ALL[kind]`, the watchdog's runaway loop included.
    fn fault(&self, kind: u8) -> rrpc::RpcResult<()>;
}

struct FillerImpl;

impl Filler for FillerImpl {
    fn fill(
        &self,
        mut buffer: rrpc::RRef<[u8; 128]>,
        byte: u8,
    ) -> rrpc::RpcResult<rrpc::RRef<[u8; 128]>> {
        assert_eq!(
            buffer.owner(),
            cpu::current_owner(),
            "the callee owns its argument"
        );
        buffer.iter_mut().for_each(|b| *b = byte);
        Ok(buffer)
    }
    fn crash(&self, kind: u8) -> rrpc::RpcResult<()> {
        inject::trigger(Kind::ALL[usize::from(kind) % 6]);
        Ok(())
    }
    fn fault(&self, kind: u8) -> rrpc::RpcResult<()> {
        inject::trigger(Kind::ALL[usize::from(kind) % Kind::ALL.len()]);
        Ok(())
    }
}

/// Since session 13 a generated proxy enters its callee itself, through
/// the gate the kernel's runtime hands out with the entry capability (no
/// call into the runtime): every kind of fault raised through it, the
/// watchdog's included, is recorded against the callee with the kernel's
/// fault record (which the failure path writes into the proxy's frame),
/// poisons it, and leaves the caller running as itself with its frames as
/// they were.
fn inline_entry_faults() -> BoxedTest {
    Box::pin(async {
        use rrpc::RpcError;
        for (index, kind) in Kind::ALL.iter().enumerate() {
            let d = fresh("idle")?;
            let object = domain::enter(d.owner(), || {
                alloc::sync::Arc::new(FillerImpl) as alloc::sync::Arc<dyn Filler + Send + Sync>
            })
            .map_err(|e| alloc::format!("enter: {e}"))?;
            let cap = crate::domain::entry_cap(d.owner());
            ensure!(cap.is_inline(), "the kernel's runtime handed out no gate");
            let proxy = FillerProxy::new(object, cap);
            let (owner, top) = (cpu::current_owner(), cpu::catch_top());
            let result = proxy.fault(index as u8);
            ensure!(
                result == Err(RpcError::DomainCrashed),
                "{kind:?}: the call gave {result:?}"
            );
            ensure!(
                cpu::current_owner() == owner && cpu::catch_top() == top,
                "{kind:?}: the caller's owner or innermost frame changed"
            );
            ensure!(d.state() != State::Alive, "{kind:?}: callee still alive");
            let fault = d.last_fault().unwrap_or_default();
            let expected = recorded_as(*kind);
            ensure!(
                fault.contains(expected),
                "{kind:?}: recorded fault '{fault}' lacks '{expected}'"
            );
            let after = proxy.fault(0);
            ensure!(
                after == Err(RpcError::DomainNotAlive),
                "{kind:?}: a call after the crash gave {after:?}"
            );
            dead(d).await?;
        }
        Ok(())
    })
}

/// An `#[interface]` proxy into a real domain: the call runs as the
/// domain, the RRef argument is the callee's during the call and the
/// caller's again with the result; a crash is `Err(DomainCrashed)` and the
/// next call fails without entering.
fn generated_proxy() -> BoxedTest {
    Box::pin(async {
        use rrpc::{RRef, RpcError};
        let d = fresh("idle")?;
        // The object lives in the domain's heap, created inside it.
        let object = domain::enter(d.owner(), || {
            alloc::sync::Arc::new(FillerImpl) as alloc::sync::Arc<dyn Filler + Send + Sync>
        })
        .map_err(|e| alloc::format!("enter: {e}"))?;
        let proxy = FillerProxy::new(object, crate::domain::entry_cap(d.owner()));
        let filled = proxy
            .fill(RRef::new([0u8; 128]), 0xAB)
            .map_err(|e| alloc::format!("fill: {e}"))?;
        ensure!(
            filled.owner() == executor::OwnerId::KERNEL,
            "result owned by {}, not the caller",
            filled.owner()
        );
        ensure!(filled.iter().all(|&b| b == 0xAB), "callee's writes missing");
        ensure!(d.rrefs() == 0, "the callee kept {} RRefs", d.rrefs());
        let crash = proxy.crash(1);
        ensure!(
            crash == Err(RpcError::DomainCrashed),
            "crash gave {crash:?}"
        );
        let after = proxy.fill(RRef::new([0u8; 128]), 1);
        ensure!(
            matches!(after, Err(RpcError::DomainNotAlive)),
            "call after the crash gave {:?}",
            after.map(|_| ())
        );
        dead(d).await?;
        ensure!(
            filled[5] == 0xAB,
            "the caller's RRef changed when the callee died"
        );
        Ok(())
    })
}

/// A proxied call whose callee fails after the entry but before its
/// arguments became the callee's (a fault the campaign raised at a timer
/// tick there, in the proxy's own few instructions) leaves them to the
/// caller, who drops them: nothing is left on the shared heap. (They were
/// forgotten, still the caller's: a leak a mid-code campaign found.)
fn failed_before_the_moves() -> BoxedTest {
    Box::pin(async {
        use rrpc::{RRef, RpcError};
        let d = fresh("idle")?;
        let cap = crate::domain::entry_cap(d.owner());
        let (before, _) = crate::shared_heap::usage();
        let buffer = RRef::new([7u8; 256]);
        let result = rrpc::proxy::call_method(&cap, move |moved: rrpc::proxy::Moved<'_>| {
            inject::trigger(Kind::Panic);
            moved.receive_all(true, |_| {});
            drop(buffer);
            Ok(())
        });
        ensure!(
            result == Err(RpcError::DomainCrashed),
            "the call gave {result:?}"
        );
        dead(d).await?;
        let (after, _) = crate::shared_heap::usage();
        ensure!(
            after == before,
            "shared heap {before} B before the call, {after} B after: the caller's argument was lost"
        );
        Ok(())
    })
}

#[rrpc::interface]
pub trait Waiter {
    async fn wait(&self) -> rrpc::RpcResult<u32>;
}

struct WaiterImpl;

impl Waiter for WaiterImpl {
    fn wait(&self) -> rrpc::RpcFuture<'_, u32> {
        rrpc::RpcFuture::new(poll_fn(|_| Poll::Pending)) // never completes by itself
    }
}

/// A task awaits an async call through a generated proxy; the callee
/// never completes it, then crashes (from another core). The suspended
/// caller is woken and the call completes with an error.
fn async_proxy_crash() -> BoxedTest {
    Box::pin(async {
        let d = fresh("idle")?;
        let owner = d.owner();
        let object = domain::enter(owner, || {
            alloc::sync::Arc::new(WaiterImpl) as alloc::sync::Arc<dyn Waiter + Send + Sync>
        })
        .map_err(|e| alloc::format!("enter: {e}"))?;
        let caller = sched::spawn(async move {
            let proxy = WaiterProxy::new(object, crate::domain::entry_cap(owner));
            proxy.wait().await
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        executor::sleep(Duration::from_millis(10)).await;
        ensure!(!caller.is_finished(), "the call completed before the crash");
        let crasher = sched::spawn_on(cpu::count() - 1, async move {
            domain::enter(owner, || inject::trigger(Kind::PageFault))
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        let crash = crasher.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        let result = caller.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        ensure!(
            matches!(
                result,
                Err(rrpc::RpcError::DomainNotAlive | rrpc::RpcError::DomainCrashed)
            ),
            "suspended async call gave {result:?}"
        );
        dead(d).await
    })
}

/// `Kernel::supervise` / `Kernel::restart_domain` as domains call them:
/// one supervisor per domain (a dead supervisor's claim lapses), nobody
/// else may restart it, and a killed domain stays dead.
fn supervision() -> BoxedTest {
    Box::pin(async {
        use domain_sdk::{Kernel, RestartError};
        let kernel: &dyn Kernel = &domain::SERVICES;
        // The supervisors run the `attack` image, which the manifest
        // grants `supervise attack idle` (a policy the test relies on).
        let target = fresh("idle")?;
        let shadow = fresh("attack")?;
        let other = fresh("attack")?;
        let name = target.name.as_str();
        let as_domain = |d: &'static domain::Domain, f: &dyn Fn() -> Result<(), RestartError>| {
            domain::enter(d.owner(), f).map_err(|e| alloc::format!("enter {}: {e}", d.name))
        };
        ensure!(
            as_domain(target, &|| kernel.supervise(name))? == Err(RestartError::IsCaller),
            "a domain supervised itself"
        );
        ensure!(
            as_domain(shadow, &|| kernel.supervise(name))? == Ok(()),
            "first claim refused"
        );
        ensure!(
            as_domain(shadow, &|| kernel.supervise(name))? == Ok(()),
            "repeated claim refused"
        );
        ensure!(
            as_domain(other, &|| kernel.supervise(name))? == Err(RestartError::Supervised),
            "a second live supervisor was accepted"
        );
        ensure!(
            as_domain(shadow, &|| kernel.restart_domain(name))? == Err(RestartError::StillRunning),
            "restarted a live domain"
        );
        // A crash: only the supervisor may restart it.
        let crash = domain::enter(target.owner(), || inject::trigger(Kind::Panic));
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        dead(target).await?;
        ensure!(
            as_domain(other, &|| kernel.restart_domain(name))? == Err(RestartError::NotSupervisor),
            "a bystander restarted it"
        );
        ensure!(
            as_domain(shadow, &|| kernel.restart_domain(name))? == Ok(()),
            "the supervisor could not restart it after a crash"
        );
        ensure!(
            target.state() == domain::State::Alive && target.generation() == 2,
            "after the restart: {} generation {}",
            target.state().name(),
            target.generation()
        );
        // Killed by the operator: stays dead for the supervisor, not for
        // the console.
        domain::kill(target, "test");
        dead(target).await?;
        ensure!(
            as_domain(shadow, &|| kernel.restart_domain(name))? == Err(RestartError::Killed),
            "the supervisor restarted a killed domain"
        );
        domain::restart(target)?;
        ensure!(
            target.state() == domain::State::Alive,
            "console restart failed"
        );
        // The supervisor dies: its claim lapses and another may take over.
        domain::kill(shadow, "test");
        dead(shadow).await?;
        ensure!(
            as_domain(other, &|| kernel.supervise(name))? == Ok(()),
            "a dead supervisor's claim did not lapse"
        );
        ensure!(
            domain::supervisor_name(target).as_deref() == Some(other.name.as_str()),
            "supervisor shown as {:?}",
            domain::supervisor_name(target)
        );
        for d in [target, other] {
            domain::kill(d, "test");
            dead(d).await?;
        }
        Ok(())
    })
}

/// Who dropped a `Holder` future (the owner current at the time), 0: none.
static HOLDER_DROPPED_AS: executor::AtomicOwnerId =
    executor::AtomicOwnerId::new(executor::OwnerId::KERNEL);

/// A call that never completes and notes who drops it (standing for a
/// driver's future holding a queue).
struct Holder;

struct NoteDrop;

impl Drop for NoteDrop {
    fn drop(&mut self) {
        HOLDER_DROPPED_AS.store(cpu::current_owner(), Ordering::SeqCst);
    }
}

impl Waiter for Holder {
    fn wait(&self) -> rrpc::RpcFuture<'_, u32> {
        let note = NoteDrop;
        rrpc::RpcFuture::new(poll_fn(move |_| {
            let _ = &note;
            Poll::Pending
        }))
    }
}

/// A fresh callee exporting a [`Holder`] (whose drop is noted afresh), a
/// fresh caller, and a proxy to the holder.
fn holder_and_caller() -> Result<
    (
        &'static domain::Domain,
        &'static domain::Domain,
        WaiterProxy,
    ),
    alloc::string::String,
> {
    HOLDER_DROPPED_AS.store(executor::OwnerId::KERNEL, Ordering::SeqCst);
    let callee = fresh("idle")?;
    let caller = fresh("idle")?;
    let object = domain::enter(callee.owner(), || {
        alloc::sync::Arc::new(Holder) as alloc::sync::Arc<dyn Waiter + Send + Sync>
    })
    .map_err(|e| alloc::format!("enter: {e}"))?;
    let proxy = WaiterProxy::new(object, domain::entry_cap(callee.owner()));
    Ok((callee, caller, proxy))
}

/// A domain's task awaits a call that stays pending in another domain,
/// then the caller crashes: its task is never polled or dropped again, so
/// the kernel drops the callee's future inside the callee before
/// reclaiming the caller (without it, whatever that future holds would
/// stay held).
fn orphaned_call() -> BoxedTest {
    Box::pin(async {
        use domain_sdk::Kernel;
        let (callee, caller, proxy) = holder_and_caller()?;
        let spawned = domain::enter(caller.owner(), || {
            domain::SERVICES.spawn(Box::pin(async move {
                let _ = proxy.wait().await;
            }))
        })
        .map_err(|e| alloc::format!("enter: {e}"))?;
        ensure!(spawned.is_ok(), "spawn as the caller: {spawned:?}");
        for _ in 0..100 {
            if domain::parked_calls(caller) == 1 {
                break;
            }
            executor::sleep(Duration::from_millis(1)).await;
        }
        ensure!(
            domain::parked_calls(caller) == 1,
            "the pending call was not registered ({})",
            domain::parked_calls(caller)
        );
        ensure!(
            HOLDER_DROPPED_AS.load(Ordering::SeqCst) == executor::OwnerId::KERNEL,
            "dropped while pending"
        );
        let crash = domain::enter(caller.owner(), || inject::trigger(Kind::Panic));
        ensure!(crash == Err(EntryError::Crashed), "crash gave {crash:?}");
        dead(caller).await?;
        let dropped_as = HOLDER_DROPPED_AS.load(Ordering::SeqCst);
        ensure!(
            dropped_as == callee.owner(),
            "the callee's future was dropped as {dropped_as}, not inside the callee {}",
            callee.owner()
        );
        ensure!(callee.state() == State::Alive, "the callee suffered");
        domain::kill(callee, "test");
        dead(callee).await
    })
}

/// `Kernel::lookup` runs the caller's visitor: one that panics (or runs
/// away) is the calling domain's crash; the kernel and the exporting
/// domain carry on, and the name service still works.
fn lookup_visitor_panics() -> BoxedTest {
    Box::pin(async {
        use domain_sdk::Kernel;
        let exporter = fresh("idle")?;
        let caller = fresh("idle")?;
        let name = alloc::format!("{}/control", exporter.name);
        let crash = domain::enter(caller.owner(), || {
            let _ = domain::SERVICES.lookup(&name, &mut |_, _, _| panic!("visitor"));
        });
        ensure!(crash == Err(EntryError::Crashed), "lookup gave {crash:?}");
        dead(caller).await?;
        ensure!(exporter.state() == State::Alive, "the exporter suffered");
        let proxy = domain::proxy::<dyn interfaces::control::Control + Send + Sync>(&name)
            .map_err(|e| alloc::format!("lookup after the crash: {e}"))?;
        use interfaces::control::Control;
        ensure!(proxy.control(2, 7).is_ok(), "the export no longer answers");
        drop(proxy);
        domain::kill(exporter, "test");
        dead(exporter).await
    })
}

/// A domain with more calls pending than the kernel registers: the extra
/// ones go unregistered (kernel memory stays bounded), the domain runs on,
/// and when it dies the registered ones are dropped in the callee.
fn parked_bounded() -> BoxedTest {
    Box::pin(async {
        use domain_sdk::Kernel;
        const CALLS: usize = domain::MAX_PARKED + 44;
        let (callee, caller, proxy) = holder_and_caller()?;
        let spawned = domain::enter(caller.owner(), || {
            domain::SERVICES.spawn(Box::pin(async move {
                let mut calls: Vec<_> = (0..CALLS).map(|_| Box::pin(proxy.wait())).collect();
                poll_fn(|cx| {
                    for call in calls.iter_mut() {
                        let _ = call.as_mut().poll(cx);
                    }
                    Poll::<()>::Pending
                })
                .await;
            }))
        })
        .map_err(|e| alloc::format!("enter: {e}"))?;
        ensure!(spawned.is_ok(), "spawn as the caller: {spawned:?}");
        for _ in 0..200 {
            if domain::parked_calls(caller) == domain::MAX_PARKED {
                break;
            }
            executor::sleep(Duration::from_millis(1)).await;
        }
        ensure!(
            domain::parked_calls(caller) == domain::MAX_PARKED,
            "{} registered of {CALLS}",
            domain::parked_calls(caller)
        );
        ensure!(caller.state() == State::Alive, "the caller suffered");
        domain::kill(caller, "test");
        dead(caller).await?;
        ensure!(
            HOLDER_DROPPED_AS.load(Ordering::SeqCst) == callee.owner(),
            "the registered calls were not dropped in the callee"
        );
        domain::kill(callee, "test");
        dead(callee).await
    })
}

/// A call into a domain that returned "pending" just before the domain
/// died registers its task with the domain after the death has woken the
/// tasks listed then: it must be woken all the same (found by the fault
/// campaign: a workload left for ever in a call to a killed shadow).
fn suspended_after_death() -> BoxedTest {
    Box::pin(async {
        let d = fresh("counter")?;
        let old = d.owner();
        domain::kill(d, "test");
        dead(d).await?;
        let handle = sched::spawn(async move {
            let mut polls = 0;
            poll_fn(|cx| {
                polls += 1;
                if polls == 1 {
                    // What a proxy does after an entry that left the call
                    // pending; here the callee is already dead.
                    domain::proxy_runtime().suspended(old, cx.waker());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        for _ in 0..1000 {
            if handle.is_finished() {
                return Ok(());
            }
            executor::sleep(Duration::from_millis(1)).await;
        }
        handle.detach();
        Err("the task was never woken".into())
    })
}

/// Restarts of one dead domain from every core at the same moment: exactly
/// one makes the next incarnation, the others are refused (a second one
/// used to pass the "dead?" check too and then find the heap slot taken:
/// a kernel panic, found by the fault campaign).
fn racing_restarts() -> BoxedTest {
    Box::pin(async {
        use core::sync::atomic::AtomicU32;
        static ARRIVED: AtomicUsize = AtomicUsize::new(0);
        static WON: AtomicU32 = AtomicU32::new(0);
        let cores = cpu::count();
        if cores < 2 {
            return super::skip("needs two cores");
        }
        let d = fresh("counter")?;
        for round in 0..100u32 {
            domain::kill(d, "test");
            dead(d).await?;
            ARRIVED.store(0, Ordering::SeqCst);
            WON.store(0, Ordering::SeqCst);
            let generation = d.generation();
            let mut handles = Vec::new();
            for core in 0..cores {
                let handle = sched::spawn_on(core, async move {
                    // Meet the others, then restart at once.
                    ARRIVED.fetch_add(1, Ordering::SeqCst);
                    while ARRIVED.load(Ordering::SeqCst) < cores {
                        core::hint::spin_loop();
                    }
                    if domain::restart(d).is_ok() {
                        WON.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .map_err(|e| alloc::format!("spawn: {e:?}"))?;
                handles.push(handle);
            }
            for handle in handles {
                handle.await.map_err(|e| alloc::format!("join: {e:?}"))?;
            }
            ensure!(
                WON.load(Ordering::SeqCst) == 1,
                "round {round}: {} restarts succeeded",
                WON.load(Ordering::SeqCst)
            );
            ensure!(
                d.generation() == generation + 1 && d.state() == State::Alive,
                "round {round}: generation {} -> {}, {}",
                generation,
                d.generation(),
                d.state().name()
            );
        }
        domain::kill(d, "test");
        dead(d).await
    })
}
