//! What the boot loader hands the kernel: the PVH boot protocol's
//! `hvm_start_info` (Xen `public/arch-x86/hvm/start_info.h`; what QEMU hands
//! a kernel it boots with `-kernel` through the PVH entry point), or the
//! multiboot2 boot information (what GRUB 2 hands a kernel it boots with
//! `multiboot2`).
//!
//! [`BootInfo::parse`] (PVH) and [`BootInfo::parse_multiboot2`] read the
//! structure, the command line, the module list and the memory map out of
//! physical memory and copy them into the same fixed-capacity [`BootInfo`],
//! so the rest of the kernel does not care which loader booted it, and
//! nothing the boot loader wrote is needed afterwards except what
//! [`BootInfo::reserved_ranges`] lists.

mod memmap;
mod multiboot2;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_multiboot2;

use core::fmt;

pub use memmap::{
    MAX_MEMMAP_ENTRIES, MemoryKind, MemoryMap, MemoryMapError, MemoryRegion, PhysRange,
    UsableRegions,
};
pub use multiboot2::{MAX_MULTIBOOT2_INFO_SIZE, MULTIBOOT2_MAGIC};

use crate::le::{u32_at, u64_at};
use crate::{MemError, PhysMemory};

/// `hvm_start_info.magic`.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Longest kernel command line kept, in bytes (Linux's x86 limit).
pub const MAX_CMDLINE: usize = 2048;
/// Most boot modules accepted.
pub const MAX_MODULES: usize = 64;
/// Room for all module command lines together, in bytes.
pub const MAX_MODULE_CMDLINES: usize = 2048;

/// Size of the version-0 structure; version 1 adds the memory map fields.
const START_INFO_V0_SIZE: usize = 0x28;
const MODLIST_ENTRY_SIZE: u64 = 0x20;
const MEMMAP_ENTRY_SIZE: u64 = 0x18;

/// Whose command line an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineOf {
    /// The kernel's.
    Kernel,
    /// The module with this index.
    Module(usize),
}

impl fmt::Display for CmdlineOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineOf::Kernel => f.write_str("kernel command line"),
            CmdlineOf::Module(i) => write!(f, "command line of module {i}"),
        }
    }
}

/// Why the start info (PVH) or the boot information (multiboot2) could not
/// be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvhError {
    /// A structure the start info points to could not be read.
    Unreadable {
        /// Which structure.
        what: &'static str,
        /// The address it was read from.
        phys: u64,
        /// Why the read failed.
        error: MemError,
    },
    /// The magic number is not [`START_INFO_MAGIC`].
    BadMagic(u32),
    /// More modules than [`MAX_MODULES`].
    TooManyModules(u32),
    /// More memory-map entries than [`MAX_MEMMAP_ENTRIES`].
    TooManyMemmapEntries(u32),
    /// A module's `paddr + size` wraps around.
    ModuleOverflow {
        /// Index of the module.
        index: usize,
    },
    /// A memory-map entry's `addr + size` wraps around.
    MemmapEntryOverflow {
        /// Index of the entry.
        index: usize,
    },
    /// A command line has no NUL within its length limit.
    CmdlineTooLong(CmdlineOf),
    /// A command line is not UTF-8.
    CmdlineNotUtf8(CmdlineOf),
    /// A multiboot2 command line has no NUL before the end of its tag.
    CmdlineUnterminated(CmdlineOf),
    /// A multiboot2 module ends (`mod_end`) before it starts (`mod_start`).
    ModuleEndBeforeStart {
        /// Index of the module.
        index: usize,
    },
    /// The multiboot2 information is not 8-byte aligned.
    Multiboot2Misaligned(u64),
    /// The multiboot2 `total_size` is below 16 (the header and an end tag)
    /// or above [`MAX_MULTIBOOT2_INFO_SIZE`].
    Multiboot2BadTotalSize(u32),
    /// A multiboot2 tag's size is below 8, below what its type needs, or
    /// runs past `total_size`.
    Multiboot2BadTag {
        /// Offset of the tag from the start of the information.
        offset: u32,
        /// The tag's type.
        tag_type: u32,
        /// The tag's size field.
        size: u32,
    },
    /// A multiboot2 tag that may appear only once (command line, memory
    /// map, RSDP) appears again.
    Multiboot2DuplicateTag {
        /// Offset of the second tag from the start of the information.
        offset: u32,
        /// The tag's type.
        tag_type: u32,
    },
    /// The multiboot2 tags run up to `total_size` without an end tag.
    Multiboot2NoEndTag,
    /// A multiboot2 memory map's `entry_size` is below 24 or not a multiple
    /// of 8.
    Multiboot2BadMemmapEntrySize(u32),
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PvhError::Unreadable { what, phys, error } => {
                write!(f, "cannot read {what} at {phys:#x}: {error}")
            }
            PvhError::BadMagic(m) => write!(
                f,
                "bad start-info magic {m:#x} (expected {START_INFO_MAGIC:#x})"
            ),
            PvhError::TooManyModules(n) => {
                write!(f, "{n} boot modules (at most {MAX_MODULES} supported)")
            }
            PvhError::TooManyMemmapEntries(n) => {
                write!(
                    f,
                    "{n} memory map entries (at most {MAX_MEMMAP_ENTRIES} supported)"
                )
            }
            PvhError::ModuleOverflow { index } => {
                write!(f, "boot module {index} wraps around the address space")
            }
            PvhError::MemmapEntryOverflow { index } => {
                write!(f, "memory map entry {index} wraps around the address space")
            }
            PvhError::CmdlineTooLong(of) => write!(f, "{of} is too long or not NUL-terminated"),
            PvhError::CmdlineNotUtf8(of) => write!(f, "{of} is not UTF-8"),
            PvhError::CmdlineUnterminated(of) => {
                write!(f, "{of} has no NUL before the end of its multiboot2 tag")
            }
            PvhError::ModuleEndBeforeStart { index } => {
                write!(f, "boot module {index} ends before it starts")
            }
            PvhError::Multiboot2Misaligned(phys) => {
                write!(
                    f,
                    "multiboot2 information at {phys:#x} is not 8-byte aligned"
                )
            }
            PvhError::Multiboot2BadTotalSize(size) => write!(
                f,
                "multiboot2 information size {size} is out of bounds \
                 (16 to {MAX_MULTIBOOT2_INFO_SIZE} bytes)"
            ),
            PvhError::Multiboot2BadTag {
                offset,
                tag_type,
                size,
            } => write!(
                f,
                "multiboot2 tag of type {tag_type} at offset {offset:#x} has bad size {size}"
            ),
            PvhError::Multiboot2DuplicateTag { offset, tag_type } => write!(
                f,
                "second multiboot2 tag of type {tag_type} (at offset {offset:#x})"
            ),
            PvhError::Multiboot2NoEndTag => f.write_str("multiboot2 information has no end tag"),
            PvhError::Multiboot2BadMemmapEntrySize(size) => write!(
                f,
                "multiboot2 memory map entry size {size} \
                 (must be a multiple of 8, at least 24)"
            ),
        }
    }
}

/// A boot module (QEMU's `-initrd`, GRUB's `module2`), as
/// [`BootInfo::modules`] yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module<'a> {
    /// Physical address of the contents.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// The module's command line (empty if none was given).
    pub cmdline: &'a str,
}

/// A module as stored: its command line is a range of the shared pool.
#[derive(Debug, Clone, Copy)]
struct ModuleEntry {
    paddr: u64,
    size: u64,
    cmdline_start: usize,
    cmdline_len: usize,
}

const NO_MODULE: ModuleEntry = ModuleEntry {
    paddr: 0,
    size: 0,
    cmdline_start: 0,
    cmdline_len: 0,
};

/// Which boot protocol handed over the [`BootInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// The PVH entry point ([`BootInfo::parse`]).
    Pvh,
    /// A multiboot2 loader such as GRUB 2 ([`BootInfo::parse_multiboot2`]).
    Multiboot2,
}

impl fmt::Display for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loader::Pvh => "PVH",
            Loader::Multiboot2 => "multiboot2",
        })
    }
}

/// Everything the boot loader told us, copied out of its structures.
///
/// About 9 KiB: keep it in a static or on a roomy stack.
#[derive(Clone)]
pub struct BootInfo {
    loader: Loader,
    version: u32,
    flags: u32,
    rsdp: Option<u64>,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    modules: [ModuleEntry; MAX_MODULES],
    module_count: usize,
    module_cmdlines: [u8; MAX_MODULE_CMDLINES],
    module_cmdlines_len: usize,
    memory_map: MemoryMap,
    /// Loader structures still referred to after parsing (the multiboot2
    /// information when [`rsdp`](Self::rsdp) points into it).
    loader_data: Option<PhysRange>,
}

impl fmt::Debug for BootInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootInfo")
            .field("loader", &self.loader)
            .field("version", &self.version)
            .field("cmdline", &self.cmdline())
            .field("rsdp", &self.rsdp)
            .field("modules", &self.module_count)
            .field("memory_map", &self.memory_map)
            .finish()
    }
}

impl BootInfo {
    /// An empty value to fill in.
    fn empty(loader: Loader) -> BootInfo {
        BootInfo {
            loader,
            version: 0,
            flags: 0,
            rsdp: None,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            modules: [NO_MODULE; MAX_MODULES],
            module_count: 0,
            module_cmdlines: [0; MAX_MODULE_CMDLINES],
            module_cmdlines_len: 0,
            memory_map: MemoryMap::new(),
            loader_data: None,
        }
    }

    /// Parses the `hvm_start_info` at `start_info_phys` (the value of `ebx`
    /// at the PVH entry point).
    pub fn parse(mem: &impl PhysMemory, start_info_phys: u64) -> Result<BootInfo, PvhError> {
        let header: [u8; START_INFO_V0_SIZE] = read(mem, "start info", start_info_phys)?;
        let field32 = |off| u32_at(&header, off).unwrap_or(0);
        let field64 = |off| u64_at(&header, off).unwrap_or(0);
        let magic = field32(0x00);
        if magic != START_INFO_MAGIC {
            return Err(PvhError::BadMagic(magic));
        }
        let mut info = BootInfo::empty(Loader::Pvh);
        info.version = field32(0x04);
        info.flags = field32(0x08);
        info.rsdp = Some(field64(0x20)).filter(|&a| a != 0);
        info.cmdline_len = read_cmdline(mem, field64(0x18), &mut info.cmdline, CmdlineOf::Kernel)?;
        info.read_modules(mem, field32(0x0c), field64(0x10))?;
        if info.version >= 1 {
            let v1_phys = start_info_phys.checked_add(START_INFO_V0_SIZE as u64);
            let v1_phys = v1_phys.ok_or(PvhError::Unreadable {
                what: "start info",
                phys: start_info_phys,
                error: MemError::OutOfRange,
            })?;
            let v1: [u8; 12] = read(mem, "start info", v1_phys)?;
            let memmap_paddr = u64_at(&v1, 0).unwrap_or(0);
            let memmap_entries = u32_at(&v1, 8).unwrap_or(0);
            info.read_memory_map(mem, memmap_entries, memmap_paddr)?;
        }
        Ok(info)
    }

    fn read_modules(
        &mut self,
        mem: &impl PhysMemory,
        count: u32,
        list_phys: u64,
    ) -> Result<(), PvhError> {
        if count as usize > MAX_MODULES {
            return Err(PvhError::TooManyModules(count));
        }
        for index in 0..count as usize {
            let phys = entry_addr(list_phys, index, MODLIST_ENTRY_SIZE, "module list")?;
            let raw: [u8; MODLIST_ENTRY_SIZE as usize] = read(mem, "module list", phys)?;
            let paddr = u64_at(&raw, 0x00).unwrap_or(0);
            let size = u64_at(&raw, 0x08).unwrap_or(0);
            if paddr.checked_add(size).is_none() {
                return Err(PvhError::ModuleOverflow { index });
            }
            let start = self.module_cmdlines_len;
            let pool = self.module_cmdlines.get_mut(start..).unwrap_or_default();
            let of = CmdlineOf::Module(index);
            let len = read_cmdline(mem, u64_at(&raw, 0x10).unwrap_or(0), pool, of)?;
            self.module_cmdlines_len += len;
            if let Some(slot) = self.modules.get_mut(index) {
                *slot = ModuleEntry {
                    paddr,
                    size,
                    cmdline_start: start,
                    cmdline_len: len,
                };
                self.module_count = index + 1;
            }
        }
        Ok(())
    }

    fn read_memory_map(
        &mut self,
        mem: &impl PhysMemory,
        count: u32,
        table_phys: u64,
    ) -> Result<(), PvhError> {
        if count as usize > MAX_MEMMAP_ENTRIES {
            return Err(PvhError::TooManyMemmapEntries(count));
        }
        for index in 0..count as usize {
            let phys = entry_addr(table_phys, index, MEMMAP_ENTRY_SIZE, "memory map")?;
            let raw: [u8; MEMMAP_ENTRY_SIZE as usize] = read(mem, "memory map", phys)?;
            let region = MemoryRegion {
                addr: u64_at(&raw, 0x00).unwrap_or(0),
                size: u64_at(&raw, 0x08).unwrap_or(0),
                kind: MemoryKind::from_raw(u32_at(&raw, 0x10).unwrap_or(0)),
            };
            self.memory_map.push(region).map_err(|e| match e {
                MemoryMapError::Full => PvhError::TooManyMemmapEntries(count),
                MemoryMapError::Overflow { .. } => PvhError::MemmapEntryOverflow { index },
            })?;
        }
        Ok(())
    }

    /// Which boot protocol this came from.
    pub fn loader(&self) -> Loader {
        self.loader
    }

    /// The PVH start-info version (0 has no memory map); 0 for multiboot2.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The PVH `SIF_*` flags; 0 for multiboot2.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The kernel command line (QEMU's `-append`, the rest of GRUB's
    /// `multiboot2` line), empty if none.
    pub fn cmdline(&self) -> &str {
        let bytes = self.cmdline.get(..self.cmdline_len).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Physical address of the ACPI RSDP, if the loader gave one. For
    /// multiboot2 this is the loader's copy inside the boot information (the
    /// ACPI 2.0 one if given), which [`reserved_ranges`](Self::reserved_ranges)
    /// then keeps.
    pub fn rsdp(&self) -> Option<u64> {
        self.rsdp
    }

    /// The boot modules, in order.
    pub fn modules(&self) -> impl Iterator<Item = Module<'_>> + '_ {
        self.modules.iter().take(self.module_count).map(|m| {
            let end = m.cmdline_start.saturating_add(m.cmdline_len);
            let bytes = self
                .module_cmdlines
                .get(m.cmdline_start..end)
                .unwrap_or_default();
            Module {
                paddr: m.paddr,
                size: m.size,
                cmdline: core::str::from_utf8(bytes).unwrap_or_default(),
            }
        })
    }

    /// Physical memory the boot loader handed over that stays in use after
    /// parsing: the modules' contents, then, for multiboot2 with an RSDP
    /// tag, the whole boot information (everything else was copied).
    pub fn reserved_ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.modules()
            .map(|m| PhysRange {
                start: m.paddr,
                end: m.paddr.saturating_add(m.size),
            })
            .chain(self.loader_data)
    }

    /// The firmware memory map (empty for a version-0 start info).
    pub fn memory_map(&self) -> &MemoryMap {
        &self.memory_map
    }
}

fn read<const N: usize>(
    mem: &impl PhysMemory,
    what: &'static str,
    phys: u64,
) -> Result<[u8; N], PvhError> {
    mem.read_array(phys)
        .map_err(|error| PvhError::Unreadable { what, phys, error })
}

/// Address of entry `index` of a table of `entry_size`-byte entries.
fn entry_addr(
    table: u64,
    index: usize,
    entry_size: u64,
    what: &'static str,
) -> Result<u64, PvhError> {
    (index as u64)
        .checked_mul(entry_size)
        .and_then(|off| table.checked_add(off))
        .ok_or(PvhError::Unreadable {
            what,
            phys: table,
            error: MemError::OutOfRange,
        })
}

/// Copies the NUL-terminated string at `phys` into `out` and returns its
/// length; address 0 means "no command line". The string plus its NUL must
/// fit in `out.len() + 1` bytes.
fn read_cmdline(
    mem: &impl PhysMemory,
    phys: u64,
    out: &mut [u8],
    of: CmdlineOf,
) -> Result<usize, PvhError> {
    if phys == 0 {
        return Ok(0);
    }
    let too_long = PvhError::CmdlineTooLong(of);
    copy_c_string(mem, phys, usize::MAX, out, of, too_long, too_long)
}

/// Copies the NUL-terminated UTF-8 string at `start` into `out` and
/// returns its length (PVH's and multiboot2's command lines alike). The
/// NUL must come within `within` bytes (else `past_end`) and within
/// `out.len() + 1` bytes (else `CmdlineTooLong`); an address that wraps
/// is `wraps`.
pub(super) fn copy_c_string(
    mem: &impl PhysMemory,
    start: u64,
    within: usize,
    out: &mut [u8],
    of: CmdlineOf,
    past_end: PvhError,
    wraps: PvhError,
) -> Result<usize, PvhError> {
    for len in 0..=out.len() {
        if len >= within {
            return Err(past_end);
        }
        let addr = start.checked_add(len as u64).ok_or(wraps)?;
        let byte = mem.read_u8(addr).map_err(|error| PvhError::Unreadable {
            what: "command line",
            phys: addr,
            error,
        })?;
        if byte == 0 {
            let text = out.get(..len).unwrap_or_default();
            return match core::str::from_utf8(text) {
                Ok(_) => Ok(len),
                Err(_) => Err(PvhError::CmdlineNotUtf8(of)),
            };
        }
        match out.get_mut(len) {
            Some(slot) => *slot = byte,
            None => break,
        }
    }
    Err(PvhError::CmdlineTooLong(of))
}
