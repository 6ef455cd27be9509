//! The shadow against a simulated driver that crashes on demand, on the
//! host: `rrpc`'s host kit contains the driver's panics the way the kernel
//! contains crashes (the incarnation is dead; later calls into it fail),
//! and a simulated link restarts it as a new incarnation over the same
//! disk contents. The test thread is the client: it calls the shadow
//! through a generated proxy, as a client domain does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use domain_nvme_shadow::{Link, MAX_ATTEMPTS, Shadow};
use domain_sdk::{RRef, RRefDeque, RestartError, RpcError, RpcFuture, RpcResult};
use interfaces::bdev::{BATCH, BLOCK, status};
use interfaces::bdev::{BDev, BDevProxy, Batch, EXTENT_BLOCKS, Extent, Geometry, Io, Statuses};
use interfaces::control::Control;
use rrpc::Owner;
use rrpc::host_kit::{RUNTIME, block_on, cap, install, owner};

/// What the simulated driver does, shared by all its incarnations.
#[derive(Default)]
struct Device {
    /// The disk's contents, which survive the driver.
    blocks: Mutex<HashMap<u64, Vec<u8>>>,
    /// Calls that crash before doing anything (counted down).
    crashes: AtomicU32,
    /// The address of each batch or extent the driver was given to write.
    written_from: Mutex<Vec<usize>>,
}

impl Device {
    fn maybe_crash(&self) {
        let crash = self
            .crashes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if crash {
            panic!("simulated driver crash");
        }
    }

    fn load(&self, block: u64, data: &mut [u8]) {
        match self.blocks.lock().unwrap().get(&block) {
            Some(stored) => data.copy_from_slice(stored),
            None => data.fill(0),
        }
    }

    fn store(&self, block: u64, data: &[u8]) {
        self.blocks.lock().unwrap().insert(block, data.to_vec());
    }
}

/// One incarnation of the driver.
struct Driver(Arc<Device>);

impl BDev for Driver {
    fn geometry(&self) -> RpcFuture<'_, Geometry> {
        RpcFuture::new(async move {
            self.0.maybe_crash();
            Ok(Geometry {
                blocks: 1 << 20,
                sector: 512,
            })
        })
    }

    fn read(&self, mut batch: RRef<Batch>) -> RpcFuture<'_, RRef<Batch>> {
        RpcFuture::new(async move {
            self.0.maybe_crash();
            for io in batch.iter_mut() {
                self.0.load(io.block, &mut io.data);
                io.status = status::OK;
            }
            Ok(batch)
        })
    }

    fn write<'a>(&'a self, batch: &'a RRef<Batch>) -> RpcFuture<'a, Statuses> {
        RpcFuture::new(async move {
            self.0.maybe_crash();
            let batch: &Batch = batch;
            self.0
                .written_from
                .lock()
                .unwrap()
                .push(batch as *const Batch as usize);
            let mut statuses = [status::PENDING; BATCH];
            for (io, status) in batch.iter().zip(&mut statuses) {
                self.0.store(io.block, &io.data);
                *status = status::OK;
            }
            Ok(statuses)
        })
    }

    fn flush(&self) -> RpcFuture<'_, ()> {
        RpcFuture::new(async move {
            self.0.maybe_crash();
            Ok(())
        })
    }

    fn read_extent(&self, mut extent: RRef<Extent>) -> RpcFuture<'_, RRef<Extent>> {
        RpcFuture::new(async move {
            self.0.maybe_crash();
            let first = extent.block;
            for (i, data) in extent.data.chunks_mut(BLOCK).enumerate() {
                self.0.load(first + i as u64, data);
            }
            extent.status = status::OK;
            Ok(extent)
        })
    }

    fn write_extent<'a>(&'a self, extent: &'a RRef<Extent>) -> RpcFuture<'a, u16> {
        RpcFuture::new(async move {
            self.0.maybe_crash();
            let extent: &Extent = extent;
            self.0
                .written_from
                .lock()
                .unwrap()
                .push(extent as *const Extent as usize);
            for (i, data) in extent.data.chunks(BLOCK).enumerate() {
                self.0.store(extent.block + i as u64, data);
            }
            Ok(status::OK)
        })
    }
}

/// The kernel as the shadow sees it: the driver's incarnations (one owner
/// slot, a new generation per restart) and its supervision.
struct SimLink {
    device: Arc<Device>,
    slot: u32,
    /// The current incarnation's generation and object.
    current: Mutex<(u32, Arc<Driver>)>,
    /// Restarts answered `StillRunning` before one succeeds (counted down),
    /// as while the dead incarnation is still being reclaimed.
    reclaiming: AtomicU32,
    /// If set, every restart fails with this (e.g. the operator killed it).
    refuse: Mutex<Option<RestartError>>,
    pauses: AtomicU32,
    log: Mutex<Vec<String>>,
}

impl SimLink {
    fn new(slot: u32, device: Arc<Device>) -> SimLink {
        let driver = Arc::new(Driver(device.clone()));
        SimLink {
            device,
            slot,
            current: Mutex::new((1, driver)),
            reclaiming: AtomicU32::new(0),
            refuse: Mutex::new(None),
            pauses: AtomicU32::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    fn incarnation(&self) -> Owner {
        owner(self.slot, self.current.lock().unwrap().0)
    }
}

impl Link for SimLink {
    fn lookup(&self) -> RpcResult<BDevProxy> {
        let (generation, driver) = self.current.lock().unwrap().clone();
        let callee = owner(self.slot, generation);
        if RUNTIME.is_dead(callee) {
            return Err(RpcError::NoSuchDomain);
        }
        Ok(BDevProxy::new(driver, cap(callee)))
    }
    fn supervise(&self) -> Result<(), RestartError> {
        Ok(())
    }
    fn restart(&self) -> Result<(), RestartError> {
        if let Some(refusal) = *self.refuse.lock().unwrap() {
            return Err(refusal);
        }
        if !RUNTIME.is_dead(self.incarnation()) {
            return Err(RestartError::StillRunning);
        }
        if self
            .reclaiming
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(RestartError::StillRunning);
        }
        let mut current = self.current.lock().unwrap();
        *current = (current.0 + 1, Arc::new(Driver(self.device.clone())));
        Ok(())
    }
    fn pause(&self) -> impl Future<Output = ()> + Send {
        self.pauses.fetch_add(1, Ordering::SeqCst);
        async {}
    }
    fn log(&self, message: &str) {
        self.log.lock().unwrap().push(message.to_string());
    }
}

/// A client (slot `slot`), the shadow (`slot + 1`) and the driver
/// (`slot + 2`), each test with its own slots (tests run in parallel).
struct Setup {
    client: Owner,
    shadow: Arc<Shadow<SimLink>>,
    proxy: BDevProxy,
}

impl Setup {
    fn new(slot: u32) -> Setup {
        let client = owner(slot, 1);
        install(client);
        let shadow = Arc::new(Shadow::new(SimLink::new(
            slot + 2,
            Arc::new(Device::default()),
        )));
        let proxy = BDevProxy::new(shadow.clone(), cap(owner(slot + 1, 1)));
        Setup {
            client,
            shadow,
            proxy,
        }
    }

    fn link(&self) -> &SimLink {
        self.shadow.link()
    }

    fn device(&self) -> &Device {
        &self.link().device
    }

    fn crash_next(&self, calls: u32) {
        self.device().crashes.store(calls, Ordering::SeqCst);
    }

    /// `(restarts, reissued)` as the console's `call nvme-shadow 0|1` reads them.
    fn counters(&self) -> (u64, u64) {
        (
            self.shadow.control(0, 0).unwrap(),
            self.shadow.control(1, 0).unwrap(),
        )
    }
}

fn run<F: Future>(future: F) -> F::Output {
    block_on(future, 100)
}

fn pattern(block: u64) -> [u8; BLOCK] {
    core::array::from_fn(|i| (block as usize * 7 + i) as u8)
}

fn batch(blocks: &[u64], fill: bool) -> RRef<Batch> {
    let mut batch = RRef::new(RRefDeque::new());
    for &block in blocks {
        let mut io = Io::new(block);
        if fill {
            io.data = pattern(block);
        }
        assert!(batch.push_back(RRef::new(io)).is_ok());
    }
    batch
}

fn check_read(read: &RRef<Batch>, blocks: &[u64]) {
    let got: Vec<u64> = read.iter().map(|io| io.block).collect();
    assert_eq!(got, blocks);
    for io in read.iter() {
        assert_eq!(io.status, status::OK);
        assert!(io.data == pattern(io.block), "block {} data", io.block);
    }
}

#[test]
fn calls_pass_through_while_the_driver_is_well() {
    let s = Setup::new(1);
    let blocks = [3, 9, 4];
    let written = batch(&blocks, true);
    let statuses = run(s.proxy.write(&written)).unwrap();
    assert_eq!(&statuses[..3], &[status::OK; 3]);
    let read = run(s.proxy.read(batch(&blocks, false))).unwrap();
    check_read(&read, &blocks);
    assert_eq!(read.owner(), s.client, "the batch came back to the client");
    assert_eq!(run(s.proxy.geometry()).unwrap().sector, 512);
    assert_eq!(run(s.proxy.flush()), Ok(()));
    assert_eq!(s.counters(), (0, 0));
}

#[test]
fn a_read_the_driver_crashed_in_is_rebuilt_from_its_block_numbers() {
    let s = Setup::new(4);
    let blocks = [1, 2, 30, 7];
    run(s.proxy.write(&batch(&blocks, true))).unwrap();
    let before = s.link().incarnation();
    s.crash_next(1);
    let read = run(s.proxy.read(batch(&blocks, false))).unwrap();
    check_read(&read, &blocks);
    assert_eq!(read.owner(), s.client);
    assert!(RUNTIME.is_dead(before), "the first incarnation crashed");
    assert_eq!(s.link().incarnation(), owner(6, 2), "a new incarnation");
    assert_eq!(s.counters(), (1, 1));
    assert_eq!(
        s.link().log.lock().unwrap().as_slice(),
        ["driver restarted"]
    );
}

#[test]
fn a_write_is_reissued_from_the_lent_batch_without_a_copy() {
    let s = Setup::new(7);
    let blocks = [11, 12];
    let written = batch(&blocks, true);
    s.crash_next(1);
    let statuses = run(s.proxy.write(&written)).unwrap();
    assert_eq!(&statuses[..2], &[status::OK; 2]);
    assert_eq!(s.counters(), (1, 1));
    // The crashed attempt died before recording; the re-issue wrote from
    // the client's own batch.
    let client_batch: &Batch = &written;
    assert_eq!(
        s.device().written_from.lock().unwrap().as_slice(),
        [client_batch as *const Batch as usize]
    );
    assert_eq!(written.owner(), s.client, "the client keeps its batch");
    assert_eq!(written.borrows(), 0, "no longer lent");
    let read = run(s.proxy.read(batch(&blocks, false))).unwrap();
    check_read(&read, &blocks);
}

#[test]
fn extents_are_reissued_like_batches() {
    let s = Setup::new(10);
    let mut extent = RRef::new(Extent::new(40));
    for (i, data) in extent.data.chunks_mut(BLOCK).enumerate() {
        data.copy_from_slice(&pattern(40 + i as u64));
    }
    s.crash_next(2);
    assert_eq!(run(s.proxy.write_extent(&extent)), Ok(status::OK));
    let lent: &Extent = &extent;
    assert_eq!(
        s.device().written_from.lock().unwrap().as_slice(),
        [lent as *const Extent as usize]
    );
    assert_eq!(s.counters(), (2, 2));
    s.crash_next(1);
    let read = run(s.proxy.read_extent(RRef::new(Extent::new(40)))).unwrap();
    assert_eq!(read.status, status::OK);
    assert_eq!(read.owner(), s.client);
    for (i, data) in read.data.chunks(BLOCK).enumerate() {
        assert!(data == pattern(40 + i as u64), "block {i} of the extent");
    }
    assert_eq!(read.data.len(), BLOCK * EXTENT_BLOCKS);
    assert_eq!(s.counters(), (3, 3));
}

#[test]
fn queries_are_retried_but_not_counted_as_reissued() {
    let s = Setup::new(13);
    s.crash_next(1);
    assert_eq!(run(s.proxy.geometry()).unwrap().blocks, 1 << 20);
    s.crash_next(1);
    assert_eq!(run(s.proxy.flush()), Ok(()));
    assert_eq!(s.counters(), (2, 0));
}

#[test]
fn after_max_attempts_the_last_error_is_reported() {
    let s = Setup::new(16);
    s.crash_next(u32::MAX);
    assert_eq!(
        run(s.proxy.read(batch(&[5], false))).err(),
        Some(RpcError::DomainCrashed)
    );
    let attempts = u64::from(MAX_ATTEMPTS);
    assert_eq!(s.counters(), (attempts, attempts - 1));
    let written = batch(&[5], true);
    assert_eq!(
        run(s.proxy.write(&written)).err(),
        Some(RpcError::DomainCrashed)
    );
    assert_eq!(s.counters(), (2 * attempts, 2 * (attempts - 1)));
    assert_eq!(written.owner(), s.client, "a failed write leaves the batch");
    // Queries report the driver dead once they give up.
    assert_eq!(run(s.proxy.flush()), Err(RpcError::DomainNotAlive));
    assert_eq!(run(s.proxy.geometry()), Err(RpcError::DomainNotAlive));
    assert_eq!(s.counters().0, 4 * attempts);
    // Once the driver behaves, the next call succeeds.
    s.crash_next(0);
    assert_eq!(run(s.proxy.flush()), Ok(()));
}

#[test]
fn recovery_waits_while_the_dead_driver_is_reclaimed() {
    let s = Setup::new(19);
    s.link().reclaiming.store(3, Ordering::SeqCst);
    s.crash_next(1);
    assert_eq!(run(s.proxy.flush()), Ok(()));
    assert_eq!(s.link().pauses.load(Ordering::SeqCst), 3);
    assert_eq!(s.counters(), (1, 0));
}

#[test]
fn a_driver_the_shadow_may_not_restart_fails_the_calls() {
    let s = Setup::new(22);
    *s.link().refuse.lock().unwrap() = Some(RestartError::Killed);
    s.crash_next(1);
    let written = batch(&[1], true);
    // Every later attempt finds no driver (it stays dead).
    assert_eq!(
        run(s.proxy.write(&written)).err(),
        Some(RpcError::NoSuchDomain)
    );
    assert_eq!(s.counters(), (0, u64::from(MAX_ATTEMPTS) - 1));
    let log = s.link().log.lock().unwrap();
    assert_eq!(log.len(), MAX_ATTEMPTS as usize);
    assert!(log[0].starts_with("not restarting the driver: "), "{log:?}");
}
