//! Time for domains: sleeps and intervals on the kernel's timers, reached
//! through [`Kernel`](crate::Kernel) (so they work the same in a domain
//! linked into the kernel and in one loaded from its own image).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::{Timer, kernel};

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    kernel().now_ns()
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Completes once `duration` has passed (never earlier).
pub fn sleep(duration: Duration) -> Timer {
    sleep_until(now_ns().saturating_add(nanos(duration)))
}

/// Completes at or after `deadline_ns` (see [`now_ns`]).
pub fn sleep_until(deadline_ns: u64) -> Timer {
    kernel().sleep_until(deadline_ns)
}

/// Lets other ready tasks run, then continues.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// See [`yield_now`].
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

/// Ticks every `period`; the first tick completes at once. Missed ticks are
/// skipped, not bunched.
pub fn interval(period: Duration) -> Interval {
    Interval {
        period: nanos(period).max(1),
        next: None,
        timer: None,
    }
}

/// See [`interval`].
pub struct Interval {
    period: u64,
    next: Option<u64>,
    timer: Option<Timer>,
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
            let timer = self.timer.get_or_insert_with(|| sleep_until(due));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.timer = None;
        let mut next = due.saturating_add(self.period);
        if next <= now {
            next = now.saturating_add(self.period);
        }
        self.next = Some(next);
        Poll::Ready(())
    }
}
