//! The multiboot2 boot information (Multiboot2 Specification 2.0, section
//! 3.6): what GRUB 2 hands a kernel it loads with `multiboot2`/`module2`,
//! parsed into the same [`BootInfo`] as the PVH start info.
//!
//! Layout: a `u32 total_size` (including itself), a reserved `u32`, then
//! 8-byte aligned tags, each a `u32 type` and a `u32 size` (without
//! padding) followed by its payload, ending with a tag of type 0. The tags
//! used are 1 (kernel command line), 3 (module), 6 (memory map), 14 and 15
//! (copies of the ACPI 1.0 and 2.0 RSDP); every other tag is skipped.
//!
//! The tags are walked twice: once to check the structure (every tag fits,
//! there is an end tag, no tag that must be unique repeats, the modules fit)
//! and once to copy out their contents. Each walk is bounded by
//! [`MAX_MULTIBOOT2_INFO_SIZE`] / 8 tags.

use super::{
    BootInfo, CmdlineOf, Loader, MAX_MEMMAP_ENTRIES, MAX_MODULES, MemoryKind, MemoryMapError,
    MemoryRegion, ModuleEntry, PhysRange, PvhError, copy_c_string, read,
};
use crate::le::{u32_at, u64_at};
use crate::{MemError, PhysMemory};

/// The value in `eax` at a multiboot2 entry point (`ebx` then holds the
/// address of the boot information).
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;

/// Largest multiboot2 boot information accepted, in bytes (GRUB's is a few
/// KiB even with an EFI memory map and ELF section headers).
pub const MAX_MULTIBOOT2_INFO_SIZE: u32 = 1 << 20;

/// Size of the information's header and of every tag's header.
const HEADER_SIZE: u32 = 8;
/// The header plus an end tag.
const MIN_TOTAL_SIZE: u32 = HEADER_SIZE * 2;
/// Tags start, and each tag's size is rounded up, to this.
const TAG_ALIGN: u32 = 8;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;

/// Header, `mod_start` and `mod_end`; the command line follows.
const MODULE_FIXED: u32 = 16;
/// Header, `entry_size` and `entry_version`; the entries follow.
const MMAP_FIXED: u32 = 16;
/// The version-0 memory-map entry: base, length, type, reserved.
const MMAP_ENTRY_SIZE: u32 = 24;
/// The ACPI 1.0 RSDP.
const RSDP_V1_SIZE: u32 = 20;
/// The ACPI 2.0 RSDP (XSDP).
const RSDP_V2_SIZE: u32 = 36;

const WHAT: &str = "multiboot2 information";

/// Smallest size a tag of type `tag_type` can have, header included.
const fn min_tag_size(tag_type: u32) -> u32 {
    match tag_type {
        TAG_MODULE => MODULE_FIXED,
        TAG_MMAP => MMAP_FIXED,
        TAG_ACPI_OLD => HEADER_SIZE + RSDP_V1_SIZE,
        TAG_ACPI_NEW => HEADER_SIZE + RSDP_V2_SIZE,
        _ => HEADER_SIZE,
    }
}

/// Whether at most one tag of this type may appear.
const fn is_unique(tag_type: u32) -> bool {
    matches!(
        tag_type,
        TAG_CMDLINE | TAG_MMAP | TAG_ACPI_OLD | TAG_ACPI_NEW
    )
}

impl BootInfo {
    /// Parses the multiboot2 boot information at `mbi_phys` (the value of
    /// `ebx` at a multiboot2 entry point, once the kernel has checked that
    /// `eax` holds [`MULTIBOOT2_MAGIC`]).
    ///
    /// The command line, the modules and the memory map are copied out; the
    /// RSDP is the address of the loader's copy inside the information (the
    /// ACPI 2.0 one if both are given), so then the whole information is
    /// kept in [`reserved_ranges`](Self::reserved_ranges).
    pub fn parse_multiboot2(mem: &impl PhysMemory, mbi_phys: u64) -> Result<BootInfo, PvhError> {
        if !mbi_phys.is_multiple_of(u64::from(TAG_ALIGN)) {
            return Err(PvhError::Multiboot2Misaligned(mbi_phys));
        }
        let header: [u8; HEADER_SIZE as usize] = read(mem, WHAT, mbi_phys)?;
        let total_size = u32_at(&header, 0).unwrap_or(0);
        if !(MIN_TOTAL_SIZE..=MAX_MULTIBOOT2_INFO_SIZE).contains(&total_size) {
            return Err(PvhError::Multiboot2BadTotalSize(total_size));
        }
        let end = mbi_phys
            .checked_add(u64::from(total_size))
            .ok_or(out_of_range(mbi_phys))?;
        let tags = || Tags {
            mem,
            mbi_phys,
            total_size,
            offset: HEADER_SIZE,
            done: false,
        };

        // First walk: the structure.
        let mut module_count = 0u32;
        let mut seen_unique = 0u32;
        for tag in tags() {
            let tag = tag?;
            if tag.tag_type == TAG_MODULE {
                module_count = module_count.saturating_add(1);
            }
            if is_unique(tag.tag_type) {
                let bit = 1u32 << tag.tag_type;
                if seen_unique & bit != 0 {
                    return Err(PvhError::Multiboot2DuplicateTag {
                        offset: tag.offset,
                        tag_type: tag.tag_type,
                    });
                }
                seen_unique |= bit;
            }
        }
        if module_count as usize > MAX_MODULES {
            return Err(PvhError::TooManyModules(module_count));
        }

        // Second walk: the contents.
        let mut info = BootInfo::empty(Loader::Multiboot2);
        let mut rsdp_old = None;
        let mut rsdp_new = None;
        let mut module_index = 0;
        for tag in tags() {
            let tag = tag?;
            match tag.tag_type {
                TAG_CMDLINE => {
                    let of = CmdlineOf::Kernel;
                    info.cmdline_len =
                        read_tag_string(mem, &tag, HEADER_SIZE, &mut info.cmdline, of)?;
                }
                TAG_MODULE => {
                    info.read_module_tag(mem, &tag, module_index)?;
                    module_index += 1;
                }
                TAG_MMAP => info.read_memory_map_tag(mem, &tag)?,
                TAG_ACPI_OLD => rsdp_old = Some(tag.addr(HEADER_SIZE)?),
                TAG_ACPI_NEW => rsdp_new = Some(tag.addr(HEADER_SIZE)?),
                _ => {}
            }
        }
        info.rsdp = rsdp_new.or(rsdp_old);
        if info.rsdp.is_some() {
            info.loader_data = Some(PhysRange {
                start: mbi_phys,
                end,
            });
        }
        Ok(info)
    }

    /// Copies module `index` out of its tag.
    fn read_module_tag(
        &mut self,
        mem: &impl PhysMemory,
        tag: &Tag,
        index: usize,
    ) -> Result<(), PvhError> {
        let raw: [u8; 8] = read(mem, WHAT, tag.addr(HEADER_SIZE)?)?;
        let start = u32_at(&raw, 0).unwrap_or(0);
        let end = u32_at(&raw, 4).unwrap_or(0);
        let size = end
            .checked_sub(start)
            .ok_or(PvhError::ModuleEndBeforeStart { index })?;
        // The first walk counted the modules; memory that changed since
        // still cannot overflow the table.
        let count = u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX);
        let slot = self
            .modules
            .get_mut(index)
            .ok_or(PvhError::TooManyModules(count))?;
        let cmdline_start = self.module_cmdlines_len;
        let pool = self
            .module_cmdlines
            .get_mut(cmdline_start..)
            .unwrap_or_default();
        let of = CmdlineOf::Module(index);
        let cmdline_len = read_tag_string(mem, tag, MODULE_FIXED, pool, of)?;
        *slot = ModuleEntry {
            paddr: u64::from(start),
            size: u64::from(size),
            cmdline_start,
            cmdline_len,
        };
        self.module_cmdlines_len += cmdline_len;
        self.module_count = index + 1;
        Ok(())
    }

    /// Copies the memory map out of its tag.
    fn read_memory_map_tag(&mut self, mem: &impl PhysMemory, tag: &Tag) -> Result<(), PvhError> {
        let raw: [u8; 8] = read(mem, WHAT, tag.addr(HEADER_SIZE)?)?;
        // `entry_version` (offset 4) is 0; later versions only append
        // fields, which `entry_size` skips.
        let entry_size = u32_at(&raw, 0).unwrap_or(0);
        if entry_size < MMAP_ENTRY_SIZE || !entry_size.is_multiple_of(8) {
            return Err(PvhError::Multiboot2BadMemmapEntrySize(entry_size));
        }
        let count = tag.size.saturating_sub(MMAP_FIXED) / entry_size;
        if count as usize > MAX_MEMMAP_ENTRIES {
            return Err(PvhError::TooManyMemmapEntries(count));
        }
        for index in 0..count {
            // Within the tag: index * entry_size < tag.size.
            let offset = index
                .checked_mul(entry_size)
                .and_then(|o| o.checked_add(MMAP_FIXED))
                .ok_or(tag.bad_size())?;
            let raw: [u8; MMAP_ENTRY_SIZE as usize] = read(mem, "memory map", tag.addr(offset)?)?;
            let region = MemoryRegion {
                addr: u64_at(&raw, 0x00).unwrap_or(0),
                size: u64_at(&raw, 0x08).unwrap_or(0),
                kind: MemoryKind::from_raw(u32_at(&raw, 0x10).unwrap_or(0)),
            };
            let index = index as usize;
            self.memory_map.push(region).map_err(|e| match e {
                MemoryMapError::Full => PvhError::TooManyMemmapEntries(count),
                MemoryMapError::Overflow { .. } => PvhError::MemmapEntryOverflow { index },
            })?;
        }
        Ok(())
    }
}

/// A tag's header, checked to lie within the information.
#[derive(Debug, Clone, Copy)]
struct Tag {
    /// Physical address of the header.
    phys: u64,
    /// Offset from the start of the information.
    offset: u32,
    tag_type: u32,
    /// Size without padding, at least what its type needs.
    size: u32,
}

impl Tag {
    /// Physical address of byte `offset` of the tag.
    fn addr(&self, offset: u32) -> Result<u64, PvhError> {
        self.phys
            .checked_add(u64::from(offset))
            .ok_or(out_of_range(self.phys))
    }

    fn bad_size(&self) -> PvhError {
        PvhError::Multiboot2BadTag {
            offset: self.offset,
            tag_type: self.tag_type,
            size: self.size,
        }
    }
}

/// The tags before the end tag, in order, each checked to be at least
/// [`min_tag_size`] and to end within `total_size`; stops after the first
/// error.
struct Tags<'a, M> {
    mem: &'a M,
    mbi_phys: u64,
    total_size: u32,
    /// Offset of the next tag.
    offset: u32,
    done: bool,
}

impl<M: PhysMemory> Tags<'_, M> {
    /// Reads the tag at `self.offset` and moves past it; `None` at the end
    /// tag.
    fn step(&mut self) -> Result<Option<Tag>, PvhError> {
        let offset = self.offset;
        let total = u64::from(self.total_size);
        if u64::from(offset) + u64::from(HEADER_SIZE) > total {
            return Err(PvhError::Multiboot2NoEndTag);
        }
        let phys = self
            .mbi_phys
            .checked_add(u64::from(offset))
            .ok_or(out_of_range(self.mbi_phys))?;
        let header: [u8; HEADER_SIZE as usize] = read(self.mem, WHAT, phys)?;
        let tag = Tag {
            phys,
            offset,
            tag_type: u32_at(&header, 0).unwrap_or(0),
            size: u32_at(&header, 4).unwrap_or(0),
        };
        let min_size = min_tag_size(tag.tag_type);
        if tag.size < min_size || u64::from(offset) + u64::from(tag.size) > total {
            return Err(tag.bad_size());
        }
        if tag.tag_type == TAG_END {
            return Ok(None);
        }
        // At most `total_size` (itself at most 1 MiB) rounded up: no overflow,
        // and at least `HEADER_SIZE` further on.
        self.offset = (offset + tag.size).next_multiple_of(TAG_ALIGN);
        Ok(Some(tag))
    }
}

impl<M: PhysMemory> Iterator for Tags<'_, M> {
    type Item = Result<Tag, PvhError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step().transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

fn out_of_range(phys: u64) -> PvhError {
    PvhError::Unreadable {
        what: WHAT,
        phys,
        error: MemError::OutOfRange,
    }
}

/// Copies the NUL-terminated string that starts `from` bytes into `tag`
/// into `out` and returns its length. The NUL must lie within the tag and
/// within `out.len() + 1` bytes.
fn read_tag_string(
    mem: &impl PhysMemory,
    tag: &Tag,
    from: u32,
    out: &mut [u8],
    of: CmdlineOf,
) -> Result<usize, PvhError> {
    let start = tag.addr(from)?;
    let available = tag.size.saturating_sub(from) as usize;
    copy_c_string(
        mem,
        start,
        available,
        out,
        of,
        PvhError::CmdlineUnterminated(of),
        out_of_range(start),
    )
}
