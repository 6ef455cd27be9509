//! Domain images, from boot archive to a load plan.
//!
//! Two steps, both pure logic (no memory mapping), so every check runs on
//! the host against real images and corrupted ones:
//!
//! 1. [`Catalog::open`]: the boot archive (cpio newc) must hold a
//!    `manifest` and its Ed25519 signature `manifest.sig`, made by the
//!    trusted build's key; [`Catalog::image`] then gives an image's bytes
//!    only if its size and SHA-256 match its manifest line.
//! 2. [`Plan::new`]: the ELF must be a 64-bit little-endian x86-64
//!    position-independent executable with sane, non-overlapping,
//!    page-aligned `PT_LOAD` segments, none both writable and executable,
//!    no interpreter, no TLS, no needed libraries, only `R_X86_64_RELATIVE`
//!    relocations (each inside a segment), an entry point inside an
//!    executable segment, and everything within [`Limits`]. The plan lists
//!    what to map with which permissions; [`Plan::load_into`] copies the
//!    segments into a buffer the size of the image and applies the
//!    relocations for a base address.
//!
//! The kernel maps fresh pages read-write, loads into them through
//! [`Plan::load_into`], then sets each page's final permissions from
//! [`Plan::pages`].

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use elf::ElfBytes;
use elf::abi;
use elf::endian::LittleEndian;
use kcore::cpio::Archive;
use kcore::manifest::Manifest;
use sha2::{Digest, Sha256};

pub const PAGE: u64 = 4096;

/// Why an archive or image was refused. Every variant is a message a user
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The kernel was built without the domain signing key.
    NoKey,
    Archive(kcore::cpio::CpioError),
    MissingManifest,
    MissingSignature,
    BadSignature,
    Manifest(kcore::manifest::ManifestError),
    /// No manifest line for the image.
    NotInManifest,
    /// The manifest names it but the archive lacks `NAME.elf`.
    MissingImage,
    SizeMismatch {
        manifest: u64,
        actual: u64,
    },
    DigestMismatch,
    /// The ELF could not be parsed.
    Elf(&'static str),
    /// The ELF parsed but is not something we load.
    Refused(Refusal),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoKey => write!(f, "this kernel was built without a domain signing key"),
            LoadError::Archive(e) => write!(f, "boot archive: {e}"),
            LoadError::MissingManifest => write!(f, "boot archive has no 'manifest'"),
            LoadError::MissingSignature => write!(f, "boot archive has no 'manifest.sig'"),
            LoadError::BadSignature => {
                write!(
                    f,
                    "manifest signature does not verify with the build key (tampered or foreign archive)"
                )
            }
            LoadError::Manifest(e) => write!(f, "manifest: {e}"),
            LoadError::NotInManifest => write!(f, "image not listed in the signed manifest"),
            LoadError::MissingImage => write!(
                f,
                "image listed in the manifest but missing from the archive"
            ),
            LoadError::SizeMismatch { manifest, actual } => {
                write!(
                    f,
                    "image is {actual} bytes, the manifest says {manifest} (tampered)"
                )
            }
            LoadError::DigestMismatch => {
                write!(
                    f,
                    "image SHA-256 does not match the signed manifest (tampered)"
                )
            }
            LoadError::Elf(e) => write!(f, "not a valid ELF file: {e}"),
            LoadError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// Why a well-formed ELF is not an image we load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Not64Bit,
    /// The `e_machine` it is for.
    Machine(u16),
    /// Not a position-independent executable (ELF type DYN).
    NotPie,
    NoProgramHeaders,
    TooManyProgramHeaders,
    /// More loadable segments than the limit (given).
    TooManySegments(usize),
    /// The segment at this address is writable and executable.
    WritableAndExecutable(u64),
    NotReadable(u64),
    /// A segment aligned to less than a page.
    Misaligned {
        vaddr: u64,
        align: u64,
    },
    /// File offset and address disagree modulo the page size.
    OffsetMismatch(u64),
    FileSizeExceedsMemory(u64),
    PastEndOfFile(u64),
    /// A segment larger than the image limit (MiB).
    TooLarge {
        vaddr: u64,
        size: u64,
        limit_mib: u64,
    },
    Interpreter,
    ThreadLocalStorage,
    /// An address computation overflowed (what).
    Overflow(&'static str),
    NoLoadableSegments,
    /// Two segments that overlap or share a page.
    SharedPage(u64, u64),
    EntryNotExecutable(u64),
    RelroOutsideWritable,
    BufferTooSmall,
    SegmentOutsideFile,
    DynamicOutsideFile,
    NeedsSharedLibrary,
    RelRelocations,
    PltRelocations,
    TextRelocations,
    /// RELA entries of this many bytes (not 24).
    RelaEntrySize(u64),
    RelocationTableSize,
    RelocationTableNotLoaded,
    RelocationTableOutsideFile,
    /// A relocation of a type other than `R_X86_64_RELATIVE`.
    RelocationType {
        kind: u32,
        offset: u64,
    },
    RelocationOutsideSegments(u64),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::Not64Bit => write!(f, "not a 64-bit image"),
            Refusal::Machine(m) => write!(f, "machine {m} is not x86-64"),
            Refusal::NotPie => write!(
                f,
                "not a position-independent executable (ELF type must be DYN; build with relocation-model=pie)"
            ),
            Refusal::NoProgramHeaders => write!(f, "no program headers"),
            Refusal::TooManyProgramHeaders => write!(f, "too many program headers"),
            Refusal::TooManySegments(n) => write!(f, "more than {n} loadable segments"),
            Refusal::WritableAndExecutable(v) => {
                write!(f, "segment at {v:#x} is both writable and executable")
            }
            Refusal::NotReadable(v) => write!(f, "segment at {v:#x} is not readable"),
            Refusal::Misaligned { vaddr, align } => {
                write!(
                    f,
                    "segment at {vaddr:#x} is aligned to {align:#x}, not to pages"
                )
            }
            Refusal::OffsetMismatch(v) => write!(
                f,
                "segment at {v:#x}: file offset and address disagree modulo the page size"
            ),
            Refusal::FileSizeExceedsMemory(v) => {
                write!(f, "segment at {v:#x}: file size exceeds memory size")
            }
            Refusal::PastEndOfFile(v) => {
                write!(f, "segment at {v:#x} extends past the end of the file")
            }
            Refusal::TooLarge {
                vaddr,
                size,
                limit_mib,
            } => write!(
                f,
                "segment at {vaddr:#x} (size {size:#x}) exceeds the {limit_mib} MiB image limit"
            ),
            Refusal::Interpreter => write!(f, "asks for an interpreter"),
            Refusal::ThreadLocalStorage => write!(f, "uses thread-local storage"),
            Refusal::Overflow(what) => write!(f, "{what} overflows"),
            Refusal::NoLoadableSegments => write!(f, "no loadable segments"),
            Refusal::SharedPage(a, b) => {
                write!(f, "segments at {a:#x} and {b:#x} overlap or share a page")
            }
            Refusal::EntryNotExecutable(e) => {
                write!(f, "entry point {e:#x} is not in an executable segment")
            }
            Refusal::RelroOutsideWritable => {
                write!(f, "RELRO range is not inside one writable segment")
            }
            Refusal::BufferTooSmall => write!(f, "load buffer smaller than the image"),
            Refusal::SegmentOutsideFile => write!(f, "segment outside the file"),
            Refusal::DynamicOutsideFile => write!(f, "dynamic section outside the file"),
            Refusal::NeedsSharedLibrary => write!(f, "needs a shared library"),
            Refusal::RelRelocations => write!(f, "uses REL relocations (only RELA)"),
            Refusal::PltRelocations => write!(f, "has PLT relocations (symbols to resolve)"),
            Refusal::TextRelocations => write!(f, "has text relocations"),
            Refusal::RelaEntrySize(n) => write!(f, "relocation entries of {n} bytes, not 24"),
            Refusal::RelocationTableSize => write!(f, "bad relocation table size"),
            Refusal::RelocationTableNotLoaded => {
                write!(f, "relocation table outside the loaded file")
            }
            Refusal::RelocationTableOutsideFile => write!(f, "relocation table outside the file"),
            Refusal::RelocationType { kind, offset } => write!(
                f,
                "relocation type {kind} at {offset:#x} is not supported (only R_X86_64_RELATIVE)"
            ),
            Refusal::RelocationOutsideSegments(o) => {
                write!(f, "relocation at {o:#x} is outside every segment")
            }
        }
    }
}

impl From<Refusal> for LoadError {
    fn from(refusal: Refusal) -> LoadError {
        LoadError::Refused(refusal)
    }
}

/// A verified boot archive: its manifest's signature checked.
pub struct Catalog<'a> {
    archive: Archive<'a>,
    manifest: Manifest<'a>,
}

impl<'a> Catalog<'a> {
    /// Parses `archive` and checks the manifest's signature with
    /// `public_key` (the build key the kernel embeds; all zeroes means the
    /// kernel has none).
    pub fn open(archive: &'a [u8], public_key: &[u8; 32]) -> Result<Catalog<'a>, LoadError> {
        if public_key.iter().all(|&b| b == 0) {
            return Err(LoadError::NoKey);
        }
        let archive = Archive::parse(archive).map_err(LoadError::Archive)?;
        let text = archive.find("manifest").ok_or(LoadError::MissingManifest)?;
        let signature = archive
            .find("manifest.sig")
            .ok_or(LoadError::MissingSignature)?;
        let signature = Signature::from_slice(signature).map_err(|_| LoadError::BadSignature)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| LoadError::NoKey)?;
        key.verify_strict(text, &signature)
            .map_err(|_| LoadError::BadSignature)?;
        let manifest = Manifest::parse(text).map_err(LoadError::Manifest)?;
        Ok(Catalog { archive, manifest })
    }

    /// The signed manifest (its grants are the images' policy).
    pub fn manifest(&self) -> &Manifest<'a> {
        &self.manifest
    }

    /// The names of the images the manifest lists.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.manifest.images().map(|i| i.name)
    }

    /// The domains to start at boot (image, domain name), in order.
    pub fn starts(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.manifest.starts().map(|s| (s.image, s.domain))
    }

    /// The bytes of image `name`, if the manifest lists it and its size and
    /// digest match.
    pub fn image(&self, name: &str) -> Result<&'a [u8], LoadError> {
        let entry = self.manifest.find(name).ok_or(LoadError::NotInManifest)?;
        let file = alloc::format!("{name}.elf");
        let bytes = self.archive.find(&file).ok_or(LoadError::MissingImage)?;
        if bytes.len() as u64 != entry.size {
            return Err(LoadError::SizeMismatch {
                manifest: entry.size,
                actual: bytes.len() as u64,
            });
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if digest != entry.sha256 {
            return Err(LoadError::DigestMismatch);
        }
        Ok(bytes)
    }
}

/// Upper bounds for what an image may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of address space the loaded image spans.
    pub max_span: u64,
    pub max_segments: usize,
    pub max_relocations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_span: 64 << 20,
            max_segments: 16,
            max_relocations: 1 << 20,
        }
    }
}

/// Permissions of a mapped range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    pub write: bool,
    pub execute: bool,
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "r{}{}",
            if self.write { "w" } else { "-" },
            if self.execute { "x" } else { "-" }
        )
    }
}

/// One `PT_LOAD` segment, relative to the image base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub perms: Perms,
}

/// What loading an image takes: checked, ready to map.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Bytes from base to the end of the last segment, page-rounded.
    pub span: u64,
    pub segments: Vec<Segment>,
    /// Offsets (from base) of 64-bit words that get `base + addend`.
    pub relocations: Vec<(u64, i64)>,
    /// Entry point, relative to base.
    pub entry: u64,
    /// Pages (offset, length) made read-only once relocated (`PT_GNU_RELRO`:
    /// vtables and other data only relocations write).
    pub relro: Option<(u64, u64)>,
}

fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(page_down)
}

impl Plan {
    /// Checks `image` and plans its load (see the module doc).
    pub fn new(image: &[u8], limits: &Limits) -> Result<Plan, LoadError> {
        let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|e| {
            LoadError::Elf(match e {
                elf::ParseError::BadMagic(_) => "bad magic (not ELF)",
                elf::ParseError::UnsupportedElfClass(_) => "not a 64-bit ELF",
                elf::ParseError::UnsupportedElfEndianness(_) => "not little-endian",
                elf::ParseError::UnsupportedVersion(_) => "unsupported ELF version",
                elf::ParseError::BadOffset(_) | elf::ParseError::SliceReadError(_) => {
                    "truncated or bad offset"
                }
                _ => "malformed header",
            })
        })?;
        let header = &file.ehdr;
        if header.class != elf::file::Class::ELF64 {
            return Err(Refusal::Not64Bit.into());
        }
        if header.e_machine != abi::EM_X86_64 {
            return Err(Refusal::Machine(header.e_machine).into());
        }
        if header.e_type != abi::ET_DYN {
            return Err(Refusal::NotPie.into());
        }
        let segments_table = file
            .segments()
            .ok_or(LoadError::Refused(Refusal::NoProgramHeaders))?;
        if segments_table.len() > 64 {
            return Err(Refusal::TooManyProgramHeaders.into());
        }
        let mut segments = Vec::new();
        let mut dynamic = None;
        let mut relro = None;
        for ph in segments_table.iter() {
            match ph.p_type {
                abi::PT_LOAD => {
                    if segments.len() == limits.max_segments {
                        return Err(Refusal::TooManySegments(limits.max_segments).into());
                    }
                    let (read, write, execute) = (
                        ph.p_flags & abi::PF_R != 0,
                        ph.p_flags & abi::PF_W != 0,
                        ph.p_flags & abi::PF_X != 0,
                    );
                    if write && execute {
                        return Err(Refusal::WritableAndExecutable(ph.p_vaddr).into());
                    }
                    if !read && ph.p_memsz != 0 {
                        return Err(Refusal::NotReadable(ph.p_vaddr).into());
                    }
                    if ph.p_align < PAGE || !ph.p_align.is_power_of_two() {
                        return Err(Refusal::Misaligned {
                            vaddr: ph.p_vaddr,
                            align: ph.p_align,
                        }
                        .into());
                    }
                    if ph.p_offset % PAGE != ph.p_vaddr % PAGE {
                        return Err(Refusal::OffsetMismatch(ph.p_vaddr).into());
                    }
                    if ph.p_filesz > ph.p_memsz {
                        return Err(Refusal::FileSizeExceedsMemory(ph.p_vaddr).into());
                    }
                    let file_end = ph
                        .p_offset
                        .checked_add(ph.p_filesz)
                        .filter(|&end| end <= image.len() as u64)
                        .ok_or(Refusal::PastEndOfFile(ph.p_vaddr))?;
                    let _ = file_end;
                    let mem_end = ph
                        .p_vaddr
                        .checked_add(ph.p_memsz)
                        .filter(|&end| end <= limits.max_span)
                        .ok_or({
                            LoadError::Refused(Refusal::TooLarge {
                                vaddr: ph.p_vaddr,
                                size: ph.p_memsz,
                                limit_mib: limits.max_span >> 20,
                            })
                        })?;
                    let _ = mem_end;
                    if ph.p_memsz == 0 {
                        continue;
                    }
                    segments.push(Segment {
                        vaddr: ph.p_vaddr,
                        mem_size: ph.p_memsz,
                        file_offset: ph.p_offset,
                        file_size: ph.p_filesz,
                        perms: Perms { write, execute },
                    });
                }
                abi::PT_INTERP => return Err(Refusal::Interpreter.into()),
                abi::PT_TLS => return Err(Refusal::ThreadLocalStorage.into()),
                abi::PT_DYNAMIC => dynamic = Some((ph.p_offset, ph.p_filesz)),
                abi::PT_GNU_RELRO => {
                    // Whole pages only (the tail page may hold writable
                    // data). Must lie in one writable segment, checked below.
                    let start = page_up(ph.p_vaddr)
                        .ok_or(LoadError::Refused(Refusal::Overflow("RELRO")))?;
                    let end = page_down(ph.p_vaddr.saturating_add(ph.p_memsz));
                    if end > start {
                        relro = Some((start, end - start));
                    }
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(Refusal::NoLoadableSegments.into());
        }
        segments.sort_by_key(|s| s.vaddr);
        // No two segments may share a page: each page gets exactly one
        // segment's permissions.
        for pair in segments.windows(2) {
            let first_end = page_up(pair[0].vaddr + pair[0].mem_size)
                .ok_or(LoadError::Refused(Refusal::Overflow("segment end")))?;
            if page_down(pair[1].vaddr) < first_end {
                return Err(Refusal::SharedPage(pair[0].vaddr, pair[1].vaddr).into());
            }
        }
        let last = segments[segments.len() - 1];
        let span = page_up(last.vaddr + last.mem_size)
            .ok_or(LoadError::Refused(Refusal::Overflow("span")))?;
        let entry = header.e_entry;
        if !segments
            .iter()
            .any(|s| s.perms.execute && (s.vaddr..s.vaddr + s.mem_size).contains(&entry))
        {
            return Err(Refusal::EntryNotExecutable(entry).into());
        }
        if let Some((start, length)) = relro
            && !segments.iter().any(|s| {
                s.perms.write
                    && start >= page_down(s.vaddr)
                    && start + length <= s.vaddr + s.mem_size
            })
        {
            return Err(Refusal::RelroOutsideWritable.into());
        }
        let relocations = match dynamic {
            Some((offset, size)) => relocations(image, offset, size, &segments, limits)?,
            None => Vec::new(),
        };
        Ok(Plan {
            span,
            segments,
            relocations,
            entry,
            relro,
        })
    }

    /// Page ranges (offset from base, length) with their final
    /// permissions, in order, covering every segment: a segment's
    /// permissions, except read-only for its RELRO pages.
    pub fn pages(&self) -> Vec<(u64, u64, Perms)> {
        let mut out = Vec::new();
        for s in &self.segments {
            let start = page_down(s.vaddr);
            let end = page_up(s.vaddr + s.mem_size).unwrap_or(self.span);
            match self.relro {
                Some((r_start, r_len)) if s.perms.write && r_start >= start && r_start < end => {
                    let r_end = (r_start + r_len).min(end);
                    if r_start > start {
                        out.push((start, r_start - start, s.perms));
                    }
                    out.push((r_start, r_end - r_start, Perms::default()));
                    if end > r_end {
                        out.push((r_end, end - r_end, s.perms));
                    }
                }
                _ => out.push((start, end - start, s.perms)),
            }
        }
        out
    }

    /// Copies the segments of `image` into `memory` (the image's span,
    /// zeroed by the caller: `.bss` and gaps stay zero) and applies the
    /// relocations as if `memory` were mapped at `base`.
    pub fn load_into(&self, image: &[u8], memory: &mut [u8], base: u64) -> Result<(), LoadError> {
        if (memory.len() as u64) < self.span {
            return Err(Refusal::BufferTooSmall.into());
        }
        for s in &self.segments {
            let source = image
                .get(s.file_offset as usize..(s.file_offset + s.file_size) as usize)
                .ok_or(LoadError::Refused(Refusal::SegmentOutsideFile))?;
            memory[s.vaddr as usize..(s.vaddr + s.file_size) as usize].copy_from_slice(source);
        }
        for &(offset, addend) in &self.relocations {
            let value = base.wrapping_add_signed(addend);
            memory[offset as usize..offset as usize + 8].copy_from_slice(&value.to_le_bytes());
        }
        Ok(())
    }
}

/// The file range of the virtual range `[vaddr, vaddr + size)`, if a
/// segment's file bytes hold all of it.
fn file_range(segments: &[Segment], vaddr: u64, size: u64) -> Option<(u64, u64)> {
    let end = vaddr.checked_add(size)?;
    segments.iter().find_map(|s| {
        (vaddr >= s.vaddr && end <= s.vaddr + s.file_size)
            .then(|| (s.file_offset + (vaddr - s.vaddr), size))
    })
}

fn relocations(
    image: &[u8],
    offset: u64,
    size: u64,
    segments: &[Segment],
    limits: &Limits,
) -> Result<Vec<(u64, i64)>, LoadError> {
    let table = image
        .get(offset as usize..offset.saturating_add(size) as usize)
        .ok_or(LoadError::Refused(Refusal::DynamicOutsideFile))?;
    let (mut rela, mut rela_size, mut rela_entry) = (None, 0u64, 24u64);
    for entry in table.chunks_exact(16) {
        let tag = i64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        let value = u64::from_le_bytes(entry[8..].try_into().expect("8 bytes"));
        match tag {
            abi::DT_NULL => break,
            abi::DT_RELA => rela = Some(value),
            abi::DT_RELASZ => rela_size = value,
            abi::DT_RELAENT => rela_entry = value,
            abi::DT_NEEDED => return Err(Refusal::NeedsSharedLibrary.into()),
            abi::DT_REL | abi::DT_RELSZ => return Err(Refusal::RelRelocations.into()),
            abi::DT_JMPREL | abi::DT_PLTRELSZ if value != 0 => {
                return Err(Refusal::PltRelocations.into());
            }
            abi::DT_TEXTREL => return Err(Refusal::TextRelocations.into()),
            _ => {}
        }
    }
    let Some(rela) = rela else {
        return Ok(Vec::new());
    };
    if rela_entry != 24 {
        return Err(Refusal::RelaEntrySize(rela_entry).into());
    }
    if rela_size % 24 != 0 || rela_size / 24 > limits.max_relocations as u64 {
        return Err(Refusal::RelocationTableSize.into());
    }
    let (start, length) = file_range(segments, rela, rela_size)
        .ok_or(LoadError::Refused(Refusal::RelocationTableNotLoaded))?;
    let bytes = image
        .get(start as usize..(start + length) as usize)
        .ok_or(LoadError::Refused(Refusal::RelocationTableOutsideFile))?;
    let mut out = Vec::with_capacity(bytes.len() / 24);
    for entry in bytes.chunks_exact(24) {
        let r_offset = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        let r_info = u64::from_le_bytes(entry[8..16].try_into().expect("8 bytes"));
        let r_addend = i64::from_le_bytes(entry[16..].try_into().expect("8 bytes"));
        match (r_info & 0xffff_ffff) as u32 {
            abi::R_X86_64_NONE => continue,
            abi::R_X86_64_RELATIVE => {}
            other => {
                return Err(Refusal::RelocationType {
                    kind: other,
                    offset: r_offset,
                }
                .into());
            }
        }
        let inside = r_offset.checked_add(8).is_some_and(|end| {
            segments
                .iter()
                .any(|s| r_offset >= s.vaddr && end <= s.vaddr + s.mem_size)
        });
        if !inside {
            return Err(Refusal::RelocationOutsideSegments(r_offset).into());
        }
        out.push((r_offset, r_addend));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
