//! `RRef<T>`: a value on the shared heap with a tracked owner.

use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::exchangeable::Exchangeable;
use crate::registry::{self, Header, NESTED};
use crate::{Owner, RpcError};

/// A value on the shared heap, owned by one domain (or nested inside
/// another `RRef`). Only its holder can reach the value, as with a `Box`;
/// unlike a `Box`, the kernel knows who holds it, so it survives its
/// allocator's death and is reclaimed with its owner's.
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

/// Drop glue for the value of an `RRef<T>` allocation (the memory is the
/// registry's to free).
///
/// # Safety
/// `header` heads a live `RRef<T>` allocation whose value nobody uses.
unsafe fn drop_value<T>(header: NonNull<Header>) {
    let (_, offset) = layout_of::<T>();
    // SAFETY: the value lives at `offset` in this allocation and is dropped
    // once.
    unsafe {
        let value = header.as_ptr().cast::<u8>().add(offset).cast::<T>();
        core::ptr::drop_in_place(value);
    }
}

impl<T: Exchangeable> RRef<T> {
    /// Moves `value` to the shared heap, owned by the running domain. Any
    /// `RRef` inside `value` becomes nested in the new one.
    pub fn try_new(value: T) -> Result<RRef<T>, RpcError> {
        let backend = registry::backend();
        let (layout, offset) = layout_of::<T>();
        value.adopt();
        // From allocation to link the object is nobody's: the domain must
        // not be unwound in between (the memory would leak).
        if layout.size() > registry::MAX_OBJECT {
            return Err(RpcError::OutOfMemory);
        }
        let critical = registry::Critical::enter();
        let memory = backend.alloc(layout).ok_or(RpcError::OutOfMemory)?;
        let owner = backend.current_owner();
        let header = memory.cast::<Header>();
        // SAFETY: fresh memory of `layout`: the header at 0, the value at
        // `offset`, both properly aligned by `Layout::extend`; then the
        // header goes on its owner's list.
        unsafe {
            header
                .as_ptr()
                .write(Header::new(owner, layout, drop_value::<T>, critical.core));
            memory.as_ptr().add(offset).cast::<T>().write(value);
            registry::link(header);
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

    /// The domain incarnation that owns it ([`registry::NESTED`] if it lives
    /// inside another `RRef`).
    pub fn owner(&self) -> Owner {
        self.header().owner.load(Ordering::Acquire)
    }

    /// Gives it to the owner `to` names. Called by proxies when an `RRef`
    /// crosses a call (into the callee, or back to the caller with a
    /// result); see [`Transfer`](crate::Transfer) for who may name an
    /// owner.
    #[doc(hidden)]
    #[inline]
    pub fn move_to(&self, to: &crate::Transfer) {
        // SAFETY: we hold it (a nested one is skipped: owned through its
        // root).
        unsafe { registry::transfer(self.header, to.owner()) };
    }

    pub(crate) fn make_nested(&self) {
        if self.owner() != NESTED {
            self.header().owner.store(NESTED, Ordering::Release);
            // SAFETY: we hold it; the registry takes it off its list.
            unsafe { registry::relink(self.header) };
        }
    }

    /// Makes a nested `RRef` taken out of its root a root again, owned by
    /// the running domain.
    pub fn claim(&self) {
        if self.owner() == NESTED {
            let owner = registry::backend().current_owner();
            self.header().owner.store(owner, Ordering::Release);
            // SAFETY: we hold it; the registry lists it for `owner`.
            unsafe { registry::relink(self.header) };
        }
    }

    /// Marks the value lent for the duration of a call (`&RRef<T>`
    /// arguments): the callee can read it but neither move nor drop it.
    pub fn lend(&self) -> Lent<'_, T> {
        self.header().borrows.fetch_add(1, Ordering::AcqRel);
        Lent { rref: self }
    }

    /// Calls in flight that borrow it.
    pub fn borrows(&self) -> u32 {
        self.header().borrows.load(Ordering::Acquire)
    }

    /// The address a device uses for the value, if the shared heap gives
    /// one (the kernel's does).
    pub fn device_address(&self) -> Option<u64> {
        registry::backend().device_address(self.value_ptr() as *const u8)
    }

    /// Moves the value back off the shared heap.
    pub fn into_inner(self) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: we own the handle; the value is read out once, then the
        // registry frees the memory without dropping it again.
        unsafe {
            let value = this.value_ptr().read();
            registry::release(this.header);
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
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { &mut *self.value_ptr() }
    }
}

impl<T: Exchangeable> Drop for RRef<T> {
    fn drop(&mut self) {
        // SAFETY: the handle is unique and given up here.
        unsafe { registry::destroy(self.header) };
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
