//! `nvme-shadow`: stands in front of the NVMe driver domain (named
//! `nvme`) and exports the same [`BDev`] interface as "bdev". Clients call
//! the shadow; the shadow calls the driver. When the driver crashes in the
//! middle of a batch, the shadow restarts it (a new incarnation, which
//! resets the controller and re-creates its queues), then re-issues the
//! batch and completes it: the client sees no error. After
//! [`MAX_ATTEMPTS`] failures in a row it gives up and reports the error.
//!
//! Re-issuing needs the requests. A write's batch is only lent to the
//! driver (the interface borrows it), so it stays the shadow's (and its
//! client's) when the driver dies and is simply sent again: no copy. A
//! read's batch moves to the driver (it writes the data) and dies with it,
//! so the shadow keeps the block numbers of each read in flight and makes
//! a fresh batch to re-issue.
//!
//! `call nvme-shadow 0` gives the driver restarts so far, `1` the batches
//! re-issued.
//!
//! The retry loop, written once, is in [`shadow`], over a [`Link`] to the
//! driver: [`SdkLink`] (the kernel's name service and supervision) in the
//! image, a simulated driver in the host tests.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod shadow;

use alloc::string::String;
use alloc::sync::Arc;
use core::future::Future;
use core::time::Duration;

use domain_sdk::{Exports, Kernel, RestartError, RpcResult, log, lookup, sleep};
use interfaces::bdev::{BDev, BDevProxy};
use interfaces::control::Control;

pub use shadow::{Link, MAX_ATTEMPTS, Shadow};

/// The driver domain's name.
pub const DRIVER: &str = "nvme";

/// The driver as the kernel runs it: found through the name service,
/// restarted through supervision.
pub struct SdkLink;

impl Link for SdkLink {
    fn lookup(&self) -> RpcResult<BDevProxy> {
        lookup::<dyn BDev + Send + Sync>(&alloc::format!("{DRIVER}/bdev"))
    }
    fn supervise(&self) -> Result<(), RestartError> {
        domain_sdk::kernel().supervise(DRIVER)
    }
    fn restart(&self) -> Result<(), RestartError> {
        domain_sdk::kernel().restart_domain(DRIVER)
    }
    fn pause(&self) -> impl Future<Output = ()> + Send {
        sleep(Duration::from_millis(1))
    }
    fn log(&self, message: &str) {
        log(message)
    }
}

pub fn init(kernel: &'static dyn Kernel) -> Result<Exports, String> {
    // The right to restart the driver after a crash; if it is not loaded
    // yet, the first recovery claims it.
    if let Err(e) = kernel.supervise(DRIVER) {
        log(&alloc::format!("not supervising {DRIVER} yet: {e}"));
    }
    let shadow = Arc::new(Shadow::new(SdkLink));
    Ok(Exports::new()
        .with::<dyn BDev + Send + Sync>("bdev", shadow.clone())
        .with::<dyn Control + Send + Sync>("control", shadow))
}
