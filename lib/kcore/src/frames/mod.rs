//! The physical frame allocator: 4 KiB frames tracked in two bitmaps over
//! caller-provided storage.
//!
//! One bitmap says which frames the allocator *manages* (added as free RAM
//! and not reserved since), the other which managed frames are *free*. The
//! first lets [`FrameAllocator::free`] refuse frames it never handed out
//! (the kernel image, firmware tables, MMIO) instead of adopting them.

#[cfg(test)]
mod tests;

use core::fmt;

use crate::PAGE_SIZE;

const BITS: usize = u64::BITS as usize;

/// Why a frame operation failed. Each one is a bug in the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The storage slice is shorter than [`FrameAllocator::storage_words`].
    StorageTooSmall {
        /// Words needed.
        needed: usize,
        /// Words given.
        given: usize,
    },
    /// A range whose end lies below its start.
    InvalidRange {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
    /// The address is not 4 KiB aligned.
    Misaligned(u64),
    /// The address lies outside the allocator's range.
    OutOfRange(u64),
    /// The frame is not managed by the allocator (reserved or never added).
    NotManaged(u64),
    /// The frame is already free.
    DoubleFree(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::StorageTooSmall { needed, given } => {
                write!(f, "frame bitmap needs {needed} words, got {given}")
            }
            FrameError::InvalidRange { start, end } => {
                write!(f, "invalid range {start:#x}..{end:#x}")
            }
            FrameError::Misaligned(a) => write!(f, "frame address {a:#x} is not page aligned"),
            FrameError::OutOfRange(a) => write!(f, "frame {a:#x} is outside the allocator's range"),
            FrameError::NotManaged(a) => {
                write!(f, "frame {a:#x} was never handed out (reserved or not RAM)")
            }
            FrameError::DoubleFree(a) => write!(f, "frame {a:#x} freed twice"),
        }
    }
}

/// A bitmap allocator of 4 KiB frames in `[base, limit)`.
pub struct FrameAllocator<'a> {
    managed: &'a mut [u64],
    free: &'a mut [u64],
    /// Frame number of `base`.
    base_frame: u64,
    frames: usize,
    free_count: usize,
    total_count: usize,
    /// Word where the last single-frame allocation succeeded.
    hint: usize,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("base", &(self.base_frame * PAGE_SIZE))
            .field("frames", &self.frames)
            .field("free", &self.free_count)
            .field("total", &self.total_count)
            .finish()
    }
}

impl<'a> FrameAllocator<'a> {
    /// Words of storage [`new`](Self::new) needs for `[base, limit)`.
    pub fn storage_words(base: u64, limit: u64) -> usize {
        2 * Self::frames_in(base, limit).div_ceil(BITS)
    }

    fn frames_in(base: u64, limit: u64) -> usize {
        let first = base.div_ceil(PAGE_SIZE);
        let last = limit / PAGE_SIZE;
        usize::try_from(last.saturating_sub(first)).unwrap_or(usize::MAX)
    }

    /// An allocator for the whole frames in `[base, limit)`, with nothing
    /// free yet. `storage` (zeroed here) holds the bitmaps.
    pub fn new(storage: &'a mut [u64], base: u64, limit: u64) -> Result<Self, FrameError> {
        if limit < base {
            return Err(FrameError::InvalidRange {
                start: base,
                end: limit,
            });
        }
        let frames = Self::frames_in(base, limit);
        let words = frames.div_ceil(BITS);
        let needed = words.saturating_mul(2);
        if storage.len() < needed {
            return Err(FrameError::StorageTooSmall {
                needed,
                given: storage.len(),
            });
        }
        let (managed, rest) = storage.split_at_mut(words);
        let free = rest.get_mut(..words).unwrap_or_default();
        managed.fill(0);
        free.fill(0);
        Ok(FrameAllocator {
            managed,
            free,
            base_frame: base.div_ceil(PAGE_SIZE),
            frames,
            free_count: 0,
            total_count: 0,
            hint: 0,
        })
    }

    /// Frame indices fully inside `[start, end)` (rounded inward), clamped
    /// to our range.
    fn inner_indices(&self, start: u64, end: u64) -> (usize, usize) {
        self.clamp_frames(start.div_ceil(PAGE_SIZE), end / PAGE_SIZE)
    }

    /// Frame indices touching `[start, end)` (rounded outward), clamped.
    fn outer_indices(&self, start: u64, end: u64) -> (usize, usize) {
        self.clamp_frames(start / PAGE_SIZE, end.div_ceil(PAGE_SIZE))
    }

    fn clamp_frames(&self, first: u64, last: u64) -> (usize, usize) {
        let clamp = |f: u64| {
            let index = f.saturating_sub(self.base_frame);
            usize::try_from(index)
                .unwrap_or(usize::MAX)
                .min(self.frames)
        };
        (clamp(first), clamp(last))
    }

    /// Adds the whole frames inside `[start, end)` as free RAM; frames
    /// already managed are left as they are. Returns how many were added.
    pub fn add_free_region(&mut self, start: u64, end: u64) -> Result<usize, FrameError> {
        if end < start {
            return Err(FrameError::InvalidRange { start, end });
        }
        let (first, last) = self.inner_indices(start, end);
        let mut added = 0;
        for i in first..last {
            if !bit(self.managed, i) {
                set_bit(self.managed, i, true);
                set_bit(self.free, i, true);
                added += 1;
            }
        }
        self.total_count += added;
        self.free_count += added;
        Ok(added)
    }

    /// Withdraws every frame touching `[start, end)`, free or allocated: it
    /// will never be handed out, and freeing it is an error. Returns how
    /// many managed frames were withdrawn.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<usize, FrameError> {
        if end < start {
            return Err(FrameError::InvalidRange { start, end });
        }
        let (first, last) = self.outer_indices(start, end);
        let mut withdrawn = 0;
        for i in first..last {
            if bit(self.managed, i) {
                if bit(self.free, i) {
                    self.free_count -= 1;
                }
                set_bit(self.managed, i, false);
                set_bit(self.free, i, false);
                withdrawn += 1;
            }
        }
        self.total_count -= withdrawn;
        Ok(withdrawn)
    }

    fn addr(&self, index: usize) -> u64 {
        (self.base_frame + index as u64) * PAGE_SIZE
    }

    /// One free frame, preferring the neighbourhood of the last one.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free_count == 0 {
            return None;
        }
        let words = self.free.len();
        let hint = self.hint.min(words);
        // Whole words of allocated frames are skipped in one step.
        let word = (hint..words)
            .chain(0..hint)
            .find(|&w| self.free.get(w).is_some_and(|&x| x != 0))?;
        let index = word * BITS + self.free.get(word)?.trailing_zeros() as usize;
        set_bit(self.free, index, false);
        self.free_count -= 1;
        self.hint = word;
        Some(self.addr(index))
    }

    /// `count` consecutive free frames whose first address is a multiple of
    /// `align_frames` frames (a power of two), for DMA buffers. `None` if
    /// the arguments are invalid or no such run exists.
    pub fn alloc_contiguous(&mut self, count: usize, align_frames: usize) -> Option<u64> {
        if count == 0 || count > self.free_count || !align_frames.is_power_of_two() {
            return None;
        }
        let align = align_frames as u64;
        let mut i = 0;
        loop {
            i = self.next_free(i)?;
            i = self.align_index(i, align)?;
            let end = i.checked_add(count).filter(|&e| e <= self.frames)?;
            match self.next_allocated(i, end) {
                None => break,
                Some(busy) => i = busy + 1,
            }
        }
        for j in i..i + count {
            set_bit(self.free, j, false);
        }
        self.free_count -= count;
        Some(self.addr(i))
    }

    /// The first index `>= i` whose frame number is a multiple of `align`.
    fn align_index(&self, i: usize, align: u64) -> Option<usize> {
        let frame = self
            .base_frame
            .checked_add(i as u64)?
            .checked_next_multiple_of(align)?;
        usize::try_from(frame - self.base_frame).ok()
    }

    /// The first free frame at index `>= from`, scanning word by word.
    fn next_free(&self, from: usize) -> Option<usize> {
        let mut word = from / BITS;
        let mut mask = u64::MAX.checked_shl((from % BITS) as u32).unwrap_or(0);
        while let Some(&bits) = self.free.get(word) {
            let hits = bits & mask;
            if hits != 0 {
                return Some(word * BITS + hits.trailing_zeros() as usize);
            }
            word += 1;
            mask = u64::MAX;
        }
        None
    }

    /// The first non-free frame in `[from, to)`.
    fn next_allocated(&self, from: usize, to: usize) -> Option<usize> {
        (from..to).find(|&i| !bit(self.free, i))
    }

    /// Returns a frame handed out by [`alloc`](Self::alloc) or
    /// [`alloc_contiguous`](Self::alloc_contiguous).
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        let index = self.check_allocated(addr)?;
        set_bit(self.free, index, true);
        self.free_count += 1;
        Ok(())
    }

    /// Returns `count` frames starting at `addr`; if any of them cannot be
    /// freed, none is.
    pub fn free_contiguous(&mut self, addr: u64, count: usize) -> Result<(), FrameError> {
        let mut first = None;
        for k in 0..count as u64 {
            let a = k
                .checked_mul(PAGE_SIZE)
                .and_then(|off| addr.checked_add(off));
            let index = self.check_allocated(a.ok_or(FrameError::OutOfRange(addr))?)?;
            first.get_or_insert(index);
        }
        if let Some(first) = first {
            for i in first..first + count {
                set_bit(self.free, i, true);
            }
            self.free_count += count;
        }
        Ok(())
    }

    /// The index of the allocated frame at `addr`, or why it is not one.
    fn check_allocated(&self, addr: u64) -> Result<usize, FrameError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(FrameError::Misaligned(addr));
        }
        let index = (addr / PAGE_SIZE)
            .checked_sub(self.base_frame)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.frames)
            .ok_or(FrameError::OutOfRange(addr))?;
        if !bit(self.managed, index) {
            return Err(FrameError::NotManaged(addr));
        }
        if bit(self.free, index) {
            return Err(FrameError::DoubleFree(addr));
        }
        Ok(index)
    }

    /// Frames free now.
    pub fn free_count(&self) -> usize {
        self.free_count
    }

    /// Frames managed (free plus allocated).
    pub fn total_count(&self) -> usize {
        self.total_count
    }
}

fn bit(map: &[u64], i: usize) -> bool {
    map.get(i / BITS)
        .is_some_and(|w| w & (1 << (i % BITS)) != 0)
}

fn set_bit(map: &mut [u64], i: usize, value: bool) {
    if let Some(w) = map.get_mut(i / BITS) {
        if value {
            *w |= 1 << (i % BITS);
        } else {
            *w &= !(1 << (i % BITS));
        }
    }
}
