//! `greeter-client`: greets every 20 ms; `call greeter-client 0|1` shows
//! the greetings it got and the calls that failed.
#![no_std]
#![forbid(unsafe_code)]
extern crate alloc;

use alloc::{string::String, sync::Arc};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use domain_sdk::{Exports, Kernel, RRef, RpcResult, log, lookup, sleep, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::greeter::Greeter;

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Control for Stats {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(if op == 0 { &self.ok } else { &self.failed }.load(Ordering::Relaxed))
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer("0: greetings so far\n1: calls that failed"),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let stats = Arc::new(Stats::default());
    let counts = stats.clone();
    spawn(async move {
        let mut greeter = None;
        loop {
            sleep(Duration::from_millis(20)).await;
            if greeter.is_none() {
                greeter = lookup::<dyn Greeter + Send + Sync>("greeter").ok();
            }
            let result = match &greeter {
                Some(g) => g.greet(1).await,
                None => continue,
            };
            match result {
                Ok(_) => counts.ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    log(&alloc::format!("greet failed: {e}"));
                    greeter = None; // look it up again: it may be restarted
                    counts.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    })
    .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", stats))
}
