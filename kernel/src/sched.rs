//! One executor per core, and the loop each core runs forever.
//!
//! The kernel's side of `executor::Platform`: the clock is the TSC, a wake
//! for a sleeping core is a `WAKE` IPI, and the current executor is the
//! current core's. Idle cores halt with interrupts enabled; the executor's
//! sleep handshake (`prepare_to_sleep`) plus `sti; hlt` guarantees that no
//! wake-up is lost between the last check and the halt.

use core::future::Future;
use core::task::Poll;

use executor::{Executor, JoinHandle, OwnerId, Platform, PollOutcome, SpawnError};
use spin::Once;

use crate::arch::trap::vectors;
use crate::arch::{enable_interrupts_and_halt, rdtsc};
use crate::cpu::{self, MAX_CPUS};
use crate::{apic, time};

/// Task slots per core.
pub const TASKS_PER_CPU: usize = 4096;
/// The kernel's own owner id.
pub const KERNEL: OwnerId = OwnerId::KERNEL;

struct KernelPlatform;

impl Platform for KernelPlatform {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    fn notify(&self, executor_id: usize) {
        if let Some(cpu) = cpu::get(executor_id) {
            apic::send_ipi(cpu.apic_id, vectors::WAKE);
        }
    }

    fn current_executor(&self) -> Option<usize> {
        Some(cpu::current().index)
    }

    /// A poll of a domain's task is a domain entry, charged to the
    /// domain's share of the core (and deferred if it has had more than
    /// that while others wait: see `share`).
    fn poll_task(&self, owner: OwnerId, poll: &mut dyn FnMut() -> Poll<()>) -> PollOutcome {
        if owner == KERNEL {
            return match poll() {
                Poll::Ready(()) => PollOutcome::Ready,
                Poll::Pending => PollOutcome::Pending,
            };
        }
        let start = time::now_ns();
        if let Some(until) = crate::share::defer(owner, start) {
            return PollOutcome::Deferred(until);
        }
        let outcome = match crate::domain::enter(owner, poll) {
            Ok(Poll::Ready(())) => PollOutcome::Ready,
            Ok(Poll::Pending) => PollOutcome::Pending,
            Err(_) => PollOutcome::Crashed,
        };
        crate::share::charge(owner, start, time::now_ns());
        outcome
    }

    fn run_as_kernel(&self, f: &mut dyn FnMut()) {
        cpu::kernel_section(f);
    }

    #[inline]
    fn critical(&self, f: &mut dyn FnMut()) {
        cpu::enter_critical();
        f();
        cpu::leave_critical();
    }

    fn drop_task(&self, owner: OwnerId, drop: &mut dyn FnMut()) {
        let _ = crate::domain::enter(owner, drop);
    }

    fn purge_done(&self, _executor_id: usize, owner: OwnerId) {
        crate::domain::purge_done(owner);
    }

    /// This core holds its RRef-registry shard while it polls tasks, so
    /// the RRef work of those tasks takes no lock (see `rrpc::registry`).
    fn batch_begin(&self) {
        let cpu = cpu::current();
        cpu.batch_tick
            .set(cpu.ticks.load(core::sync::atomic::Ordering::Relaxed));
        // SAFETY: the executor's loop, at the start of a batch.
        unsafe { rrpc::registry::enter_batch() };
    }

    /// A batch that has run past a timer tick ends, so that timers fire
    /// (a batch of long polls would hold them back for its whole length).
    fn end_batch_early(&self) -> bool {
        let cpu = cpu::current();
        cpu.ticks.load(core::sync::atomic::Ordering::Relaxed) > cpu.batch_tick.get() + 1
    }

    fn batch_end(&self) {
        // SAFETY: the end of the batch `batch_begin` started.
        unsafe { rrpc::registry::leave_batch() };
    }
}

static PLATFORM: KernelPlatform = KernelPlatform;
static EXECUTORS: [Once<&'static Executor>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];

/// Creates this core's executor. Cores come up one at a time, so executor
/// ids and core indices coincide; we check it.
pub fn init_this_cpu() {
    let index = cpu::current().index;
    let exec = Executor::new(&PLATFORM, TASKS_PER_CPU);
    assert_eq!(exec.id(), index, "executor id must equal the core index");
    EXECUTORS[index].call_once(|| exec);
}

pub fn executor(index: usize) -> Option<&'static Executor> {
    EXECUTORS.get(index)?.get().copied()
}

pub fn this_executor() -> &'static Executor {
    executor(cpu::current().index).expect("no executor on this core")
}

/// Spawns a kernel task on this core.
pub fn spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    this_executor().spawn(KERNEL, fut)
}

/// Spawns a kernel task on core `index`.
pub fn spawn_on<T: Send + 'static>(
    index: usize,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<JoinHandle<T>, SpawnError> {
    executor::spawn_on(index, KERNEL, fut)
}

/// The loop every core runs once booted.
pub fn run() -> ! {
    let exec = this_executor();
    let cpu = cpu::current();
    x86_64::instructions::interrupts::enable();
    loop {
        let stats = exec.run(64);
        cpu.polls
            .fetch_add(stats.polled as u64, core::sync::atomic::Ordering::Relaxed);
        if exec.has_ready() {
            continue;
        }
        x86_64::instructions::interrupts::disable();
        if exec.prepare_to_sleep() {
            let start = rdtsc();
            cpu.halted
                .store(true, core::sync::atomic::Ordering::Relaxed);
            enable_interrupts_and_halt();
            cpu.halted
                .store(false, core::sync::atomic::Ordering::Relaxed);
            cpu.idle_tsc
                .fetch_add(rdtsc() - start, core::sync::atomic::Ordering::Relaxed);
            exec.woke_up();
        } else {
            x86_64::instructions::interrupts::enable();
        }
    }
}
