//! `counter`: counts the calls made to it (op 0) and the ticks of its own
//! background task (op 1, every 10 ms). Other ops echo their argument.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Kernel, Service, interval};

struct Counter {
    calls: AtomicU64,
    ticks: Arc<AtomicU64>,
}

impl Service for Counter {
    fn call(&self, op: u32, arg: u64) -> u64 {
        match op {
            0 => self.calls.fetch_add(1, Ordering::Relaxed) + 1,
            1 => self.ticks.load(Ordering::Relaxed),
            _ => arg,
        }
    }
}

pub fn init(kernel: &'static dyn Kernel) -> Result<Box<dyn Service>, String> {
    let ticks = Arc::new(AtomicU64::new(0));
    let task_ticks = ticks.clone();
    kernel
        .spawn(Box::pin(async move {
            let mut every = interval(Duration::from_millis(10));
            loop {
                every.tick().await;
                task_ticks.fetch_add(1, Ordering::Relaxed);
            }
        }))
        .map_err(|e| alloc::format!("spawn: {e:?}"))?;
    Ok(Box::new(Counter {
        calls: AtomicU64::new(0),
        ticks,
    }))
}
