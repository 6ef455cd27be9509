//! A per-core cache of free small objects in front of a [`DomainHeap`]
//! (which sits behind a lock): frees push onto the cache and allocations pop
//! from it without taking the lock, for one owner at a time.
//!
//! The cache is plain data (the kernel keeps one per core and touches it
//! only from that core, with no locking). It is tagged with the owner
//! (domain incarnation) whose objects it holds; objects of another owner
//! never enter it. When the core switches to another owner's allocations,
//! or a class overflows, the cache hands objects back to the caller to
//! return to the heap under its lock ([`CoreCache::drain`]); if the owner
//! has died meanwhile the caller simply drops them (its heap is gone).
//!
//! [`DomainHeap`]: super::DomainHeap

use super::{CLASSES, class_for};

/// Objects kept per class.
pub const DEPTH: usize = 32;

/// Cached free objects of one owner.
pub struct CoreCache {
    owner: u32,
    lists: [[u64; DEPTH]; CLASSES.len()],
    lengths: [u8; CLASSES.len()],
}

impl Default for CoreCache {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreCache {
    /// An empty cache belonging to nobody (owner 0 is never cached).
    pub const fn new() -> CoreCache {
        CoreCache {
            owner: 0,
            lists: [[0; DEPTH]; CLASSES.len()],
            lengths: [0; CLASSES.len()],
        }
    }

    /// The owner whose objects are cached (0: none).
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// A cached object for `owner` of this size and alignment, if any.
    #[inline]
    pub fn alloc(&mut self, owner: u32, size: usize, align: usize) -> Option<u64> {
        if owner != self.owner {
            return None;
        }
        let class = class_for(size.max(1), align)?;
        let length = self.lengths[class] as usize;
        if length == 0 {
            return None;
        }
        self.lengths[class] -= 1;
        Some(self.lists[class][length - 1])
    }

    /// Keeps a freed object of `owner` if there is room; returns false if
    /// the caller must free it to the heap instead.
    #[inline]
    pub fn free(&mut self, owner: u32, address: u64, size: usize, align: usize) -> bool {
        if owner != self.owner || owner == 0 {
            return false;
        }
        let Some(class) = class_for(size.max(1), align) else {
            return false;
        };
        let length = self.lengths[class] as usize;
        if length == DEPTH {
            return false;
        }
        self.lists[class][length] = address;
        self.lengths[class] += 1;
        true
    }

    /// Empties the cache, handing every object (with its class size, as a
    /// size and alignment that map back to the same class) to `release`,
    /// then makes it belong to `new_owner`.
    pub fn drain(&mut self, new_owner: u32, mut release: impl FnMut(u32, u64, usize, usize)) {
        for (class, &size) in CLASSES.iter().enumerate() {
            for &address in &self.lists[class][..self.lengths[class] as usize] {
                release(self.owner, address, size, 1);
            }
            self.lengths[class] = 0;
        }
        self.owner = new_owner;
    }

    /// Objects currently cached.
    pub fn len(&self) -> usize {
        self.lengths.iter().map(|&l| l as usize).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
