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
    /// The ELF parsed but is not something we load; the message says why.
    Refused(alloc::string::String),
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

fn refuse(why: impl fmt::Display) -> LoadError {
    LoadError::Refused(alloc::format!("{why}"))
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
            return Err(refuse("not a 64-bit image"));
        }
        if header.e_machine != abi::EM_X86_64 {
            return Err(refuse(alloc::format!(
                "machine {} is not x86-64",
                header.e_machine
            )));
        }
        if header.e_type != abi::ET_DYN {
            return Err(refuse(
                "not a position-independent executable (ELF type must be DYN; build with relocation-model=pie)",
            ));
        }
        let segments_table = file
            .segments()
            .ok_or_else(|| refuse("no program headers"))?;
        if segments_table.len() > 64 {
            return Err(refuse("too many program headers"));
        }
        let mut segments = Vec::new();
        let mut dynamic = None;
        let mut relro = None;
        for ph in segments_table.iter() {
            match ph.p_type {
                abi::PT_LOAD => {
                    if segments.len() == limits.max_segments {
                        return Err(refuse(alloc::format!(
                            "more than {} loadable segments",
                            limits.max_segments
                        )));
                    }
                    let (read, write, execute) = (
                        ph.p_flags & abi::PF_R != 0,
                        ph.p_flags & abi::PF_W != 0,
                        ph.p_flags & abi::PF_X != 0,
                    );
                    if write && execute {
                        return Err(refuse(alloc::format!(
                            "segment at {:#x} is both writable and executable",
                            ph.p_vaddr
                        )));
                    }
                    if !read && ph.p_memsz != 0 {
                        return Err(refuse(alloc::format!(
                            "segment at {:#x} is not readable",
                            ph.p_vaddr
                        )));
                    }
                    if ph.p_align < PAGE || !ph.p_align.is_power_of_two() {
                        return Err(refuse(alloc::format!(
                            "segment at {:#x} is aligned to {:#x}, not to pages",
                            ph.p_vaddr,
                            ph.p_align
                        )));
                    }
                    if ph.p_offset % PAGE != ph.p_vaddr % PAGE {
                        return Err(refuse(alloc::format!(
                            "segment at {:#x}: file offset and address disagree modulo the page size",
                            ph.p_vaddr
                        )));
                    }
                    if ph.p_filesz > ph.p_memsz {
                        return Err(refuse(alloc::format!(
                            "segment at {:#x}: file size exceeds memory size",
                            ph.p_vaddr
                        )));
                    }
                    let file_end = ph
                        .p_offset
                        .checked_add(ph.p_filesz)
                        .filter(|&end| end <= image.len() as u64)
                        .ok_or_else(|| {
                            refuse(alloc::format!(
                                "segment at {:#x} extends past the end of the file",
                                ph.p_vaddr
                            ))
                        })?;
                    let _ = file_end;
                    let mem_end = ph
                        .p_vaddr
                        .checked_add(ph.p_memsz)
                        .filter(|&end| end <= limits.max_span)
                        .ok_or_else(|| {
                            refuse(alloc::format!(
                                "segment at {:#x} (size {:#x}) exceeds the {} MiB image limit",
                                ph.p_vaddr,
                                ph.p_memsz,
                                limits.max_span >> 20
                            ))
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
                abi::PT_INTERP => return Err(refuse("asks for an interpreter")),
                abi::PT_TLS => return Err(refuse("uses thread-local storage")),
                abi::PT_DYNAMIC => dynamic = Some((ph.p_offset, ph.p_filesz)),
                abi::PT_GNU_RELRO => {
                    // Whole pages only (the tail page may hold writable
                    // data). Must lie in one writable segment, checked below.
                    let start = page_up(ph.p_vaddr).ok_or_else(|| refuse("RELRO overflows"))?;
                    let end = page_down(ph.p_vaddr.saturating_add(ph.p_memsz));
                    if end > start {
                        relro = Some((start, end - start));
                    }
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(refuse("no loadable segments"));
        }
        segments.sort_by_key(|s| s.vaddr);
        // No two segments may share a page: each page gets exactly one
        // segment's permissions.
        for pair in segments.windows(2) {
            let first_end = page_up(pair[0].vaddr + pair[0].mem_size)
                .ok_or_else(|| refuse("segment end overflows"))?;
            if page_down(pair[1].vaddr) < first_end {
                return Err(refuse(alloc::format!(
                    "segments at {:#x} and {:#x} overlap or share a page",
                    pair[0].vaddr,
                    pair[1].vaddr
                )));
            }
        }
        let last = segments[segments.len() - 1];
        let span = page_up(last.vaddr + last.mem_size).ok_or_else(|| refuse("span overflows"))?;
        let entry = header.e_entry;
        if !segments
            .iter()
            .any(|s| s.perms.execute && (s.vaddr..s.vaddr + s.mem_size).contains(&entry))
        {
            return Err(refuse(alloc::format!(
                "entry point {entry:#x} is not in an executable segment"
            )));
        }
        if let Some((start, length)) = relro
            && !segments.iter().any(|s| {
                s.perms.write
                    && start >= page_down(s.vaddr)
                    && start + length <= s.vaddr + s.mem_size
            })
        {
            return Err(refuse("RELRO range is not inside one writable segment"));
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
            return Err(refuse("load buffer smaller than the image"));
        }
        for s in &self.segments {
            let source = image
                .get(s.file_offset as usize..(s.file_offset + s.file_size) as usize)
                .ok_or_else(|| refuse("segment outside the file"))?;
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
        .ok_or_else(|| refuse("dynamic section outside the file"))?;
    let (mut rela, mut rela_size, mut rela_entry) = (None, 0u64, 24u64);
    for entry in table.chunks_exact(16) {
        let tag = i64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        let value = u64::from_le_bytes(entry[8..].try_into().expect("8 bytes"));
        match tag {
            abi::DT_NULL => break,
            abi::DT_RELA => rela = Some(value),
            abi::DT_RELASZ => rela_size = value,
            abi::DT_RELAENT => rela_entry = value,
            abi::DT_NEEDED => return Err(refuse("needs a shared library")),
            abi::DT_REL | abi::DT_RELSZ => return Err(refuse("uses REL relocations (only RELA)")),
            abi::DT_JMPREL | abi::DT_PLTRELSZ if value != 0 => {
                return Err(refuse("has PLT relocations (symbols to resolve)"));
            }
            abi::DT_TEXTREL => return Err(refuse("has text relocations")),
            _ => {}
        }
    }
    let Some(rela) = rela else {
        return Ok(Vec::new());
    };
    if rela_entry != 24 {
        return Err(refuse(alloc::format!(
            "relocation entries of {rela_entry} bytes, not 24"
        )));
    }
    if rela_size % 24 != 0 || rela_size / 24 > limits.max_relocations as u64 {
        return Err(refuse("bad relocation table size"));
    }
    let (start, length) = file_range(segments, rela, rela_size)
        .ok_or_else(|| refuse("relocation table outside the loaded file"))?;
    let bytes = image
        .get(start as usize..(start + length) as usize)
        .ok_or_else(|| refuse("relocation table outside the file"))?;
    let mut out = Vec::with_capacity(bytes.len() / 24);
    for entry in bytes.chunks_exact(24) {
        let r_offset = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
        let r_info = u64::from_le_bytes(entry[8..16].try_into().expect("8 bytes"));
        let r_addend = i64::from_le_bytes(entry[16..].try_into().expect("8 bytes"));
        match (r_info & 0xffff_ffff) as u32 {
            abi::R_X86_64_NONE => continue,
            abi::R_X86_64_RELATIVE => {}
            other => {
                return Err(refuse(alloc::format!(
                    "relocation type {other} at {r_offset:#x} is not supported (only R_X86_64_RELATIVE)"
                )));
            }
        }
        let inside = r_offset.checked_add(8).is_some_and(|end| {
            segments
                .iter()
                .any(|s| r_offset >= s.vaddr && end <= s.vaddr + s.mem_size)
        });
        if !inside {
            return Err(refuse(alloc::format!(
                "relocation at {r_offset:#x} is outside every segment"
            )));
        }
        out.push((r_offset, r_addend));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
