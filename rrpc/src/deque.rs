//! `RRefDeque`: a fixed-capacity ring of `RRef`s, the batch container that
//! moves buffers to and from devices without copying.

use crate::exchangeable::Exchangeable;
use crate::rref::RRef;

/// A ring of up to `N` `RRef<T>`s. Put it in an `RRef` to pass a batch
/// between domains: the items move with it (they are owned by whoever
/// holds the deque, like everything nested in an `RRef`).
pub struct RRefDeque<T: Exchangeable, const N: usize> {
    items: [Option<RRef<T>>; N],
    head: usize,
    len: usize,
}

impl<T: Exchangeable, const N: usize> Default for RRefDeque<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Exchangeable, const N: usize> RRefDeque<T, N> {
    pub fn new() -> Self {
        RRefDeque {
            items: core::array::from_fn(|_| None),
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// Appends `item`; gives it back if the ring is full.
    pub fn push_back(&mut self, item: RRef<T>) -> Result<(), RRef<T>> {
        if self.len == N {
            return Err(item);
        }
        self.items[(self.head + self.len) % N] = Some(item);
        self.len += 1;
        Ok(())
    }

    /// Removes the oldest item.
    pub fn pop_front(&mut self) -> Option<RRef<T>> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head].take();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }

    pub fn iter(&self) -> impl Iterator<Item = &RRef<T>> {
        (0..self.len).filter_map(move |i| self.items[(self.head + i) % N].as_ref())
    }

    /// The items, oldest first, to read and change in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut RRef<T>> {
        let (head, len) = (self.head, self.len);
        // Items in ring order: the run from `head`, then the wrapped run.
        let (wrapped, from_head) = self.items.split_at_mut(head);
        let first = from_head.len().min(len);
        from_head[..first]
            .iter_mut()
            .chain(wrapped[..len - first].iter_mut())
            .filter_map(Option::as_mut)
    }
}

// SAFETY: every item is an `RRef` the deque holds, and each is moved.
#[diagnostic::do_not_recommend]
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for RRefDeque<T, N> {
    fn move_roots(&self, to: &crate::Transfer) {
        self.iter().for_each(|item| item.move_to(to));
    }
    fn any_lent(&self) -> bool {
        self.iter().any(Exchangeable::any_lent)
    }
}

/// A fixed array of up to `N` optional `RRef<T>`s (slots addressed by
/// index). Like [`RRefDeque`], its items move with it.
pub struct RRefArray<T: Exchangeable, const N: usize> {
    items: [Option<RRef<T>>; N],
}

impl<T: Exchangeable, const N: usize> Default for RRefArray<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Exchangeable, const N: usize> RRefArray<T, N> {
    pub fn new() -> Self {
        RRefArray {
            items: core::array::from_fn(|_| None),
        }
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub fn get(&self, index: usize) -> Option<&RRef<T>> {
        self.items.get(index)?.as_ref()
    }

    /// Stores `item` at `index`, returning what was there (now the
    /// caller's). An index out of range gives `item` back as `Err`.
    pub fn set(&mut self, index: usize, item: RRef<T>) -> Result<Option<RRef<T>>, RRef<T>> {
        let Some(slot) = self.items.get_mut(index) else {
            return Err(item);
        };
        Ok(slot.replace(item))
    }

    /// Takes the item at `index`.
    pub fn take(&mut self, index: usize) -> Option<RRef<T>> {
        self.items.get_mut(index)?.take()
    }
}

// SAFETY: every item is an `RRef` the array holds, and each is moved.
#[diagnostic::do_not_recommend]
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for RRefArray<T, N> {
    fn move_roots(&self, to: &crate::Transfer) {
        self.items
            .iter()
            .flatten()
            .for_each(|item| item.move_to(to));
    }
    fn any_lent(&self) -> bool {
        self.items.iter().flatten().any(Exchangeable::any_lent)
    }
}
