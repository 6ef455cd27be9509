//! The benchmark's stand-in for the kernel's per-core record.
//!
//! The kernel reaches its per-core record through `GS` (its first word is
//! its own address), and `rrpc` reads three words of it inline at fixed
//! offsets (`rrpc::percpu::offsets`): the core's index, the running domain
//! and the depth of registry critical sections. `make bench` builds this
//! crate and `rrpc` with `--cfg rrpc_gs`, which compiles `rrpc`'s kernel
//! code path for the host; [`install`] then lays out a record the same way
//! and points this thread's `GS` base at it (`arch_prctl(ARCH_SET_GS)`),
//! so the timed code runs the kernel's instruction sequences. Without the
//! cfg (`cargo test`, clippy) the same API is served by `rrpc`'s
//! thread-local words.

use rrpc::Owner as OwnerId;

/// The kernel's record, as far as anything here reads it.
#[cfg(rrpc_gs)]
#[repr(C)]
pub struct Record {
    self_ptr: *const Record,
    index: usize,
    owner: core::cell::Cell<OwnerId>,
    section: core::cell::Cell<u32>,
    /// The innermost continuation (the kernel's `catch_top`).
    top: core::cell::Cell<*mut ()>,
    /// Free shared-heap objects of this core, as the kernel's record keeps
    /// them (`PerCpu::shared_cache`): see [`with_shared_cache`].
    shared_cache: core::cell::UnsafeCell<kcore::domheap::CoreCache>,
}

#[cfg(rrpc_gs)]
const _: () = {
    assert!(core::mem::offset_of!(Record, index) == rrpc::percpu::offsets::INDEX);
    assert!(core::mem::offset_of!(Record, owner) == rrpc::percpu::offsets::OWNER);
    assert!(core::mem::offset_of!(Record, section) == rrpc::percpu::offsets::SECTION);
    assert!(core::mem::offset_of!(Record, top) == rrpc::percpu::offsets::TOP);
};

/// Points this thread's `GS` base at a new record (core 0, the kernel
/// running), once per thread; without `rrpc_gs`, nothing to do. Every
/// binary of this crate calls it first, on every thread that runs `rrpc`
/// code.
pub fn install() {
    #[cfg(rrpc_gs)]
    {
        if gs_base() != 0 {
            return;
        }
        let record: &'static mut Record = Box::leak(Box::new(Record {
            self_ptr: core::ptr::null(),
            index: 0,
            owner: core::cell::Cell::new(OwnerId::KERNEL),
            section: core::cell::Cell::new(0),
            top: core::cell::Cell::new(core::ptr::null_mut()),
            shared_cache: core::cell::UnsafeCell::new(kcore::domheap::CoreCache::new()),
        }));
        record.self_ptr = record;
        const ARCH_SET_GS: u64 = 0x1001;
        // SAFETY: `ARCH_SET_GS` only sets this thread's GS base (Linux keeps
        // it across context switches); the record is leaked, so it outlives
        // the thread.
        let result = unsafe { arch_prctl(ARCH_SET_GS, record as *const Record as u64) };
        assert_eq!(result, 0, "arch_prctl(ARCH_SET_GS) failed");
    }
}

/// This thread's GS base (0: not installed).
#[cfg(rrpc_gs)]
fn gs_base() -> u64 {
    const ARCH_GET_GS: u64 = 0x1004;
    let mut base: u64 = 0;
    // SAFETY: `ARCH_GET_GS` writes the 8 bytes at the address it is given.
    let result = unsafe { arch_prctl(ARCH_GET_GS, &raw mut base as u64) };
    if result == 0 { base } else { 0 }
}

/// The `arch_prctl` system call: 0 or a negative error number.
///
/// # Safety
/// What `code` does with `argument` must be sound (see each caller).
#[cfg(rrpc_gs)]
unsafe fn arch_prctl(code: u64, argument: u64) -> i64 {
    const SYS_ARCH_PRCTL: i64 = 158;
    let result: i64;
    // SAFETY: forwarded; the system call clobbers only rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => result,
            in("rdi") code,
            in("rsi") argument,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// The innermost continuation, as the kernel's `cpu::catch_top`: one load
/// through `GS`.
#[cfg(rrpc_gs)]
#[inline(always)]
fn top() -> *mut () {
    let top: *mut ();
    // SAFETY: `install` pointed GS at a leaked `Record` (every binary
    // installs it before any benchmark runs); `top` is at this offset.
    unsafe {
        core::arch::asm!(
            "mov {}, gs:[{off}]",
            out(reg) top,
            off = const core::mem::offset_of!(Record, top),
            options(nostack, readonly, preserves_flags),
        );
    }
    top
}

/// Sets what [`top`] returns.
#[cfg(rrpc_gs)]
#[inline(always)]
fn set_top(frame: *mut ()) {
    // SAFETY: as in `top`.
    unsafe {
        core::arch::asm!(
            "mov gs:[{off}], {}",
            in(reg) frame,
            off = const core::mem::offset_of!(Record, top),
            options(nostack, preserves_flags),
        );
    }
}

/// The per-core record as `cont`'s gate sees it (`cont::Core`), zero-sized:
/// everything is in this thread's record.
pub struct HostCore;

impl HostCore {
    /// This thread's record, running `owner`.
    pub fn new(owner: OwnerId) -> HostCore {
        install();
        rrpc::percpu::set_owner(owner);
        HostCore
    }
}

/// As the kernel's (`catch::ThisCore`): with `rrpc_gs`, each word one
/// `GS`-relative access; without, `rrpc`'s thread-local words.
impl cont::Core for HostCore {
    #[inline]
    fn top(&self) -> *mut () {
        top()
    }
    #[inline]
    fn set_top(&self, frame: *mut ()) {
        set_top(frame)
    }
    #[inline]
    fn owner(&self) -> OwnerId {
        rrpc::percpu::owner()
    }
    #[inline]
    fn set_owner(&self, owner: OwnerId) {
        rrpc::percpu::set_owner(owner)
    }
}

#[cfg(not(rrpc_gs))]
use rrpc::percpu::{set_top, top};

/// Runs `f` on this core's cache of free shared-heap objects: with
/// `rrpc_gs`, the one in the record `GS` points at, found as the kernel
/// finds its own (`gs:[0]` is the record's address); without, a
/// thread-local. (A thread-local `RefCell` was what the benchmark's heap
/// used before session 13; a change in another crate once moved its
/// accessors out of line and added 80 instructions to every `RRef`
/// allocation and drop, none of them the kernel's.)
#[inline(always)]
pub fn with_shared_cache<R>(f: impl FnOnce(&mut kcore::domheap::CoreCache) -> R) -> R {
    #[cfg(rrpc_gs)]
    {
        let record: *const Record;
        // SAFETY: `install` pointed GS at a leaked `Record` whose first word
        // is its own address (every binary installs it before any
        // benchmark runs).
        unsafe {
            core::arch::asm!(
                "mov {}, gs:[0]",
                out(reg) record,
                options(nostack, readonly, preserves_flags),
            );
        }
        // SAFETY: only this thread uses its record, and `f` does not call
        // back in here (the heap's callers do not nest), so the borrow is
        // unique for its duration.
        f(unsafe { &mut *(*record).shared_cache.get() })
    }
    #[cfg(not(rrpc_gs))]
    {
        std::thread_local! {
            static SHARED_CACHE: core::cell::RefCell<kcore::domheap::CoreCache> =
                const { core::cell::RefCell::new(kcore::domheap::CoreCache::new()) };
        }
        SHARED_CACHE.with_borrow_mut(f)
    }
}
