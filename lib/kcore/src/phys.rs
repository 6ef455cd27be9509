//! Reading physical memory without touching it: the [`PhysMemory`] trait.

use core::fmt;

/// Why a physical-memory read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// Part of the range is not readable (not RAM, not mapped, or past the
    /// end of the address space).
    OutOfRange,
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemError::OutOfRange => f.write_str("physical address out of range"),
        }
    }
}

/// Read access to physical memory.
///
/// The kernel implements this over its physical mapping; tests implement it
/// over a byte vector. Implementations must refuse (not clamp) any range
/// they cannot read in full, including one whose end overflows.
pub trait PhysMemory {
    /// Copies `buf.len()` bytes starting at physical address `phys`.
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), MemError>;

    /// Reads a fixed-size array.
    fn read_array<const N: usize>(&self, phys: u64) -> Result<[u8; N], MemError> {
        let mut buf = [0u8; N];
        self.read(phys, &mut buf)?;
        Ok(buf)
    }

    /// Reads one byte.
    fn read_u8(&self, phys: u64) -> Result<u8, MemError> {
        Ok(self.read_array::<1>(phys)?[0])
    }

    /// Reads a little-endian `u16`.
    fn read_u16(&self, phys: u64) -> Result<u16, MemError> {
        self.read_array(phys).map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, phys: u64) -> Result<u32, MemError> {
        self.read_array(phys).map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, phys: u64) -> Result<u64, MemError> {
        self.read_array(phys).map(u64::from_le_bytes)
    }
}

impl<M: PhysMemory + ?Sized> PhysMemory for &M {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(phys, buf)
    }
}

/// A byte slice seen as physical memory starting at `base`: for tests, and
/// for parsing a copy of firmware data.
#[derive(Debug, Clone, Copy)]
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl<'a> SliceMemory<'a> {
    /// `bytes[0]` is at physical address `base`.
    pub const fn new(base: u64, bytes: &'a [u8]) -> Self {
        SliceMemory { base, bytes }
    }
}

impl PhysMemory for SliceMemory<'_> {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let start = phys.checked_sub(self.base).ok_or(MemError::OutOfRange)?;
        let start = usize::try_from(start).map_err(|_| MemError::OutOfRange)?;
        let end = start.checked_add(buf.len()).ok_or(MemError::OutOfRange)?;
        let src = self.bytes.get(start..end).ok_or(MemError::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The 8-bit sum of `len` bytes at `phys` (ACPI checksums), read in chunks.
pub(crate) fn byte_sum(mem: &impl PhysMemory, phys: u64, len: u64) -> Result<u8, MemError> {
    let mut chunk = [0u8; 256];
    let mut sum = 0u8;
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        let addr = phys.checked_add(done).ok_or(MemError::OutOfRange)?;
        let part = &mut chunk[..n];
        mem.read(addr, part)?;
        sum = part.iter().fold(sum, |s, &b| s.wrapping_add(b));
        done += n as u64;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_memory_reads_in_range_only() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let mem = SliceMemory::new(0x1000, &bytes);
        assert_eq!(mem.read_u8(0x1000), Ok(1));
        assert_eq!(mem.read_u16(0x1001), Ok(0x0302));
        assert_eq!(mem.read_u32(0x1000), Ok(0x0403_0201));
        assert_eq!(mem.read_u64(0x1001), Ok(0x0908_0706_0504_0302));
        assert_eq!(mem.read_u64(0x1002), Err(MemError::OutOfRange));
        assert_eq!(mem.read_u8(0xfff), Err(MemError::OutOfRange));
        assert_eq!(mem.read_u8(0x1009), Err(MemError::OutOfRange));
        assert_eq!(mem.read_u32(u64::MAX - 1), Err(MemError::OutOfRange));
        let mut empty = [0u8; 0];
        assert_eq!(mem.read(0x1009, &mut empty), Ok(()));
    }

    #[test]
    fn byte_sum_spans_chunks() {
        let bytes: std::vec::Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mem = SliceMemory::new(0, &bytes);
        let expect = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        assert_eq!(byte_sum(&mem, 0, 1000), Ok(expect));
        assert_eq!(byte_sum(&mem, 0, 0), Ok(0));
        assert_eq!(byte_sum(&mem, 900, 200), Err(MemError::OutOfRange));
        assert_eq!(
            byte_sum(&mem, u64::MAX - 10, 300),
            Err(MemError::OutOfRange)
        );
    }
}
