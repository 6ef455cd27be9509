//! The signed manifest of the boot archive: which domain images exist, how
//! big they are, their SHA-256 digests, what each may do, and which domains
//! start at boot. Its signature is checked by the kernel's loader; this
//! module only parses the text, strictly.
//!
//! ```text
//! domain-manifest v1
//! # comments and blank lines are ignored
//! image NAME SIZE SHA256
//! export IMAGE NAME
//! device IMAGE CC:SS:PP[:VVVV]
//! supervise IMAGE TARGET
//! start IMAGE [DOMAIN]
//! ```
//!
//! NAME is 1 to 32 of `[a-z0-9_-]` starting with a letter, SIZE is decimal
//! bytes (at most [`MAX_IMAGE`]), SHA256 is 64 lowercase hex digits. The
//! `start` lines are the system's initial domain graph: the domains the
//! kernel starts at boot, in order, from listed images (under the image's
//! name unless DOMAIN gives another). A manifest lists at most
//! [`MAX_IMAGES`] images, each once, and at most [`MAX_STARTS`] `start`
//! lines, each naming an image listed somewhere in the manifest.
//!
//! The *grants* (`export`, `device`, `supervise` lines, at most
//! [`MAX_GRANTS`], none twice, each naming a listed IMAGE) are the image's
//! policy, which the kernel enforces for domains loaded from the archive:
//! IMAGE may publish export NAME (a name as for images); it may claim PCI
//! functions of base class CC, subclass SS and programming interface PP
//! (two lowercase hex digits each), of any vendor or only of vendor VVVV
//! (four lowercase hex digits); it may supervise (restart) domains running
//! image TARGET, which must be listed too. An image has no right it is not
//! granted. `tools/pack` writes them from each domain crate's
//! `[package.metadata.domain]`.

use core::fmt;

/// The first meaningful line.
pub const HEADER: &str = "domain-manifest v1";
/// Most images a manifest may list.
pub const MAX_IMAGES: usize = 256;
/// Largest image, in bytes.
pub const MAX_IMAGE: u64 = 64 << 20;
/// Most `start` lines a manifest may have.
pub const MAX_STARTS: usize = 256;
/// Most grant lines (`export`, `device`, `supervise`) a manifest may have.
pub const MAX_GRANTS: usize = 512;

/// Why a manifest was refused (`line` is 1-based).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// Not UTF-8, or has carriage returns.
    NotText,
    /// The first meaningful line is not [`HEADER`].
    NoHeader {
        line: usize,
    },
    /// A line that is not `image NAME SIZE SHA256`.
    BadLine {
        line: usize,
    },
    BadName {
        line: usize,
    },
    BadSize {
        line: usize,
    },
    BadDigest {
        line: usize,
    },
    Duplicate {
        line: usize,
    },
    TooManyImages,
    /// More than [`MAX_STARTS`] `start` lines.
    TooManyStarts,
    /// A `start` line names an image the manifest does not list.
    UnknownStart {
        line: usize,
    },
    /// A `device` line whose device is not `CC:SS:PP[:VVVV]`.
    BadDevice {
        line: usize,
    },
    /// A grant names an image (its own or a `supervise` target) the
    /// manifest does not list.
    UnknownImage {
        line: usize,
    },
    /// The same grant twice.
    DuplicateGrant {
        line: usize,
    },
    /// More than [`MAX_GRANTS`] grant lines.
    TooManyGrants,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::NotText => write!(f, "not UTF-8 text with \\n line ends"),
            ManifestError::NoHeader { line } => {
                write!(f, "line {line}: expected '{HEADER}'")
            }
            ManifestError::BadLine { line } => write!(
                f,
                "line {line}: expected 'image NAME SIZE SHA256', 'export IMAGE NAME', \
                 'device IMAGE CC:SS:PP[:VVVV]', 'supervise IMAGE TARGET' or 'start IMAGE [DOMAIN]'"
            ),
            ManifestError::BadName { line } => write!(
                f,
                "line {line}: names are 1-32 of [a-z0-9_-], starting with a letter"
            ),
            ManifestError::BadSize { line } => {
                write!(
                    f,
                    "line {line}: size is not a decimal byte count up to 64 MiB"
                )
            }
            ManifestError::BadDigest { line } => {
                write!(f, "line {line}: digest is not 64 lowercase hex digits")
            }
            ManifestError::Duplicate { line } => write!(f, "line {line}: image listed twice"),
            ManifestError::TooManyImages => write!(f, "more than {MAX_IMAGES} images"),
            ManifestError::TooManyStarts => write!(f, "more than {MAX_STARTS} 'start' lines"),
            ManifestError::UnknownStart { line } => {
                write!(
                    f,
                    "line {line}: 'start' names an image the manifest does not list"
                )
            }
            ManifestError::BadDevice { line } => write!(
                f,
                "line {line}: device is not CC:SS:PP or CC:SS:PP:VVVV (lowercase hex)"
            ),
            ManifestError::UnknownImage { line } => write!(
                f,
                "line {line}: grant names an image the manifest does not list"
            ),
            ManifestError::DuplicateGrant { line } => {
                write!(f, "line {line}: grant given twice")
            }
            ManifestError::TooManyGrants => write!(
                f,
                "more than {MAX_GRANTS} grant lines (export, device, supervise)"
            ),
        }
    }
}

/// One image line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageEntry<'a> {
    /// The image's name (its file in the archive is `NAME.elf`).
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 digest.
    pub sha256: [u8; 32],
}

/// A domain to start at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start<'a> {
    /// The image it runs.
    pub image: &'a str,
    /// The domain's name.
    pub domain: &'a str,
}

/// PCI functions a `device` grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMatch {
    /// Base class, subclass, programming interface.
    pub class: (u8, u8, u8),
    /// Only this vendor's functions, or any vendor's.
    pub vendor: Option<u16>,
}

impl DeviceMatch {
    /// Parses `CC:SS:PP` or `CC:SS:PP:VVVV` (lowercase hex, exactly two or
    /// four digits each).
    pub fn parse(text: &str) -> Option<DeviceMatch> {
        fn hex(text: &str, digits: usize) -> Option<u16> {
            if text.len() != digits {
                return None;
            }
            text.bytes().try_fold(0u16, |acc, c| {
                let digit = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                Some(acc << 4 | u16::from(digit))
            })
        }
        let mut parts = text.split(':');
        let (Some(c), Some(s), Some(p), vendor, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let byte = |t| hex(t, 2).map(|v| v as u8);
        Some(DeviceMatch {
            class: (byte(c)?, byte(s)?, byte(p)?),
            vendor: match vendor {
                Some(v) => Some(hex(v, 4)?),
                None => None,
            },
        })
    }

    /// Whether a function of `class` from `vendor` is covered.
    pub fn matches(&self, class: (u8, u8, u8), vendor: u16) -> bool {
        self.class == class && self.vendor.is_none_or(|v| v == vendor)
    }
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right<'a> {
    /// Publishing an export of this name.
    Export(&'a str),
    /// Claiming these PCI functions.
    Device(DeviceMatch),
    /// Supervising (restarting) domains running this image.
    Supervise(&'a str),
}

/// One grant line: `image` has `right`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    /// The image granted the right.
    pub image: &'a str,
    /// The right.
    pub right: Right<'a>,
}

/// A parsed manifest.
#[derive(Debug, Clone, Copy)]
pub struct Manifest<'a> {
    text: &'a str,
}

/// Whether `name` is a valid image name.
pub fn is_valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_size(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 12 || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    let value = text.bytes().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })?;
    (value <= MAX_IMAGE).then_some(value)
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// One meaningful line after the header.
enum Line<'a> {
    Image(ImageEntry<'a>),
    Start(Start<'a>),
    Grant(Grant<'a>),
}

/// `KEYWORD IMAGE VALUE` (exactly three words), for a grant keyword.
fn parse_grant(line: &str, number: usize) -> Option<Result<Grant<'_>, ManifestError>> {
    let mut words = line.split(' ');
    let keyword = words.next()?;
    if !matches!(keyword, "export" | "device" | "supervise") {
        return None;
    }
    let (Some(image), Some(value), None) = (words.next(), words.next(), words.next()) else {
        return Some(Err(ManifestError::BadLine { line: number }));
    };
    if !is_valid_name(image) {
        return Some(Err(ManifestError::BadName { line: number }));
    }
    let right = match keyword {
        "device" => match DeviceMatch::parse(value) {
            Some(device) => Right::Device(device),
            None => return Some(Err(ManifestError::BadDevice { line: number })),
        },
        _ if !is_valid_name(value) => {
            return Some(Err(ManifestError::BadName { line: number }));
        }
        "export" => Right::Export(value),
        _ => Right::Supervise(value),
    };
    Some(Ok(Grant { image, right }))
}

fn parse_any(line: &str, number: usize) -> Result<Line<'_>, ManifestError> {
    if let Some(grant) = parse_grant(line, number) {
        return grant.map(Line::Grant);
    }
    if let Some(rest) = line.strip_prefix("start ") {
        let mut words = rest.split(' ');
        let (Some(image), domain, None) = (words.next(), words.next(), words.next()) else {
            return Err(ManifestError::BadLine { line: number });
        };
        let domain = domain.unwrap_or(image);
        if !is_valid_name(image) || !is_valid_name(domain) {
            return Err(ManifestError::BadName { line: number });
        }
        return Ok(Line::Start(Start { image, domain }));
    }
    parse_line(line, number).map(Line::Image)
}

/// The image on one `image` line.
fn parse_line(line: &str, number: usize) -> Result<ImageEntry<'_>, ManifestError> {
    let mut words = line.split(' ');
    let (Some("image"), Some(name), Some(size), Some(digest), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(ManifestError::BadLine { line: number });
    };
    if !is_valid_name(name) {
        return Err(ManifestError::BadName { line: number });
    }
    Ok(ImageEntry {
        name,
        size: parse_size(size).ok_or(ManifestError::BadSize { line: number })?,
        sha256: parse_digest(digest).ok_or(ManifestError::BadDigest { line: number })?,
    })
}

/// Meaningful lines with their 1-based numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

impl<'a> Manifest<'a> {
    /// Checks every line (see the module doc).
    pub fn parse(bytes: &'a [u8]) -> Result<Manifest<'a>, ManifestError> {
        let text = core::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
        if text.contains('\r') {
            return Err(ManifestError::NotText);
        }
        let mut meaningful = lines(text);
        match meaningful.next() {
            Some((_, HEADER)) => {}
            Some((line, _)) => return Err(ManifestError::NoHeader { line }),
            None => return Err(ManifestError::NoHeader { line: 1 }),
        }
        // Pass 1: every line's syntax, the counts and duplicates. The names
        // seen so far live in a fixed array (4 KiB), so each check costs at
        // most MAX_IMAGES comparisons whatever the text's length.
        // Grant lines are kept the same way (8 KiB) to find duplicates.
        let mut names = [""; MAX_IMAGES];
        let mut count = 0;
        let mut starts = 0;
        let mut grants = [""; MAX_GRANTS];
        let mut grant_count = 0;
        for (number, line) in meaningful {
            let entry = match parse_any(line, number)? {
                Line::Image(entry) => entry,
                Line::Start(_) if starts == MAX_STARTS => {
                    return Err(ManifestError::TooManyStarts);
                }
                Line::Start(_) => {
                    starts += 1;
                    continue;
                }
                Line::Grant(_) if grant_count == MAX_GRANTS => {
                    return Err(ManifestError::TooManyGrants);
                }
                Line::Grant(_) => {
                    // A line's words are canonical (single spaces, exact
                    // spellings), so equal grants are equal lines.
                    if grants[..grant_count].contains(&line) {
                        return Err(ManifestError::DuplicateGrant { line: number });
                    }
                    grants[grant_count] = line;
                    grant_count += 1;
                    continue;
                }
            };
            if count == MAX_IMAGES {
                return Err(ManifestError::TooManyImages);
            }
            if names[..count].contains(&entry.name) {
                return Err(ManifestError::Duplicate { line: number });
            }
            names[count] = entry.name;
            count += 1;
        }
        // Pass 2: each `start` and grant names listed images (anywhere in
        // the text).
        let listed = |name: &str| names[..count].contains(&name);
        for (number, line) in lines(text).skip(1) {
            match parse_any(line, number) {
                Ok(Line::Start(start)) if !listed(start.image) => {
                    return Err(ManifestError::UnknownStart { line: number });
                }
                Ok(Line::Grant(grant))
                    if !listed(grant.image)
                        || matches!(grant.right, Right::Supervise(target) if !listed(target)) =>
                {
                    return Err(ManifestError::UnknownImage { line: number });
                }
                _ => {}
            }
        }
        Ok(Manifest { text })
    }

    /// The images, in order.
    pub fn images(&self) -> impl Iterator<Item = ImageEntry<'a>> + 'a {
        lines(self.text)
            .skip(1)
            .filter_map(|(number, line)| match parse_any(line, number) {
                Ok(Line::Image(entry)) => Some(entry),
                _ => None,
            })
    }

    /// The domains to start at boot, in order.
    pub fn starts(&self) -> impl Iterator<Item = Start<'a>> + 'a {
        lines(self.text)
            .skip(1)
            .filter_map(|(number, line)| match parse_any(line, number) {
                Ok(Line::Start(start)) => Some(start),
                _ => None,
            })
    }

    /// The image called `name`.
    pub fn find(&self, name: &str) -> Option<ImageEntry<'a>> {
        self.images().find(|e| e.name == name)
    }

    /// Every grant, in order.
    pub fn grants(&self) -> impl Iterator<Item = Grant<'a>> + 'a {
        lines(self.text)
            .skip(1)
            .filter_map(|(number, line)| match parse_any(line, number) {
                Ok(Line::Grant(grant)) => Some(grant),
                _ => None,
            })
    }

    /// The rights granted to `image`, in order.
    pub fn rights_of<'s>(&self, image: &'s str) -> impl Iterator<Item = Right<'a>> + 's
    where
        'a: 's,
    {
        self.grants()
            .filter(move |g| g.image == image)
            .map(|g| g.right)
    }

    /// Whether `image` may publish an export called `name`.
    pub fn may_export(&self, image: &str, name: &str) -> bool {
        self.rights_of(image).any(|r| r == Right::Export(name))
    }

    /// Whether `image` may claim a PCI function of `class` from `vendor`.
    pub fn may_claim(&self, image: &str, class: (u8, u8, u8), vendor: u16) -> bool {
        self.rights_of(image)
            .any(|r| matches!(r, Right::Device(d) if d.matches(class, vendor)))
    }

    /// Whether `image` may claim some PCI function of `class` (of some
    /// vendor).
    pub fn may_claim_class(&self, image: &str, class: (u8, u8, u8)) -> bool {
        self.rights_of(image)
            .any(|r| matches!(r, Right::Device(d) if d.class == class))
    }

    /// Whether `image` may supervise domains running image `target`.
    pub fn may_supervise(&self, image: &str, target: &str) -> bool {
        self.rights_of(image).any(|r| r == Right::Supervise(target))
    }
}

#[cfg(test)]
mod tests;
