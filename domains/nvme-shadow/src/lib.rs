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

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, RRef, RRefDeque, RestartError, RpcError, RpcFuture, RpcResult, log,
    lookup, sleep,
};
use interfaces::bdev::{BDev, BDevProxy, Batch, Extent, Geometry, Io, Statuses};
use interfaces::control::Control;

/// The driver domain's name.
pub const DRIVER: &str = "nvme";
/// Consecutive failed attempts before the shadow reports an error.
pub const MAX_ATTEMPTS: u32 = 5;

struct Shadow {
    driver: Mutex<Option<Arc<BDevProxy>>>,
    restarts: AtomicU64,
    reissued: AtomicU64,
}

impl Shadow {
    /// A proxy to the driver's current incarnation.
    fn driver(&self) -> RpcResult<Arc<BDevProxy>> {
        if let Some(proxy) = self.driver.lock().clone() {
            return Ok(proxy);
        }
        let proxy = Arc::new(lookup::<dyn BDev + Send + Sync>(&alloc::format!(
            "{DRIVER}/bdev"
        ))?);
        *self.driver.lock() = Some(proxy.clone());
        Ok(proxy)
    }

    /// The driver failed: forget its proxy and start its next incarnation
    /// (waiting until the dead one is reclaimed).
    async fn recover(&self, error: RpcError) {
        let _ = error;
        *self.driver.lock() = None;
        let kernel = domain_sdk::kernel();
        // Normally claimed at start; the driver may have come later.
        let _ = kernel.supervise(DRIVER);
        for _ in 0..2000 {
            match kernel.restart_domain(DRIVER) {
                Ok(()) => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    log("driver restarted");
                    return;
                }
                // Still being reclaimed, or the console restarted it.
                Err(RestartError::StillRunning) => {
                    if lookup::<dyn BDev + Send + Sync>(&alloc::format!("{DRIVER}/bdev")).is_ok() {
                        return;
                    }
                    sleep(Duration::from_millis(1)).await;
                }
                // Killed by the operator, or not ours to restart: the
                // callers get the error.
                Err(e) => {
                    log(&alloc::format!("not restarting the driver: {e}"));
                    return;
                }
            }
        }
    }

    /// Sends a batch made by `make` to the driver until it completes or
    /// [`MAX_ATTEMPTS`] attempts failed.
    async fn read(&self, batch: RRef<Batch>) -> RpcResult<RRef<Batch>> {
        let blocks: Vec<u64> = batch.iter().map(|io| io.block).collect();
        let mut first = Some(batch);
        let mut last = RpcError::DomainNotAlive;
        for attempt in 0..MAX_ATTEMPTS {
            // The first attempt sends the client's batch; a retry a fresh
            // one (the previous went down with the driver).
            let batch = match first.take() {
                Some(batch) => batch,
                None => {
                    self.reissued.fetch_add(1, Ordering::Relaxed);
                    rebuild(&blocks)?
                }
            };
            let result = match self.driver() {
                Ok(driver) => driver.read(batch).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(done) => return Ok(done),
                Err(e) => {
                    last = e;
                    self.recover(e).await;
                }
            }
            let _ = attempt;
        }
        Err(last)
    }

    async fn write(&self, batch: &RRef<Batch>) -> RpcResult<Statuses> {
        let mut last = RpcError::DomainNotAlive;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.reissued.fetch_add(1, Ordering::Relaxed);
            }
            let result = match self.driver() {
                Ok(driver) => driver.write(batch).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(statuses) => return Ok(statuses),
                Err(e) => {
                    last = e;
                    self.recover(e).await;
                }
            }
        }
        Err(last)
    }
}

/// A fresh batch reading `blocks`.
fn rebuild(blocks: &[u64]) -> RpcResult<RRef<Batch>> {
    let mut batch = RRef::try_new(RRefDeque::new())?;
    for &block in blocks {
        batch
            .push_back(RRef::try_new(Io::new(block))?)
            .map_err(|_| RpcError::OutOfMemory)?;
    }
    Ok(batch)
}

impl BDev for Shadow {
    fn geometry(&self) -> RpcFuture<'_, Geometry> {
        RpcFuture::new(async move {
            for _ in 0..MAX_ATTEMPTS {
                match self.driver() {
                    Ok(driver) => match driver.geometry().await {
                        Ok(g) => return Ok(g),
                        Err(e) => self.recover(e).await,
                    },
                    Err(e) => self.recover(e).await,
                }
            }
            Err(RpcError::DomainNotAlive)
        })
    }

    fn read(&self, batch: RRef<Batch>) -> RpcFuture<'_, RRef<Batch>> {
        RpcFuture::new(Shadow::read(self, batch))
    }

    fn write<'a>(&'a self, batch: &'a RRef<Batch>) -> RpcFuture<'a, Statuses> {
        RpcFuture::new(Shadow::write(self, batch))
    }

    fn read_extent(&self, extent: RRef<Extent>) -> RpcFuture<'_, RRef<Extent>> {
        RpcFuture::new(async move {
            let block = extent.block;
            let mut first = Some(extent);
            let mut last = RpcError::DomainNotAlive;
            for _ in 0..MAX_ATTEMPTS {
                let extent = match first.take() {
                    Some(extent) => extent,
                    None => {
                        self.reissued.fetch_add(1, Ordering::Relaxed);
                        RRef::try_new(Extent::new(block))?
                    }
                };
                let result = match self.driver() {
                    Ok(driver) => driver.read_extent(extent).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(done) => return Ok(done),
                    Err(e) => {
                        last = e;
                        self.recover(e).await;
                    }
                }
            }
            Err(last)
        })
    }

    fn write_extent<'a>(&'a self, extent: &'a RRef<Extent>) -> RpcFuture<'a, u16> {
        RpcFuture::new(async move {
            let mut last = RpcError::DomainNotAlive;
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    self.reissued.fetch_add(1, Ordering::Relaxed);
                }
                let result = match self.driver() {
                    Ok(driver) => driver.write_extent(extent).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(status) => return Ok(status),
                    Err(e) => {
                        last = e;
                        self.recover(e).await;
                    }
                }
            }
            Err(last)
        })
    }

    fn flush(&self) -> RpcFuture<'_, ()> {
        RpcFuture::new(async move {
            for _ in 0..MAX_ATTEMPTS {
                match self.driver() {
                    Ok(driver) => match driver.flush().await {
                        Ok(()) => return Ok(()),
                        Err(e) => self.recover(e).await,
                    },
                    Err(e) => self.recover(e).await,
                }
            }
            Err(RpcError::DomainNotAlive)
        })
    }
}

impl Control for Shadow {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.restarts.load(Ordering::Relaxed),
            _ => self.reissued.load(Ordering::Relaxed),
        })
    }
}

pub fn init(kernel: &'static dyn Kernel) -> Result<Exports, String> {
    // The right to restart the driver after a crash; if it is not loaded
    // yet, the first recovery claims it.
    if let Err(e) = kernel.supervise(DRIVER) {
        log(&alloc::format!("not supervising {DRIVER} yet: {e}"));
    }
    let shadow = Arc::new(Shadow {
        driver: Mutex::new(None),
        restarts: AtomicU64::new(0),
        reissued: AtomicU64::new(0),
    });
    Ok(Exports::new()
        .with::<dyn BDev + Send + Sync>("bdev", shadow.clone())
        .with::<dyn Control + Send + Sync>("control", shadow))
}
