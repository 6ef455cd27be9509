//! `nvme`: the NVMe driver domain. It claims the first NVMe controller
//! (PCI class 01.08.02) through the kernel's device capability, brings it
//! up in a task of its own (reset, admin queue, identify, one I/O queue
//! pair per core, as many as the controller grants), and exports [`BDev`]
//! as "bdev" (with [`Exerciser`] as "exerciser" and `Control` as
//! "control"): batches of up to 32 block
//! requests, one doorbell per batch, completions polled by phase bit, the
//! data moving between the caller's `RRef` buffers and the device by DMA
//! with no copy. `call nvme 0` gives the capacity in 4 KiB blocks (0 until
//! ready), `call nvme 1` whether it failed to start.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod controller;
pub mod queue;
pub mod spec;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::time::Duration;

use domain_sdk::{Exports, Kernel, RRef, RpcError, RpcFuture, RpcResult, log, sleep, spawn};
use interfaces::bdev::{BDev, Batch, Exerciser, Extent, Geometry, Io, Statuses, status};
use interfaces::control::{Control, HELP, Text};

use controller::Controller;

/// The NVMe class code.
pub const CLASS: (u8, u8, u8) = (0x01, 0x08, 0x02);

struct Driver {
    controller: domain_sdk::Once<Result<Controller, String>>,
}

impl Driver {
    /// The controller once it is up (waits for the start task).
    async fn ready(&self) -> RpcResult<&Controller> {
        loop {
            match self.controller.get() {
                Some(Ok(controller)) => return Ok(controller),
                // A driver that cannot start is as good as crashed.
                Some(Err(_)) => return Err(RpcError::DomainNotAlive),
                None => sleep(Duration::from_millis(1)).await,
            }
        }
    }
}

impl BDev for Driver {
    fn geometry(&self) -> RpcFuture<'_, Geometry> {
        RpcFuture::new(async move { Ok(self.ready().await?.geometry()) })
    }

    fn read(&self, mut batch: RRef<Batch>) -> RpcFuture<'_, RRef<Batch>> {
        RpcFuture::new(async move {
            let statuses = self.ready().await?.io(&batch, false).await;
            for (io, status) in batch.iter_mut().zip(statuses) {
                io.status = status;
            }
            Ok(batch)
        })
    }

    fn write<'a>(&'a self, batch: &'a RRef<Batch>) -> RpcFuture<'a, Statuses> {
        RpcFuture::new(async move { Ok(self.ready().await?.io(batch, true).await) })
    }

    fn read_extent(&self, mut extent: RRef<Extent>) -> RpcFuture<'_, RRef<Extent>> {
        RpcFuture::new(async move {
            let status = self.ready().await?.extent(&extent, false).await;
            extent.status = status;
            Ok(extent)
        })
    }

    fn write_extent<'a>(&'a self, extent: &'a RRef<Extent>) -> RpcFuture<'a, u16> {
        RpcFuture::new(async move { Ok(self.ready().await?.extent(extent, true).await) })
    }

    fn flush(&self) -> RpcFuture<'_, ()> {
        RpcFuture::new(async move {
            self.ready()
                .await?
                .flush()
                .await
                .map_err(|_| RpcError::DomainNotAlive)
        })
    }
}

impl Exerciser for Driver {
    fn run(&self, batches: u32, size: u32, write: bool, seed: u64) -> RpcFuture<'_, u64> {
        RpcFuture::new(async move {
            let controller = self.ready().await?;
            let blocks = controller.geometry().blocks;
            let size = size.clamp(1, interfaces::bdev::BATCH as u32);
            let mut x = seed | 1;
            let mut batch = RRef::try_new(domain_sdk::RRefDeque::new())?;
            for _ in 0..size {
                batch
                    .push_back(RRef::try_new(Io::new(0))?)
                    .map_err(|_| RpcError::OutOfMemory)?;
            }
            let mut ok = 0;
            for _ in 0..batches {
                for io in batch.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    io.block = x % blocks;
                }
                let statuses = controller.io(&batch, write).await;
                ok += statuses[..batch.len()]
                    .iter()
                    .filter(|&&s| s == status::OK)
                    .count() as u64;
            }
            Ok(ok)
        })
    }
}

impl Control for Driver {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(match (op, self.controller.get()) {
            (0, Some(Ok(c))) => c.geometry().blocks,
            (1, Some(Err(_))) => 1,
            _ => 0,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "0: capacity in 4 KiB blocks (0 until the controller is ready)\n1: 1 if the controller failed to start",
            ),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let device =
        domain_sdk::claim_device(CLASS, 0).map_err(|e| format!("no NVMe controller: {e}"))?;
    // A controller whose registers cannot be reached never starts: the
    // load fails now, saying why, instead of exporting a block device
    // that answers nothing.
    if let Err(e) = device.read64(0, spec::reg::CAP) {
        return Err(format!("controller did not start: register access: {e}"));
    }
    let driver = Arc::new(Driver {
        controller: domain_sdk::Once::new(),
    });
    let starting = driver.clone();
    spawn(async move {
        let result = Controller::start(device).await;
        match &result {
            Ok(c) => log(&format!(
                "{}: {} blocks of 4 KiB ({}-byte sectors), {} I/O queue pairs",
                c.model,
                c.geometry().blocks,
                c.geometry().sector,
                c.queue_pairs()
            )),
            Err(e) => log(&format!("controller did not start: {e}")),
        }
        starting.controller.call_once(|| result);
    })
    .map_err(|e| format!("spawn: {e:?}"))?;
    Ok(Exports::new()
        .with::<dyn BDev + Send + Sync>("bdev", driver.clone())
        .with::<dyn Exerciser + Send + Sync>("exerciser", driver.clone())
        .with::<dyn Control + Send + Sync>("control", driver))
}
