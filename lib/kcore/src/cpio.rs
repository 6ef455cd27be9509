//! Reading cpio "newc" archives (the boot archive of domain images).
//!
//! [`Archive::parse`] checks every header up to the trailer once; after
//! that, [`Archive::entries`] and [`Archive::find`] walk the validated
//! bytes again (no allocation). Hostile input gets an error naming the
//! byte offset, never a panic.

use core::fmt;

const MAGIC: &[u8; 6] = b"070701";
const HEADER: usize = 110;
const TRAILER: &str = "TRAILER!!!";
/// Most entries an archive may hold.
pub const MAX_ENTRIES: usize = 1024;
/// Longest name, in bytes, including its NUL.
pub const MAX_NAME: usize = 4096;

/// Why an archive was refused; `offset` is where the bad entry starts (for
/// [`CpioError::BadHex`], where the bad field starts).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpioError {
    /// The magic at `offset` is another cpio flavour or not cpio at all.
    BadMagic { offset: usize, other_cpio: bool },
    /// A header field has a non-hex digit.
    BadHex { offset: usize },
    /// The archive ends inside a header, name or file.
    Truncated { offset: usize },
    /// A name size of 0 or more than [`MAX_NAME`].
    BadNameSize { offset: usize, size: usize },
    /// A name without its NUL, not UTF-8, absolute or with `..`.
    BadName { offset: usize },
    /// A second file of the same name.
    Duplicate { offset: usize },
    /// More than [`MAX_ENTRIES`] files.
    TooManyEntries,
    /// The bytes end before the trailer entry.
    NoTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::BadMagic {
                offset,
                other_cpio: true,
            } => write!(
                f,
                "at byte {offset}: old or CRC cpio format (only newc, 070701, is supported)"
            ),
            CpioError::BadMagic { offset, .. } => {
                write!(f, "at byte {offset}: not a cpio newc header")
            }
            CpioError::BadHex { offset } => {
                write!(f, "at byte {offset}: header field is not hexadecimal")
            }
            CpioError::Truncated { offset } => {
                write!(f, "at byte {offset}: archive ends inside an entry")
            }
            CpioError::BadNameSize { offset, size } => {
                write!(f, "at byte {offset}: name size {size} out of range")
            }
            CpioError::BadName { offset } => write!(
                f,
                "at byte {offset}: name is not a relative UTF-8 path without '..'"
            ),
            CpioError::Duplicate { offset } => write!(f, "at byte {offset}: duplicate name"),
            CpioError::TooManyEntries => write!(f, "more than {MAX_ENTRIES} entries"),
            CpioError::NoTrailer => write!(f, "no TRAILER!!! entry"),
        }
    }
}

/// One file of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its path in the archive.
    pub name: &'a str,
    /// Its contents.
    pub data: &'a [u8],
    /// Its mode bits (type and permissions).
    pub mode: u32,
}

/// A validated archive.
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

fn hex_field(bytes: &[u8], offset: usize, index: usize) -> Result<usize, CpioError> {
    let at = offset + 6 + index * 8;
    let field = bytes
        .get(at..at + 8)
        .ok_or(CpioError::Truncated { offset })?;
    let mut value = 0usize;
    for &digit in field {
        let nibble = (digit as char)
            .to_digit(16)
            .ok_or(CpioError::BadHex { offset: at })?;
        value = (value << 4) | nibble as usize;
    }
    Ok(value)
}

fn align4(x: usize) -> Option<usize> {
    x.checked_add(3).map(|x| x & !3)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".")
}

/// Reads the entry at `offset`: (entry, next offset).
fn read_entry(bytes: &[u8], offset: usize) -> Result<(Entry<'_>, usize), CpioError> {
    let magic = bytes
        .get(offset..offset + 6)
        .ok_or(CpioError::Truncated { offset })?;
    if magic != MAGIC {
        return Err(CpioError::BadMagic {
            offset,
            other_cpio: magic == b"070707" || magic == b"070702",
        });
    }
    if bytes.len() < offset + HEADER {
        return Err(CpioError::Truncated { offset });
    }
    let mode = hex_field(bytes, offset, 1)?;
    let size = hex_field(bytes, offset, 6)?;
    let name_size = hex_field(bytes, offset, 11)?;
    if name_size == 0 || name_size > MAX_NAME {
        return Err(CpioError::BadNameSize {
            offset,
            size: name_size,
        });
    }
    let name_start = offset + HEADER;
    let raw = bytes
        .get(name_start..name_start + name_size)
        .ok_or(CpioError::Truncated { offset })?;
    let (last, text) = raw.split_last().ok_or(CpioError::BadName { offset })?;
    if *last != 0 || text.contains(&0) {
        return Err(CpioError::BadName { offset });
    }
    let name = core::str::from_utf8(text).map_err(|_| CpioError::BadName { offset })?;
    let data_start = align4(name_start + name_size).ok_or(CpioError::Truncated { offset })?;
    let data_end = data_start
        .checked_add(size)
        .ok_or(CpioError::Truncated { offset })?;
    let data = bytes
        .get(data_start..data_end)
        .ok_or(CpioError::Truncated { offset })?;
    let next = align4(data_end).ok_or(CpioError::Truncated { offset })?;
    Ok((
        Entry {
            name,
            data,
            mode: mode as u32,
        },
        next,
    ))
}

impl<'a> Archive<'a> {
    /// Validates `bytes` up to and including the trailer (anything after
    /// it is ignored: archives are often padded).
    pub fn parse(bytes: &'a [u8]) -> Result<Archive<'a>, CpioError> {
        let mut offset = 0;
        let mut count = 0;
        loop {
            let (entry, next) = read_entry(bytes, offset)?;
            if entry.name == TRAILER {
                return Ok(Archive { bytes, count });
            }
            if !valid_name(entry.name) {
                return Err(CpioError::BadName { offset });
            }
            if count == MAX_ENTRIES {
                return Err(CpioError::TooManyEntries);
            }
            // Quadratic, but bounded by MAX_ENTRIES and done once.
            let archive = Archive { bytes, count };
            if archive.entries().any(|e| e.name == entry.name) {
                return Err(CpioError::Duplicate { offset });
            }
            count += 1;
            if next >= bytes.len() {
                return Err(CpioError::NoTrailer);
            }
            offset = next;
        }
    }

    /// The files, in archive order (the trailer excluded).
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        let bytes = self.bytes;
        let mut offset = 0;
        (0..self.count).map_while(move |_| {
            let (entry, next) = read_entry(bytes, offset).ok()?;
            offset = next;
            Some(entry)
        })
    }

    /// The contents of the file `name`.
    pub fn find(&self, name: &str) -> Option<&'a [u8]> {
        self.entries().find(|e| e.name == name).map(|e| e.data)
    }

    /// Files in the archive.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds no file.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests;
