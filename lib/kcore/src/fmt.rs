//! Formatting helpers for the console: human-readable byte counts and a
//! fixed-capacity string.

use core::fmt::{self, Write};
use core::ops::Deref;

/// Displays a byte count with a binary unit: `512 B`, `4 KiB`, `1.5 MiB`.
///
/// One decimal, truncated (never rounded up into the next unit), and
/// omitted when the count is an exact multiple of the unit, so `1.0 MiB`
/// means "a little over 1 MiB". Honours width and alignment (`{:>10}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut s = StackString::<32>::new();
        let n = self.0;
        if n < 1024 {
            write!(s, "{n} B")?;
        } else {
            // 1024^(k+1) <= n, with k at most 5 since n < 2^64 = 1024^6 * 16.
            let k = ((63 - n.leading_zeros()) / 10).saturating_sub(1) as usize;
            let unit = 1u128 << (10 * (k + 1));
            let (whole, rest) = (u128::from(n) / unit, u128::from(n) % unit);
            let name = UNITS.get(k).copied().unwrap_or("?");
            if rest == 0 {
                write!(s, "{whole} {name}")?;
            } else {
                write!(s, "{whole}.{} {name}", rest * 10 / unit)?;
            }
        }
        f.pad(&s)
    }
}

/// The string did not fit in its [`StackString`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string capacity exceeded")
    }
}

/// A string of at most `N` bytes stored inline, writable with `write!`.
///
/// A write that does not fit fails as a whole (the contents stay as they
/// were, so they are always valid UTF-8) and never panics.
#[derive(Clone, Copy)]
pub struct StackString<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackString<N> {
    /// An empty string.
    pub const fn new() -> Self {
        StackString {
            buf: [0; N],
            len: 0,
        }
    }

    /// The contents.
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Appends `s` whole, or nothing if it does not fit.
    pub fn push_str(&mut self, s: &str) -> Result<(), CapacityError> {
        let end = self.len.checked_add(s.len()).ok_or(CapacityError)?;
        let dest = self.buf.get_mut(self.len..end).ok_or(CapacityError)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }

    /// Appends one character, or nothing if it does not fit.
    pub fn push(&mut self, c: char) -> Result<(), CapacityError> {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    /// Empties the string.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes used.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum length in bytes.
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> Default for StackString<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for StackString<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s).map_err(|_| fmt::Error)
    }
}

impl<const N: usize> Deref for StackString<N> {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for StackString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for StackString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq for StackString<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for StackString<N> {}

/// A line of untrusted text for the console: at most `max` bytes (cut at a
/// character boundary, `" [...]"` added if anything was cut), every control
/// character (escape sequences, line breaks, tabs) shown as `?`, so the
/// text can neither rewrite the console nor hold it for long.
#[derive(Debug, Clone, Copy)]
pub struct Clipped<'a> {
    text: &'a str,
    cut: bool,
}

impl<'a> Clipped<'a> {
    /// `text` clipped to `max` bytes.
    pub fn new(text: &'a str, max: usize) -> Clipped<'a> {
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Clipped {
            text: &text[..end],
            cut: end < text.len(),
        }
    }
}

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.text.chars() {
            f.write_char(if c.is_control() { '?' } else { c })?;
        }
        if self.cut {
            f.write_str(" [...]")?;
        }
        Ok(())
    }
}

/// Writes untrusted names as a comma-separated list: at most `shown` of
/// them, each [`Clipped`] to `max` bytes, then `" (+N more)"`.
pub fn write_names<'a>(
    out: &mut impl Write,
    names: impl Iterator<Item = &'a str>,
    shown: usize,
    max: usize,
) -> fmt::Result {
    let mut count = 0;
    for name in names {
        if count < shown {
            let comma = if count > 0 { "," } else { "" };
            write!(out, "{comma}{}", Clipped::new(name, max))?;
        }
        count += 1;
    }
    if count > shown {
        write!(out, " (+{} more)", count - shown)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_lists_are_bounded() {
        extern crate std;
        use std::string::String;
        let mut out = String::new();
        write_names(&mut out, ["bdev", "control"].into_iter(), 8, 32).unwrap();
        assert_eq!(out, "bdev,control");
        let many: std::vec::Vec<std::string::String> =
            (0..1000).map(|i| std::format!("name{i}\x1b")).collect();
        let mut out = String::new();
        write_names(&mut out, many.iter().map(|s| s.as_str()), 3, 32).unwrap();
        assert_eq!(out, "name0?,name1?,name2? (+997 more)");
        let long = "y".repeat(100);
        let mut out = String::new();
        write_names(&mut out, [long.as_str()].into_iter(), 8, 4).unwrap();
        assert_eq!(out, "yyyy [...]");
    }

    #[test]
    fn clipped_text_is_short_and_printable() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Clipped::new("hello", 512).to_string(), "hello");
        assert_eq!(
            Clipped::new("a\x1b[2Jb\nc\td", 512).to_string(),
            "a?[2Jb?c?d"
        );
        assert_eq!(Clipped::new("abcdef", 3).to_string(), "abc [...]");
        // Never cut inside a character.
        assert_eq!(Clipped::new("aé", 2).to_string(), "a [...]");
        let long = "x".repeat(1 << 20);
        assert_eq!(Clipped::new(&long, 512).to_string().len(), 512 + 6);
    }

    use super::*;

    fn show(n: u64) -> std::string::String {
        Bytes(n).to_string()
    }

    #[test]
    fn byte_counts() {
        assert_eq!(show(0), "0 B");
        assert_eq!(show(1023), "1023 B");
        assert_eq!(show(1024), "1 KiB");
        assert_eq!(show(1536), "1.5 KiB");
        assert_eq!(show(4096), "4 KiB");
        assert_eq!(show(3 << 19), "1.5 MiB");
        assert_eq!(show((1 << 20) + 1), "1.0 MiB");
        assert_eq!(show((1 << 20) - 1), "1023.9 KiB");
        assert_eq!(show(128 << 20), "128 MiB");
        assert_eq!(show(5 << 30), "5 GiB");
        assert_eq!(show(3 << 40), "3 TiB");
        assert_eq!(show(1 << 50), "1 PiB");
        assert_eq!(show(1 << 60), "1 EiB");
        assert_eq!(show(u64::MAX), "15.9 EiB");
        assert_eq!(format!("[{:>8}]", Bytes(2048)), "[   2 KiB]");
        assert_eq!(format!("[{:<6}]", Bytes(7)), "[7 B   ]");
    }

    #[test]
    fn stack_string_writes_until_full() {
        let mut s = StackString::<8>::new();
        assert!(s.is_empty());
        write!(s, "{}-{}", 12, 34).unwrap();
        assert_eq!(s.as_str(), "12-34");
        assert_eq!(s.len(), 5);
        // Too long: fails whole, contents unchanged.
        assert_eq!(s.push_str("abcd"), Err(CapacityError));
        assert_eq!(&*s, "12-34");
        assert!(write!(s, "{}", 1234).is_err());
        s.push_str("abc").unwrap();
        assert_eq!(s.as_str(), "12-34abc");
        assert_eq!(s.push('x'), Err(CapacityError));
        s.clear();
        // A multi-byte character that does not fit is not split.
        s.push_str("1234567").unwrap();
        assert_eq!(s.push('é'), Err(CapacityError));
        assert_eq!(s.as_str(), "1234567");
        assert_eq!(s.capacity(), 8);
        assert_eq!(format!("{s:?}|{s:>9}"), "\"1234567\"|  1234567");
        assert_eq!(s, s.clone());
        let mut zero = StackString::<0>::default();
        assert_eq!(zero.push_str(""), Ok(()));
        assert_eq!(zero.push('a'), Err(CapacityError));
        assert_eq!(CapacityError.to_string(), "string capacity exceeded");
    }
}
