//! The three words of the running core that the registry reads and writes
//! on every critical section: the core's index, the domain incarnation
//! that runs, and the depth of sections during which that domain must not
//! be unwound.
//!
//! In the kernel (`target_os = "none"`) they are fields of the kernel's
//! per-core record, at the fixed offsets below from the `GS` base, which
//! points at that record on every core from the kernel's first
//! instructions on. Every copy of this crate (the kernel's and each
//! separately built domain image's) reads them inline, as the kernel's own
//! code does: a section is one increment and one decrement, with no call
//! through the [`Backend`](crate::Backend) (which now only provides memory).
//! The kernel asserts at compile time that its record has these offsets.
//!
//! On the host, they are one thread's (a thread plays a core), in a
//! thread-local; tests set them with [`set_owner`] and [`set_core`]. The
//! host benchmark builds this crate with `--cfg rrpc_gs` instead: the
//! kernel's `GS`-relative code, over a record the benchmark lays out as the
//! kernel does and points `GS` at, so that what it times is the kernel's
//! instruction sequence.
//!
//! Only this crate enters and leaves sections ([`Section`]); the words are
//! the kernel's, and a section left unbalanced would make every later
//! fault of the running domain look like the kernel's.

use crate::Owner;

/// Offsets from the `GS` base (the kernel's per-core record).
pub mod offsets {
    /// The core's dense index (`usize`).
    pub const INDEX: usize = 8;
    /// The running incarnation ([`Owner`](crate::Owner), 4 bytes).
    pub const OWNER: usize = 16;
    /// Depth of sections the running domain must not be unwound in (`u32`).
    pub const SECTION: usize = 20;
    /// The innermost crash-containment frame (`*mut ()`, a `cont::Frame`):
    /// what a proxy's inline domain entry links its frame to.
    pub const TOP: usize = 24;
}

#[cfg(any(target_os = "none", rrpc_gs))]
mod imp {
    use super::offsets;
    use crate::Owner;

    /// The running core's index.
    #[inline(always)]
    pub fn core() -> usize {
        let index: usize;
        // SAFETY: `GS` points at the kernel's per-core record, whose word
        // at `INDEX` is the core's index (asserted by the kernel).
        unsafe {
            core::arch::asm!(
                "mov {}, gs:[{off}]",
                out(reg) index,
                off = const offsets::INDEX,
                options(nostack, readonly, preserves_flags, pure),
            );
        }
        index
    }

    /// The incarnation that runs on this core now.
    #[inline(always)]
    pub fn owner() -> Owner {
        let raw: u32;
        // SAFETY: as in `core`; the 4 bytes at `OWNER` are the running
        // incarnation, written only by this core.
        unsafe {
            core::arch::asm!(
                "mov {:e}, gs:[{off}]",
                out(reg) raw,
                off = const offsets::OWNER,
                options(nostack, readonly, preserves_flags),
            );
        }
        Owner::from_bits(raw)
    }

    /// Enters a section; returns the core's index.
    ///
    /// # Safety
    /// Pairs with [`leave`] on this core (see [`super::Section`]).
    #[inline(always)]
    pub unsafe fn enter() -> usize {
        // One instruction: an interrupt on this core sees the count either
        // before or after, never torn. The compiler must not move memory
        // accesses of the section above it (no `nomem`).
        // SAFETY: as in `core`; only this core writes its count.
        unsafe {
            core::arch::asm!(
                "inc dword ptr gs:[{off}]",
                off = const offsets::SECTION,
                options(nostack),
            );
        }
        core()
    }

    /// Leaves a section.
    ///
    /// # Safety
    /// Pairs with an earlier [`enter`] on this core.
    #[inline(always)]
    pub unsafe fn leave() {
        // SAFETY: as in `enter`.
        unsafe {
            core::arch::asm!(
                "dec dword ptr gs:[{off}]",
                off = const offsets::SECTION,
                options(nostack),
            );
        }
    }

    /// Writes the owner word (a proxy's inline domain entry and exit;
    /// not public in a kernel build).
    #[inline(always)]
    pub fn set_owner(owner: Owner) {
        // SAFETY: as in `owner`.
        unsafe {
            core::arch::asm!(
                "mov gs:[{off}], {:e}",
                in(reg) owner.to_bits(),
                off = const offsets::OWNER,
                options(nostack, preserves_flags),
            );
        }
    }

    /// The innermost crash-containment frame on this core.
    #[inline(always)]
    pub fn top() -> *mut () {
        let top: *mut ();
        // SAFETY: as in `core`; the word at `TOP` is the innermost frame,
        // written only by this core.
        unsafe {
            core::arch::asm!(
                "mov {}, gs:[{off}]",
                out(reg) top,
                off = const offsets::TOP,
                options(nostack, readonly, preserves_flags),
            );
        }
        top
    }

    /// Sets what [`top`] returns (a proxy's inline domain entry and exit).
    #[inline(always)]
    pub fn set_top(frame: *mut ()) {
        // SAFETY: as in `top`.
        unsafe {
            core::arch::asm!(
                "mov gs:[{off}], {}",
                in(reg) frame,
                off = const offsets::TOP,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Host benchmark only: writes the index word.
    #[cfg(rrpc_gs)]
    pub fn set_core(core: usize) {
        // SAFETY: as in `core`.
        unsafe {
            core::arch::asm!(
                "mov gs:[{off}], {}",
                in(reg) core,
                off = const offsets::INDEX,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Host benchmark only: the section depth.
    #[cfg(rrpc_gs)]
    pub fn depth() -> u32 {
        let depth: u32;
        // SAFETY: as in `core`.
        unsafe {
            core::arch::asm!(
                "mov {:e}, gs:[{off}]",
                out(reg) depth,
                off = const offsets::SECTION,
                options(nostack, readonly, preserves_flags),
            );
        }
        depth
    }
}

#[cfg(not(any(target_os = "none", rrpc_gs)))]
mod imp {
    use crate::Owner;
    use core::cell::Cell;

    /// One thread's words, in one thread-local (one `fs`-relative address
    /// for all three, as the kernel's are one `gs`-relative record).
    pub struct Words {
        core: Cell<usize>,
        owner: Cell<Owner>,
        section: Cell<u32>,
        top: Cell<*mut ()>,
    }

    std::thread_local! {
        static WORDS: Words = const {
            Words {
                core: Cell::new(0),
                owner: Cell::new(Owner::KERNEL),
                section: Cell::new(0),
                top: Cell::new(core::ptr::null_mut()),
            }
        };
    }

    /// This thread's words (they live as long as the thread; every use is
    /// on it).
    #[inline(always)]
    fn words() -> &'static Words {
        // SAFETY: a thread-local without destructor lives until the thread
        // ends, and the reference never leaves this module's functions,
        // each of which runs on the thread and drops it before returning.
        WORDS.with(|words| unsafe { &*(words as *const Words) })
    }

    #[inline(always)]
    pub fn core() -> usize {
        words().core.get()
    }

    #[inline(always)]
    pub fn owner() -> Owner {
        words().owner.get()
    }

    /// # Safety
    /// Pairs with [`leave`].
    #[inline(always)]
    pub unsafe fn enter() -> usize {
        let words = words();
        words.section.set(words.section.get() + 1);
        words.core.get()
    }

    /// # Safety
    /// Pairs with an earlier [`enter`].
    #[inline(always)]
    pub unsafe fn leave() {
        let words = words();
        words.section.set(words.section.get() - 1);
    }

    #[inline(always)]
    pub fn set_owner(owner: Owner) {
        words().owner.set(owner);
    }

    #[allow(dead_code)] // exposed with the test kit only
    pub fn set_core(core: usize) {
        words().core.set(core);
    }

    #[allow(dead_code)] // exposed with the test kit only
    pub fn depth() -> u32 {
        words().section.get()
    }

    #[inline(always)]
    pub fn top() -> *mut () {
        words().top.get()
    }

    #[inline(always)]
    pub fn set_top(frame: *mut ()) {
        words().top.set(frame)
    }
}

/// The running core's index: the home shard of new objects. Contexts that
/// may run at the same time and hold a batch
/// ([`enter_batch`](crate::registry::enter_batch)) have distinct indices.
#[inline(always)]
pub fn core() -> usize {
    imp::core()
}

/// The domain incarnation that runs now (new objects belong to it).
#[inline(always)]
pub fn owner() -> Owner {
    imp::owner()
}

/// Makes this thread run as `owner` (host only: in the kernel, domain
/// entry and exit write the word).
#[cfg(all(not(target_os = "none"), any(test, feature = "host-kit", rrpc_gs)))]
#[inline(always)]
pub fn set_owner(owner: Owner) {
    imp::set_owner(owner)
}

/// Makes this thread play core `core` (host only).
#[cfg(all(not(target_os = "none"), any(test, feature = "host-kit", rrpc_gs)))]
pub fn set_core(core: usize) {
    imp::set_core(core)
}

/// The innermost domain-entry continuation on this thread (host only: the
/// kernel's per-core record has its own; host runtimes keep theirs here,
/// in the same thread-local record as the owner they switch).
#[cfg(all(not(target_os = "none"), any(test, feature = "host-kit", rrpc_gs)))]
#[inline(always)]
pub fn top() -> *mut () {
    imp::top()
}

/// Sets what [`top`] returns (host only).
#[cfg(all(not(target_os = "none"), any(test, feature = "host-kit", rrpc_gs)))]
#[inline(always)]
pub fn set_top(frame: *mut ()) {
    imp::set_top(frame)
}

/// How deep in sections this thread is (host only; tests).
#[cfg(all(not(target_os = "none"), any(test, feature = "host-kit", rrpc_gs)))]
pub fn section_depth() -> u32 {
    imp::depth()
}

/// A section during which the running domain must not be unwound
/// asynchronously (the registry is updating its lists), for as long as
/// the value lives. Nests. Code inside neither panics nor loops: a fault
/// in a section is the kernel's.
pub(crate) struct Section {
    /// The running core's index.
    pub(crate) core: usize,
}

impl Section {
    #[inline(always)]
    pub(crate) fn enter() -> Section {
        // SAFETY: left when the guard drops, on this core (guards live on
        // the stack of registry code that neither panics nor loops, and
        // are never moved to another task).
        let core = unsafe { imp::enter() };
        Section { core }
    }
}

impl Drop for Section {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: pairs with `enter`.
        unsafe { imp::leave() }
    }
}

/// This core's words as `cont`'s gate reads and writes them: what a
/// proxy's inline domain entry ([`crate::proxy`]) runs with. Crate-private:
/// only generated proxies' entries (behind an `EntryCap`) switch the
/// running incarnation and link frames.
pub(crate) struct ThisCore;

impl cont::Core for ThisCore {
    #[inline(always)]
    fn top(&self) -> *mut () {
        imp::top()
    }
    #[inline(always)]
    fn set_top(&self, frame: *mut ()) {
        imp::set_top(frame)
    }
    #[inline(always)]
    fn owner(&self) -> Owner {
        imp::owner()
    }
    #[inline(always)]
    fn set_owner(&self, owner: Owner) {
        imp::set_owner(owner)
    }
}
