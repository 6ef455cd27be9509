//! The private heap of a domain: a size-class slab allocator over a
//! growable window of virtual address space.
//!
//! The allocator only computes addresses (no `unsafe`): the kernel maps
//! pages when [`PageSource::map`] asks and turns addresses into pointers.
//! All bookkeeping lives outside the heap's own memory (in `Vec`s on the
//! kernel heap), so a domain that scribbles over its heap cannot corrupt the
//! allocator, and the kernel can drop the whole window without reading it.
//!
//! - **Small objects** (up to 2 KiB): size classes 16, 32, 48, 64, 96, 128,
//!   192, 256, 384, 512, 768, 1024, 1536, 2048 bytes. A slab is one page
//!   (classes up to 256 B) or four pages (larger classes) of equal objects
//!   with a 256-bit occupancy bitmap. A class's slabs with a free object are
//!   on an intrusive list, so allocation takes the head slab and finds a
//!   free bit with `trailing_ones`: O(1), no search. An object's address
//!   alignment is the largest power of two dividing its class size, and a
//!   request goes to the smallest class that is large enough *and* aligned
//!   enough. Empty slabs stay with their class (a domain's working set is
//!   reused, and all of it goes back when the domain dies).
//! - **Large objects** (bigger, or aligned beyond 2 KiB): whole page runs,
//!   first fit from a free-run list (runs are split, and merged with
//!   neighbours on free), else fresh pages at the end of the window.
//! - **Growth** maps fresh pages at the window's high-water mark; the
//!   mapped range `[base, high_water)` is what the kernel unmaps on reclaim.

mod cache;
#[cfg(test)]
mod tests;

pub use cache::{CoreCache, CoreCaches, DEPTH, WAYS};

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use crate::PAGE_SIZE;

/// Object sizes of the small classes.
pub const CLASSES: [usize; 14] = [
    16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
];
const MAX_SMALL: usize = 2048;
const NIL: u32 = u32::MAX;

/// Maps fresh pages for a heap.
pub trait PageSource {
    /// Maps `pages` zeroed 4 KiB pages at `at`; false if out of memory.
    fn map(&mut self, at: u64, pages: usize) -> bool;
}

/// Why a free was refused. Each one is a bug in the caller; the heap is
/// left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapError {
    /// Not inside this heap's mapped range.
    Foreign(u64),
    /// Not the start of an allocated object.
    NotAllocated(u64),
    /// The object was allocated with a different size or alignment class.
    WrongSize(u64),
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::Foreign(a) => write!(f, "{a:#x} is not in this heap"),
            HeapError::NotAllocated(a) => {
                write!(f, "{a:#x} is not an allocated object (double free?)")
            }
            HeapError::WrongSize(a) => write!(
                f,
                "{a:#x} freed with a size or alignment it was not allocated with"
            ),
        }
    }
}

/// Usage counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live objects, as rounded up to their class or page run.
    pub bytes_in_use: usize,
    /// Objects allocated and not freed.
    pub live_allocations: usize,
    /// Pages mapped for this heap so far.
    pub mapped_pages: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Page {
    Free,
    /// Part of slab number n.
    Slab(u32),
    /// First page of a large allocation of n pages.
    LargeHead(u32),
    LargeTail,
    /// Part of a free run (the run list says how long).
    InRun,
}

struct Slab {
    base: u64,
    class: u8,
    free: u16,
    bitmap: [u64; 4],
    next: u32,
    listed: bool,
}

/// One domain's heap.
pub struct DomainHeap {
    base: u64,
    limit: u64,
    high_water: u64,
    pages: Vec<Page>,
    slabs: Vec<Slab>,
    partial: [u32; CLASSES.len()],
    /// Free page runs: (first page index, length).
    runs: Vec<(usize, usize)>,
    /// For a heap whose objects must each be one piece of memory behind
    /// the window (the shared heap, where each growth step is a separate
    /// physically contiguous allocation): the first page of every growth
    /// step, ascending. Free runs never merge across a step boundary, so
    /// no object spans two steps. `None`: runs merge freely.
    steps: Option<Vec<usize>>,
    stats: HeapStats,
}

fn class_alignment(size: usize) -> usize {
    1 << size.trailing_zeros().min(12)
}

/// Class of each size rounded up to 16 bytes (every class is a multiple of
/// 16 and 16-aligned), for the common case `align <= 16`.
const LOOKUP: [u8; MAX_SMALL / 16 + 1] = {
    let mut table = [0u8; MAX_SMALL / 16 + 1];
    let mut slot = 0;
    while slot < table.len() {
        let mut class = 0;
        while CLASSES[class] < slot * 16 {
            class += 1;
        }
        table[slot] = class as u8;
        slot += 1;
    }
    table
};

/// `ceil(2^32 / class)`: dividing an in-slab offset (< 2^14) by a class
/// size becomes a multiply and a shift, exactly (the error stays below
/// 2^-18, less than 1/class).
const RECIPROCAL: [u64; CLASSES.len()] = {
    let mut table = [0u64; CLASSES.len()];
    let mut i = 0;
    while i < CLASSES.len() {
        table[i] = (1u64 << 32).div_ceil(CLASSES[i] as u64);
        i += 1;
    }
    table
};

/// The class for a request, if it is small.
#[inline]
fn class_for(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL || align > MAX_SMALL {
        return None;
    }
    if align <= 16 {
        return Some(LOOKUP[size.div_ceil(16)] as usize);
    }
    CLASSES
        .iter()
        .position(|&c| c >= size && class_alignment(c) >= align)
}

fn slab_pages(class: usize) -> usize {
    if CLASSES[class] <= 256 { 1 } else { 4 }
}

fn objects_per_slab(class: usize) -> usize {
    (slab_pages(class) * PAGE_SIZE as usize / CLASSES[class]).min(256)
}

impl DomainHeap {
    /// A heap over `[base, limit)` (page aligned), with nothing mapped.
    pub fn new(base: u64, limit: u64) -> DomainHeap {
        DomainHeap {
            base,
            limit,
            high_water: base,
            pages: Vec::new(),
            slabs: Vec::new(),
            partial: [NIL; CLASSES.len()],
            runs: Vec::new(),
            steps: None,
            stats: HeapStats::default(),
        }
    }

    /// A heap whose every object lies within one growth step
    /// ([`PageSource::map`] call): for memory where each step is mapped
    /// onto its own physically contiguous frames, every object then has
    /// one device address for all of it.
    pub fn new_contiguous(base: u64, limit: u64) -> DomainHeap {
        DomainHeap {
            steps: Some(Vec::new()),
            ..DomainHeap::new(base, limit)
        }
    }

    /// The growth step holding page `page` (0 for a heap without steps).
    fn step_of(&self, page: usize) -> usize {
        self.steps
            .as_ref()
            .map_or(0, |steps| steps.partition_point(|&first| first <= page))
    }

    /// Current usage.
    pub fn stats(&self) -> HeapStats {
        self.stats
    }

    /// Bytes the heap's own bookkeeping holds on the allocator it lives in
    /// (its vectors' capacity): grows with the pages ever mapped, like the
    /// pool itself, and is kept with it.
    pub fn bookkeeping_bytes(&self) -> usize {
        self.pages.capacity() * core::mem::size_of::<Page>()
            + self.slabs.capacity() * core::mem::size_of::<Slab>()
            + self.runs.capacity() * core::mem::size_of::<(usize, usize)>()
            + self
                .steps
                .as_ref()
                .map_or(0, |s| s.capacity() * core::mem::size_of::<usize>())
    }

    /// `[base, high_water)`: everything ever mapped.
    pub fn mapped_range(&self) -> (u64, u64) {
        (self.base, self.high_water)
    }

    /// Whether `address` lies in the mapped part of the window.
    pub fn contains(&self, address: u64) -> bool {
        (self.base..self.high_water).contains(&address)
    }

    fn page_index(&self, address: u64) -> usize {
        ((address - self.base) / PAGE_SIZE) as usize
    }

    fn page_address(&self, index: usize) -> u64 {
        self.base + index as u64 * PAGE_SIZE
    }

    /// Allocates `size` bytes aligned to `align` (a power of two).
    #[inline]
    pub fn alloc(
        &mut self,
        size: usize,
        align: usize,
        source: &mut impl PageSource,
    ) -> Option<u64> {
        let size = size.max(1);
        match class_for(size, align) {
            Some(class) => self.alloc_small(class, source),
            None => self.alloc_large(size, align, source),
        }
    }

    /// Makes a new slab for `class` the head of its partial list (the slow
    /// path, kept out of line so the fast path stays small).
    #[cold]
    #[inline(never)]
    fn new_slab(&mut self, class: usize, source: &mut impl PageSource) -> Option<()> {
        {
            let first = self.take_pages(slab_pages(class), 1, source)?;
            let id = self.slabs.len() as u32;
            let objects = objects_per_slab(class);
            let mut bitmap = [0u64; 4];
            // Bits past the last object are permanently "taken".
            for (bit, word) in (objects..256).map(|b| (b % 64, b / 64)) {
                bitmap[word] |= 1 << bit;
            }
            self.slabs.push(Slab {
                base: self.page_address(first),
                class: class as u8,
                free: objects as u16,
                bitmap,
                next: NIL,
                listed: true,
            });
            for page in first..first + slab_pages(class) {
                self.pages[page] = Page::Slab(id);
            }
            self.partial[class] = id;
        }
        Some(())
    }

    #[inline]
    fn alloc_small(&mut self, class: usize, source: &mut impl PageSource) -> Option<u64> {
        if self.partial[class] == NIL {
            self.new_slab(class, source)?;
        }
        let id = self.partial[class];
        let slab = &mut self.slabs[id as usize];
        let word = slab.bitmap.iter().position(|w| *w != u64::MAX)?;
        let bit = slab.bitmap[word].trailing_ones() as usize;
        slab.bitmap[word] |= 1 << bit;
        slab.free -= 1;
        let address = slab.base + ((word * 64 + bit) * CLASSES[class]) as u64;
        if slab.free == 0 {
            self.partial[class] = slab.next;
            slab.next = NIL;
            slab.listed = false;
        }
        self.stats.bytes_in_use += CLASSES[class];
        self.stats.live_allocations += 1;
        Some(address)
    }

    fn alloc_large(
        &mut self,
        size: usize,
        align: usize,
        source: &mut impl PageSource,
    ) -> Option<u64> {
        let pages = size.div_ceil(PAGE_SIZE as usize);
        let align_pages = (align / PAGE_SIZE as usize).max(1);
        let first = self.take_pages(pages, align_pages, source)?;
        self.pages[first] = Page::LargeHead(pages as u32);
        for page in first + 1..first + pages {
            self.pages[page] = Page::LargeTail;
        }
        self.stats.bytes_in_use += pages * PAGE_SIZE as usize;
        self.stats.live_allocations += 1;
        Some(self.page_address(first))
    }

    /// `count` pages starting at a page index aligned to `align_pages`
    /// (relative to the window base, which is aligned generously), from a
    /// free run or by growing.
    fn take_pages(
        &mut self,
        count: usize,
        align_pages: usize,
        source: &mut impl PageSource,
    ) -> Option<usize> {
        for i in 0..self.runs.len() {
            let (start, length) = self.runs[i];
            let aligned = start.div_ceil(align_pages) * align_pages;
            if aligned + count <= start + length {
                self.runs.swap_remove(i);
                if aligned > start {
                    self.runs.push((start, aligned - start));
                }
                if aligned + count < start + length {
                    self.runs
                        .push((aligned + count, start + length - aligned - count));
                }
                return Some(aligned);
            }
        }
        let next = self.pages.len();
        let aligned = next.div_ceil(align_pages) * align_pages;
        let grow = aligned + count - next;
        let end = self.high_water.checked_add(grow as u64 * PAGE_SIZE)?;
        if end > self.limit || !source.map(self.high_water, grow) {
            return None;
        }
        self.high_water = end;
        self.stats.mapped_pages += grow;
        if let Some(steps) = self.steps.as_mut() {
            steps.push(next);
        }
        self.pages.resize(aligned + count, Page::Free);
        if aligned > next {
            for page in next..aligned {
                self.pages[page] = Page::InRun;
            }
            self.runs.push((next, aligned - next));
        }
        Some(aligned)
    }

    /// Frees an object allocated with the same `size` and `align`.
    #[inline]
    pub fn free(&mut self, address: u64, size: usize, align: usize) -> Result<(), HeapError> {
        if !self.contains(address) {
            return Err(HeapError::Foreign(address));
        }
        let size = size.max(1);
        let page = self.page_index(address);
        match (self.pages[page], class_for(size, align)) {
            (Page::Slab(id), Some(class)) => self.free_small(id, class, address),
            (Page::LargeHead(pages), None) => {
                if address != self.page_address(page) {
                    return Err(HeapError::NotAllocated(address));
                }
                if size.div_ceil(PAGE_SIZE as usize) != pages as usize {
                    return Err(HeapError::WrongSize(address));
                }
                self.release_run(page, pages as usize);
                self.stats.bytes_in_use -= pages as usize * PAGE_SIZE as usize;
                self.stats.live_allocations -= 1;
                Ok(())
            }
            (Page::Slab(_), None) | (Page::LargeHead(_), Some(_)) => {
                Err(HeapError::WrongSize(address))
            }
            _ => Err(HeapError::NotAllocated(address)),
        }
    }

    #[inline]
    fn free_small(&mut self, id: u32, class: usize, address: u64) -> Result<(), HeapError> {
        let slab = &mut self.slabs[id as usize];
        if usize::from(slab.class) != class {
            return Err(HeapError::WrongSize(address));
        }
        let offset = address - slab.base;
        let index = ((offset * RECIPROCAL[class]) >> 32) as usize;
        if index as u64 * CLASSES[class] as u64 != offset {
            return Err(HeapError::NotAllocated(address));
        }
        let (word, bit) = (index / 64, index % 64);
        if index >= objects_per_slab(class) || slab.bitmap[word] & (1 << bit) == 0 {
            return Err(HeapError::NotAllocated(address));
        }
        slab.bitmap[word] &= !(1 << bit);
        slab.free += 1;
        if !slab.listed {
            slab.listed = true;
            slab.next = self.partial[class];
            self.partial[class] = id;
        }
        self.stats.bytes_in_use -= CLASSES[class];
        self.stats.live_allocations -= 1;
        Ok(())
    }

    /// Returns pages to the run list, merged with free neighbours (of the
    /// same growth step, in a heap that keeps steps apart).
    fn release_run(&mut self, mut start: usize, mut length: usize) {
        let step = self.step_of(start);
        let mut i = 0;
        while i < self.runs.len() {
            let (s, l) = self.runs[i];
            if (s + l == start || start + length == s) && self.step_of(s) == step {
                self.runs.swap_remove(i);
                start = start.min(s);
                length += l;
                i = 0;
                continue;
            }
            i += 1;
        }
        for page in start..start + length {
            self.pages[page] = Page::InRun;
        }
        self.runs.push((start, length));
    }
}
