//! Typed values in command lines: numbers, sizes and durations.

use core::fmt;

/// Why a value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueError {
    /// No digits.
    Empty,
    /// A character that is not a digit of the base.
    InvalidDigit,
    /// The value does not fit in 64 bits.
    Overflow,
    /// An unknown or missing unit suffix.
    BadUnit,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueError::Empty => "no number given",
            ValueError::InvalidDigit => "invalid digit",
            ValueError::Overflow => "number too large",
            ValueError::BadUnit => "unknown or missing unit",
        })
    }
}

/// A decimal (`4096`) or hexadecimal (`0x1000`, `0X1000`) unsigned number.
/// No sign, no whitespace, no separators.
pub fn parse_u64(s: &str) -> Result<u64, ValueError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    if digits.is_empty() {
        return Err(ValueError::Empty);
    }
    digits.chars().try_fold(0u64, |acc, c| {
        let d = c.to_digit(radix).ok_or(ValueError::InvalidDigit)?;
        acc.checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(ValueError::Overflow)
    })
}

/// Strips the first suffix in `units` (case-insensitively) that `s` ends
/// with, returning the rest and the unit's multiplier.
fn split_unit<'a>(s: &'a str, units: &[(&str, u64)]) -> Option<(&'a str, u64)> {
    units.iter().find_map(|&(suffix, mul)| {
        let cut = s.len().checked_sub(suffix.len())?;
        let tail = s.get(cut..)?;
        tail.eq_ignore_ascii_case(suffix)
            .then(|| (s.get(..cut).unwrap_or_default(), mul))
    })
}

/// A byte count with an optional binary unit: `4096`, `0x1000`, `64K`,
/// `64M`, `1G`, `2T`, also written `64KiB` (case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    const UNITS: [(&str, u64); 8] = [
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("TiB", 1 << 40),
        ("K", 1 << 10),
        ("M", 1 << 20),
        ("G", 1 << 30),
        ("T", 1 << 40),
    ];
    let (number, mul) = split_unit(s, &UNITS).unwrap_or((s, 1));
    parse_u64(number)?
        .checked_mul(mul)
        .ok_or(ValueError::Overflow)
}

/// A duration in milliseconds, with a required unit: `250ms`, `2s`, `5m`
/// (minutes), `1h`.
pub fn parse_duration_ms(s: &str) -> Result<u64, ValueError> {
    // "ms" before "m" and "s": the first matching suffix wins.
    const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
    let (number, mul) = split_unit(s, &UNITS).ok_or(ValueError::BadUnit)?;
    parse_u64(number)?
        .checked_mul(mul)
        .ok_or(ValueError::Overflow)
}
