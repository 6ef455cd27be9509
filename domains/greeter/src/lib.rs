//! `greeter`: the authoring guide's example service.
#![no_std]
#![forbid(unsafe_code)]
extern crate alloc;

use alloc::{string::String, sync::Arc};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use domain_sdk::{Exports, Kernel, RpcFuture, sleep};
use interfaces::greeter::Greeter;

#[derive(Default)]
struct Service {
    greetings: AtomicU64,
}

impl Greeter for Service {
    fn greet(&self, delay_ms: u64) -> RpcFuture<'_, u64> {
        RpcFuture::new(async move {
            sleep(Duration::from_millis(delay_ms)).await;
            Ok(self.greetings.fetch_add(1, Ordering::Relaxed) + 1)
        })
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let service = Arc::new(Service::default());
    Ok(Exports::new().with::<dyn Greeter + Send + Sync>("greeter", service))
}
