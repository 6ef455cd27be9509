//! Little-endian field access into byte slices that never panics: a field
//! that does not fit in the slice reads as `None`.

pub(crate) fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    array_at(b, off).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    array_at(b, off).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    array_at(b, off).map(u64::from_le_bytes)
}

pub(crate) fn array_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    b.get(off..end)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_past_the_end_are_none() {
        let b = [0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(u8_at(&b, 4), Some(0x55));
        assert_eq!(u8_at(&b, 5), None);
        assert_eq!(u16_at(&b, 3), Some(0x5544));
        assert_eq!(u16_at(&b, 4), None);
        assert_eq!(u32_at(&b, 1), Some(0x5544_3322));
        assert_eq!(u64_at(&b, 0), None);
        assert_eq!(u32_at(&b, usize::MAX), None);
    }
}
