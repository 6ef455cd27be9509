//! Interim domain heap: a bump allocator with the `kcore::slab` API (freed
//! memory is only reused after the domain restarts). Replaced by the
//! size-class slab heap.
pub trait PageSource {
    fn map(&mut self, at: u64, pages: usize) -> bool;
}
pub struct Stats {
    pub bytes_in_use: usize,
    pub mapped_pages: usize,
}
pub struct SlabHeap {
    base: u64,
    limit: u64,
    next: u64,
    high: u64,
    used: usize,
}
impl SlabHeap {
    pub fn new(base: u64, limit: u64) -> SlabHeap {
        SlabHeap {
            base,
            limit,
            next: base,
            high: base,
            used: 0,
        }
    }
    pub fn alloc(&mut self, size: usize, align: usize, pages: &mut impl PageSource) -> Option<u64> {
        let start = self.next.div_ceil(align as u64) * align as u64;
        let end = start + size as u64;
        if end > self.limit {
            return None;
        }
        if end > self.high {
            let n = (end - self.high).div_ceil(4096) as usize;
            if !pages.map(self.high, n) {
                return None;
            }
            self.high += n as u64 * 4096;
        }
        self.next = end;
        self.used += size;
        Some(start)
    }
    pub fn free(&mut self, _addr: u64, size: usize, _align: usize) -> Result<(), &'static str> {
        self.used -= size;
        Ok(())
    }
    pub fn stats(&self) -> Stats {
        Stats {
            bytes_in_use: self.used,
            mapped_pages: ((self.high - self.base) / 4096) as usize,
        }
    }
    pub fn mapped_range(&self) -> (u64, u64) {
        (self.base, self.high)
    }
}
