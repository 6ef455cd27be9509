//! The shadow itself: one retry loop for every method, over a [`Link`] to
//! the driver (what finds the driver and restarts it), so that it runs
//! against the kernel in an image ([`crate::SdkLink`]) and against a
//! simulated driver in host tests (`tests/shadow.rs`).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::sync::atomic::{AtomicU64, Ordering};

use domain_sdk::{Mutex, RRef, RRefDeque, RestartError, RpcError, RpcFuture, RpcResult};
use interfaces::bdev::{BDev, BDevProxy, Batch, Extent, Geometry, Io, Statuses};
use interfaces::control::{Control, HELP, Text};

/// Consecutive failed attempts before the shadow reports an error.
pub const MAX_ATTEMPTS: u32 = 5;
/// Restart attempts while the dead driver is still being reclaimed (each
/// after a [`Link::pause`]).
pub const RESTART_TRIES: u32 = 2000;

/// What the shadow needs from its surroundings: the driver's current
/// incarnation, and the right to restart it.
pub trait Link: Send + Sync {
    /// A proxy to the driver's current incarnation (the name service).
    fn lookup(&self) -> RpcResult<BDevProxy>;
    /// Claims the right to restart the driver.
    fn supervise(&self) -> Result<(), RestartError>;
    /// Starts the driver's next incarnation.
    fn restart(&self) -> Result<(), RestartError>;
    /// Waits a little (1 ms) before trying to restart again.
    fn pause(&self) -> impl Future<Output = ()> + Send;
    /// Writes a line to the log.
    fn log(&self, message: &str);
}

/// Stands in front of the driver: exports [`BDev`] and forwards each call,
/// restarting the driver and re-issuing the call when the driver fails.
pub struct Shadow<L> {
    link: L,
    driver: Mutex<Option<Arc<BDevProxy>>>,
    restarts: AtomicU64,
    reissued: AtomicU64,
}

impl<L: Link> Shadow<L> {
    /// A shadow of the driver `link` reaches (found at the first call).
    pub fn new(link: L) -> Shadow<L> {
        Shadow {
            link,
            driver: Mutex::new(None),
            restarts: AtomicU64::new(0),
            reissued: AtomicU64::new(0),
        }
    }

    /// The link to the driver.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// Driver restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Requests re-issued so far.
    pub fn reissued(&self) -> u64 {
        self.reissued.load(Ordering::Relaxed)
    }

    /// A proxy to the driver's current incarnation.
    fn driver(&self) -> RpcResult<Arc<BDevProxy>> {
        if let Some(proxy) = self.driver.lock().clone() {
            return Ok(proxy);
        }
        let proxy = Arc::new(self.link.lookup()?);
        *self.driver.lock() = Some(proxy.clone());
        Ok(proxy)
    }

    /// The driver failed: forget its proxy and start its next incarnation
    /// (waiting until the dead one is reclaimed).
    async fn recover(&self, error: RpcError) {
        let _ = error;
        *self.driver.lock() = None;
        // Normally claimed at start; the driver may have come later.
        let _ = self.link.supervise();
        for _ in 0..RESTART_TRIES {
            match self.link.restart() {
                Ok(()) => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    self.link.log("driver restarted");
                    return;
                }
                // Still being reclaimed, or the console restarted it.
                Err(RestartError::StillRunning) => {
                    if self.link.lookup().is_ok() {
                        return;
                    }
                    self.link.pause().await;
                }
                // Killed by the operator, or not ours to restart: the
                // callers get the error.
                Err(e) => {
                    self.link
                        .log(&alloc::format!("not restarting the driver: {e}"));
                    return;
                }
            }
        }
    }

    /// The retry loop of every method. Each attempt takes the request to
    /// send from `request(attempt)` (an error there ends the call at once),
    /// then sends it to the driver's current incarnation with `send`. A
    /// failure (the driver crashed, is dead, or cannot be found) restarts
    /// the driver and tries again; after [`MAX_ATTEMPTS`] failures the last
    /// error is returned.
    ///
    /// With `hold`, an attempt that failed keeps its proxy to the failed
    /// driver until the recovery is over (so the proxy is dropped after
    /// the restart, not during it), as queries always have; without, it is
    /// dropped before the recovery starts.
    async fn retry<A, T, F>(
        &self,
        mut request: impl FnMut(u32) -> RpcResult<A>,
        send: impl Fn(Arc<BDevProxy>, A) -> F,
        hold: bool,
    ) -> RpcResult<T>
    where
        F: Future<Output = RpcResult<T>>,
    {
        let mut last = RpcError::DomainNotAlive;
        for attempt in 0..MAX_ATTEMPTS {
            let request = request(attempt)?;
            let (result, held) = match self.driver() {
                Ok(driver) => {
                    let held = hold.then(|| driver.clone());
                    (send(driver, request).await, held)
                }
                Err(e) => (Err(e), None),
            };
            match result {
                Ok(done) => return Ok(done),
                Err(e) => {
                    last = e;
                    self.recover(e).await;
                    drop(held);
                }
            }
        }
        Err(last)
    }

    /// Requests for a method that asks, not changes: sent again as they
    /// are, not counted as re-issued.
    fn query(_attempt: u32) -> RpcResult<()> {
        Ok(())
    }

    /// Requests that are only lent to the driver (writes): they stay the
    /// client's when the driver dies and are sent again as they are, with
    /// no copy. Counts each re-issue.
    fn lent(&self) -> impl FnMut(u32) -> RpcResult<()> + '_ {
        move |attempt| {
            if attempt > 0 {
                self.reissued.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    }

    /// Requests that move to the driver (reads): the first attempt sends
    /// the client's, which dies with the driver if it crashes; a retry
    /// sends a fresh one made by `remake` (from what the shadow kept of the
    /// first). Counts each re-issue.
    fn moved<'s, A>(
        &'s self,
        first: A,
        remake: impl Fn() -> RpcResult<A> + 's,
    ) -> impl FnMut(u32) -> RpcResult<A> + 's
    where
        A: 's,
    {
        let mut first = Some(first);
        move |_| match first.take() {
            Some(request) => Ok(request),
            None => {
                self.reissued.fetch_add(1, Ordering::Relaxed);
                remake()
            }
        }
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

impl<L: Link> BDev for Shadow<L> {
    fn geometry(&self) -> RpcFuture<'_, Geometry> {
        RpcFuture::new(async move {
            self.retry(
                Self::query,
                |driver, ()| async move { driver.geometry().await },
                true,
            )
            .await
            // Giving up on a query reports the driver dead, whatever
            // the last attempt's error.
            .map_err(|_| RpcError::DomainNotAlive)
        })
    }

    fn read(&self, batch: RRef<Batch>) -> RpcFuture<'_, RRef<Batch>> {
        RpcFuture::new(async move {
            let blocks: Vec<u64> = batch.iter().map(|io| io.block).collect();
            let request = self.moved(batch, move || rebuild(&blocks));
            self.retry(
                request,
                |driver, batch| async move { driver.read(batch).await },
                false,
            )
            .await
        })
    }

    fn write<'a>(&'a self, batch: &'a RRef<Batch>) -> RpcFuture<'a, Statuses> {
        RpcFuture::new(async move {
            self.retry(
                self.lent(),
                |driver, ()| async move { driver.write(batch).await },
                false,
            )
            .await
        })
    }

    fn read_extent(&self, extent: RRef<Extent>) -> RpcFuture<'_, RRef<Extent>> {
        RpcFuture::new(async move {
            let block = extent.block;
            let request = self.moved(extent, move || RRef::try_new(Extent::new(block)));
            self.retry(
                request,
                |driver, extent| async move { driver.read_extent(extent).await },
                false,
            )
            .await
        })
    }

    fn write_extent<'a>(&'a self, extent: &'a RRef<Extent>) -> RpcFuture<'a, u16> {
        RpcFuture::new(async move {
            self.retry(
                self.lent(),
                |driver, ()| async move { driver.write_extent(extent).await },
                false,
            )
            .await
        })
    }

    fn flush(&self) -> RpcFuture<'_, ()> {
        RpcFuture::new(async move {
            self.retry(
                Self::query,
                |driver, ()| async move { driver.flush().await },
                true,
            )
            .await
            // As for `geometry`.
            .map_err(|_| RpcError::DomainNotAlive)
        })
    }
}

impl<L: Link> Control for Shadow<L> {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.restarts(),
            _ => self.reissued(),
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: restarts of the driver so far\n1: requests re-issued after a driver crash",
            ),
            _ => Ok(None),
        }
    }
}
