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

/// Owners a core caches objects for at once.
pub const WAYS: usize = 4;

/// A core's caches for several owners at once ([`WAYS`] of
/// [`CoreCache`]): domains that call each other on one core (a caller and
/// its callee allocating in turn) each keep their own cache, where a single
/// cache would stay with whichever owner filled it first and send the
/// others to the heap's lock on every allocation.
///
/// Allocation uses the owner's way if it has one. A free without a way
/// takes one over: never used, empty, or belonging to an owner that has
/// died (whose objects vanished with its heap and are dropped, not freed).
/// A live owner's objects are never evicted: with every way held by a live
/// owner with objects, the free goes to the heap instead (the caller's
/// fallback), as it would without a cache.
pub struct CoreCaches {
    owners: [u32; WAYS],
    ways: [CoreCache; WAYS],
}

impl Default for CoreCaches {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreCaches {
    /// Caches for nobody yet.
    pub const fn new() -> CoreCaches {
        CoreCaches {
            owners: [0; WAYS],
            ways: [const { CoreCache::new() }; WAYS],
        }
    }

    #[inline]
    fn way_of(&self, owner: u32) -> Option<usize> {
        if owner == 0 {
            return None;
        }
        self.owners.iter().position(|&o| o == owner)
    }

    /// A cached object for `owner`, if any.
    #[inline]
    pub fn alloc(&mut self, owner: u32, size: usize, align: usize) -> Option<u64> {
        let way = self.way_of(owner)?;
        self.ways[way].alloc(owner, size, align)
    }

    /// Keeps a freed object of `owner` if there is room (taking over a way
    /// if `owner` has none: one that is unused, empty, or whose owner is
    /// not `alive`); false if the caller must free it to the heap.
    #[inline]
    pub fn free(
        &mut self,
        owner: u32,
        address: u64,
        size: usize,
        align: usize,
        alive: impl Fn(u32) -> bool,
    ) -> bool {
        if owner == 0 {
            return false;
        }
        let way = match self.way_of(owner) {
            Some(way) => way,
            None => match self.take_over(owner, alive) {
                Some(way) => way,
                None => return false,
            },
        };
        self.ways[way].free(owner, address, size, align)
    }

    /// A way for `owner`: unused first, then empty, then a dead owner's.
    #[cold]
    fn take_over(&mut self, owner: u32, alive: impl Fn(u32) -> bool) -> Option<usize> {
        let way = (0..WAYS)
            .find(|&w| self.owners[w] == 0)
            .or_else(|| (0..WAYS).find(|&w| self.ways[w].is_empty()))
            .or_else(|| (0..WAYS).find(|&w| !alive(self.owners[w])))?;
        // A dead owner's objects vanished with its heap: dropped, not
        // freed (its slot may already hold a new incarnation's heap).
        self.ways[way].drain(owner, |_, _, _, _| {});
        self.owners[way] = owner;
        Some(way)
    }

    /// The owners holding ways (0: unused).
    pub fn owners(&self) -> [u32; WAYS] {
        self.owners
    }

    /// Objects cached for `owner`.
    pub fn len_of(&self, owner: u32) -> usize {
        self.way_of(owner).map_or(0, |w| self.ways[w].len())
    }
}
