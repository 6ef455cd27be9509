//! [`BootInfo::parse_multiboot2`] on fake multiboot2 boot information.

use super::*;
use crate::SliceMemory;
use std::vec;
use std::vec::Vec;

/// Where the fake information lies (8-byte aligned, as GRUB puts it).
const MBI: u64 = 0x0001_0000;

/// A multiboot2 boot information under construction: tags are appended,
/// [`finish`](Self::finish) adds the end tag and the total size.
struct Mbi(Vec<u8>);

impl Mbi {
    fn new() -> Self {
        Mbi(vec![0; 8])
    }

    /// Appends a tag whose size is its header plus `payload`; returns its
    /// offset.
    fn tag(&mut self, tag_type: u32, payload: &[u8]) -> usize {
        self.raw_tag(tag_type, 8 + payload.len() as u32, payload)
    }

    /// Appends a tag with any size field, `payload` and padding to 8.
    fn raw_tag(&mut self, tag_type: u32, size: u32, payload: &[u8]) -> usize {
        let offset = self.0.len();
        self.0.extend(tag_type.to_le_bytes());
        self.0.extend(size.to_le_bytes());
        self.0.extend_from_slice(payload);
        while !self.0.len().is_multiple_of(8) {
            self.0.push(0);
        }
        offset
    }

    fn cmdline(&mut self, text: &[u8]) -> usize {
        self.tag(1, &[text, b"\0"].concat())
    }

    fn module(&mut self, start: u32, end: u32, cmdline: &[u8]) -> usize {
        let payload = [&start.to_le_bytes()[..], &end.to_le_bytes(), cmdline, b"\0"].concat();
        self.tag(3, &payload)
    }

    fn memmap_sized(&mut self, entry_size: u32, entries: &[(u64, u64, u32)]) -> usize {
        let mut payload = Vec::new();
        payload.extend(entry_size.to_le_bytes());
        payload.extend(0u32.to_le_bytes());
        for &(addr, len, kind) in entries {
            let mut entry = vec![0u8; entry_size as usize];
            entry[0..8].copy_from_slice(&addr.to_le_bytes());
            entry[8..16].copy_from_slice(&len.to_le_bytes());
            entry[16..20].copy_from_slice(&kind.to_le_bytes());
            payload.extend(entry);
        }
        self.tag(6, &payload)
    }

    fn memmap(&mut self, entries: &[(u64, u64, u32)]) -> usize {
        self.memmap_sized(24, entries)
    }

    /// Adds the end tag and sets `total_size`.
    fn finish(mut self) -> Vec<u8> {
        self.tag(0, &[]);
        let total = self.0.len() as u32;
        set32(&mut self.0, 0, total);
        self.0
    }
}

fn set32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn parse(bytes: &[u8]) -> Result<BootInfo, PvhError> {
    BootInfo::parse_multiboot2(&SliceMemory::new(MBI, bytes), MBI)
}

fn reserved(info: &BootInfo) -> Vec<(u64, u64)> {
    info.reserved_ranges().map(|r| (r.start, r.end)).collect()
}

fn bad_tag(offset: usize, tag_type: u32, size: u32) -> PvhError {
    PvhError::Multiboot2BadTag {
        offset: offset as u32,
        tag_type,
        size,
    }
}

/// An ACPI 1.0 RSDP (revision 0) with a valid checksum.
fn rsdp_v1() -> Vec<u8> {
    let mut r = Vec::new();
    r.extend(b"RSD PTR ");
    r.push(0);
    r.extend(b"BOCHS ");
    r.push(0);
    r.extend(0x07fe_14d1u32.to_le_bytes());
    r[8] = 0u8.wrapping_sub(r.iter().fold(0u8, |s, &b| s.wrapping_add(b)));
    r
}

/// An ACPI 2.0 RSDP (revision 2, 36 bytes) with valid checksums.
fn rsdp_v2() -> Vec<u8> {
    let mut r = rsdp_v1();
    r[15] = 2;
    r[8] = 0;
    r[8] = 0u8.wrapping_sub(r.iter().fold(0u8, |s, &b| s.wrapping_add(b)));
    r.extend(36u32.to_le_bytes());
    r.extend(0x07fe_15c5u64.to_le_bytes());
    r.extend([0, 0, 0, 0]);
    r[32] = 0u8.wrapping_sub(r.iter().fold(0u8, |s, &b| s.wrapping_add(b)));
    r
}

const GRUB_MEMMAP: [(u64, u64, u32); 7] = [
    (0, 0x9fc00, 1),
    (0x9fc00, 0x400, 2),
    // Hole from 640 KiB to 960 KiB.
    (0xf0000, 0x10000, 2),
    (0x100000, 0x7ee0000, 1),
    (0x7fe0000, 0x10000, 3),
    (0x7ff0000, 0x10000, 4),
    (0xfffc0000, 0x40000, 2),
];
const MOD_START: u32 = 0x0200_0000;
const MOD_END: u32 = 0x0203_4a10;

/// What GRUB 2 builds for `multiboot2 /kernel log=info rv6=1` and
/// `module2 /domains.cpio domains` on a BIOS machine: returns the bytes and
/// the offsets of the two RSDP tags.
fn grub_like() -> (Vec<u8>, usize, usize) {
    let mut m = Mbi::new();
    m.tag(21, &0x0010_0000u32.to_le_bytes()); // load base address
    m.cmdline(b"log=info rv6=1");
    m.tag(2, b"GRUB 2.12\0"); // boot loader name
    m.module(MOD_START, MOD_END, b"domains");
    let meminfo = [639u32.to_le_bytes(), 0x1ff80u32.to_le_bytes()].concat();
    m.tag(4, &meminfo); // basic memory information
    let bootdev = [0x80u32, u32::MAX, u32::MAX].map(u32::to_le_bytes).concat();
    m.tag(5, &bootdev); // BIOS boot device
    m.memmap(&GRUB_MEMMAP);
    // EGA text framebuffer: address, pitch, width, height, bpp, type, reserved.
    let mut fb = Vec::new();
    fb.extend(0xb8000u64.to_le_bytes());
    fb.extend(160u32.to_le_bytes());
    fb.extend(80u32.to_le_bytes());
    fb.extend(25u32.to_le_bytes());
    fb.extend([16, 2, 0, 0]);
    m.tag(8, &fb);
    let old = m.tag(14, &rsdp_v1());
    let new = m.tag(15, &rsdp_v2());
    (m.finish(), old, new)
}

#[test]
fn parses_a_grub_like_mbi() {
    let (bytes, old, new) = grub_like();
    let total = bytes.len() as u64;
    assert!(total.is_multiple_of(8));
    let info = parse(&bytes).unwrap();
    assert_eq!(info.loader(), Loader::Multiboot2);
    assert_eq!(info.loader().to_string(), "multiboot2");
    assert_eq!(info.version(), 0);
    assert_eq!(info.flags(), 0);
    assert_eq!(info.cmdline(), "log=info rv6=1");
    let mods: Vec<_> = info.modules().collect();
    assert_eq!(
        mods,
        [Module {
            paddr: u64::from(MOD_START),
            size: u64::from(MOD_END - MOD_START),
            cmdline: "domains",
        }]
    );
    let map: Vec<_> = info
        .memory_map()
        .entries()
        .iter()
        .map(|e| (e.addr, e.size, e.kind))
        .collect();
    let expected: Vec<_> = GRUB_MEMMAP
        .iter()
        .map(|&(a, s, k)| (a, s, MemoryKind::from_raw(k)))
        .collect();
    assert_eq!(map, expected);
    assert_eq!(map[4].2, MemoryKind::AcpiReclaimable);
    assert_eq!(map[5].2, MemoryKind::AcpiNvs);
    let usable: Vec<_> = info
        .memory_map()
        .usable()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(usable, [(0, 0x9f000), (0x100000, 0x7fe0000)]);
    // The ACPI 2.0 copy wins over the 1.0 one.
    assert_eq!(info.rsdp(), Some(MBI + new as u64 + 8));
    assert_ne!(info.rsdp(), Some(MBI + old as u64 + 8));
    let rsdp_off = new + 8;
    assert_eq!(&bytes[rsdp_off..rsdp_off + 8], b"RSD PTR ");
    assert_eq!(
        reserved(&info),
        [
            (u64::from(MOD_START), u64::from(MOD_END)),
            (MBI, MBI + total)
        ]
    );
    let debug = format!("{info:?}");
    assert!(debug.contains("Multiboot2") && debug.contains("rv6=1"));
}

#[test]
fn minimal_mbi_has_nothing() {
    let bytes = Mbi::new().finish();
    assert_eq!(bytes.len(), 16);
    let info = parse(&bytes).unwrap();
    assert_eq!(info.loader(), Loader::Multiboot2);
    assert_eq!(info.cmdline(), "");
    assert_eq!(info.rsdp(), None);
    assert_eq!(info.modules().count(), 0);
    assert!(info.memory_map().entries().is_empty());
    assert_eq!(info.reserved_ranges().count(), 0);
}

#[test]
fn pvh_reports_its_loader_and_keeps_no_loader_data() {
    let mut si = vec![0u8; 0x28];
    set32(&mut si, 0, START_INFO_MAGIC);
    si[0x20..0x28].copy_from_slice(&0xf5a40u64.to_le_bytes());
    let info = BootInfo::parse(&SliceMemory::new(0x1000, &si), 0x1000).unwrap();
    assert_eq!(info.loader(), Loader::Pvh);
    assert_eq!(info.loader().to_string(), "PVH");
    assert_eq!(info.rsdp(), Some(0xf5a40));
    assert_eq!(info.reserved_ranges().count(), 0);
}

#[test]
fn old_rsdp_alone_is_used_and_keeps_the_mbi() {
    let mut m = Mbi::new();
    let old = m.tag(14, &rsdp_v1());
    let bytes = m.finish();
    let info = parse(&bytes).unwrap();
    assert_eq!(info.rsdp(), Some(MBI + old as u64 + 8));
    assert_eq!(reserved(&info), [(MBI, MBI + bytes.len() as u64)]);
}

#[test]
fn without_rsdp_only_modules_are_reserved() {
    let mut m = Mbi::new();
    m.module(0x300000, 0x300000, b"");
    m.module(0x400000, 0x401000, b"second one");
    let info = parse(&m.finish()).unwrap();
    assert_eq!(info.rsdp(), None);
    assert_eq!(
        reserved(&info),
        [(0x300000, 0x300000), (0x400000, 0x401000)]
    );
    let cmdlines: Vec<_> = info.modules().map(|m| m.cmdline).collect();
    assert_eq!(cmdlines, ["", "second one"]);
}

#[test]
fn memory_map_with_larger_entries_and_a_partial_one() {
    let mut m = Mbi::new();
    let entries = [(0, 0x9fc00, 1), (0x100000, 0x100000, 1)];
    let at = m.memmap_sized(32, &entries);
    // 12 more bytes in the tag: not a whole entry, ignored.
    let size = 16 + 2 * 32 + 12;
    m.0.extend([0xaa; 16]);
    set32(&mut m.0, at + 4, size);
    let info = parse(&m.finish()).unwrap();
    let map: Vec<_> = info
        .memory_map()
        .entries()
        .iter()
        .map(|e| (e.addr, e.size))
        .collect();
    assert_eq!(map, [(0, 0x9fc00), (0x100000, 0x100000)]);
}

#[test]
fn unknown_tags_are_skipped_whatever_their_size() {
    let mut m = Mbi::new();
    m.tag(9, &[0xff; 13]);
    m.tag(0x1234_5678, &[]);
    m.tag(u32::MAX, &[0; 1000]);
    m.cmdline(b"after");
    let info = parse(&m.finish()).unwrap();
    assert_eq!(info.cmdline(), "after");
}

#[test]
fn total_size_out_of_bounds() {
    let good = Mbi::new().finish();
    for total in [0, 8, 15, MAX_MULTIBOOT2_INFO_SIZE + 1, u32::MAX] {
        let mut bytes = good.clone();
        set32(&mut bytes, 0, total);
        assert_eq!(
            parse(&bytes).unwrap_err(),
            PvhError::Multiboot2BadTotalSize(total)
        );
    }
    // The largest size allowed is accepted.
    let mut big = vec![0u8; MAX_MULTIBOOT2_INFO_SIZE as usize];
    big[..16].copy_from_slice(&good);
    set32(&mut big, 0, MAX_MULTIBOOT2_INFO_SIZE);
    assert!(parse(&big).is_ok());
}

#[test]
fn mbi_address_errors() {
    let good = Mbi::new().finish();
    // Not 8-byte aligned.
    let mem = SliceMemory::new(MBI + 4, &good);
    assert_eq!(
        BootInfo::parse_multiboot2(&mem, MBI + 4).unwrap_err(),
        PvhError::Multiboot2Misaligned(MBI + 4)
    );
    // Nothing there.
    let mem = SliceMemory::new(MBI, &good);
    assert!(matches!(
        BootInfo::parse_multiboot2(&mem, MBI + 0x1000).unwrap_err(),
        PvhError::Unreadable {
            what: "multiboot2 information",
            phys: 0x11000,
            ..
        }
    ));
    // The header fits at the top of the address space, the rest would end
    // at 2^64.
    let top = u64::MAX - 23;
    let mut bytes = good.clone();
    set32(&mut bytes, 0, 24);
    let mem = SliceMemory::new(top, &bytes);
    assert_eq!(
        BootInfo::parse_multiboot2(&mem, top).unwrap_err(),
        PvhError::Unreadable {
            what: "multiboot2 information",
            phys: top,
            error: MemError::OutOfRange,
        }
    );
    // Ending just below the top is fine.
    set32(&mut bytes, 0, 16);
    let mem = SliceMemory::new(top, &bytes);
    assert!(BootInfo::parse_multiboot2(&mem, top).is_ok());
    // total_size claims more than memory holds and the tags go on.
    let mut m = Mbi::new();
    m.tag(4, &[0; 8]);
    let mut bytes = m.0.clone();
    set32(&mut bytes, 0, 64);
    assert!(matches!(
        parse(&bytes).unwrap_err(),
        PvhError::Unreadable {
            what: "multiboot2 information",
            phys: 0x10018,
            ..
        }
    ));
}

#[test]
fn tag_size_below_header() {
    for size in [0, 1, 4, 7] {
        let mut m = Mbi::new();
        m.cmdline(b"x");
        let at = m.raw_tag(4, size, &[0; 8]);
        let bytes = m.finish();
        assert_eq!(parse(&bytes).unwrap_err(), bad_tag(at, 4, size));
    }
    // An end tag with size 0 is no end tag.
    let mut bytes = Mbi::new().finish();
    set32(&mut bytes, 12, 0);
    assert_eq!(parse(&bytes).unwrap_err(), bad_tag(8, 0, 0));
}

#[test]
fn tag_runs_past_total_size() {
    let mut m = Mbi::new();
    let at = m.raw_tag(2, 0x100, b"GRUB\0");
    let bytes = m.finish();
    assert_eq!(parse(&bytes).unwrap_err(), bad_tag(at, 2, 0x100));
    let mut m = Mbi::new();
    let at = m.raw_tag(2, u32::MAX, b"GRUB\0");
    assert_eq!(parse(&m.finish()).unwrap_err(), bad_tag(at, 2, u32::MAX));
    // The end tag itself sticks out.
    let mut bytes = Mbi::new().finish();
    set32(&mut bytes, 12, 16);
    assert_eq!(parse(&bytes).unwrap_err(), bad_tag(8, 0, 16));
}

#[test]
fn tag_too_small_for_its_type() {
    for (tag_type, size) in [(3, 15), (3, 8), (6, 12), (14, 27), (15, 43), (15, 28)] {
        let mut m = Mbi::new();
        let at = m.raw_tag(tag_type, size, &[0; 40]);
        assert_eq!(
            parse(&m.finish()).unwrap_err(),
            bad_tag(at, tag_type, size),
            "type {tag_type} size {size}"
        );
    }
}

#[test]
fn missing_end_tag() {
    // The tags stop exactly at total_size.
    let mut m = Mbi::new();
    m.cmdline(b"abc");
    let mut bytes = m.0.clone();
    let total = bytes.len() as u32;
    set32(&mut bytes, 0, total);
    assert_eq!(parse(&bytes).unwrap_err(), PvhError::Multiboot2NoEndTag);
    // Room for less than a tag header after the last tag.
    bytes.extend([0; 8]);
    set32(&mut bytes, 0, total + 4);
    assert_eq!(parse(&bytes).unwrap_err(), PvhError::Multiboot2NoEndTag);
    // The last tag's padding runs up to total_size.
    let mut m = Mbi::new();
    m.tag(2, b"GRUB\0");
    let total = 8 + 13;
    m.0.truncate(total);
    set32(&mut m.0, 0, total as u32);
    assert_eq!(parse(&m.0).unwrap_err(), PvhError::Multiboot2NoEndTag);
}

#[test]
fn module_end_before_start() {
    let mut m = Mbi::new();
    m.module(0x200000, 0x200001, b"a");
    m.module(0x300000, 0x2fffff, b"b");
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::ModuleEndBeforeStart { index: 1 }
    );
}

#[test]
fn too_many_modules() {
    let mut m = Mbi::new();
    for i in 0..MAX_MODULES as u32 {
        m.module(i * 0x1000, i * 0x1000 + 0x800, b"m");
    }
    let bytes = m.0.clone();
    let info = parse(&m.finish()).unwrap();
    assert_eq!(info.modules().count(), MAX_MODULES);
    assert!(info.modules().all(|m| m.size == 0x800 && m.cmdline == "m"));

    let mut m = Mbi(bytes);
    m.module(0, 0, b"one too many");
    m.module(0, 0, b"two too many");
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::TooManyModules(MAX_MODULES as u32 + 2)
    );
}

#[test]
fn module_cmdline_errors() {
    // No room for a string at all.
    let mut m = Mbi::new();
    m.raw_tag(3, 16, &[0; 8]);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineUnterminated(CmdlineOf::Module(0))
    );
    // The NUL is in the padding, not in the tag.
    let mut m = Mbi::new();
    m.module(0, 0, b"ok");
    m.raw_tag(3, 16 + 3, &[0, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c']);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineUnterminated(CmdlineOf::Module(1))
    );
    let mut m = Mbi::new();
    m.module(0, 0, b"\xc3\x28");
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineNotUtf8(CmdlineOf::Module(0))
    );
    // The command lines share a pool of MAX_MODULE_CMDLINES bytes.
    let half = [b'm'; MAX_MODULE_CMDLINES / 2];
    let mut m = Mbi::new();
    m.module(0, 0, &half);
    m.module(0, 0, &half);
    let two = m.0.clone();
    let info = parse(&m.finish()).unwrap();
    assert!(info.modules().all(|m| m.cmdline.len() == half.len()));
    let mut m = Mbi(two);
    m.module(0, 0, b"");
    assert!(parse(&m.finish()).is_ok());
    let mut m = Mbi::new();
    m.module(0, 0, &half);
    m.module(0, 0, &half);
    m.module(0, 0, b"x");
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineTooLong(CmdlineOf::Module(2))
    );
}

#[test]
fn kernel_cmdline_errors() {
    let mut m = Mbi::new();
    m.tag(1, b"abc");
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineUnterminated(CmdlineOf::Kernel)
    );
    let mut m = Mbi::new();
    m.tag(1, &[]);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineUnterminated(CmdlineOf::Kernel)
    );
    let mut m = Mbi::new();
    m.cmdline(&[b'a', 0xff, b'b']);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineNotUtf8(CmdlineOf::Kernel)
    );
    // A NUL before the end of the tag ends the string.
    let mut m = Mbi::new();
    m.tag(1, b"one\0two\0");
    assert_eq!(parse(&m.finish()).unwrap().cmdline(), "one");

    let mut m = Mbi::new();
    m.cmdline(&[b'x'; MAX_CMDLINE]);
    assert_eq!(parse(&m.finish()).unwrap().cmdline().len(), MAX_CMDLINE);
    let mut m = Mbi::new();
    m.cmdline(&[b'x'; MAX_CMDLINE + 1]);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineTooLong(CmdlineOf::Kernel)
    );
    // Too long and unterminated: too long is found first.
    let mut m = Mbi::new();
    m.tag(1, &[b'x'; MAX_CMDLINE + 100]);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::CmdlineTooLong(CmdlineOf::Kernel)
    );
}

#[test]
fn too_many_memmap_entries() {
    let entries: Vec<_> = (0..MAX_MEMMAP_ENTRIES as u64 + 1)
        .map(|i| (i * 0x2000, 0x1000, 1))
        .collect();
    let mut m = Mbi::new();
    m.memmap(&entries[..MAX_MEMMAP_ENTRIES]);
    let info = parse(&m.finish()).unwrap();
    assert_eq!(info.memory_map().entries().len(), MAX_MEMMAP_ENTRIES);
    let mut m = Mbi::new();
    m.memmap(&entries);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::TooManyMemmapEntries(MAX_MEMMAP_ENTRIES as u32 + 1)
    );
}

#[test]
fn bad_memmap_entry_size() {
    for entry_size in [0, 8, 16, 20, 23, 25, 28, 36] {
        let mut m = Mbi::new();
        let at = m.memmap(&[(0, 0x1000, 1), (0x1000, 0x1000, 1)]);
        set32(&mut m.0, at + 8, entry_size);
        assert_eq!(
            parse(&m.finish()).unwrap_err(),
            PvhError::Multiboot2BadMemmapEntrySize(entry_size)
        );
    }
    // A valid but huge entry size: no entry fits.
    let mut m = Mbi::new();
    let at = m.memmap(&[(0, 0x1000, 1)]);
    set32(&mut m.0, at + 8, 0xffff_fff8);
    assert!(
        parse(&m.finish())
            .unwrap()
            .memory_map()
            .entries()
            .is_empty()
    );
    // An empty memory map.
    let mut m = Mbi::new();
    m.memmap(&[]);
    assert!(
        parse(&m.finish())
            .unwrap()
            .memory_map()
            .entries()
            .is_empty()
    );
}

#[test]
fn memmap_entry_overflow() {
    let mut m = Mbi::new();
    m.memmap(&[
        (0, 0x1000, 1),
        (u64::MAX - 0x1fff, 0x1000, 1),
        (u64::MAX, 2, 2),
    ]);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::MemmapEntryOverflow { index: 2 }
    );
}

#[test]
fn duplicate_tags() {
    let mut m = Mbi::new();
    m.cmdline(b"a");
    let second = m.cmdline(b"b");
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::Multiboot2DuplicateTag {
            offset: second as u32,
            tag_type: 1
        }
    );
    let mut m = Mbi::new();
    m.memmap(&[(0, 0x1000, 1)]);
    m.tag(14, &rsdp_v1());
    let second = m.memmap(&[(0x1000, 0x1000, 1)]);
    assert_eq!(
        parse(&m.finish()).unwrap_err(),
        PvhError::Multiboot2DuplicateTag {
            offset: second as u32,
            tag_type: 6
        }
    );
    for tag_type in [14, 15] {
        let mut m = Mbi::new();
        m.tag(tag_type, &rsdp_v2());
        let second = m.tag(tag_type, &rsdp_v2());
        assert_eq!(
            parse(&m.finish()).unwrap_err(),
            PvhError::Multiboot2DuplicateTag {
                offset: second as u32,
                tag_type
            }
        );
    }
    // Several of a type that may repeat are fine.
    let mut m = Mbi::new();
    m.tag(2, b"a\0");
    m.tag(2, b"b\0");
    assert!(parse(&m.finish()).is_ok());
}

#[test]
fn every_multiboot2_error_displays() {
    let errors = [
        PvhError::CmdlineUnterminated(CmdlineOf::Kernel),
        PvhError::ModuleEndBeforeStart { index: 1 },
        PvhError::Multiboot2Misaligned(0x1004),
        PvhError::Multiboot2BadTotalSize(3),
        PvhError::Multiboot2BadTag {
            offset: 8,
            tag_type: 3,
            size: 4,
        },
        PvhError::Multiboot2DuplicateTag {
            offset: 0x20,
            tag_type: 1,
        },
        PvhError::Multiboot2NoEndTag,
        PvhError::Multiboot2BadMemmapEntrySize(20),
    ];
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        PvhError::Multiboot2BadTag {
            offset: 0x18,
            tag_type: 3,
            size: 4
        }
        .to_string(),
        "multiboot2 tag of type 3 at offset 0x18 has bad size 4"
    );
    assert_eq!(
        PvhError::Multiboot2BadTotalSize(3).to_string(),
        "multiboot2 information size 3 is out of bounds (16 to 1048576 bytes)"
    );
    assert_eq!(
        PvhError::CmdlineUnterminated(CmdlineOf::Module(2)).to_string(),
        "command line of module 2 has no NUL before the end of its multiboot2 tag"
    );
}

/// Checks what a successful parse promises.
fn check_invariants(info: &BootInfo, bytes: &[u8]) {
    assert!(info.modules().count() <= MAX_MODULES);
    assert!(info.cmdline().len() <= MAX_CMDLINE);
    let _ = info.memory_map().usable_bytes();
    for r in info.reserved_ranges() {
        assert!(r.start <= r.end);
    }
    if let Some(rsdp) = info.rsdp() {
        assert!(rsdp > MBI && rsdp < MBI + bytes.len() as u64);
        assert_eq!(info.reserved_ranges().last().unwrap().start, MBI);
    }
}

#[test]
fn every_truncation_of_total_size_is_refused_or_parsed() {
    let (good, _, _) = grub_like();
    let len = good.len() as u32;
    for total in 0..len + 64 {
        let mut bytes = good.clone();
        set32(&mut bytes, 0, total);
        match parse(&bytes) {
            // Beyond its end tag the information is not read.
            Ok(info) => {
                assert!(total >= len, "total {total}");
                check_invariants(&info, &bytes);
                let end = info.reserved_ranges().last().unwrap().end;
                assert_eq!(end, MBI + u64::from(total));
            }
            Err(_) => assert!(total < len, "total {total}"),
        }
    }
    // Memory that ends early, with total_size intact.
    for cut in 0..good.len() {
        assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn corrupted_tag_headers_never_panic() {
    let (good, _, _) = grub_like();
    // The offsets of every tag header.
    let mut headers = vec![0usize];
    let mut at = 8;
    loop {
        headers.push(at);
        let tag_type = u32::from_le_bytes(good[at..at + 4].try_into().unwrap());
        let size = u32::from_le_bytes(good[at + 4..at + 8].try_into().unwrap());
        if tag_type == 0 {
            break;
        }
        at += (size as usize).next_multiple_of(8);
    }
    assert_eq!(headers.len(), 12);
    let mut parsed = 0;
    for &header in &headers {
        for byte in header..header + 8 {
            for value in 0..=255u8 {
                let mut bytes = good.clone();
                bytes[byte] = value;
                if let Ok(info) = parse(&bytes) {
                    check_invariants(&info, &bytes);
                    parsed += 1;
                }
            }
        }
    }
    assert!(parsed > 0);
    // And a few corruptions of every other byte.
    for byte in 0..good.len() {
        for value in [0, 0xff, good[byte] ^ 1, good[byte] ^ 0x80] {
            let mut bytes = good.clone();
            bytes[byte] = value;
            if let Ok(info) = parse(&bytes) {
                check_invariants(&info, &bytes);
            }
        }
    }
}

/// Random tag streams: an error or a value, never a panic or a hang.
#[test]
fn fuzzed_tags_never_panic() {
    let mut seed = 0x0bad_cafe_f00d_d00du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut m = Mbi::new();
        for _ in 0..rand() % 8 {
            let tag_type = [0, 1, 3, 6, 14, 15, 2, 21][rand() as usize % 8];
            let len = (rand() % 64) as usize;
            let payload: Vec<u8> = (0..len)
                .map(|_| match rand() % 3 {
                    0 => 0,
                    1 => 24,
                    _ => rand() as u8,
                })
                .collect();
            let size = match rand() % 4 {
                0 => rand() as u32 % 80,
                _ => 8 + len as u32,
            };
            m.raw_tag(tag_type, size, &payload);
        }
        let mut bytes = m.finish();
        if rand() % 4 == 0 {
            let total = rand() as u32 % (bytes.len() as u32 + 16);
            set32(&mut bytes, 0, total);
        }
        if let Ok(info) = parse(&bytes) {
            check_invariants(&info, &bytes);
        }
    }
}
