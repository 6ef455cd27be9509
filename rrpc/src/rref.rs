//! `RRef<T>`: a value on the shared heap with a tracked owner.

use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::exchangeable::Exchangeable;
use crate::registry::{self, Header};
use crate::{Owner, RpcError};

/// A value on the shared heap, owned by one domain. Only its holder can
/// reach the value, as with a `Box`; unlike a `Box`, the kernel knows who
/// holds it, so it survives its allocator's death and is reclaimed with its
/// owner's. An `RRef` inside another `RRef`'s value is owned by the same
/// domain as that root (see [`Exchangeable`]).
///
/// No code of any domain runs on an `RRef`'s behalf but its holder's: the
/// value is dropped by the code of the domain that drops it (its own copy
/// of `drop_in_place::<T>`), and a dead domain's objects are freed as
/// memory, with no drop code at all (exchangeable values need none: they
/// hold plain data and `RRef`s, which the registry finds by owner).
pub struct RRef<T: Exchangeable> {
    header: NonNull<Header>,
    _value: PhantomData<T>,
}

// SAFETY: an RRef is a unique handle to its value, like a Box: sending it
// sends the value, sharing it shares `&T`.
unsafe impl<T: Exchangeable + Send> Send for RRef<T> {}
// SAFETY: as above.
unsafe impl<T: Exchangeable + Sync> Sync for RRef<T> {}

fn layout_of<T>() -> (Layout, usize) {
    let (layout, offset) = Layout::new::<Header>()
        .extend(Layout::new::<T>())
        .expect("RRef layout");
    (layout.pad_to_align(), offset)
}

impl<T: Exchangeable> RRef<T> {
    /// Moves `value` to the shared heap, owned by the running domain (as
    /// every `RRef` inside `value` already is).
    pub fn try_new(value: T) -> Result<RRef<T>, RpcError> {
        let backend = registry::backend();
        let (layout, offset) = layout_of::<T>();
        // From allocation to link the object is nobody's: the domain must
        // not be unwound in between (the memory would leak).
        if layout.size() > registry::MAX_OBJECT {
            return Err(RpcError::OutOfMemory);
        }
        let critical = registry::Critical::enter();
        let owner = crate::percpu::owner();
        // SAFETY: the memory is linked to its owner below, inside the same
        // critical section, so it is never untracked when a domain can die.
        let memory = unsafe { backend.alloc(layout) }.ok_or(RpcError::OutOfMemory)?;
        let header = memory.cast::<Header>();
        // SAFETY: fresh memory of `layout`: the header at 0, the value at
        // `offset`, both properly aligned by `Layout::extend`; then the
        // header goes on its owner's list.
        unsafe {
            header
                .as_ptr()
                .write(Header::new(owner, layout, critical.core));
            memory.as_ptr().add(offset).cast::<T>().write(value);
            registry::link_within(&critical, header);
        }
        Ok(RRef {
            header,
            _value: PhantomData,
        })
    }

    /// Like [`try_new`](Self::try_new); panics (crashing the calling domain,
    /// contained) if the shared heap is full.
    pub fn new(value: T) -> RRef<T> {
        Self::try_new(value).expect("shared heap exhausted")
    }

    fn header(&self) -> &Header {
        // SAFETY: the header lives as long as this handle.
        unsafe { self.header.as_ref() }
    }

    fn value_ptr(&self) -> *mut T {
        let (_, offset) = layout_of::<T>();
        // SAFETY: the value is at `offset` in the allocation.
        unsafe { self.header.as_ptr().cast::<u8>().add(offset).cast::<T>() }
    }

    /// The domain incarnation that owns it.
    pub fn owner(&self) -> Owner {
        self.header().owner.load(Ordering::Acquire)
    }

    /// Gives it, and every `RRef` in its value, to the owner `to` names.
    /// Called by proxies when an `RRef` crosses a call (into the callee, or
    /// back to the caller with a result); see [`Transfer`](crate::Transfer)
    /// for who may name an owner (no safe code can).
    #[doc(hidden)]
    #[inline(always)]
    pub fn move_to(&self, to: &crate::Transfer) {
        // SAFETY: we hold it.
        unsafe { registry::transfer(self.header, to.owner(), to.critical_core) };
        if !T::PLAIN {
            (**self).move_roots(to);
        }
    }

    /// Marks the value lent for the duration of a call (`&RRef<T>`
    /// arguments): the callee can read it but neither move nor drop it.
    ///
    /// While lent, the value is *frozen* even for its holder, should the
    /// holder get at it again by forgetting the call (`mem::forget` ends
    /// the borrow, but the callee's future still reads the value, and the
    /// kernel drops that future inside the callee when the holder dies):
    /// changing it panics, dropping it leaves it to be freed when its
    /// owner dies, and no call may move it ([`RpcError::Lent`]).
    pub fn lend(&self) -> Lent<'_, T> {
        self.header().borrows.fetch_add(1, Ordering::AcqRel);
        Lent { rref: self }
    }

    /// Calls in flight that borrow it.
    pub fn borrows(&self) -> u32 {
        self.header().borrows.load(Ordering::Acquire)
    }

    /// Whether it is lent to a call (see [`lend`](Self::lend)).
    #[inline]
    pub fn is_lent(&self) -> bool {
        self.header().borrows.load(Ordering::Relaxed) != 0
    }

    /// A second handle to the same object, for a proxy lending it: the
    /// callee gets a reference to this copy, kept with the call (never in
    /// memory the caller can reuse), and it is never dropped.
    ///
    /// # Safety
    /// The copy is only read through `&`, never dropped, moved or given
    /// away, and lives no longer than the lend (`lend`) it goes with.
    #[doc(hidden)]
    pub unsafe fn alias(&self) -> core::mem::ManuallyDrop<RRef<T>> {
        core::mem::ManuallyDrop::new(RRef {
            header: self.header,
            _value: PhantomData,
        })
    }

    /// The address a device uses for the value, if the shared heap gives
    /// one (the kernel's does).
    pub fn device_address(&self) -> Option<u64> {
        registry::backend().device_address(self.value_ptr() as *const u8)
    }

    /// Moves the value back off the shared heap (any `RRef` in it is
    /// already the running domain's).
    ///
    /// # Panics
    /// If it is lent ([`is_lent`](Self::is_lent)): a callee may still read
    /// it.
    pub fn into_inner(self) -> T {
        if self.is_lent() {
            lent_panic("moved out of");
        }
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: we own the handle; the value is read out once, then the
        // registry frees the memory without dropping it again.
        unsafe {
            let value = this.value_ptr().read();
            registry::free(this.header);
            value
        }
    }
}

impl<T: Exchangeable> Deref for RRef<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the value lives as long as this unique handle.
        unsafe { &*self.value_ptr() }
    }
}

impl<T: Exchangeable> DerefMut for RRef<T> {
    /// # Panics
    /// If it is lent ([`RRef::is_lent`]): a callee may still read it.
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        if self.is_lent() {
            lent_panic("changed");
        }
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { &mut *self.value_ptr() }
    }
}

impl<T: Exchangeable> Drop for RRef<T> {
    fn drop(&mut self) {
        if self.is_lent() {
            // Lent to a call its holder abandoned: a callee may still read
            // it (and everything in it), so it stays, listed under its
            // owner, and goes when the owner dies (after the kernel has
            // dropped the owner's abandoned calls).
            return;
        }
        // SAFETY: the handle is unique and given up here: the value is
        // dropped in place by this domain's own code (if it dies inside,
        // the memory is still on its list and reclaimed), then freed.
        unsafe {
            core::ptr::drop_in_place(self.value_ptr());
            registry::free(self.header);
        }
    }
}

impl<T: Exchangeable + fmt::Debug> fmt::Debug for RRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RRef")
            .field("owner", &self.owner())
            .field("value", &**self)
            .finish()
    }
}

#[cold]
#[inline(never)]
fn lent_panic(what: &str) -> ! {
    panic!("an RRef lent to a call cannot be {what} until the call ends")
}

/// A lent `RRef` (see [`RRef::lend`]).
pub struct Lent<'a, T: Exchangeable> {
    rref: &'a RRef<T>,
}

impl<T: Exchangeable> Deref for Lent<'_, T> {
    type Target = RRef<T>;
    fn deref(&self) -> &RRef<T> {
        self.rref
    }
}

impl<T: Exchangeable> Drop for Lent<'_, T> {
    fn drop(&mut self) {
        self.rref.header().borrows.fetch_sub(1, Ordering::AcqRel);
    }
}
