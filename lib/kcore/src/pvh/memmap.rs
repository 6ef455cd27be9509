//! The physical memory map (E820-style) and the usable RAM it describes.

use core::fmt;

use crate::PAGE_SIZE;

/// Most memory-map entries kept; firmware maps are far shorter.
pub const MAX_MEMMAP_ENTRIES: usize = 128;

/// What a memory-map entry says about its range (the E820 types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// Type 1: RAM free for the OS.
    Ram,
    /// Type 2: reserved.
    Reserved,
    /// Type 3: ACPI tables, reusable once they have been read.
    AcpiReclaimable,
    /// Type 4: ACPI non-volatile storage.
    AcpiNvs,
    /// Type 5: faulty RAM.
    Unusable,
    /// Any other type; treated as reserved.
    Other(u32),
}

impl MemoryKind {
    /// Decodes the raw type field.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            1 => MemoryKind::Ram,
            2 => MemoryKind::Reserved,
            3 => MemoryKind::AcpiReclaimable,
            4 => MemoryKind::AcpiNvs,
            5 => MemoryKind::Unusable,
            other => MemoryKind::Other(other),
        }
    }
}

/// One entry of the memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    const EMPTY: MemoryRegion = MemoryRegion {
        addr: 0,
        size: 0,
        kind: MemoryKind::Reserved,
    };

    /// One past the last byte (saturating; entries in a [`MemoryMap`] never
    /// overflow).
    pub const fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }

    fn contains(&self, addr: u64) -> bool {
        self.addr <= addr && addr < self.end()
    }
}

/// A half-open physical address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// Length in bytes (zero if `end <= start`).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why an entry could not be added to a [`MemoryMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMapError {
    /// The map already holds [`MAX_MEMMAP_ENTRIES`] entries.
    Full,
    /// `addr + size` does not fit in 64 bits.
    Overflow {
        /// The entry's start.
        addr: u64,
        /// The entry's size.
        size: u64,
    },
}

impl fmt::Display for MemoryMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryMapError::Full => {
                write!(f, "memory map has more than {MAX_MEMMAP_ENTRIES} entries")
            }
            MemoryMapError::Overflow { addr, size } => {
                write!(
                    f,
                    "memory map entry {addr:#x}+{size:#x} wraps around the address space"
                )
            }
        }
    }
}

/// A fixed-capacity memory map whose entries never wrap around.
#[derive(Clone)]
pub struct MemoryMap {
    entries: [MemoryRegion; MAX_MEMMAP_ENTRIES],
    len: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        MemoryMap {
            entries: [MemoryRegion::EMPTY; MAX_MEMMAP_ENTRIES],
            len: 0,
        }
    }

    /// Appends an entry, refusing one that wraps around or does not fit.
    pub fn push(&mut self, region: MemoryRegion) -> Result<(), MemoryMapError> {
        if region.addr.checked_add(region.size).is_none() {
            return Err(MemoryMapError::Overflow {
                addr: region.addr,
                size: region.size,
            });
        }
        let slot = self.entries.get_mut(self.len).ok_or(MemoryMapError::Full)?;
        *slot = region;
        self.len += 1;
        Ok(())
    }

    /// The entries, in the order the firmware gave them.
    pub fn entries(&self) -> &[MemoryRegion] {
        &self.entries[..self.len.min(MAX_MEMMAP_ENTRIES)]
    }

    /// The usable RAM: every range covered by a RAM entry and by no other
    /// entry, shrunk inward to whole pages, in ascending order, with
    /// overlapping and adjacent RAM entries merged.
    pub fn usable(&self) -> UsableRegions<'_> {
        UsableRegions {
            map: self,
            pos: Some(0),
        }
    }

    /// Total bytes of [`usable`](Self::usable) RAM.
    pub fn usable_bytes(&self) -> u64 {
        self.usable().map(|r| r.len()).sum()
    }

    /// Whether `addr` is RAM and not claimed by any non-RAM entry.
    fn is_usable(&self, addr: u64) -> bool {
        let mut ram = false;
        for e in self.entries().iter().filter(|e| e.contains(addr)) {
            if e.kind != MemoryKind::Ram {
                return false;
            }
            ram = true;
        }
        ram
    }

    /// The lowest entry start or end above `addr`: usability can only
    /// change at these points.
    fn next_boundary_after(&self, addr: u64) -> Option<u64> {
        self.entries()
            .iter()
            .flat_map(|e| [e.addr, e.end()])
            .filter(|&b| b > addr)
            .min()
    }
}

/// Iterator over usable RAM; see [`MemoryMap::usable`].
#[derive(Debug, Clone)]
pub struct UsableRegions<'a> {
    map: &'a MemoryMap,
    /// Where to continue looking; `None` once past the last boundary.
    pos: Option<u64>,
}

impl Iterator for UsableRegions<'_> {
    type Item = PhysRange;

    fn next(&mut self) -> Option<PhysRange> {
        loop {
            let mut start = self.pos?;
            while !self.map.is_usable(start) {
                self.pos = self.map.next_boundary_after(start);
                start = self.pos?;
            }
            // A usable point lies inside a RAM entry, so a boundary follows.
            let mut end = self.map.next_boundary_after(start)?;
            while self.map.is_usable(end) {
                end = self.map.next_boundary_after(end)?;
            }
            self.pos = Some(end);
            let aligned_start = start.checked_next_multiple_of(PAGE_SIZE);
            let aligned_end = end - end % PAGE_SIZE;
            if let Some(aligned_start) = aligned_start.filter(|&s| s < aligned_end) {
                return Some(PhysRange {
                    start: aligned_start,
                    end: aligned_end,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn map(entries: &[(u64, u64, u32)]) -> MemoryMap {
        let mut m = MemoryMap::new();
        for &(addr, size, kind) in entries {
            m.push(MemoryRegion {
                addr,
                size,
                kind: MemoryKind::from_raw(kind),
            })
            .unwrap();
        }
        m
    }

    fn usable(m: &MemoryMap) -> Vec<(u64, u64)> {
        m.usable().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn qemu_like_map() {
        let m = map(&[
            (0, 0x9fc00, 1),
            (0x9fc00, 0x400, 2),
            (0xf0000, 0x10000, 2),
            (0x100000, 0x7ee0000, 1),
            (0x7fe0000, 0x20000, 2),
            (0xfffc0000, 0x40000, 2),
        ]);
        assert_eq!(usable(&m), [(0, 0x9f000), (0x100000, 0x7fe0000)]);
        assert_eq!(m.usable_bytes(), 0x9f000 + 0x7ee0000);
    }

    #[test]
    fn reserved_ranges_are_cut_out_and_pages_aligned_inward() {
        // RAM 1 MiB..16 MiB with a reserved hole in the middle that does not
        // sit on page boundaries.
        let m = map(&[
            (0x100000, 0xf00000, 1),
            (0x200800, 0x1000, 4),
            (0x100001, 1, 5),
        ]);
        assert_eq!(usable(&m), [(0x101000, 0x200000), (0x202000, 0x1000000)]);
    }

    #[test]
    fn overlapping_and_adjacent_ram_merges() {
        let m = map(&[
            (0x3000, 0x3000, 1),
            (0x1000, 0x3000, 1),
            (0x6000, 0x1000, 1),
        ]);
        assert_eq!(usable(&m), [(0x1000, 0x7000)]);
        assert_eq!(m.usable_bytes(), 0x6000);
    }

    #[test]
    fn reserved_entry_listed_before_ram_still_wins() {
        let m = map(&[(0x0, 0x10000, 2), (0x0, 0x20000, 1)]);
        assert_eq!(usable(&m), [(0x10000, 0x20000)]);
    }

    #[test]
    fn tiny_and_empty_entries_give_nothing() {
        let m = map(&[(0x1001, 0xffe, 1), (0x5000, 0, 1), (0x7000, 0x800, 1)]);
        assert_eq!(usable(&m), []);
        assert_eq!(MemoryMap::new().usable().next(), None);
    }

    #[test]
    fn ram_at_the_top_of_the_address_space() {
        let m = map(&[(u64::MAX - 0x2fff, 0x2fff, 1)]);
        assert_eq!(usable(&m), [(u64::MAX - 0x2fff, u64::MAX - 0xfff)]);
        let m = map(&[(u64::MAX - 0x800, 0x800, 1)]);
        assert_eq!(usable(&m), []);
    }

    #[test]
    fn push_refuses_overflow_and_excess() {
        let mut m = MemoryMap::new();
        let wrap = MemoryRegion {
            addr: u64::MAX,
            size: 1,
            kind: MemoryKind::Ram,
        };
        assert_eq!(
            m.push(wrap),
            Err(MemoryMapError::Overflow {
                addr: u64::MAX,
                size: 1
            })
        );
        for i in 0..MAX_MEMMAP_ENTRIES as u64 {
            m.push(MemoryRegion {
                addr: i * 0x2000,
                size: 0x1000,
                kind: MemoryKind::Ram,
            })
            .unwrap();
        }
        let extra = MemoryRegion {
            addr: 0,
            size: 1,
            kind: MemoryKind::Ram,
        };
        assert_eq!(m.push(extra), Err(MemoryMapError::Full));
        assert_eq!(m.entries().len(), MAX_MEMMAP_ENTRIES);
        assert_eq!(m.usable().count(), MAX_MEMMAP_ENTRIES);
        assert_eq!(m.usable_bytes(), MAX_MEMMAP_ENTRIES as u64 * 0x1000);
    }

    #[test]
    fn kinds_round_trip() {
        assert_eq!(MemoryKind::from_raw(1), MemoryKind::Ram);
        assert_eq!(MemoryKind::from_raw(3), MemoryKind::AcpiReclaimable);
        assert_eq!(MemoryKind::from_raw(0), MemoryKind::Other(0));
        assert_eq!(MemoryKind::from_raw(17), MemoryKind::Other(17));
    }
}
