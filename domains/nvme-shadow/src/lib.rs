//! `nvme-shadow`: stands in front of the NVMe driver domain (named
//! `nvme`) and exports the same [`BDev`] interface as "bdev". Clients call
//! the shadow; the shadow calls the driver. When the driver crashes in the
//! middle of a batch, the shadow restarts it (a new incarnation, which
//! resets the controller and re-creates its queues), then re-issues the
//! batch and completes it: the client sees no error. After
//! [`MAX_ATTEMPTS`] failures in a row it gives up and reports the error.
//!
//! Re-issuing needs the requests: the batch itself was moved to the driver
//! and died with it. So the shadow keeps the block numbers of every batch
//! in flight, and for writes a copy of the data (a read needs none: its
//! data comes from the device). That copy is the price of transparent
//! recovery; `make bench` measures it.
//!
//! `call nvme-shadow 0` gives the driver restarts so far, `1` the batches
//! re-issued.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{
    Exports, Kernel, Mutex, RRef, RRefDeque, RpcError, RpcResult, log, lookup, sleep,
};
use interfaces::bdev::{BDev, BDevProxy, BLOCK, Batch, Geometry, Io};
use interfaces::control::Control;

/// The driver domain's name.
pub const DRIVER: &str = "nvme";
/// Consecutive failed attempts before the shadow reports an error.
pub const MAX_ATTEMPTS: u32 = 5;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = RpcResult<T>> + Send + 'a>>;

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
        for _ in 0..2000 {
            match domain_sdk::kernel().restart_domain(DRIVER) {
                Ok(()) => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    log("driver restarted");
                    return;
                }
                // Still being reclaimed, or someone else restarted it.
                Err(_) => {
                    if lookup::<dyn BDev + Send + Sync>(&alloc::format!("{DRIVER}/bdev")).is_ok() {
                        return;
                    }
                    sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }

    /// Sends a batch made by `make` to the driver until it completes or
    /// [`MAX_ATTEMPTS`] attempts failed.
    async fn run(
        &self,
        write: bool,
        mut make: impl FnMut() -> RpcResult<RRef<Batch>>,
    ) -> RpcResult<RRef<Batch>> {
        let mut last = RpcError::DomainNotAlive;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.reissued.fetch_add(1, Ordering::Relaxed);
            }
            // The first attempt sends the client's batch; a retry a
            // rebuilt one (the previous went down with the driver).
            let batch = make()?;
            let result = match self.driver() {
                Ok(driver) if write => driver.write(batch).await,
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
        }
        Err(last)
    }
}

/// (block, data) of every request of a batch, for re-issuing.
fn remember(batch: &Batch, data: bool) -> Vec<(u64, Option<Box<[u8; BLOCK]>>)> {
    batch
        .iter()
        .map(|io| (io.block, data.then(|| Box::new(io.data))))
        .collect()
}

fn rebuild(saved: &[(u64, Option<Box<[u8; BLOCK]>>)]) -> RpcResult<RRef<Batch>> {
    let mut batch = RRef::try_new(RRefDeque::new())?;
    for (block, data) in saved {
        let mut io = RRef::try_new(Io::new(*block))?;
        if let Some(data) = data {
            io.data = **data;
        }
        batch.push_back(io).map_err(|_| RpcError::OutOfMemory)?;
    }
    Ok(batch)
}

impl BDev for Shadow {
    fn geometry(&self) -> Boxed<'_, Geometry> {
        Box::pin(async move {
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

    fn read(&self, batch: RRef<Batch>) -> Boxed<'_, RRef<Batch>> {
        Box::pin(async move {
            let saved = remember(&batch, false);
            let mut first = Some(batch);
            self.run(false, move || match first.take() {
                Some(batch) => Ok(batch),
                None => rebuild(&saved),
            })
            .await
        })
    }

    fn write(&self, batch: RRef<Batch>) -> Boxed<'_, RRef<Batch>> {
        Box::pin(async move {
            let saved = remember(&batch, true);
            let mut first = Some(batch);
            self.run(true, move || match first.take() {
                Some(batch) => Ok(batch),
                None => rebuild(&saved),
            })
            .await
        })
    }

    fn flush(&self) -> Boxed<'_, ()> {
        Box::pin(async move {
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

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let shadow = Arc::new(Shadow {
        driver: Mutex::new(None),
        restarts: AtomicU64::new(0),
        reissued: AtomicU64::new(0),
    });
    Ok(Exports::new()
        .with::<dyn BDev + Send + Sync>("bdev", shadow.clone())
        .with::<dyn Control + Send + Sync>("control", shadow))
}
