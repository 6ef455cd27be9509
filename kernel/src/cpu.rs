//! Per-core data, reached through the GS base register.
//!
//! Each core's `PerCpu` is allocated once and never freed; its first word
//! points to itself so `gs:[0]` yields it in one instruction. Fields in
//! `Cell`s are touched only by their own core (with interrupts off where an
//! interrupt handler touches them too); anything another core reads is
//! atomic.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

pub const MAX_CPUS: usize = 64;

#[repr(C)]
pub struct PerCpu {
    self_ptr: *const PerCpu,
    // The next three are read and written inline, at fixed offsets from
    // GS, by every copy of `rrpc` (the registry's critical sections; see
    // `rrpc::percpu` and the assertions below).
    /// Dense core index: 0 for the bootstrap processor; also the index of
    /// this core's executor.
    pub index: usize,
    /// The domain incarnation whose code runs now (0: the kernel). Decides
    /// which heap an allocation comes from.
    pub(crate) current_owner: Cell<executor::OwnerId>,
    /// Nesting depth of kernel services entered from a domain (heap growth,
    /// page-table updates) and of the registry's critical sections: a
    /// fault there is the kernel's, and the watchdog waits until it is
    /// over.
    pub(crate) kernel_section: Cell<u32>,
    /// Innermost crash-containment continuation on this core (also read
    /// and written inline by `rrpc`: a proxy's domain entry links its
    /// frame here).
    pub(crate) catch_top: Cell<*mut ()>,
    pub apic_id: u32,
    /// How many interrupt handlers are running on this core.
    pub(crate) irq_depth: Cell<u32>,
    pub ticks: AtomicU64,
    pub online: AtomicBool,
    /// Free small objects of one domain, reused without the heap's lock
    /// (see `domain::heap`); touched only by this core, in kernel sections.
    pub(crate) heap_cache: core::cell::UnsafeCell<kcore::domheap::CoreCaches>,
    /// Free shared-heap objects, the same way (see `shared_heap`).
    pub(crate) shared_cache: core::cell::UnsafeCell<kcore::domheap::CoreCache>,
    /// Shared-heap bytes allocated minus freed on this core (only this
    /// core writes it; `shared_heap::usage` sums all cores).
    pub(crate) shared_bytes: core::sync::atomic::AtomicI64,
    /// Task polls done by this core's executor (for `cpus`).
    pub polls: AtomicU64,
    /// TSC ticks spent halted (for `cpus`).
    pub idle_tsc: AtomicU64,
    /// Set while the core is halted (so a tick that wakes it counts as
    /// idle in `samples`).
    pub(crate) halted: AtomicBool,
    /// Timer ticks that found each domain slot running on this core (slot
    /// 0: the kernel), and those that found the core halted: a profile by
    /// domain (`prof`). A domain's calls into another count for the one
    /// whose code runs.
    pub samples: [AtomicU64; crate::domain::MAX_SLOTS],
    pub idle_samples: AtomicU64,
    /// `ticks` when the executor's current batch of polls began.
    pub(crate) batch_tick: Cell<u64>,
    /// Each domain's share of this core (see `share`).
    pub(crate) shares: crate::share::Buckets,
}

// SAFETY: see the module doc: `Cell` fields are only used by the owning
// core; everything shared is atomic.
unsafe impl Sync for PerCpu {}

// `rrpc` reads (and its proxies' entries write) these inline through GS
// (`rrpc::percpu::offsets`).
const _: () = {
    assert!(core::mem::offset_of!(PerCpu, self_ptr) == 0);
    assert!(core::mem::offset_of!(PerCpu, index) == rrpc::percpu::offsets::INDEX);
    assert!(core::mem::offset_of!(PerCpu, current_owner) == rrpc::percpu::offsets::OWNER);
    assert!(core::mem::size_of::<executor::OwnerId>() == 4);
    assert!(core::mem::offset_of!(PerCpu, kernel_section) == rrpc::percpu::offsets::SECTION);
    assert!(core::mem::offset_of!(PerCpu, catch_top) == rrpc::percpu::offsets::TOP);
};

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// The bootstrap processor's record lives in `.bss` so that it exists
/// before the heap does.
static mut BSP: PerCpu = PerCpu::new(0, 0);

impl PerCpu {
    const fn new(index: usize, apic_id: u32) -> PerCpu {
        PerCpu {
            self_ptr: core::ptr::null(),
            index,
            apic_id,
            catch_top: Cell::new(core::ptr::null_mut()),
            irq_depth: Cell::new(0),
            current_owner: Cell::new(executor::OwnerId::KERNEL),
            kernel_section: Cell::new(0),
            heap_cache: core::cell::UnsafeCell::new(kcore::domheap::CoreCaches::new()),
            shared_cache: core::cell::UnsafeCell::new(kcore::domheap::CoreCache::new()),
            shared_bytes: core::sync::atomic::AtomicI64::new(0),
            ticks: AtomicU64::new(0),
            online: AtomicBool::new(false),
            polls: AtomicU64::new(0),
            idle_tsc: AtomicU64::new(0),
            halted: AtomicBool::new(false),
            samples: [const { AtomicU64::new(0) }; crate::domain::MAX_SLOTS],
            idle_samples: AtomicU64::new(0),
            batch_tick: Cell::new(0),
            shares: crate::share::Buckets::new(),
        }
    }
}

fn install(cpu: *mut PerCpu) {
    // SAFETY: `cpu` points to a PerCpu that lives forever; we set its self
    // pointer before publishing it and then make GS point at it.
    unsafe {
        (*cpu).self_ptr = cpu;
        x86_64::registers::model_specific::GsBase::write(x86_64::VirtAddr::new(cpu as u64));
        CPUS[(*cpu).index].store(cpu, Ordering::Release);
        (*cpu).online.store(true, Ordering::Release);
    }
    COUNT.fetch_max(
        // SAFETY: as above.
        unsafe { (*cpu).index } + 1,
        Ordering::AcqRel,
    );
}

/// Sets up the BSP's per-core data. First thing `kmain_bsp` does.
pub fn init_bsp() {
    install(&raw mut BSP);
}

/// A stand-in record for an application processor between its first
/// instruction and `init_ap` (cores start one at a time), so that `current()`
/// is valid even for the allocation that creates the real record.
static mut AP_BOOT: PerCpu = PerCpu::new(usize::MAX, 0);

/// Points GS at the stand-in record. First thing an AP does.
pub fn init_ap_boot() {
    let record = &raw mut AP_BOOT;
    // SAFETY: APs start one at a time, so only one core uses AP_BOOT, and
    // only until `init_ap`; its self pointer is set before GS points at it.
    unsafe {
        (*record).self_ptr = record;
        x86_64::registers::model_specific::GsBase::write(x86_64::VirtAddr::new(record as u64));
    }
}

/// Sets up an application processor's per-core data (on that processor).
pub fn init_ap(index: usize, apic_id: u32) {
    let cpu = alloc::boxed::Box::leak(alloc::boxed::Box::new(PerCpu::new(index, apic_id)));
    install(cpu);
}

pub(crate) fn set_bsp_apic_id(apic_id: u32) {
    // SAFETY: called once on the BSP during boot, before other cores run.
    unsafe {
        let bsp = &raw mut BSP;
        (*bsp).apic_id = apic_id;
    }
}

/// This core's data.
#[inline(always)]
pub fn current() -> &'static PerCpu {
    let ptr: *const PerCpu;
    // SAFETY: GS points at this core's PerCpu from the first instructions of
    // `kmain_bsp`/`ap_entry` onwards, and its first field is its address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        &*ptr
    }
}

pub fn get(index: usize) -> Option<&'static PerCpu> {
    let ptr = CPUS.get(index)?.load(Ordering::Acquire);
    // SAFETY: published pointers refer to leaked, never-freed PerCpus.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Number of cores brought up so far.
pub fn count() -> usize {
    COUNT.load(Ordering::Acquire)
}

pub fn all() -> impl Iterator<Item = &'static PerCpu> {
    (0..count()).filter_map(get)
}

/// Runs `f` as the kernel on behalf of whatever domain is current: its
/// allocations come from the kernel heap, a fault in it is fatal (it may
/// hold kernel locks), and the watchdog waits until it is over.
pub fn kernel_section<R>(f: impl FnOnce() -> R) -> R {
    let cpu = current();
    let owner = cpu.current_owner.replace(executor::OwnerId::KERNEL);
    cpu.kernel_section.set(cpu.kernel_section.get() + 1);
    let result = f();
    cpu.kernel_section.set(cpu.kernel_section.get() - 1);
    cpu.current_owner.set(owner);
    result
}

/// Marks a section of trusted code run on behalf of the current domain
/// (the RRef registry holding a lock) that the watchdog must not unwind;
/// unlike [`kernel_section`], allocations still belong to the domain.
/// Pairs with [`leave_critical`].
/// Returns this core's index.
#[inline]
pub fn enter_critical() -> usize {
    let cpu = current();
    cpu.kernel_section.set(cpu.kernel_section.get() + 1);
    cpu.index
}

/// Ends a section started by [`enter_critical`].
#[inline]
pub fn leave_critical() {
    let cpu = current();
    // Saturating: an unbalanced leave (a bug in trusted code; domains
    // cannot call it) must not wrap the count and make every later domain
    // fault look like a kernel one.
    cpu.kernel_section
        .set(cpu.kernel_section.get().saturating_sub(1));
}

/// The domain incarnation running on this core (0: the kernel).
pub fn current_owner() -> executor::OwnerId {
    rrpc::percpu::owner()
}

/// Makes `owner` the running incarnation on this core (domain entry and
/// exit): one store through GS.
#[inline(always)]
pub(crate) fn set_current_owner(owner: executor::OwnerId) {
    // SAFETY: GS points at this core's record (see `current`), whose
    // `current_owner` is at `OWNER` (asserted above); only this core
    // writes it.
    unsafe {
        core::arch::asm!(
            "mov gs:[{off}], {:e}",
            in(reg) owner.to_bits(),
            off = const rrpc::percpu::offsets::OWNER,
            options(nostack, preserves_flags),
        );
    }
}

/// This core's innermost crash-containment continuation: one load
/// through GS.
#[inline(always)]
pub(crate) fn catch_top() -> *mut () {
    let top: *mut ();
    // SAFETY: as in `set_current_owner`, for `catch_top`.
    unsafe {
        core::arch::asm!(
            "mov {}, gs:[{off}]",
            out(reg) top,
            off = const core::mem::offset_of!(PerCpu, catch_top),
            options(nostack, readonly, preserves_flags),
        );
    }
    top
}

/// Sets what [`catch_top`] returns.
#[inline(always)]
pub(crate) fn set_catch_top(frame: *mut ()) {
    // SAFETY: as in `catch_top`.
    unsafe {
        core::arch::asm!(
            "mov gs:[{off}], {}",
            in(reg) frame,
            off = const core::mem::offset_of!(PerCpu, catch_top),
            options(nostack, preserves_flags),
        );
    }
}
