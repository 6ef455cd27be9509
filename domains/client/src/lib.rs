//! `client`: calls the `counter` domain every 20 ms and counts successes
//! (op 0) and errors (op 1). It keeps going while `counter` is crashed or
//! restarting: a crash there is an `Err` here, nothing more.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Kernel, Service, sleep};

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    errors: AtomicU64,
}

struct Client(Arc<Stats>);

impl Service for Client {
    fn call(&self, op: u32, _arg: u64) -> u64 {
        match op {
            0 => self.0.ok.load(Ordering::Relaxed),
            _ => self.0.errors.load(Ordering::Relaxed),
        }
    }
}

pub fn init(kernel: &'static dyn Kernel) -> Result<Box<dyn Service>, String> {
    let stats = Arc::new(Stats::default());
    let task_stats = stats.clone();
    kernel
        .spawn(Box::pin(async move {
            let mut last_error = false;
            loop {
                sleep(Duration::from_millis(20)).await;
                match kernel.call("counter", 0, 0) {
                    Ok(_) => {
                        task_stats.ok.fetch_add(1, Ordering::Relaxed);
                        if last_error {
                            kernel.log("counter answers again");
                        }
                        last_error = false;
                    }
                    Err(e) => {
                        task_stats.errors.fetch_add(1, Ordering::Relaxed);
                        if !last_error {
                            kernel.log(&alloc::format!("counter: {e}"));
                        }
                        last_error = true;
                    }
                }
            }
        }))
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Box::new(Client(stats)))
}
