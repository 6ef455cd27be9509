//! The whole NVMe driver (`Controller::start`, batched I/O, lanes) against
//! a simulated controller that lies, on the host.
//!
//! - The shared heap is `rrpc`'s host heap with one test-only addition: a
//!   device address for every object (its host address), so that the
//!   simulated device can reach the queues and buffers the driver hands it,
//!   and a record of live allocations, so that the device's DMA is checked
//!   against memory that is still allocated (a DMA into freed memory is a
//!   recorded fault, not undefined behaviour).
//! - The kernel ([`HostKernel`]) has a simulated clock per test thread that
//!   advances on every `now_ns()` and lets the device act (post delayed
//!   completions): timeouts cost no real waiting.
//! - The device ([`Sim`]) implements the registers (CAP, CC, CSTS, AQA,
//!   ASQ, ACQ, doorbells with the stride from CAP), executes Identify, Set
//!   Features, Create CQ/SQ, Read, Write and Flush against an in-memory
//!   disk, and lies as its [`Lie`] says.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use core::alloc::Layout;

use domain_sdk::{
    Device, DeviceError, Kernel, LookupVisitor, RRef, RRefDeque, RestartError, RpcError, RpcResult,
    SpawnError, Task, Timer,
};
use driver_nvme::controller::Controller;
use driver_nvme::spec::{admin, io, reg};
use interfaces::bdev::{BLOCK, Batch, Extent, Io, status};
use rrpc::Backend;
use rrpc::host_kit::{HEAP, RUNTIME, block_on, install, owner};

// ---- the host: heap with device addresses, kernel with a simulated clock

/// Live shared-heap allocations: address -> size.
static LIVE: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// `rrpc`'s host heap, plus (test only) device addresses: an object's
/// device address is its host address, and the simulated device checks
/// every access against [`LIVE`].
struct DmaHeap;

impl Backend for DmaHeap {
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        let pointer = unsafe { HEAP.alloc(layout) }?;
        LIVE.lock()
            .unwrap()
            .insert(pointer.as_ptr().expose_provenance(), layout.size());
        Some(pointer)
    }
    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout) {
        LIVE.lock()
            .unwrap()
            .remove(&pointer.as_ptr().expose_provenance());
        // SAFETY: forwarded from the caller.
        unsafe { HEAP.free(pointer, layout) }
    }
    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        Some(pointer.expose_provenance() as u64)
    }
}

static DMA_HEAP: DmaHeap = DmaHeap;

/// Whether `len` bytes at `address` lie inside one live allocation.
fn dma_ok(address: u64, len: usize) -> bool {
    let address = address as usize;
    let live = LIVE.lock().unwrap();
    live.range(..=address)
        .next_back()
        .is_some_and(|(&start, &size)| {
            address
                .checked_add(len)
                .is_some_and(|end| end <= start + size)
        })
}

/// Simulated nanoseconds per `now_ns()` call.
const TICK_NS: u64 = 100_000;
/// The driver's I/O timeout (`controller/io.rs`).
const IO_TIMEOUT_NS: u64 = 5_000_000_000;

thread_local! {
    static CLOCK: Cell<u64> = const { Cell::new(0) };
    static DEVICE: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The simulated time, without advancing it.
fn clock() -> u64 {
    CLOCK.with(|c| c.get())
}

/// The kernel as the driver sees it on the host.
struct HostKernel;

impl Kernel for HostKernel {
    fn spawn(&self, _task: Task) -> Result<(), SpawnError> {
        Err(SpawnError::NotInDomain)
    }
    fn lookup(&self, _name: &str, _visit: &mut LookupVisitor<'_>) -> RpcResult<()> {
        Err(RpcError::NoSuchInterface)
    }
    fn log(&self, message: &str) {
        LOG.with(|l| l.borrow_mut().push(message.to_string()));
    }
    fn now_ns(&self) -> u64 {
        let now = CLOCK.with(|c| {
            c.set(c.get() + TICK_NS);
            c.get()
        });
        let device = DEVICE.with(|d| d.borrow().clone());
        if let Some(device) = device {
            device.tick(now);
        }
        now
    }
    fn sleep_until(&self, deadline_ns: u64) -> Timer {
        Box::pin(async move {
            while domain_sdk::now_ns() < deadline_ns {
                domain_sdk::yield_now().await;
            }
        })
    }
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        // The driver is linked into the test: it allocates with `std`.
        std::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _pointer: *mut u8, _layout: Layout) {}
    fn crash(&self, message: &core::fmt::Arguments<'_>) -> ! {
        panic!("{message}")
    }
    fn rrpc_registry(&self) -> &'static dyn rrpc::registry::Remote {
        &rrpc::registry::LOCAL
    }
    fn rrpc_runtime(&self) -> &'static dyn rrpc::proxy::Runtime {
        &RUNTIME
    }
    fn claim_device(
        &self,
        _class: (u8, u8, u8),
        _index: usize,
    ) -> Result<Box<dyn Device>, DeviceError> {
        Err(DeviceError::NoDevice)
    }
    fn supervise(&self, _name: &str) -> Result<(), RestartError> {
        Err(RestartError::NoSuchDomain)
    }
    fn restart_domain(&self, _name: &str) -> Result<(), RestartError> {
        Err(RestartError::NoSuchDomain)
    }
    fn core(&self) -> (usize, usize) {
        (0, 1)
    }
}

static KERNEL: HostKernel = HostKernel;

// ---- the simulated controller ------------------------------------------

/// How the device lies (on the I/O queues; the admin queue is honest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lie {
    None,
    /// At once, a completion for a request index nobody waits for; the
    /// real one (and a read's data) a millisecond later.
    UnknownCid,
    /// At once, a completion with the same index and the previous epoch
    /// (a stale one); the real one (and a read's data) a millisecond later.
    StaleEpoch,
    /// The first request of each doorbell is completed twice at once; the
    /// others only a millisecond later.
    Duplicate,
    /// After each doorbell's completions, every other slot of the
    /// completion queue is filled with entries of both phases for nothing.
    Garbage,
    /// Every I/O completes with this status field.
    Status(u16),
    /// I/O completions are posted this many nanoseconds late.
    Late(u64),
    /// I/O commands are never completed.
    Silent,
    /// I/O commands are never completed, and on every clock tick every
    /// free completion slot is refilled with entries for nothing, of both
    /// phases.
    Flood,
}

/// What identify namespace says.
#[derive(Debug, Clone, Copy)]
struct Namespace {
    size: u64,
    flbas: u8,
    lbads: u8,
}

const HONEST: Namespace = Namespace {
    size: 1 << 16,
    flbas: 0,
    lbads: 9,
};

#[derive(Debug, Clone, Copy, Default)]
struct Sq {
    base: u64,
    size: u16,
    head: u16,
    cq: u16,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cq {
    base: u64,
    size: u16,
    tail: u16,
    head: u16,
    phase: bool,
}

/// A read or write to carry out when its completion is posted.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    write: bool,
    lba: u64,
    count: u64,
    prp1: u64,
    prp2: u64,
}

/// A completion to post.
#[derive(Debug, Clone, Copy)]
struct Done {
    cq: u16,
    sq: u16,
    sq_head: u16,
    cid: u16,
    status: u16,
    result: u32,
    transfer: Option<Transfer>,
}

struct State {
    cc: u32,
    csts: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    bus_master: bool,
    sqs: HashMap<u16, Sq>,
    cqs: HashMap<u16, Cq>,
    /// Sector contents by LBA (absent: zeros).
    disk: HashMap<u64, Vec<u8>>,
    /// Completions posted later: (due time, completion).
    delayed: Vec<(u64, Done)>,
    /// Everything the driver did that a real device would not accept.
    faults: Vec<String>,
    namespace: Namespace,
    lie: Lie,
    /// I/O commands the device has seen.
    io_commands: usize,
    /// Completion entries the driver consumed on the I/O queues (by its
    /// head doorbells).
    io_consumed: usize,
    /// Times the completion queue was filled with garbage.
    floods: u16,
    /// How the device lies on the admin queue (`None`, `UnknownCid` or
    /// `Silent`).
    admin_lie: Lie,
    /// What CAP says.
    cap: u64,
    /// CSTS after enabling: ready (honest), never ready, or fatal.
    enabled_csts: u32,
    /// CSTS stays ready when the driver disables the controller.
    stuck_ready: bool,
}

/// The device's state, shared by the driver's handle, the clock and the
/// test.
struct Shared(Mutex<State>);

/// CAP: 1024 entries, 500 ms timeout, doorbell stride 8 bytes (DSTRD 1),
/// NVM command set, 4 KiB pages.
const CAP: u64 = 1023 | (1 << 24) | (1 << 32) | (1 << 37);
const STRIDE: u64 = 8;
const BAR: u64 = 0x2000;

impl Shared {
    fn new(namespace: Namespace) -> Arc<Shared> {
        Arc::new(Shared(Mutex::new(State {
            cc: 0,
            csts: 0,
            aqa: 0,
            asq: 0,
            acq: 0,
            bus_master: false,
            sqs: HashMap::new(),
            cqs: HashMap::new(),
            disk: HashMap::new(),
            delayed: Vec::new(),
            faults: Vec::new(),
            namespace,
            lie: Lie::None,
            io_commands: 0,
            io_consumed: 0,
            floods: 0,
            admin_lie: Lie::None,
            cap: CAP,
            enabled_csts: 1,
            stuck_ready: false,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn set_lie(&self, lie: Lie) {
        self.state().lie = lie;
    }

    /// Posts the delayed completions that are due.
    fn tick(&self, now: u64) {
        let mut state = self.state();
        let (due, later): (Vec<_>, Vec<_>) = state.delayed.drain(..).partition(|(t, _)| *t <= now);
        state.delayed = later;
        for (_, done) in due {
            state.post(done);
        }
        if state.lie == Lie::Flood {
            let queues: Vec<u16> = state.cqs.keys().copied().filter(|&q| q != 0).collect();
            for qid in queues {
                state.garbage(qid, true);
            }
        }
    }
}

// Device memory access. The device reaches the driver's memory only
// through addresses checked by `dma_ok` (inside a live shared-heap
// allocation); the queue pages are `AtomicU32`s, as the driver reads them.
impl State {
    fn fault(&mut self, what: String) {
        self.faults.push(what);
    }

    fn load32(&mut self, address: u64) -> u32 {
        if !address.is_multiple_of(4) || !dma_ok(address, 4) {
            self.fault(format!("DMA read of {address:#x} outside live memory"));
            return 0;
        }
        // SAFETY: four aligned bytes inside a live allocation of the shared
        // heap (checked above, and nothing frees it meanwhile: the driver
        // runs on this thread, which is here); the driver's queue pages are
        // `AtomicU32`s, and data buffers are only accessed by the driver
        // when it has no request in flight on them.
        let word = unsafe { &*std::ptr::with_exposed_provenance::<AtomicU32>(address as usize) };
        word.load(Ordering::Acquire)
    }

    fn store32(&mut self, address: u64, value: u32) {
        if !address.is_multiple_of(4) || !dma_ok(address, 4) {
            self.fault(format!("DMA write of {address:#x} outside live memory"));
            return;
        }
        // SAFETY: as in `load32`.
        let word = unsafe { &*std::ptr::with_exposed_provenance::<AtomicU32>(address as usize) };
        word.store(value, Ordering::Release);
    }

    fn read_bytes(&mut self, address: u64, out: &mut [u8]) {
        if !dma_ok(address, out.len()) {
            self.fault(format!(
                "DMA read of {:#x}+{} outside live memory",
                address,
                out.len()
            ));
            return;
        }
        // SAFETY: the range lies inside a live allocation (checked above);
        // the driver does not write a buffer with a request in flight.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::with_exposed_provenance::<u8>(address as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        }
    }

    fn write_bytes(&mut self, address: u64, data: &[u8]) {
        if !dma_ok(address, data.len()) {
            self.fault(format!(
                "DMA write of {:#x}+{} outside live memory",
                address,
                data.len()
            ));
            return;
        }
        // SAFETY: the range lies inside a live allocation (checked above);
        // the driver does not read a buffer with a request in flight.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                std::ptr::with_exposed_provenance_mut::<u8>(address as usize),
                data.len(),
            )
        }
    }

    /// Writes a 4 KiB page (identify data) at `address`, as words.
    fn write_page(&mut self, address: u64, page: &[u8; 4096]) {
        for (i, word) in page.chunks(4).enumerate() {
            let value = u32::from_le_bytes(word.try_into().unwrap());
            self.store32(address + 4 * i as u64, value);
        }
    }

    /// The (address, length) pieces of a transfer of `len` bytes.
    fn segments(&mut self, prp1: u64, prp2: u64, len: usize) -> Vec<(u64, usize)> {
        let first = len.min(4096 - (prp1 % 4096) as usize);
        let mut pieces = vec![(prp1, first)];
        let mut rest = len - first;
        if rest == 0 {
            return pieces;
        }
        if rest <= 4096 {
            pieces.push((prp2, rest));
            return pieces;
        }
        let mut entry = prp2;
        while rest > 0 {
            let page = u64::from(self.load32(entry)) | u64::from(self.load32(entry + 4)) << 32;
            pieces.push((page, rest.min(4096)));
            rest -= rest.min(4096);
            entry += 8;
        }
        pieces
    }

    fn sector(&self) -> usize {
        1 << self.namespace.lbads.min(12)
    }

    fn transfer(&mut self, t: Transfer) {
        let sector = self.sector();
        let len = t.count as usize * sector;
        let pieces = self.segments(t.prp1, t.prp2, len);
        let mut bytes = vec![0u8; len];
        if t.write {
            let mut at = 0;
            for (address, n) in pieces {
                self.read_bytes(address, &mut bytes[at..at + n]);
                at += n;
            }
            for (i, data) in bytes.chunks(sector).enumerate() {
                self.disk.insert(t.lba + i as u64, data.to_vec());
            }
        } else {
            for (i, data) in bytes.chunks_mut(sector).enumerate() {
                if let Some(stored) = self.disk.get(&(t.lba + i as u64)) {
                    data.copy_from_slice(stored);
                }
            }
            let mut at = 0;
            for (address, n) in pieces {
                self.write_bytes(address, &bytes[at..at + n]);
                at += n;
            }
        }
    }

    /// Posts `done` on its completion queue (carrying out its transfer
    /// first).
    fn post(&mut self, done: Done) {
        if !self.bus_master {
            return;
        }
        if let Some(t) = done.transfer {
            self.transfer(t);
        }
        let Some(mut cq) = self.cqs.get(&done.cq).copied() else {
            self.fault(format!("completion for missing queue {}", done.cq));
            return;
        };
        let next = (cq.tail + 1) % cq.size;
        if next == cq.head {
            self.fault(format!("completion queue {} overflows", done.cq));
            return;
        }
        let entry = cq.base + 16 * u64::from(cq.tail);
        self.store32(entry, done.result);
        self.store32(entry + 4, 0);
        self.store32(
            entry + 8,
            u32::from(done.sq_head) | u32::from(done.sq) << 16,
        );
        self.store32(
            entry + 12,
            u32::from(done.cid) | u32::from(cq.phase) << 16 | u32::from(done.status) << 17,
        );
        cq.tail = next;
        if next == 0 {
            cq.phase = !cq.phase;
        }
        self.cqs.insert(done.cq, cq);
    }

    /// Fills every completion slot the driver has not yet been given (or,
    /// with `all`, every slot) with entries of both phases for request
    /// indexes nobody uses.
    fn garbage(&mut self, qid: u16, all: bool) {
        let Some(cq) = self.cqs.get(&qid).copied() else {
            return;
        };
        // Alternate phases by slot, and flip them all from one call to
        // the next: whatever phase the driver expects, some look new.
        self.floods = self.floods.wrapping_add(1);
        let slots: Vec<u16> = if all {
            (0..cq.size).collect()
        } else {
            let mut free = Vec::new();
            let mut slot = cq.tail;
            while (slot + 1) % cq.size != cq.head {
                free.push(slot);
                slot = (slot + 1) % cq.size;
            }
            free
        };
        for slot in slots {
            let entry = cq.base + 16 * u64::from(slot);
            let cid = 0x00A0 | (slot & 0x1F) | (slot << 8);
            let phase = (slot + self.floods) % 2;
            self.store32(entry + 12, u32::from(cid) | u32::from(phase) << 16);
        }
    }

    fn enable(&mut self) {
        self.sqs.clear();
        self.cqs.clear();
        self.delayed.clear();
        self.sqs.insert(
            0,
            Sq {
                base: self.asq,
                size: (self.aqa & 0xFFF) as u16 + 1,
                head: 0,
                cq: 0,
            },
        );
        self.cqs.insert(
            0,
            Cq {
                base: self.acq,
                size: (self.aqa >> 16 & 0xFFF) as u16 + 1,
                tail: 0,
                head: 0,
                phase: true,
            },
        );
        self.csts = self.enabled_csts;
    }

    fn doorbell(&mut self, offset: u64, value: u32) {
        let index = (offset - reg::DOORBELLS) / STRIDE;
        if !(offset - reg::DOORBELLS).is_multiple_of(STRIDE) {
            self.fault(format!("write to {offset:#x} between doorbells"));
            return;
        }
        let qid = (index / 2) as u16;
        if index % 2 == 1 {
            let Some(cq) = self.cqs.get_mut(&qid) else {
                self.fault(format!("head doorbell of missing queue {qid}"));
                return;
            };
            if value >= u32::from(cq.size) {
                let size = cq.size;
                self.fault(format!("head {value} of a {size}-entry queue"));
                return;
            }
            let size = cq.size;
            let consumed = (value as u16 + size - cq.head) % size;
            cq.head = value as u16;
            if qid != 0 {
                self.io_consumed += usize::from(consumed);
            }
            return;
        }
        let Some(sq) = self.sqs.get(&qid).copied() else {
            self.fault(format!("tail doorbell of missing queue {qid}"));
            return;
        };
        if value >= u32::from(sq.size) {
            self.fault(format!("tail {value} of a {}-entry queue", sq.size));
            return;
        }
        let mut head = sq.head;
        let mut first = true;
        while head != value as u16 {
            let base = sq.base + 64 * u64::from(head);
            let entry: Vec<u32> = (0..16).map(|i| self.load32(base + 4 * i)).collect();
            head = (head + 1) % sq.size;
            self.sqs.get_mut(&qid).unwrap().head = head;
            self.execute(qid, sq.cq, head, &entry, first);
            first = false;
        }
        if qid != 0 && self.lie == Lie::Garbage {
            self.garbage(sq.cq, false);
        }
    }

    fn execute(&mut self, sqid: u16, cqid: u16, sq_head: u16, d: &[u32], first: bool) {
        let opcode = d[0] as u8;
        let mut done = Done {
            cq: cqid,
            sq: sqid,
            sq_head,
            cid: (d[0] >> 16) as u16,
            status: 0,
            result: 0,
            transfer: None,
        };
        let prp1 = u64::from(d[6]) | u64::from(d[7]) << 32;
        let prp2 = u64::from(d[8]) | u64::from(d[9]) << 32;
        if sqid == 0 {
            match opcode {
                admin::IDENTIFY => {
                    let mut page = [0u8; 4096];
                    if d[10] & 0xFF == 1 {
                        let model = b"SIMULATED LIAR";
                        page[24..64].fill(b' ');
                        page[24..24 + model.len()].copy_from_slice(model);
                    } else {
                        let ns = self.namespace;
                        page[0..8].copy_from_slice(&ns.size.to_le_bytes());
                        page[8..16].copy_from_slice(&ns.size.to_le_bytes());
                        page[26] = ns.flbas;
                        page[128 + 4 * usize::from(ns.flbas & 0xF) + 2] = ns.lbads;
                    }
                    self.write_page(prp1, &page);
                }
                admin::SET_FEATURES if d[10] & 0xFF == admin::FEATURE_QUEUES => {
                    done.result = d[11];
                }
                admin::CREATE_CQ => {
                    let qid = d[10] as u16;
                    let cq = Cq {
                        base: prp1,
                        size: (d[10] >> 16) as u16 + 1,
                        tail: 0,
                        head: 0,
                        phase: true,
                    };
                    self.cqs.insert(qid, cq);
                }
                admin::CREATE_SQ => {
                    let qid = d[10] as u16;
                    let sq = Sq {
                        base: prp1,
                        size: (d[10] >> 16) as u16 + 1,
                        head: 0,
                        cq: (d[11] >> 16) as u16,
                    };
                    self.sqs.insert(qid, sq);
                }
                _ => done.status = 0x01, // invalid opcode
            }
            match self.admin_lie {
                Lie::Silent => {}
                Lie::UnknownCid => {
                    let lie = Done {
                        cid: done.cid.wrapping_add(0x1000),
                        ..done
                    };
                    self.post(lie);
                    self.post(done);
                }
                _ => self.post(done),
            }
            return;
        }
        self.io_commands += 1;
        match opcode {
            io::READ | io::WRITE => {
                let lba = u64::from(d[10]) | u64::from(d[11]) << 32;
                let count = u64::from(d[12] & 0xFFFF) + 1;
                if d[1] != 1 || lba + count > self.namespace.size {
                    done.status = 0x80;
                } else {
                    done.transfer = Some(Transfer {
                        write: opcode == io::WRITE,
                        lba,
                        count,
                        prp1,
                        prp2,
                    });
                }
            }
            io::FLUSH => {}
            _ => done.status = 0x01,
        }
        let now = clock();
        match self.lie {
            Lie::None | Lie::Garbage => self.post(done),
            Lie::UnknownCid => {
                let lie = Done {
                    cid: done.cid ^ 0x0040,
                    transfer: None,
                    ..done
                };
                self.post(lie);
                self.delayed.push((now + 1_000_000, done));
            }
            Lie::StaleEpoch => {
                let lie = Done {
                    cid: done.cid.wrapping_sub(0x0100),
                    transfer: None,
                    ..done
                };
                self.post(lie);
                self.delayed.push((now + 1_000_000, done));
            }
            Lie::Duplicate if first => {
                self.post(done);
                self.post(Done {
                    transfer: None,
                    ..done
                });
            }
            Lie::Duplicate => self.delayed.push((now + 1_000_000, done)),
            Lie::Status(status) => self.post(Done {
                status,
                transfer: None,
                ..done
            }),
            Lie::Late(ns) => self.delayed.push((now + ns, done)),
            Lie::Silent | Lie::Flood => {}
        }
    }
}

/// The driver's handle on the simulated device.
struct Sim(Arc<Shared>);

impl Sim {
    fn check(offset: u64, width: u64) -> Result<(), DeviceError> {
        if !offset.is_multiple_of(width) || offset + width > BAR {
            return Err(DeviceError::OutOfBounds);
        }
        Ok(())
    }
}

impl Device for Sim {
    fn id(&self) -> (u16, u16) {
        (0x1b36, 0x0010)
    }
    fn bar_size(&self, bar: usize) -> u64 {
        if bar == 0 { BAR } else { 0 }
    }
    fn read32(&self, bar: usize, offset: u64) -> Result<u32, DeviceError> {
        Sim::check(offset, 4)?;
        let state = self.0.state();
        Ok(match (bar, offset) {
            (0, reg::CC) => state.cc,
            (0, reg::CSTS) => state.csts,
            (0, reg::AQA) => state.aqa,
            _ => 0,
        })
    }
    fn write32(&self, bar: usize, offset: u64, value: u32) -> Result<(), DeviceError> {
        Sim::check(offset, 4)?;
        let mut state = self.0.state();
        match (bar, offset) {
            (0, reg::CC) => {
                state.cc = value;
                if value & 1 == 0 {
                    if !state.stuck_ready {
                        state.csts = 0;
                    }
                    state.sqs.clear();
                    state.cqs.clear();
                } else {
                    state.enable();
                }
            }
            (0, reg::AQA) => state.aqa = value,
            (0, o) if o >= reg::DOORBELLS => state.doorbell(o, value),
            _ => state.fault(format!("write32 of {value:#x} to {offset:#x}")),
        }
        Ok(())
    }
    fn read64(&self, bar: usize, offset: u64) -> Result<u64, DeviceError> {
        Sim::check(offset, 8)?;
        let state = self.0.state();
        Ok(match (bar, offset) {
            (0, reg::CAP) => state.cap,
            (0, reg::ASQ) => state.asq,
            (0, reg::ACQ) => state.acq,
            _ => 0,
        })
    }
    fn write64(&self, bar: usize, offset: u64, value: u64) -> Result<(), DeviceError> {
        Sim::check(offset, 8)?;
        let mut state = self.0.state();
        match (bar, offset) {
            (0, reg::ASQ) => state.asq = value,
            (0, reg::ACQ) => state.acq = value,
            _ => state.fault(format!("write64 of {value:#x} to {offset:#x}")),
        }
        Ok(())
    }
    fn config_read32(&self, _offset: u16) -> Result<u32, DeviceError> {
        Ok(0)
    }
    fn set_bus_master(&self, on: bool) {
        self.0.state().bus_master = on;
    }
}

// ---- test harness ------------------------------------------------------

/// Polls allowed for one driver future: far more than any bounded wait
/// needs (a hang fails the test instead of stalling it).
const POLLS: usize = 2_000_000;

fn run<F: Future>(future: F) -> F::Output {
    block_on(future, POLLS)
}

/// Installs the host (each test thread with its own owner `slot`) and a
/// simulated device with `namespace`, registered with this thread's clock.
fn setup(slot: u32, namespace: Namespace) -> Arc<Shared> {
    rrpc::install_backend(&DMA_HEAP);
    install(owner(slot, 1));
    domain_sdk::install(&KERNEL);
    CLOCK.with(|c| c.set(0));
    LOG.with(|l| l.borrow_mut().clear());
    let shared = Shared::new(namespace);
    DEVICE.with(|d| *d.borrow_mut() = Some(shared.clone()));
    shared
}

fn start(slot: u32, namespace: Namespace) -> Result<(Controller, Arc<Shared>), String> {
    start_with(slot, namespace, BringUp::Honest)
}

/// How the device lies during bring-up.
#[derive(Debug, Clone, Copy)]
enum BringUp {
    Honest,
    AdminUnknownCid,
    AdminSilent,
    NeverReady,
    Fatal,
    StuckReady,
    Cap(u64),
}

/// Starts a controller on a device that lies as `lie` says.
fn start_with(
    slot: u32,
    namespace: Namespace,
    lie: BringUp,
) -> Result<(Controller, Arc<Shared>), String> {
    let shared = setup(slot, namespace);
    {
        let mut state = shared.state();
        match lie {
            BringUp::Honest => {}
            BringUp::AdminUnknownCid => state.admin_lie = Lie::UnknownCid,
            BringUp::AdminSilent => state.admin_lie = Lie::Silent,
            BringUp::NeverReady => state.enabled_csts = 0,
            BringUp::Fatal => state.enabled_csts = 3,
            BringUp::StuckReady => {
                // Left running by an earlier incarnation, and it stays so.
                state.csts = 1;
                state.stuck_ready = true;
            }
            BringUp::Cap(cap) => state.cap = cap,
        }
    }
    let controller = run(Controller::start(Box::new(Sim(shared.clone()))))?;
    Ok((controller, shared))
}

fn batch(blocks: &[u64], fill: impl Fn(u64) -> u8) -> RRef<Batch> {
    let mut batch = RRef::new(RRefDeque::new());
    for &block in blocks {
        let mut io = Io::new(block);
        io.data.fill(fill(block));
        assert!(batch.push_back(RRef::new(io)).is_ok());
    }
    batch
}

fn pattern(block: u64) -> u8 {
    (block as u8).wrapping_mul(7).wrapping_add(1)
}

/// Writes `blocks` with `pattern`, then reads them back into a zeroed
/// batch; returns the write and read statuses and the read batch.
fn write_then_read(controller: &Controller, blocks: &[u64]) -> (Vec<u16>, Vec<u16>, RRef<Batch>) {
    let n = blocks.len();
    let written = batch(blocks, pattern);
    let w = run(controller.io(&written, true))[..n].to_vec();
    let read = batch(blocks, |_| 0);
    let r = run(controller.io(&read, false))[..n].to_vec();
    (w, r, read)
}

fn assert_data(read: &Batch) {
    for io in read.iter() {
        assert!(
            io.data.iter().all(|&b| b == pattern(io.block)),
            "block {} read back wrong data",
            io.block
        );
    }
}

fn assert_no_faults(shared: &Shared) {
    let state = shared.state();
    assert!(state.faults.is_empty(), "device faults: {:?}", state.faults);
    assert!(state.bus_master, "bus mastering still on");
}

fn log() -> Vec<String> {
    LOG.with(|l| l.borrow().clone())
}

// ---- tests -------------------------------------------------------------

#[test]
fn an_honest_controller_starts_and_reads_back_what_was_written() {
    let (controller, shared) = start(40, HONEST).unwrap();
    assert_eq!(controller.model, "SIMULATED LIAR");
    assert_eq!(controller.geometry().sector, 512);
    assert_eq!(controller.geometry().blocks, (1 << 16) * 512 / BLOCK as u64);
    let (w, r, read) = write_then_read(&controller, &[0, 1, 5, 8191]);
    assert_eq!(w, [status::OK; 4]);
    assert_eq!(r, [status::OK; 4]);
    assert_data(&read);
    let beyond = batch(&[8192], |_| 0);
    assert_eq!(run(controller.io(&beyond, false))[0], status::OUT_OF_RANGE);
    assert_no_faults(&shared);
}

#[test]
fn completions_with_an_unknown_command_id_are_ignored() {
    let (controller, shared) = start(41, HONEST).unwrap();
    shared.set_lie(Lie::UnknownCid);
    let (w, r, read) = write_then_read(&controller, &[3, 4, 9]);
    assert_eq!(w, [status::OK; 3], "the real completions still count");
    assert_eq!(r, [status::OK; 3]);
    assert_data(&read);
    // And the lane is still in step with the device afterwards.
    shared.set_lie(Lie::None);
    let (w, r, read) = write_then_read(&controller, &[10]);
    assert_eq!((w[0], r[0]), (status::OK, status::OK));
    assert_data(&read);
    assert_no_faults(&shared);
}

#[test]
fn stale_completions_from_another_epoch_are_ignored() {
    let (controller, shared) = start(42, HONEST).unwrap();
    shared.set_lie(Lie::StaleEpoch);
    let (w, r, read) = write_then_read(&controller, &[1, 2]);
    assert_eq!(w, [status::OK; 2]);
    assert_eq!(r, [status::OK; 2]);
    assert_data(&read);
    shared.set_lie(Lie::None);
    let (w, r, read) = write_then_read(&controller, &[7]);
    assert_eq!((w[0], r[0]), (status::OK, status::OK));
    assert_data(&read);
    assert_no_faults(&shared);
}

#[test]
fn a_duplicate_completion_does_not_finish_the_batch_early() {
    let (controller, shared) = start(43, HONEST).unwrap();
    let blocks = [11, 12, 13, 14];
    let written = batch(&blocks, pattern);
    assert_eq!(run(controller.io(&written, true))[..4], [status::OK; 4]);
    // The first read completes twice at once; the others 1 ms later (their
    // data arrives only then: had the batch finished at the duplicate, they
    // would hold zeros).
    shared.set_lie(Lie::Duplicate);
    let read = batch(&blocks, |_| 0);
    let before = clock();
    let statuses = run(controller.io(&read, false));
    assert!(
        clock() - before >= 1_000_000,
        "the batch waited for the late requests"
    );
    assert_eq!(statuses[..4], [status::OK; 4]);
    assert_data(&read);
    assert_no_faults(&shared);
}

#[test]
fn completions_for_nothing_in_flight_and_flipped_phases_are_never_taken() {
    let (controller, shared) = start(44, HONEST).unwrap();
    shared.set_lie(Lie::Garbage);
    // Enough batches to wrap the 64-entry completion queue several times,
    // with the slots ahead of the device's tail always full of entries
    // that look new in either phase.
    for round in 0..40u64 {
        let blocks: Vec<u64> = (0..3).map(|i| round * 3 + i).collect();
        let (w, r, read) = write_then_read(&controller, &blocks);
        assert_eq!(w, [status::OK; 3], "round {round}");
        assert_eq!(r, [status::OK; 3], "round {round}");
        assert_data(&read);
    }
    assert_eq!(shared.state().io_commands, 40 * 6);
    assert_no_faults(&shared);
}

#[test]
fn extents_and_flushes_complete_through_lies() {
    let (controller, shared) = start(49, HONEST).unwrap();
    let lies = [
        Lie::UnknownCid,
        Lie::StaleEpoch,
        Lie::Duplicate,
        Lie::Garbage,
    ];
    for (i, lie) in lies.into_iter().enumerate() {
        shared.set_lie(lie);
        let first = 64 * i as u64;
        let mut written = RRef::new(Extent::new(first));
        for (j, block) in written.data.chunks_mut(BLOCK).enumerate() {
            block.fill(pattern(first + j as u64));
        }
        assert_eq!(
            run(controller.extent(&written, true)),
            status::OK,
            "{lie:?}"
        );
        let read = RRef::new(Extent::new(first));
        assert_eq!(run(controller.extent(&read, false)), status::OK, "{lie:?}");
        for (j, block) in read.data.chunks(BLOCK).enumerate() {
            assert!(
                block.iter().all(|&b| b == pattern(first + j as u64)),
                "{lie:?}: block {j} of the extent"
            );
        }
        assert_eq!(run(controller.flush()), Ok(()), "{lie:?}");
    }
    assert_eq!(shared.state().io_commands, 4 * 3);
    assert_no_faults(&shared);
}

#[test]
fn out_of_range_status_codes_map_to_a_block_status_and_are_logged() {
    let (controller, shared) = start(45, HONEST).unwrap();
    // (status field, block status): reserved and vendor-specific status
    // code types, the largest code, every bit set, a media error.
    let cases = [
        (0x7FFF, status::DEVICE_ERROR),
        (0x00FF, status::DEVICE_ERROR),
        (0x0542, status::DEVICE_ERROR),
        (0x0601, status::DEVICE_ERROR),
        (0x07C0, status::DEVICE_ERROR),
        (0x01FF, status::DEVICE_ERROR),
        (0x0281, status::MEDIA_ERROR),
        (0x4080, status::OUT_OF_RANGE),
    ];
    for (field, expected) in cases {
        shared.set_lie(Lie::Status(field));
        LOG.with(|l| l.borrow_mut().clear());
        let read = batch(&[5, 6], |_| 0);
        let statuses = run(controller.io(&read, false));
        assert_eq!(statuses[..2], [expected; 2], "status field {field:#x}");
        let code = format!("status {:#x}", field & 0xFF);
        let logged = log();
        assert_eq!(
            logged.iter().filter(|l| l.contains(&code)).count(),
            2,
            "status field {field:#x} logged for each request: {logged:?}"
        );
    }
    shared.set_lie(Lie::None);
    let (w, r, _) = write_then_read(&controller, &[5]);
    assert_eq!((w[0], r[0]), (status::OK, status::OK));
    assert_no_faults(&shared);
}

#[test]
fn a_stalled_completion_queue_times_every_request_out() {
    let (controller, shared) = start(46, HONEST).unwrap();
    // The completions come after the I/O timeout (but within the time a
    // lane given up waits for its commands, so their buffers are safe).
    shared.set_lie(Lie::Late(IO_TIMEOUT_NS + 20_000_000));
    let read = batch(&[1, 2, 3], |_| 0);
    let before = clock();
    let statuses = run(controller.io(&read, false));
    let took = clock() - before;
    assert_eq!(statuses[..3], [status::TIMEOUT; 3]);
    assert!(
        (IO_TIMEOUT_NS..IO_TIMEOUT_NS + 100_000_000).contains(&took),
        "timed out after {took} ns"
    );
    // The lane is released and in step: the next batch works.
    shared.set_lie(Lie::None);
    let (w, r, read) = write_then_read(&controller, &[4, 5]);
    assert_eq!(w, [status::OK; 2]);
    assert_eq!(r, [status::OK; 2]);
    assert_data(&read);
    assert_no_faults(&shared);
}

#[test]
fn a_device_that_never_completes_is_stopped_and_the_driver_crashes() {
    let (controller, shared) = start(47, HONEST).unwrap();
    shared.set_lie(Lie::Silent);
    let read = batch(&[1, 2], |_| 0);
    let before = clock();
    // The deliberate panic of `LaneUse::drop`: the device still holds the
    // buffers, so it is stopped and the driver crashes (to be restarted).
    let crashed = catch_unwind(AssertUnwindSafe(|| run(controller.io(&read, false))));
    let message = crashed.expect_err("the driver must crash");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("2 commands given up and still not completed"),
        "{message}"
    );
    assert!(clock() - before >= IO_TIMEOUT_NS, "not before the timeout");
    assert!(!shared.state().bus_master, "bus mastering turned off");
    assert!(shared.state().faults.is_empty());
}

#[test]
fn a_flood_of_completions_for_nothing_cannot_make_the_driver_loop() {
    let (controller, shared) = start(50, HONEST).unwrap();
    shared.set_lie(Lie::Flood);
    let read = batch(&[1], |_| 0);
    let before = clock();
    // Bounded work per poll, then the timeout, then the deliberate crash
    // (a loop would end in `block_on`'s own panic, or never).
    let crashed = catch_unwind(AssertUnwindSafe(|| run(controller.io(&read, false))));
    let message = crashed.expect_err("the driver must crash");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("1 commands given up and still not completed"),
        "{message}"
    );
    let took = clock() - before;
    assert!(
        (IO_TIMEOUT_NS..IO_TIMEOUT_NS + 100_000_000).contains(&took),
        "gave up after {took} ns"
    );
    assert!(
        shared.state().io_consumed > 10_000,
        "the driver did read the flood ({} entries) and refused it",
        shared.state().io_consumed
    );
    assert!(!shared.state().bus_master, "bus mastering turned off");
    assert!(shared.state().faults.is_empty());
}

#[test]
fn identify_with_absurd_sizes_is_refused() {
    let cases = [
        (Namespace { lbads: 8, ..HONEST }, "256-byte blocks"),
        (
            Namespace {
                lbads: 13,
                ..HONEST
            },
            "8192-byte blocks",
        ),
        (Namespace { lbads: 0, ..HONEST }, "1-byte blocks"),
        (
            Namespace {
                lbads: 200,
                ..HONEST
            },
            "blocks (512 to 4096 supported)",
        ),
        (
            Namespace {
                flbas: 15,
                lbads: 40,
                ..HONEST
            },
            "blocks (512 to 4096 supported)",
        ),
        (Namespace { size: 0, ..HONEST }, "empty or absent"),
        (
            Namespace {
                size: u64::MAX,
                lbads: 12,
                ..HONEST
            },
            "absurd size",
        ),
        (
            Namespace {
                size: 1 << 60,
                lbads: 9,
                ..HONEST
            },
            "absurd size",
        ),
        (
            Namespace {
                size: 7,
                lbads: 9,
                ..HONEST
            },
            "less than one",
        ),
    ];
    for (namespace, expected) in cases {
        match start(48, namespace) {
            Ok((c, _)) => panic!(
                "{namespace:?} accepted: {} blocks of {} bytes",
                c.geometry().blocks,
                c.geometry().sector
            ),
            Err(e) => assert!(e.contains(expected), "{namespace:?}: {e}"),
        }
    }
}

#[test]
fn bring_up_ignores_admin_completions_with_unknown_ids() {
    let (controller, shared) = start_with(51, HONEST, BringUp::AdminUnknownCid).unwrap();
    assert_eq!(controller.model, "SIMULATED LIAR");
    let (w, r, read) = write_then_read(&controller, &[2, 3]);
    assert_eq!(w, [status::OK; 2]);
    assert_eq!(r, [status::OK; 2]);
    assert_data(&read);
    assert_no_faults(&shared);
}

#[test]
fn bring_up_refuses_a_lying_or_silent_controller_with_a_clear_error() {
    // (how the device lies, what the error says)
    let cases = [
        (BringUp::AdminSilent, "admin command 0x6 timed out"),
        (BringUp::NeverReady, "enabling: timed out"),
        (BringUp::Fatal, "fatal status while enabling"),
        (BringUp::StuckReady, "disabling: timed out"),
        (BringUp::Cap(CAP & !0xFFFF | 15), "hold only 16 entries"),
        (BringUp::Cap(CAP & !(1 << 37)), "NVM command set"),
        (BringUp::Cap(CAP | 1 << 48), "pages of 8192 bytes"),
    ];
    for (lie, expected) in cases {
        match start_with(52, HONEST, lie) {
            Ok(_) => panic!("{lie:?} started"),
            Err(e) => assert!(e.contains(expected), "{lie:?}: {e}"),
        }
        assert!(clock() < 10_000_000_000, "{lie:?}: gave up in time");
    }
}
