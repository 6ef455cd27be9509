//! Time-based futures on the current executor's timer wheel.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::exec::{Executor, Timer, TimerTarget};
use crate::waker::task_id_of;
use crate::wheel::TimerKey;

/// Nanoseconds on the current executor's clock.
///
/// # Panics
/// Outside an executor.
pub fn now_ns() -> u64 {
    Executor::current()
        .expect("now_ns outside an executor")
        .platform()
        .now_ns()
}

/// Timers one executor's wheel holds at most (its memory is the kernel's,
/// and domains create timers): past it, a [`Sleep`] polls again until its
/// deadline instead of taking a slot.
pub const MAX_TIMERS: usize = 16_384;

/// Timers the tasks of one quota group (one domain, for the kernel) may
/// hold on one executor's wheel: a quarter of it. Past it, that group's
/// sleeps poll again until their deadline, and the others' still register.
pub const MAX_TIMERS_PER_GROUP: usize = MAX_TIMERS / 4;

/// Completes once `duration` has passed (never earlier).
pub fn sleep(duration: Duration) -> Sleep {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    Sleep {
        deadline: None,
        duration: nanos,
        key: None,
    }
}

/// Completes at or after `deadline_ns` on the executor clock.
pub fn sleep_until(deadline_ns: u64) -> Sleep {
    Sleep {
        deadline: Some(deadline_ns),
        duration: 0,
        key: None,
    }
}

/// A timer future. The deadline of a `sleep` is fixed on its first poll.
pub struct Sleep {
    deadline: Option<u64>,
    duration: u64,
    /// Executor id and wheel entry while registered.
    key: Option<(usize, TimerKey)>,
}

impl Sleep {
    fn unregister(&mut self) {
        if let Some((executor, key)) = self.key.take() {
            // Only the owning executor touches its wheel; a Sleep is always
            // polled and dropped by the task that owns it, on that executor.
            if let Some(exec) = Executor::current().filter(|e| e.id() == executor) {
                exec.platform().run_as_kernel(&mut || {
                    // SAFETY: we run on the wheel's executor, inside a poll
                    // or a drop, where no other reference to the wheel is
                    // live.
                    if let Some(timer) = unsafe { (*exec.timers()).cancel(key) } {
                        exec.count_timer(timer.group, false);
                    }
                });
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let exec = Executor::current().expect("Sleep polled outside an executor");
        let now = exec.platform().now_ns();
        let duration = self.duration;
        let deadline = *self.deadline.get_or_insert(now.saturating_add(duration));
        self.unregister();
        if now >= deadline {
            return Poll::Ready(());
        }
        let target = match task_id_of(cx.waker()) {
            Some(id) => TimerTarget::Task(id),
            None => TimerTarget::Waker(cx.waker().clone()),
        };
        let mut key = None;
        let mut target = Some(target);
        let group = exec.current_group();
        // The wheel may grow: that memory is the kernel's, not the domain's.
        exec.platform().run_as_kernel(&mut || {
            // SAFETY: as in `unregister`.
            let wheel = unsafe { &mut *exec.timers() };
            if wheel.is_empty() {
                // `run` skips an empty wheel, so bring its clock up to date
                // first (on an empty wheel this is a jump, not a walk).
                wheel.advance(now, |_| {});
            }
            if wheel.len() >= MAX_TIMERS || !exec.timer_room(group) {
                // Timers of tasks that are gone (a dead domain's: its tasks
                // are never polled or dropped again) go first: they count
                // against their group until then (a restarted domain
                // shares its predecessor's).
                wheel.retain(|timer| {
                    let keep = match &timer.target {
                        TimerTarget::Task(id) => {
                            crate::registry::get(id.executor()).is_none_or(|e| e.is_live(*id))
                        }
                        TimerTarget::Waker(_) => true,
                    };
                    if !keep {
                        exec.count_timer(timer.group, false);
                    }
                    keep
                });
            }
            if wheel.len() < MAX_TIMERS
                && exec.timer_room(group)
                && let Some(target) = target.take()
            {
                key = Some(wheel.insert(deadline, Timer { target, group }));
                exec.count_timer(group, true);
            }
        });
        match key {
            Some(key) => self.key = Some((exec.id(), key)),
            // The wheel is full: rather than let tasks grow the kernel's
            // memory without bound, this one polls again until its deadline
            // (never early, only costlier).
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Ticks every `period`; the first tick completes at once. Missed ticks
/// are skipped, not bunched.
pub fn interval(period: Duration) -> Interval {
    let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
    Interval {
        period,
        next: None,
        sleep: None,
    }
}

pub struct Interval {
    period: u64,
    next: Option<u64>,
    sleep: Option<Sleep>,
}

impl Interval {
    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        core::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = now_ns();
        let due = *self.next.get_or_insert(now);
        if now < due {
            let sleep = self.sleep.get_or_insert_with(|| sleep_until(due));
            if Pin::new(sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.sleep = None;
        let mut next = due.saturating_add(self.period);
        if next <= now {
            next = now.saturating_add(self.period);
        }
        self.next = Some(next);
        Poll::Ready(())
    }
}

/// Lets other ready tasks run, then continues.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
