//! The benchmarks. Each is one function returning a [`Measurement`]; add
//! new ones to [`ALL`].

use std::collections::BinaryHeap;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use executor::{Executor, OwnerId, Platform, TimerWheel};

use crate::harness::{Measurement, Settings, Stats, time};

pub type Bench = fn(Settings) -> Measurement;

pub const ALL: &[(&str, Bench)] = &[
    ("trait-object-call", trait_object_call),
    ("spawn-complete", spawn_complete),
    ("wake-to-poll", wake_to_poll),
    ("timer-wheel-insert", timer_wheel_insert),
    ("domain-heap-64", domain_heap_64),
    ("domain-heap-64-two", domain_heap_64_two),
    ("continuation", continuation),
    ("domain-entry", domain_entry),
    ("domain-entry-async", domain_entry_async),
    ("rref-alloc-drop", rref_alloc_drop),
    ("rref-call-move", rref_call_move),
    ("proxy-call", proxy_call),
    ("proxy-rref", proxy_rref),
    ("proxy-async", proxy_async),
    ("rpc-future", rpc_future),
    ("nullnet", nullnet),
    ("nullnet-crossing", nullnet_crossing),
    ("nullnet-shadow", nullnet_shadow),
    ("nullnet-tx-crossing", nullnet_tx_crossing),
    ("nullnet-tx-shadow", nullnet_tx_shadow),
    ("exp-cont-call", crate::experiments::call_full),
    ("exp-cont-call-no-flags", crate::experiments::call_no_flags),
];

// ---- trait-object call ---------------------------------------------------

pub trait Service {
    fn call(&self, x: u64) -> u64;
}

pub struct Adder(pub u64);

impl Service for Adder {
    #[inline(never)]
    fn call(&self, x: u64) -> u64 {
        x.wrapping_add(self.0)
    }
}

/// The baseline every cross-domain proxy is compared with: a method call
/// through `&dyn Trait` (next to a direct call of the same method).
pub fn trait_object_call(settings: Settings) -> Measurement {
    let adder = Adder(3);
    let object: &dyn Service = black_box(&adder);
    let measured = time(settings, || {
        black_box(object.call(black_box(5)));
    });
    let baseline = time(settings, || {
        black_box(Adder::call(black_box(&adder), black_box(5)));
    });
    Measurement {
        name: "trait-object call",
        workload: "one non-inlined method call through &dyn Trait, argument and result through black_box",
        baseline_name: "direct (static) call",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- executor -------------------------------------------------------------

struct HostPlatform;

/// TSC ticks per nanosecond, measured once against the OS clock.
fn tsc_per_ns() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let (t0, i0) = (rdtsc(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        (rdtsc() - t0) as f64 / i0.elapsed().as_nanos() as f64
    })
}

fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The kernel's clock is the TSC, so the host platform uses it too (an OS
/// clock call would cost more than the executor paths being measured).
impl Platform for HostPlatform {
    fn now_ns(&self) -> u64 {
        (rdtsc() as f64 / tsc_per_ns()) as u64
    }
    fn notify(&self, _executor_id: usize) {}
    fn current_executor(&self) -> Option<usize> {
        None
    }
}

static HOST: HostPlatform = HostPlatform;
const OWNER: OwnerId = OwnerId::KERNEL;

fn executor() -> &'static Executor {
    static EXEC: std::sync::OnceLock<&'static Executor> = std::sync::OnceLock::new();
    EXEC.get_or_init(|| Executor::new(&HOST, 1024))
}

fn noop_context() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// Spawn an empty task, run the executor until it completes, take the result.
pub fn spawn_complete(settings: Settings) -> Measurement {
    let exec = executor();
    let measured = time(settings, || {
        let handle = exec.spawn(OWNER, async { black_box(1u32) }).unwrap();
        exec.run(1);
        let mut handle = handle;
        let mut cx = noop_context();
        let ready = black_box(Pin::new(&mut handle).poll(&mut cx));
        debug_assert!(matches!(ready, Poll::Ready(Ok(1))));
    });
    let baseline = time(settings, || {
        let mut fut = std::pin::pin!(async { black_box(1u32) });
        let mut cx = noop_context();
        let _ = black_box(fut.as_mut().poll(&mut cx));
    });
    Measurement {
        name: "spawn+complete empty task",
        workload: "spawn a ready future, one executor run, poll the JoinHandle",
        baseline_name: "poll the same future inline",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// A task that stays pending forever, counting its polls.
struct Pending;

impl Future for Pending {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        black_box(());
        Poll::Pending
    }
}

/// Wake a pending task through its waker and run the executor until the
/// task has been polled again.
pub fn wake_to_poll(settings: Settings) -> Measurement {
    let exec = executor();
    let handle = exec.spawn(OWNER, Pending).unwrap();
    exec.run(16);
    let id = handle.id();
    let measured = time(settings, || {
        executor::wake_task(id);
        let stats = exec.run(1);
        debug_assert_eq!(stats.polled, 1);
        black_box(stats);
    });
    handle.abort();
    exec.run(16);
    let mut pending = Pending;
    let waker = Waker::noop();
    let baseline = time(settings, || {
        waker.wake_by_ref();
        let mut cx = Context::from_waker(waker);
        let _ = black_box(Pin::new(&mut pending).poll(&mut cx));
    });
    Measurement {
        name: "wake-to-poll latency",
        workload: "wake_task(id) of a pending task, then Executor::run until it is polled",
        baseline_name: "no-op wake + direct poll",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// Insert then cancel one timer in a wheel already holding 1,000 timers.
pub fn timer_wheel_insert(settings: Settings) -> Measurement {
    let mut wheel: TimerWheel<u64> = TimerWheel::new(1_000_000, 0);
    for i in 0..1000u64 {
        wheel.insert((i * 7919 % 60_000 + 1) * 1_000_000, i);
    }
    let mut deadline = 1u64;
    let measured = time(settings, || {
        deadline = deadline
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = wheel.insert((deadline % 60_000 + 1) * 1_000_000, 1);
        black_box(wheel.cancel(black_box(key)));
    });
    let mut heap: BinaryHeap<std::cmp::Reverse<u64>> = (0..1000u64)
        .map(|i| std::cmp::Reverse(i * 7919 % 60_000))
        .collect();
    let mut deadline = 1u64;
    let baseline = time(settings, || {
        deadline = deadline
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        heap.push(std::cmp::Reverse(deadline % 60_000));
        black_box(heap.pop());
    });
    Measurement {
        name: "timer wheel insert+cancel",
        workload: "insert a random deadline (1 ms..60 s) into a wheel of 1,000 timers, then cancel it",
        baseline_name: "BinaryHeap push+pop (1,000)",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- domain heap -------------------------------------------------------------

/// Backs the heap with real memory so the addresses could be used; mapping
/// only happens while the heap grows (not in the timed steady state).
struct HostPages;

impl kcore::domheap::PageSource for HostPages {
    fn map(&mut self, _at: u64, _pages: usize) -> bool {
        true
    }
}

/// The allocator the kernel puts behind every domain allocation
/// (`kcore::domheap`), 64-byte allocate + free, against the host's system
/// allocator doing the same, behind a `spin::Mutex` as in the kernel (the
/// kernel's global-allocator routing, a per-core read and a branch, is not
/// included).
pub fn domain_heap_64(settings: Settings) -> Measurement {
    domain_heap(settings, &[1 << 16 | 1])
}

/// [`domain_heap_64`] for two domains allocating in turn (a caller and its
/// callee on one core): each keeps its own way of the core's cache.
pub fn domain_heap_64_two(settings: Settings) -> Measurement {
    domain_heap(settings, &[1 << 16 | 1, 2 << 16 | 1])
}

fn domain_heap(settings: Settings, owners: &[u32]) -> Measurement {
    use std::alloc::{GlobalAlloc, Layout, System};
    // As in the kernel (kernel/src/domain/heap.rs): per-core caches of free
    // objects (one way per domain) in front of each domain's heap, which
    // sits behind a spin lock; misses and overflows take the lock.
    let heaps: Vec<spin::Mutex<kcore::domheap::DomainHeap>> = (0..owners.len() as u64)
        .map(|i| {
            let base = (1 << 40) + (i << 32);
            spin::Mutex::new(kcore::domheap::DomainHeap::new(base, base + (1 << 32)))
        })
        .collect();
    let mut cache = kcore::domheap::CoreCaches::new();
    // Warm: a slab exists and holds other live objects.
    let keep: Vec<u64> = heaps
        .iter()
        .flat_map(|heap| {
            (0..100)
                .map(|_| heap.lock().alloc(64, 8, &mut HostPages).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let measured = time(settings, || {
        for (&owner, heap) in owners.iter().zip(&heaps) {
            let address = match cache.alloc(owner, black_box(64), 8) {
                Some(a) => a,
                None => heap.lock().alloc(64, 8, &mut HostPages).unwrap(),
            };
            if !cache.free(owner, black_box(address), 64, 8, |_| true) {
                heap.lock().free(address, 64, 8).unwrap();
            }
        }
    });
    black_box(&keep);
    let layout = Layout::from_size_align(64, 8).unwrap();
    let baseline = time(settings, || {
        for _ in owners {
            // SAFETY: a valid, non-zero layout; the pointer is freed at
            // once with the same layout.
            unsafe {
                let p = System.alloc(black_box(layout));
                System.dealloc(black_box(p), layout);
            }
        }
    });
    let (name, workload) = if owners.len() == 1 {
        (
            "domain heap alloc+free 64 B",
            "the kernel's path: per-core cache (kcore::domheap::CoreCaches), else the heap behind its spin lock; allocate then free 64 bytes",
        )
    } else {
        (
            "domain heap, 2 domains in turn",
            "as above for two domains in turn on one core (each has a way of the cache); baseline: two glibc pairs",
        )
    };
    Measurement {
        name,
        workload,
        baseline_name: "system allocator (glibc)",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- continuation ------------------------------------------------------------

/// The continuation every domain entry saves (`cont::call` through
/// `cont::run`, the kernel's code), around a call through a trait object,
/// against the bare trait-object call.
pub fn continuation(settings: Settings) -> Measurement {
    let adder = Adder(3);
    let object: &dyn Service = black_box(&adder);
    let measured = time(settings, || {
        let _ = black_box(cont::run(|_| object.call(black_box(5))));
    });
    let baseline = time(settings, || {
        black_box(object.call(black_box(5)));
    });
    Measurement {
        name: "continuation + call",
        workload: "cont::run (save callee-saved registers, rsp, rip, rflags; call; return) around a trait-object call",
        baseline_name: "trait-object call",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- domain entry --------------------------------------------------------------

use crate::percpu::HostCore;

/// A call into a domain through the kernel's entry path
/// (`cont::Gate::enter`: alive check, owner switch,
/// continuation with the watchdog budget), around a
/// trait-object call, against the bare trait-object call. The kernel adds
/// the domain-table lookup (an array index) and reading GS.
pub fn domain_entry(settings: Settings) -> Measurement {
    const OWNER: OwnerId = OwnerId::new(1, 1);
    let adder = Adder(3);
    let object: &dyn Service = black_box(&adder);
    let core = HostCore::new(OwnerId::KERNEL);
    let gate = cont::Gate::new(OWNER);
    // The kernel's watchdog budget (a global the entry reads).
    let budget_ticks = std::sync::atomic::AtomicU64::new(101);
    let measured = time(settings, || {
        let deadline = budget_ticks.load(std::sync::atomic::Ordering::Relaxed);
        let result = gate.enter::<u64, _>(&core, OWNER, deadline, || object.call(black_box(5)));
        let _ = black_box(result);
    });
    let baseline = time(settings, || {
        black_box(object.call(black_box(5)));
    });
    Measurement {
        name: "domain entry + call",
        workload: "cont::Gate::enter (the kernel's domain entry) around a trait-object call",
        baseline_name: "trait-object call",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// An async callee that is ready on its first poll, reached through the
/// domain entry (each poll of a callee's future is an entry), against
/// awaiting the same boxed future through a plain trait object. Both sides
/// create and box the future the same way.
pub fn domain_entry_async(settings: Settings) -> Measurement {
    use std::future::Future;
    trait AsyncService {
        fn call(&self, x: u64) -> Pin<Box<dyn Future<Output = u64> + Send + '_>>;
    }
    impl AsyncService for Adder {
        #[inline(never)]
        fn call(&self, x: u64) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
            Box::pin(async move { x.wrapping_add(self.0) })
        }
    }
    const OWNER: OwnerId = OwnerId::new(1, 1);
    let adder = Adder(3);
    let object: &dyn AsyncService = black_box(&adder);
    let core = HostCore::new(OwnerId::KERNEL);
    let gate = cont::Gate::new(OWNER);
    let budget_ticks = std::sync::atomic::AtomicU64::new(101);
    let measured = time(settings, || {
        let mut cx = noop_context();
        // One entry calls the method and polls the new future (ready at
        // once here), as a proxy does on the first poll; dropping the
        // callee's future is a second entry (it may run the callee's code).
        let deadline = budget_ticks.load(std::sync::atomic::Ordering::Relaxed);
        let (future, polled) = gate
            .enter::<u64, _>(&core, OWNER, deadline, || {
                let mut future = object.call(black_box(5));
                let polled = future.as_mut().poll(&mut cx);
                (future, polled)
            })
            .ok()
            .unwrap();
        let _ = black_box(polled);
        let deadline = budget_ticks.load(std::sync::atomic::Ordering::Relaxed);
        let _ = gate.enter::<u64, _>(&core, OWNER, deadline, move || drop(future));
    });
    let baseline = time(settings, || {
        let mut cx = noop_context();
        let mut future = object.call(black_box(5));
        let _ = black_box(future.as_mut().poll(&mut cx));
        drop(future);
    });
    Measurement {
        name: "async domain call (ready)",
        workload: "call + first poll (ready) in one domain entry, drop of the boxed callee future in a second",
        baseline_name: "same boxed future, no entry",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- RRefs -------------------------------------------------------------------

/// The kernel's shared heap, modelled the way the kernel builds it (not
/// `rrpc::host_kit`'s heap over the system allocator, nor its runtime,
/// which catches panics: the timings must include what the kernel's
/// allocator and domain entry cost): a
/// `kcore::domheap` behind a spin lock with a per-core `CoreCache` in
/// front (in the record `GS` points at, as the kernel's; see
/// `percpu::with_shared_cache`), and the registry's critical-section hooks as a
/// per-core counter (the kernel's is one GS-relative increment).
struct SharedHeap {
    heap: spin::Mutex<kcore::domheap::DomainHeap>,
}

static SHARED: std::sync::OnceLock<SharedHeap> = std::sync::OnceLock::new();

/// The kernel's cache tag for shared-heap objects.
const CACHE_TAG: u32 = 1;

impl rrpc::Backend for SharedHeap {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> Option<std::ptr::NonNull<u8>> {
        let (size, align) = (layout.size().max(1), layout.align());
        let cached = crate::percpu::with_shared_cache(|cache| {
            if cache.owner() != CACHE_TAG {
                cache.drain(CACHE_TAG, |_, _, _, _| {});
            }
            cache.alloc(CACHE_TAG, size, align)
        });
        let address = match cached {
            Some(address) => address,
            None => self.heap.lock().alloc(size, align, &mut HostPages)?,
        };
        std::ptr::NonNull::new(address as *mut u8)
    }
    unsafe fn free(&self, pointer: std::ptr::NonNull<u8>, layout: std::alloc::Layout) {
        let (size, align) = (layout.size().max(1), layout.align());
        let address = pointer.as_ptr() as u64;
        if crate::percpu::with_shared_cache(|cache| cache.free(CACHE_TAG, address, size, align)) {
            return;
        }
        self.heap.lock().free(address, size, align).expect("free");
    }
}

fn shared_heap() {
    let heap = SHARED.get_or_init(|| {
        // A real, leaked arena, so the addresses the heap computes are usable.
        let arena: &'static mut [u8] = Box::leak(vec![0u8; 64 << 20].into_boxed_slice());
        let base = (arena.as_ptr() as u64).div_ceil(1 << 16) << 16;
        SharedHeap {
            heap: spin::Mutex::new(kcore::domheap::DomainHeap::new(base, base + (32 << 20))),
        }
    });
    rrpc::install_backend(heap);
}

/// `RRef<[u8; 64]>` allocate + drop on the shared heap, with its registry
/// bookkeeping (link on the owner's list, unlink), against the same `Box`.
pub fn rref_alloc_drop(settings: Settings) -> Measurement {
    shared_heap();
    let _core = HostCore::new(CALLER); // a domain's allocation
    // As inside a kernel task: the executor holds this core's registry
    // shard for the batch of polls.
    // SAFETY: this thread plays one core's executor, pairing the two.
    unsafe { rrpc::registry::enter_batch() };
    let measured = time(settings, || {
        let r = rrpc::RRef::new(black_box([0u8; 64]));
        black_box(&r);
        drop(r);
    });
    // SAFETY: ends the batch begun above.
    unsafe { rrpc::registry::leave_batch() };
    let baseline = time(settings, || {
        let b = Box::new(black_box([0u8; 64]));
        black_box(&b);
        drop(b);
    });
    Measurement {
        name: "RRef<[u8; 64]> alloc+drop",
        workload: "RRef::new then drop: shared heap (per-core cache over a locked domheap) and owner-list link/unlink in the home shard",
        baseline_name: "Box<[u8; 64]> (glibc)",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// SAFETY: the benchmark moves what it gives, as a proxy does.
const CALLEE_TRANSFER: rrpc::Transfer = unsafe { rrpc::Transfer::new(CALLEE) };
// SAFETY: as above.
const CALLER_TRANSFER: rrpc::Transfer = unsafe { rrpc::Transfer::new(CALLER) };

/// A call moving one RRef into the callee and back: the entry plus the two
/// ownership moves a proxy does, around a trait-object call that reads the
/// buffer, against the bare trait-object call with a `&` to it.
pub fn rref_call_move(settings: Settings) -> Measurement {
    shared_heap();
    trait Sink {
        fn take(&self, buffer: &rrpc::RRef<[u8; 64]>) -> u8;
    }
    struct Reader;
    impl Sink for Reader {
        #[inline(never)]
        fn take(&self, buffer: &rrpc::RRef<[u8; 64]>) -> u8 {
            buffer[black_box(3)]
        }
    }
    const CALLER: OwnerId = OwnerId::new(1, 1);
    const CALLEE: OwnerId = OwnerId::new(2, 1);
    let sink: &dyn Sink = black_box(&Reader);
    let core = HostCore::new(CALLER);
    let gate = cont::Gate::new(CALLEE);
    let budget_ticks = std::sync::atomic::AtomicU64::new(101);
    // SAFETY: this thread plays one core's executor, pairing the two.
    unsafe { rrpc::registry::enter_batch() }; // as inside a kernel task (see above)
    let buffer = rrpc::RRef::new([7u8; 64]);
    let measured = time(settings, || {
        buffer.move_to(&CALLEE_TRANSFER);
        let deadline = budget_ticks.load(std::sync::atomic::Ordering::Relaxed);
        let result = gate.enter::<u64, _>(&core, CALLEE, deadline, || sink.take(&buffer));
        buffer.move_to(&CALLER_TRANSFER);
        let _ = black_box(result);
    });
    // SAFETY: ends the batch begun above.
    unsafe { rrpc::registry::leave_batch() };
    let baseline = time(settings, || {
        black_box(sink.take(&buffer));
    });
    Measurement {
        name: "call moving an RRef in and back",
        workload: "move_to(callee), domain entry, trait-object call reading it, move_to(caller)",
        baseline_name: "trait-object call with &RRef",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- generated proxies ---------------------------------------------------------

const CALLER: OwnerId = OwnerId::new(1, 1);
const CALLEE: OwnerId = OwnerId::new(2, 1);
/// A second callee, between the caller and `CALLEE` (`nic-shadow` in the
/// `nullnet` rows: the caller calls it, it calls `CALLEE`).
const MIDDLE: OwnerId = OwnerId::new(3, 1);

std::thread_local! {
    /// This thread's stand-in for the kernel's per-core record, shared by
    /// the proxy runtime and the RRef backend (both read the running
    /// domain from it, as the kernel's read it from GS).
    static BENCH_CORE: HostCore = const { HostCore };
}

/// The runtime generated proxies call: the kernel's domain entry
/// (`cont::Gate::enter` with a watchdog deadline), for one callee domain.
struct HostRuntime {
    gate: cont::Gate,
    middle: cont::Gate,
    budget_ticks: std::sync::atomic::AtomicU64,
}

impl HostRuntime {
    /// The gate of `callee`, one of the two domains calls enter.
    #[inline]
    fn gate_of(&self, callee: rrpc::Owner) -> Option<&cont::Gate> {
        if callee == CALLEE {
            Some(&self.gate)
        } else if callee == MIDDLE {
            Some(&self.middle)
        } else {
            None
        }
    }
}

// SAFETY: both entries return `Ok` only when the gate's `cont::call`
// returned 0, which only the closure's (or `run`'s) own return makes.
unsafe impl rrpc::proxy::Runtime for HostRuntime {
    // As the kernel's: the executor's wakers (here the benchmark's no-op
    // waker) pass as they are; any other would be replaced.
    fn trusted_wakers(&self) -> Option<&'static std::task::RawWakerVTable> {
        Some(Waker::noop().vtable())
    }

    fn callee_waker(&self, waker: &Waker) -> Option<Waker> {
        (!std::ptr::eq(waker.vtable(), Waker::noop().vtable())).then(|| Waker::noop().clone())
    }

    fn current(&self) -> rrpc::Owner {
        BENCH_CORE.with(cont::Core::owner)
    }

    fn caller(&self) -> rrpc::Owner {
        // SAFETY: the frames linked on this thread's core are `guarded`'s.
        BENCH_CORE.with(|core| unsafe { cont::caller(core) })
    }

    fn is_alive(&self, owner: rrpc::Owner) -> bool {
        owner == CALLEE || owner == CALLER || owner == MIDDLE
    }

    // As the kernel's: proxies enter the callee through its gate inline.
    unsafe fn gate(&self, callee: rrpc::Owner) -> Option<&'static cont::Gate> {
        let runtime: &'static HostRuntime = RUNTIME.get()?;
        runtime.gate_of(callee)
    }

    unsafe fn entry_budget(&self) -> Option<&'static std::sync::atomic::AtomicU64> {
        RUNTIME.get().map(|runtime| &runtime.budget_ticks)
    }

    unsafe fn enter_raw(
        &self,
        callee: rrpc::Owner,
        call: *mut cont::RawCall,
    ) -> Result<(), rrpc::RpcError> {
        let Some(gate) = self.gate_of(callee) else {
            return Err(rrpc::RpcError::NoSuchDomain);
        };
        let deadline = self.budget_ticks.load(std::sync::atomic::Ordering::Relaxed);
        BENCH_CORE.with(|core| {
            // SAFETY: forwarded.
            unsafe { gate.enter_raw::<u64>(core, callee, deadline, call) }
                .map_err(|_| rrpc::RpcError::DomainCrashed)
        })
    }

    unsafe fn enter(&self, callee: rrpc::Owner, f: &mut dyn FnMut()) -> Result<(), rrpc::RpcError> {
        let Some(gate) = self.gate_of(callee) else {
            return Err(rrpc::RpcError::NoSuchDomain);
        };
        let deadline = self.budget_ticks.load(std::sync::atomic::Ordering::Relaxed);
        BENCH_CORE.with(|core| {
            gate.enter::<u64, _>(core, callee, deadline, f)
                .map_err(|_| rrpc::RpcError::DomainCrashed)
        })
    }
}

/// The benchmark's runtime (one, for the process).
static RUNTIME: std::sync::OnceLock<HostRuntime> = std::sync::OnceLock::new();

fn proxy_runtime() {
    let runtime = RUNTIME.get_or_init(|| HostRuntime {
        gate: cont::Gate::new(CALLEE),
        middle: cont::Gate::new(MIDDLE),
        budget_ticks: std::sync::atomic::AtomicU64::new(101),
    });
    rrpc::proxy::install_runtime(runtime);
    shared_heap();
    let _ = HostCore::new(CALLER);
}

/// What the proxy benchmarks call.
#[rrpc::interface]
pub trait Probe {
    fn ping(&self, x: u64) -> rrpc::RpcResult<u64>;
    fn bounce(&self, buffer: rrpc::RRef<[u8; 64]>) -> rrpc::RpcResult<rrpc::RRef<[u8; 64]>>;
    async fn ping_async(&self, x: u64) -> rrpc::RpcResult<u64>;
}

struct ProbeService(u64);

impl Probe for ProbeService {
    #[inline(never)]
    fn ping(&self, x: u64) -> rrpc::RpcResult<u64> {
        Ok(x.wrapping_add(self.0))
    }
    #[inline(never)]
    fn bounce(&self, buffer: rrpc::RRef<[u8; 64]>) -> rrpc::RpcResult<rrpc::RRef<[u8; 64]>> {
        Ok(buffer)
    }
    #[inline(never)]
    fn ping_async(&self, x: u64) -> rrpc::RpcFuture<'_, u64> {
        rrpc::RpcFuture::new(async move { Ok(x.wrapping_add(self.0)) })
    }
}

/// The generated proxy and the plain trait object over the same service.
fn bench_objects() -> (ProbeProxy, std::sync::Arc<dyn Probe + Send + Sync>) {
    proxy_runtime();
    let service: std::sync::Arc<dyn Probe + Send + Sync> = std::sync::Arc::new(ProbeService(3));
    (
        // SAFETY: the capability goes straight into the proxy of `CALLEE`'s object.
        ProbeProxy::new(service.clone(), unsafe {
            rrpc::proxy::EntryCap::new(CALLEE)
        }),
        service,
    )
}

/// A null call through a proxy generated by `#[interface]`: everything the
/// kernel's proxies do per call (alive check and owner switch in the gate,
/// continuation, watchdog deadline, result ownership) against the same
/// method through a plain trait object.
pub fn proxy_call(settings: Settings) -> Measurement {
    let (proxy, plain) = bench_objects();
    let proxy: &dyn Probe = black_box(&proxy);
    let plain: &dyn Probe = black_box(&*plain);
    let measured = time(settings, || {
        let _ = black_box(proxy.ping(black_box(5)));
    });
    let baseline = time(settings, || {
        let _ = black_box(plain.ping(black_box(5)));
    });
    Measurement {
        name: "generated proxy: null call",
        workload: "#[interface] proxy method (RpcResult<u64>) through the kernel's entry path",
        baseline_name: "trait-object call",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// One `RRef` moved into the callee and returned, through the generated
/// proxy (argument to the callee's ownership, result to the caller's),
/// inside an executor batch as in a kernel task; against the same method
/// through a plain trait object (no ownership moves).
pub fn proxy_rref(settings: Settings) -> Measurement {
    let (proxy, plain) = bench_objects();
    let proxy: &dyn Probe = black_box(&proxy);
    let plain: &dyn Probe = black_box(&*plain);
    // SAFETY: this thread plays one core's executor, pairing the two.
    unsafe { rrpc::registry::enter_batch() };
    let mut buffer = Some(rrpc::RRef::new([7u8; 64]));
    let measured = time(settings, || {
        let b = buffer.take().expect("buffer");
        buffer = Some(proxy.bounce(b).expect("bounce"));
    });
    assert_eq!(buffer.as_ref().map(|b| b.owner()), Some(CALLER));
    let baseline = time(settings, || {
        let b = buffer.take().expect("buffer");
        buffer = Some(plain.bounce(b).expect("bounce"));
    });
    drop(buffer);
    // SAFETY: ends the batch begun above.
    unsafe { rrpc::registry::leave_batch() };
    Measurement {
        name: "generated proxy: RRef in and back",
        workload: "#[interface] proxy moving an RRef<[u8; 64]> to the callee and the result back",
        baseline_name: "trait-object call",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// An `async fn` through the generated proxy whose callee is ready at
/// once: the proxy's `RpcFuture` keeps the call inline and its first poll
/// is one entry that calls the callee's method, polls the callee's boxed
/// future and drops it; against the same method's `RpcFuture` (same box)
/// through a plain trait object.
pub fn proxy_async(settings: Settings) -> Measurement {
    let (proxy, plain) = bench_objects();
    let proxy: &dyn Probe = black_box(&proxy);
    let plain: &dyn Probe = black_box(&*plain);
    let measured = time(settings, || {
        let mut cx = noop_context();
        let future = std::pin::pin!(proxy.ping_async(black_box(5)));
        let _ = black_box(future.poll(&mut cx));
    });
    let baseline = time(settings, || {
        let mut cx = noop_context();
        let future = std::pin::pin!(plain.ping_async(black_box(5)));
        let _ = black_box(future.poll(&mut cx));
    });
    Measurement {
        name: "generated proxy: async call (ready)",
        workload: "#[interface] async fn through the proxy: one entry starts the call, polls and drops the callee future; no box of the proxy's own",
        baseline_name: "same boxed future, no proxy",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// What `RpcFuture` itself costs an implementation called directly (no
/// proxy): the same method and `async` block, returned as an `RpcFuture`
/// (through an `#[interface]` trait) against a `Pin<Box<dyn Future>>`
/// (through an ordinary trait object). Both box the same future once.
pub fn rpc_future(settings: Settings) -> Measurement {
    trait PlainAsync {
        fn ping_async(
            &self,
            x: u64,
        ) -> Pin<Box<dyn Future<Output = rrpc::RpcResult<u64>> + Send + '_>>;
    }
    impl PlainAsync for ProbeService {
        #[inline(never)]
        fn ping_async(
            &self,
            x: u64,
        ) -> Pin<Box<dyn Future<Output = rrpc::RpcResult<u64>> + Send + '_>> {
            Box::pin(async move { Ok(x.wrapping_add(self.0)) })
        }
    }
    let service = ProbeService(3);
    let interface: &dyn Probe = black_box(&service);
    let plain: &dyn PlainAsync = black_box(&service);
    let measured = time(settings, || {
        let mut cx = noop_context();
        let future = std::pin::pin!(interface.ping_async(black_box(5)));
        let _ = black_box(future.poll(&mut cx));
    });
    let baseline = time(settings, || {
        let mut cx = noop_context();
        let mut future = plain.ping_async(black_box(5));
        let _ = black_box(future.as_mut().poll(&mut cx));
    });
    Measurement {
        name: "RpcFuture, no proxy (ready)",
        workload: "an implementation's async method through &dyn Trait returning RpcFuture: create, poll (ready), drop",
        baseline_name: "Pin<Box<dyn Future>>",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- nullnet: the Net interface's batched path against a null device ------

/// A frame buffer as `interfaces::net::Packet` has it (this row predates
/// the `nullnet (Net)` rows below, which use the interface itself; kept
/// for its history in docs/benchmarks.md).
#[derive(rrpc::Exchangeable)]
#[repr(C)]
pub struct NullPacket {
    pub data: [u8; 2048],
    pub len: u16,
}

/// A batch, as `interfaces::net::Packets`.
pub type NullPackets = rrpc::RRefDeque<NullPacket, 32>;

/// The receive and transmit methods of `interfaces::net::Net`.
#[rrpc::interface]
pub trait NullNet {
    fn receive(
        &self,
        queue: u16,
        buffers: rrpc::RRef<NullPackets>,
    ) -> rrpc::RpcResult<rrpc::RRef<NullPackets>>;
    fn transmit(
        &self,
        queue: u16,
        packets: rrpc::RRef<NullPackets>,
    ) -> rrpc::RpcResult<rrpc::RRef<NullPackets>>;
}

/// RedLeaf's "nullnet": a device that receives a 64-byte frame into every
/// buffer it is given and sends every frame at once.
struct NullDevice;

impl NullNet for NullDevice {
    #[inline(never)]
    fn receive(
        &self,
        _queue: u16,
        mut buffers: rrpc::RRef<NullPackets>,
    ) -> rrpc::RpcResult<rrpc::RRef<NullPackets>> {
        for packet in buffers.iter_mut() {
            packet.len = 64;
        }
        Ok(buffers)
    }
    #[inline(never)]
    fn transmit(
        &self,
        _queue: u16,
        mut packets: rrpc::RRef<NullPackets>,
    ) -> rrpc::RpcResult<rrpc::RRef<NullPackets>> {
        for packet in packets.iter_mut() {
            packet.len = 0;
        }
        Ok(packets)
    }
}

/// One receive and one transmit of a batch of 32 through the generated
/// proxy (two domain crossings, the batch's 33 `RRef`s moving in and back
/// each time), against the same calls on the null device directly.
pub fn nullnet(settings: Settings) -> Measurement {
    proxy_runtime();
    let device: std::sync::Arc<dyn NullNet + Send + Sync> = std::sync::Arc::new(NullDevice);
    // SAFETY: the capability goes straight into the proxy of `CALLEE`'s object.
    let proxy = NullNetProxy::new(device.clone(), unsafe {
        rrpc::proxy::EntryCap::new(CALLEE)
    });
    let proxy: &dyn NullNet = black_box(&proxy);
    let plain: &dyn NullNet = black_box(&*device);
    // SAFETY: this thread plays one core's executor, pairing the two.
    unsafe { rrpc::registry::enter_batch() };
    let batch = || {
        let mut packets = NullPackets::new();
        for _ in 0..32 {
            let _ = packets.push_back(rrpc::RRef::new(NullPacket {
                data: [0; 2048],
                len: 0,
            }));
        }
        Some(rrpc::RRef::new(packets))
    };
    let mut buffers = batch();
    let measured = time(settings, || {
        let b = buffers.take().expect("batch");
        let frames = proxy.receive(0, b).expect("receive");
        buffers = Some(proxy.transmit(0, frames).expect("transmit"));
    });
    let baseline = time(settings, || {
        let b = buffers.take().expect("batch");
        let frames = plain.receive(0, b).expect("receive");
        buffers = Some(plain.transmit(0, frames).expect("transmit"));
    });
    drop(buffers);
    // SAFETY: ends the batch begun above.
    unsafe { rrpc::registry::leave_batch() };
    Measurement {
        name: "nullnet: rx+tx batch of 32 via proxy",
        workload: "Net-shaped receive then transmit of a batch of 32 packet RRefs on a null device (RedLeaf's nullnet), through the generated proxy (two crossings, 33 RRefs moved in and back each)",
        baseline_name: "same calls on the null device",
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

// ---- nullnet on the real Net interface: direct, one crossing, nic-shadow ---

use interfaces::net::{Net, NetCounters, NetInfo, NetProxy, Packet, Packets};

/// Buffers the null device's receive ring holds.
const NULL_RING: usize = 64;

/// RedLeaf's "nullnet" behind `interfaces::net::Net`, keeping a receive
/// ring as a driver does (the interface's contract: `receive` posts the
/// buffers it is given and hands out the frames that arrived, whatever
/// buffers they arrived in). Frames arrive at once: every posted buffer
/// holds a 64-byte frame. `transmit` sends every frame at once and hands
/// its buffers back empty.
struct NullRing {
    ring: spin::Mutex<Vec<rrpc::RRef<Packet>>>,
}

impl NullRing {
    /// A device whose ring is full, allocated as `owner` (the domain that
    /// runs it).
    fn new(owner: OwnerId) -> NullRing {
        let _as_owner = HostCore::new(owner);
        let ring = (0..NULL_RING)
            .map(|_| rrpc::RRef::new(Packet::empty()))
            .collect();
        let _back = HostCore::new(CALLER);
        NullRing {
            ring: spin::Mutex::new(ring),
        }
    }
}

impl Net for NullRing {
    fn info(&self) -> rrpc::RpcResult<NetInfo> {
        Ok(NetInfo {
            mac: [2, 0, 0, 0, 0, 1],
            link_up: true,
            speed: 10_000,
            queues: 1,
        })
    }

    #[inline(never)]
    fn receive(
        &self,
        _queue: u16,
        mut buffers: rrpc::RRef<Packets>,
    ) -> rrpc::RpcResult<rrpc::RRef<Packets>> {
        let mut ring = self.ring.lock();
        let mut given = Packets::new();
        while let Some(buffer) = buffers.pop_front() {
            let _ = given.push_back(buffer);
        }
        // The frames (as many as a batch holds)...
        while !buffers.is_full() {
            let Some(mut frame) = ring.pop() else { break };
            frame.len = 64;
            let _ = buffers.push_back(frame);
        }
        // ...and the buffers given posted in their place. They always fit:
        // a batch's worth left the ring first, or the ring held fewer than
        // a batch (at most `NULL_RING` - `BATCH` + a batch after this).
        while let Some(buffer) = given.pop_front() {
            ring.push(buffer);
        }
        Ok(buffers)
    }

    #[inline(never)]
    fn transmit(
        &self,
        _queue: u16,
        mut packets: rrpc::RRef<Packets>,
    ) -> rrpc::RpcResult<rrpc::RRef<Packets>> {
        for packet in packets.iter_mut() {
            packet.len = 0;
        }
        Ok(packets)
    }

    fn counters(&self, _queue: u16) -> rrpc::RpcResult<NetCounters> {
        Ok(NetCounters::default())
    }
}

/// How the `nullnet` rows reach the null device.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// Its generated proxy: one crossing per call.
    Crossing,
    /// `nic-shadow` (the domain's own code) through its proxy, calling the
    /// device through the device's: two crossings per call, and the
    /// shadow's work (a copy of every frame sent, kept to send again after
    /// a driver crash; the receive buffers it keeps back).
    Shadow,
}

/// A batch of 32 empty buffers, owned by the caller.
fn null_batch() -> Option<rrpc::RRef<Packets>> {
    let mut packets = Packets::new();
    for _ in 0..32 {
        let _ = packets.push_back(rrpc::RRef::new(Packet::empty()));
    }
    Some(rrpc::RRef::new(packets))
}

/// Times rounds of the client's loop on the null device through `via`
/// and directly: with `tx_only`, a transmit of 32 frames a round, else a
/// receive of a batch then the transmit of what arrived. Checks that both
/// sides moved 32 frames each way a round (a shadow that passed fewer
/// would not be compared fairly).
fn nullnet_rows(settings: Settings, via: Via, tx_only: bool) -> (Stats, Stats) {
    proxy_runtime();
    let _core = HostCore::new(CALLER);
    let device = std::sync::Arc::new(NullRing::new(CALLEE));
    let direct = NullRing::new(CALLER);
    // SAFETY: each capability goes straight into the proxy of its domain's
    // object.
    let to_device = NetProxy::new(device.clone(), unsafe {
        rrpc::proxy::EntryCap::new(CALLEE)
    });
    let shadowed;
    let proxy: &dyn Net = match via {
        Via::Crossing => &to_device,
        Via::Shadow => {
            // SAFETY: as above (the shadow's proxy of the device).
            let cap = unsafe { rrpc::proxy::EntryCap::new(CALLEE) };
            let shadow = std::sync::Arc::new(domain_nic_shadow::Shadow::before(
                "igb",
                NetProxy::new(device.clone(), cap),
            ));
            // SAFETY: as above.
            shadowed = NetProxy::new(shadow, unsafe { rrpc::proxy::EntryCap::new(MIDDLE) });
            &shadowed
        }
    };
    let proxy: &dyn Net = black_box(proxy);
    let plain: &dyn Net = black_box(&direct);
    // SAFETY: this thread plays one core's executor, pairing the two.
    unsafe { rrpc::registry::enter_batch() };
    let run = |net: &dyn Net, buffers: &mut Option<rrpc::RRef<Packets>>, frames: &mut u64| {
        let mut batch = buffers.take().expect("batch");
        if tx_only {
            for packet in batch.iter_mut() {
                packet.len = 60;
            }
        } else {
            batch = net.receive(0, batch).expect("receive");
        }
        *frames += batch.iter().filter(|p| p.len != 0).count() as u64;
        *buffers = Some(net.transmit(0, batch).expect("transmit"));
    };
    let (mut buffers, mut frames, mut rounds) = (null_batch(), 0u64, 0u64);
    // A warm-up: the shadow's spares and the ring reach their steady state.
    for _ in 0..4 {
        run(proxy, &mut buffers, &mut 0);
    }
    let measured = time(settings, || {
        run(proxy, &mut buffers, &mut frames);
        rounds += 1;
    });
    let proxied = (frames, rounds);
    let (mut frames, mut rounds) = (0u64, 0u64);
    let baseline = time(settings, || {
        run(plain, &mut buffers, &mut frames);
        rounds += 1;
    });
    drop(buffers);
    // SAFETY: ends the batch begun above.
    unsafe { rrpc::registry::leave_batch() };
    assert_eq!(
        (proxied.0, frames),
        (32 * proxied.1, 32 * rounds),
        "nullnet: a round moved fewer than 32 frames (through the proxy, directly)"
    );
    (measured, baseline)
}

const NULLNET_BASELINE: &str = "same calls on the null device directly";

/// `nullnet` rx + tx through the device's proxy.
pub fn nullnet_crossing(settings: Settings) -> Measurement {
    let (measured, baseline) = nullnet_rows(settings, Via::Crossing, false);
    Measurement {
        name: "nullnet (Net): rx+tx batch of 32, one crossing",
        workload: "interfaces::net::Net receive then transmit of a batch of 32 packet RRefs on a null device with a 64-buffer ring, through its generated proxy",
        baseline_name: NULLNET_BASELINE,
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// `nullnet` rx + tx through `nic-shadow`.
pub fn nullnet_shadow(settings: Settings) -> Measurement {
    let (measured, baseline) = nullnet_rows(settings, Via::Shadow, false);
    Measurement {
        name: "nullnet (Net): rx+tx batch of 32, through nic-shadow",
        workload: "the same receive then transmit through nic-shadow's proxy, the shadow calling the device's (two crossings per call, the shadow's copy of every frame sent)",
        baseline_name: NULLNET_BASELINE,
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// `nullnet` transmit alone through the device's proxy.
pub fn nullnet_tx_crossing(settings: Settings) -> Measurement {
    let (measured, baseline) = nullnet_rows(settings, Via::Crossing, true);
    Measurement {
        name: "nullnet (Net): tx batch of 32, one crossing",
        workload: "interfaces::net::Net transmit of a batch of 32 60-byte frames on a null device, through its generated proxy",
        baseline_name: NULLNET_BASELINE,
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}

/// `nullnet` transmit alone through `nic-shadow`.
pub fn nullnet_tx_shadow(settings: Settings) -> Measurement {
    let (measured, baseline) = nullnet_rows(settings, Via::Shadow, true);
    Measurement {
        name: "nullnet (Net): tx batch of 32, through nic-shadow",
        workload: "the same transmit through nic-shadow's proxy, the shadow calling the device's (two crossings, the shadow's copy of every frame)",
        baseline_name: NULLNET_BASELINE,
        measured,
        baseline,
        iterations: settings.iterations,
        samples: settings.samples,
    }
}
