//! Executors on every core: SMP, cross-core wake-ups, interrupt-to-task
//! wake-ups, cancellation and timers.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::Poll;
use core::time::Duration;

use executor::{JoinError, WakeSlot};

use super::{BoxedTest, KTest, TestFn};
use crate::arch::trap::vectors;
use crate::{apic, cpu, sched, time};

pub static TESTS: &[KTest] = &[
    KTest {
        name: "apic_mode_is_the_one_asked_for_on_every_core",
        run: TestFn::Async(apic_mode_on_every_core),
    },
    KTest {
        name: "sched_tasks_run_on_every_core",
        run: TestFn::Async(tasks_run_on_every_core),
    },
    KTest {
        name: "sched_cross_core_wake_ping_pong",
        run: TestFn::Async(cross_core_ping_pong),
    },
    KTest {
        name: "sched_interrupt_wakes_task",
        run: TestFn::Async(interrupt_wakes_task),
    },
    KTest {
        name: "sched_abort_never_polls_again",
        run: TestFn::Async(abort_never_polls_again),
    },
    KTest {
        name: "sched_many_tasks_all_cores",
        run: TestFn::Async(many_tasks_all_cores),
    },
    KTest {
        name: "timer_sleep_accuracy",
        run: TestFn::Async(sleep_accuracy),
    },
    KTest {
        name: "timer_interval_ticks",
        run: TestFn::Async(interval_ticks),
    },
    KTest {
        name: "timer_tick_rate_matches_tsc",
        run: TestFn::Async(tick_rate_matches_tsc),
    },
];

/// A one-shot flag a task can await and any core (or interrupt) can raise.
struct Signal {
    raised: AtomicBool,
    slot: WakeSlot,
}

impl Signal {
    const fn new() -> Signal {
        Signal {
            raised: AtomicBool::new(false),
            slot: WakeSlot::new(),
        }
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.slot.wake();
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.slot.register(cx.waker());
            if self.raised.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Picks another core if there is one.
fn other_core() -> usize {
    if cpu::count() > 1 { 1 } else { 0 }
}

/// With the `x2apic` boot option every core's local APIC is in x2APIC
/// mode (IA32_APIC_BASE bit 10) and answers its id through the MSRs, the
/// id the core was started with; without it, xAPIC everywhere (QEMU's
/// firmware does not enable x2APIC).
fn apic_mode_on_every_core() -> BoxedTest {
    Box::pin(async {
        let asked = crate::BOOT
            .get()
            .is_some_and(|b| b.cmdline.split_whitespace().any(|w| w == "x2apic"));
        ensure!(
            apic::is_x2apic() == asked,
            "x2APIC {} but the boot option {}",
            if apic::is_x2apic() { "on" } else { "off" },
            if asked { "asks for it" } else { "does not" }
        );
        for index in 0..cpu::count() {
            let handle = sched::spawn_on(index, async {
                // SAFETY: reading IA32_APIC_BASE has no side effects.
                let base = unsafe { x86_64::registers::model_specific::Msr::new(0x1B).read() };
                (base & (1 << 10) != 0, apic::id(), cpu::current().apic_id)
            })
            .map_err(|e| alloc::format!("spawn on core {index}: {e:?}"))?;
            let (x2, id, started_as) = handle
                .await
                .map_err(|e| alloc::format!("core {index}: {e:?}"))?;
            ensure!(
                x2 == asked,
                "core {index}: IA32_APIC_BASE says x2APIC {x2}, asked {asked}"
            );
            ensure!(
                id == started_as,
                "core {index}: the APIC says id {id}, the core was started as {started_as}"
            );
        }
        Ok(())
    })
}

fn tasks_run_on_every_core() -> BoxedTest {
    Box::pin(async {
        let cores = cpu::count();
        ensure!(cores >= 1, "no cores");
        let mut handles = Vec::new();
        for index in 0..cores {
            let handle = sched::spawn_on(index, async { cpu::current().index })
                .map_err(|e| alloc::format!("spawn on {index}: {e:?}"))?;
            handles.push((index, handle));
        }
        for (index, handle) in handles {
            let ran_on = handle.await.map_err(|e| alloc::format!("join: {e:?}"))?;
            ensure!(
                ran_on == index,
                "task for core {index} ran on core {ran_on}"
            );
        }
        Ok(())
    })
}

fn cross_core_ping_pong() -> BoxedTest {
    Box::pin(async {
        const ROUNDS: u64 = 500;
        static PING: Signal = Signal::new();
        static PONG: Signal = Signal::new();
        let target = other_core();
        let me = cpu::current().index;
        let responder = sched::spawn_on(target, async move {
            let mut rounds = 0u64;
            let mut wrong_core = 0u64;
            while rounds < ROUNDS {
                PING.wait().await;
                if cpu::current().index != target {
                    wrong_core += 1;
                }
                rounds += 1;
                PONG.raise();
            }
            (rounds, wrong_core)
        })
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        for _ in 0..ROUNDS {
            PING.raise();
            PONG.wait().await;
            ensure!(cpu::current().index == me, "runner migrated cores");
        }
        let (rounds, wrong) = responder.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        ensure!(
            rounds == ROUNDS && wrong == 0,
            "responder did {rounds} rounds, {wrong} on the wrong core"
        );
        Ok(())
    })
}

static IRQ_SIGNAL: Signal = Signal::new();

/// Handler for `vectors::TEST`: wakes the waiting task from interrupt
/// context (no allocation, no lock).
pub fn on_test_interrupt() {
    TEST_INTERRUPTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    IRQ_SIGNAL.raise();
}

static TEST_INTERRUPTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// `TEST` interrupts handled since boot.
pub fn test_interrupts() -> u64 {
    TEST_INTERRUPTS.load(core::sync::atomic::Ordering::Relaxed)
}

fn interrupt_wakes_task() -> BoxedTest {
    Box::pin(async {
        let me = cpu::current().apic_id;
        for _ in 0..20 {
            // Another core raises the interrupt at us while we wait.
            let sender = sched::spawn_on(other_core(), async move {
                executor::sleep(Duration::from_millis(2)).await;
                apic::send_ipi(me, vectors::TEST);
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))?;
            IRQ_SIGNAL.wait().await;
            sender.await.map_err(|e| alloc::format!("join: {e:?}"))?;
        }
        Ok(())
    })
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn abort_never_polls_again() -> BoxedTest {
    Box::pin(async {
        for target in [cpu::current().index, other_core()] {
            let polls = Arc::new(AtomicU64::new(0));
            let dropped = Arc::new(AtomicBool::new(false));
            let (p, flag) = (polls.clone(), DropFlag(dropped.clone()));
            let handle = sched::spawn_on(target, async move {
                let _flag = flag;
                loop {
                    p.fetch_add(1, Ordering::SeqCst);
                    executor::sleep(Duration::from_millis(1)).await;
                }
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))?;
            executor::sleep(Duration::from_millis(20)).await;
            ensure!(
                polls.load(Ordering::SeqCst) > 0,
                "task on core {target} never ran"
            );
            handle.abort();
            let result = handle.await;
            ensure!(
                matches!(result, Err(JoinError::Cancelled)),
                "join after abort gave {result:?}"
            );
            ensure!(
                dropped.load(Ordering::SeqCst),
                "aborted task's future was not dropped"
            );
            let seen = polls.load(Ordering::SeqCst);
            executor::sleep(Duration::from_millis(20)).await;
            ensure!(
                polls.load(Ordering::SeqCst) == seen,
                "aborted task on core {target} was polled again"
            );
        }
        Ok(())
    })
}

fn many_tasks_all_cores() -> BoxedTest {
    Box::pin(async {
        const TASKS: usize = 2000;
        let done = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::with_capacity(TASKS);
        for i in 0..TASKS {
            let done = done.clone();
            let handle = sched::spawn_on(i % cpu::count(), async move {
                for _ in 0..3 {
                    executor::yield_now().await;
                }
                done.fetch_add(1, Ordering::SeqCst);
                i
            })
            .map_err(|e| alloc::format!("spawn {i}: {e:?}"))?;
            handles.push(handle);
        }
        for (i, handle) in handles.into_iter().enumerate() {
            let value = handle
                .await
                .map_err(|e| alloc::format!("join {i}: {e:?}"))?;
            ensure!(value == i, "task {i} returned {value}");
        }
        ensure!(
            done.load(Ordering::SeqCst) == TASKS as u64,
            "only {} tasks finished",
            done.load(Ordering::SeqCst)
        );
        Ok(())
    })
}

/// Sleeps must never end early; lateness is bounded generously because a
/// shared host can stall the emulator (this is not a timing benchmark).
fn sleep_accuracy() -> BoxedTest {
    Box::pin(async {
        for ms in [1u64, 5, 20, 50] {
            let start = time::now_ns();
            executor::sleep(Duration::from_millis(ms)).await;
            let elapsed = time::now_ns() - start;
            ensure!(
                elapsed >= ms * 1_000_000,
                "sleep({ms} ms) returned after {elapsed} ns"
            );
            ensure!(
                elapsed < ms * 1_000_000 + 500_000_000,
                "sleep({ms} ms) took {elapsed} ns"
            );
        }
        Ok(())
    })
}

fn interval_ticks() -> BoxedTest {
    Box::pin(async {
        let start = time::now_ns();
        let mut interval = executor::interval(Duration::from_millis(5));
        for _ in 0..10 {
            interval.tick().await;
        }
        let elapsed = time::now_ns() - start;
        // The first tick may complete at once; the other nine are 5 ms apart.
        ensure!(
            elapsed >= 45_000_000,
            "10 ticks of 5 ms took only {elapsed} ns"
        );
        Ok(())
    })
}

/// The APIC tick (calibrated against the PIT) and the TSC clock agree.
fn tick_rate_matches_tsc() -> BoxedTest {
    Box::pin(async {
        let cpu = cpu::current();
        let t0 = time::now_ns();
        let k0 = cpu.ticks.load(Ordering::Relaxed);
        executor::sleep(Duration::from_millis(200)).await;
        let t1 = time::now_ns();
        let k1 = cpu.ticks.load(Ordering::Relaxed);
        let expected = (t1 - t0) * time::tick_hz() / 1_000_000_000;
        let ticks = k1 - k0;
        ensure!(
            ticks * 2 >= expected && ticks <= expected * 2 + 2,
            "{ticks} ticks in {} ms at {} Hz (expected about {expected})",
            (t1 - t0) / 1_000_000,
            time::tick_hz()
        );
        Ok(())
    })
}
