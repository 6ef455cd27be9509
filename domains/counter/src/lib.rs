//! `counter`: exports [`Counter`] as "counter" (counts calls; a background
//! task ticks every 10 ms; `wait_ticks` is an `async` method that completes
//! after more ticks) and [`Control`] as "control" (console `call counter
//! OP`: 0 = calls so far, 1 = ticks so far, anything else echoes ARG).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, RRef, RpcFuture, RpcResult, interval, sleep};
use interfaces::control::{Control, HELP, Text};
use interfaces::counter::Counter;

#[derive(Default)]
struct State {
    calls: AtomicU64,
    ticks: AtomicU64,
}

struct Service(Arc<State>);

impl Counter for Service {
    fn increment(&self) -> RpcResult<u64> {
        Ok(self.0.calls.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn ticks(&self) -> RpcResult<u64> {
        Ok(self.0.ticks.load(Ordering::Relaxed))
    }

    fn wait_ticks(&self, n: u64) -> RpcFuture<'_, u64> {
        RpcFuture::new(async move {
            let target = self.0.ticks.load(Ordering::Relaxed) + n;
            loop {
                let now = self.0.ticks.load(Ordering::Relaxed);
                if now >= target {
                    return Ok(now);
                }
                sleep(Duration::from_millis(5)).await;
            }
        })
    }
}

impl Control for Service {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.0.calls.load(Ordering::Relaxed),
            1 => self.0.ticks.load(Ordering::Relaxed),
            _ => arg,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: calls of `counter` so far\n1: ticks of its background task (every 10 ms)\nany other OP: echoes ARG",
            ),
            _ => Ok(None),
        }
    }
}

pub fn init(kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let state = Arc::new(State::default());
    let ticking = state.clone();
    kernel
        .spawn(Box::pin(async move {
            let mut every = interval(Duration::from_millis(10));
            loop {
                every.tick().await;
                ticking.ticks.fetch_add(1, Ordering::Relaxed);
            }
        }))
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    let service = Arc::new(Service(state));
    Ok(Exports::new()
        .with::<dyn Counter + Send + Sync>("counter", service.clone())
        .with::<dyn Control + Send + Sync>("control", service))
}
