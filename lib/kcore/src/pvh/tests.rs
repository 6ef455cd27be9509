use super::*;
use crate::SliceMemory;
use std::vec;
use std::vec::Vec;

const SI: u64 = 0x1000;
const CMDLINE: u64 = 0x2000;
const MODLIST: u64 = 0x3000;
const MEMMAP: u64 = 0x4000;
const MOD_CMDLINE: u64 = 0x5000;
const RAM_SIZE: usize = 0x8000;

/// A fake guest: start info at `SI`, pointers filled in by the tests.
struct Guest(Vec<u8>);

impl Guest {
    fn new() -> Self {
        let mut g = Guest(vec![0; RAM_SIZE]);
        g.put32(SI, START_INFO_MAGIC);
        g.put32(SI + 4, 1);
        g
    }
    fn put(&mut self, at: u64, bytes: &[u8]) {
        self.0[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }
    fn put32(&mut self, at: u64, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    fn put64(&mut self, at: u64, v: u64) {
        self.put(at, &v.to_le_bytes());
    }
    fn cmdline(&mut self, text: &[u8]) {
        self.put(CMDLINE, text);
        self.put(CMDLINE + text.len() as u64, &[0]);
        self.put64(SI + 0x18, CMDLINE);
    }
    fn modules(&mut self, mods: &[(u64, u64, u64)]) {
        for (i, &(paddr, size, cmdline)) in mods.iter().enumerate() {
            let e = MODLIST + 0x20 * i as u64;
            self.put64(e, paddr);
            self.put64(e + 8, size);
            self.put64(e + 0x10, cmdline);
        }
        self.put32(SI + 0x0c, mods.len() as u32);
        self.put64(SI + 0x10, MODLIST);
    }
    fn memmap(&mut self, entries: &[(u64, u64, u32)]) {
        for (i, &(addr, size, kind)) in entries.iter().enumerate() {
            let e = MEMMAP + 0x18 * i as u64;
            self.put64(e, addr);
            self.put64(e + 8, size);
            self.put32(e + 0x10, kind);
        }
        self.put64(SI + 0x28, MEMMAP);
        self.put32(SI + 0x30, entries.len() as u32);
    }
    fn parse(&self) -> Result<BootInfo, PvhError> {
        BootInfo::parse(&SliceMemory::new(0, &self.0), SI)
    }
}

#[test]
fn parses_a_full_start_info() {
    let mut g = Guest::new();
    g.cmdline(b"console=ttyS0 test=all");
    g.put64(SI + 0x20, 0xf5a40);
    g.put(MOD_CMDLINE, b"domains.tar\0initrd\0");
    g.modules(&[
        (0x200000, 0x1234, MOD_CMDLINE),
        (0x300000, 0x10, 0),
        (0x400000, 0, MOD_CMDLINE + 12),
    ]);
    g.memmap(&[
        (0, 0x9fc00, 1),
        (0x9fc00, 0x400, 2),
        (0x100000, 0x7f00000, 1),
        (0xfeffc000, 0x4000, 2),
    ]);
    let info = g.parse().unwrap();
    assert_eq!(info.version(), 1);
    assert_eq!(info.cmdline(), "console=ttyS0 test=all");
    assert_eq!(info.rsdp(), Some(0xf5a40));
    let mods: Vec<_> = info.modules().collect();
    assert_eq!(
        mods,
        [
            Module {
                paddr: 0x200000,
                size: 0x1234,
                cmdline: "domains.tar"
            },
            Module {
                paddr: 0x300000,
                size: 0x10,
                cmdline: ""
            },
            Module {
                paddr: 0x400000,
                size: 0,
                cmdline: "initrd"
            },
        ]
    );
    let reserved: Vec<_> = info.reserved_ranges().map(|r| (r.start, r.end)).collect();
    assert_eq!(
        reserved,
        [
            (0x200000, 0x201234),
            (0x300000, 0x300010),
            (0x400000, 0x400000)
        ]
    );
    assert_eq!(info.memory_map().entries().len(), 4);
    assert_eq!(info.memory_map().entries()[1].kind, MemoryKind::Reserved);
    assert_eq!(info.memory_map().usable_bytes(), 0x9f000 + 0x7f00000);
    assert!(format!("{info:?}").contains("console=ttyS0"));
}

#[test]
fn minimal_start_info_has_nothing() {
    let info = Guest::new().parse().unwrap();
    assert_eq!(info.cmdline(), "");
    assert_eq!(info.rsdp(), None);
    assert_eq!(info.modules().count(), 0);
    assert!(info.memory_map().entries().is_empty());
}

#[test]
fn version_zero_ignores_memory_map_fields() {
    let mut g = Guest::new();
    g.memmap(&[(0, 0x100000, 1)]);
    g.put32(SI + 4, 0);
    let info = g.parse().unwrap();
    assert_eq!(info.version(), 0);
    assert!(info.memory_map().entries().is_empty());
}

#[test]
fn bad_magic() {
    let mut g = Guest::new();
    g.put32(SI, 0xdead_beef);
    assert_eq!(g.parse().unwrap_err(), PvhError::BadMagic(0xdead_beef));
}

#[test]
fn start_info_out_of_range() {
    let g = Guest::new();
    let mem = SliceMemory::new(0, &g.0);
    let far = RAM_SIZE as u64 - 8;
    let err = BootInfo::parse(&mem, far).unwrap_err();
    assert!(matches!(
        err,
        PvhError::Unreadable {
            what: "start info",
            ..
        }
    ));
    assert!(matches!(
        BootInfo::parse(&mem, u64::MAX - 3),
        Err(PvhError::Unreadable { .. })
    ));
    // The version-1 tail lies past the end of memory.
    let mut tail = g.0[SI as usize..SI as usize + 0x2c].to_vec();
    tail[..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
    let err = BootInfo::parse(&SliceMemory::new(0, &tail), 0).unwrap_err();
    assert!(matches!(
        err,
        PvhError::Unreadable {
            what: "start info",
            phys: 0x28,
            ..
        }
    ));
}

#[test]
fn cmdline_errors() {
    let mut g = Guest::new();
    g.cmdline(&[b'a', 0xff, b'b']);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::CmdlineNotUtf8(CmdlineOf::Kernel)
    );

    let mut g = Guest::new();
    g.cmdline(&[b'x'; MAX_CMDLINE]);
    assert_eq!(g.parse().unwrap().cmdline().len(), MAX_CMDLINE);
    g.cmdline(&[b'x'; MAX_CMDLINE + 1]);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::CmdlineTooLong(CmdlineOf::Kernel)
    );

    // No NUL before the end of memory.
    let mut g = Guest::new();
    let last = RAM_SIZE as u64 - 4;
    g.put(last, b"abcd");
    g.put64(SI + 0x18, last);
    assert!(matches!(
        g.parse().unwrap_err(),
        PvhError::Unreadable {
            what: "command line",
            ..
        }
    ));

    // Pointer wraps around.
    let mut g = Guest::new();
    g.put64(SI + 0x18, u64::MAX);
    assert!(matches!(
        g.parse().unwrap_err(),
        PvhError::Unreadable { .. } | PvhError::CmdlineTooLong(_)
    ));
}

#[test]
fn module_errors() {
    let mut g = Guest::new();
    g.modules(&[(0, 0, 0)]);
    g.put32(SI + 0x0c, MAX_MODULES as u32 + 1);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::TooManyModules(MAX_MODULES as u32 + 1)
    );
    g.put32(SI + 0x0c, u32::MAX);
    assert_eq!(g.parse().unwrap_err(), PvhError::TooManyModules(u32::MAX));

    let mut g = Guest::new();
    g.modules(&[(0x1000, 0x10, 0), (u64::MAX - 4, 0x10, 0)]);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::ModuleOverflow { index: 1 }
    );

    // The list runs off the end of memory.
    let mut g = Guest::new();
    g.modules(&[]);
    g.put64(SI + 0x10, RAM_SIZE as u64 - 0x30);
    g.put32(SI + 0x0c, 2);
    assert!(matches!(
        g.parse().unwrap_err(),
        PvhError::Unreadable {
            what: "module list",
            ..
        }
    ));
    g.put64(SI + 0x10, u64::MAX - 0x10);
    assert!(matches!(
        g.parse().unwrap_err(),
        PvhError::Unreadable {
            what: "module list",
            ..
        }
    ));

    let mut g = Guest::new();
    g.put(MOD_CMDLINE, b"ok\0\xc3\x28\0");
    g.modules(&[(0, 0, MOD_CMDLINE), (0, 0, MOD_CMDLINE + 3)]);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::CmdlineNotUtf8(CmdlineOf::Module(1))
    );
}

#[test]
fn module_cmdlines_share_a_bounded_pool() {
    let mut g = Guest::new();
    let half = [b'm'; MAX_MODULE_CMDLINES / 2];
    g.put(MOD_CMDLINE, &half);
    g.put(MOD_CMDLINE + half.len() as u64, &[0]);
    g.modules(&[(0, 0, MOD_CMDLINE), (0, 0, MOD_CMDLINE)]);
    let info = g.parse().unwrap();
    assert!(info.modules().all(|m| m.cmdline.len() == half.len()));
    g.modules(&[
        (0, 0, MOD_CMDLINE),
        (0, 0, MOD_CMDLINE),
        (0, 0, MOD_CMDLINE),
    ]);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::CmdlineTooLong(CmdlineOf::Module(2))
    );
}

#[test]
fn memory_map_errors() {
    let mut g = Guest::new();
    g.memmap(&[(0, 0x1000, 1)]);
    g.put32(SI + 0x30, MAX_MEMMAP_ENTRIES as u32 + 1);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::TooManyMemmapEntries(MAX_MEMMAP_ENTRIES as u32 + 1)
    );

    let mut g = Guest::new();
    g.memmap(&[(0, 0x1000, 1), (u64::MAX, 2, 1)]);
    assert_eq!(
        g.parse().unwrap_err(),
        PvhError::MemmapEntryOverflow { index: 1 }
    );

    let mut g = Guest::new();
    g.memmap(&[]);
    g.put64(SI + 0x28, RAM_SIZE as u64 - 0x18);
    g.put32(SI + 0x30, 2);
    assert!(matches!(
        g.parse().unwrap_err(),
        PvhError::Unreadable {
            what: "memory map",
            ..
        }
    ));

    // Unknown types are kept and never usable.
    let mut g = Guest::new();
    g.memmap(&[(0, 0x10000, 1), (0x4000, 0x1000, 99), (0x8000, 0x1000, 0)]);
    let info = g.parse().unwrap();
    assert_eq!(info.memory_map().entries()[1].kind, MemoryKind::Other(99));
    let usable: Vec<_> = info
        .memory_map()
        .usable()
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(usable, [(0, 0x4000), (0x5000, 0x8000), (0x9000, 0x10000)]);
}

#[test]
fn every_error_displays() {
    let errors = [
        PvhError::Unreadable {
            what: "x",
            phys: 1,
            error: MemError::OutOfRange,
        },
        PvhError::BadMagic(1),
        PvhError::TooManyModules(1),
        PvhError::TooManyMemmapEntries(1),
        PvhError::ModuleOverflow { index: 1 },
        PvhError::MemmapEntryOverflow { index: 1 },
        PvhError::CmdlineTooLong(CmdlineOf::Module(3)),
        PvhError::CmdlineNotUtf8(CmdlineOf::Kernel),
    ];
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        PvhError::CmdlineNotUtf8(CmdlineOf::Module(3)).to_string(),
        "command line of module 3 is not UTF-8"
    );
}

/// Random garbage in every field must give an error or a value, never a panic.
#[test]
fn fuzzed_start_info_never_panics() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let mut g = Guest::new();
        for off in (8..0x38).step_by(8) {
            let v = match rand() % 4 {
                0 => rand() % RAM_SIZE as u64,
                1 => rand() % 200,
                2 => 0,
                _ => rand(),
            };
            g.put64(SI + off, v);
        }
        if rand() % 2 == 0 {
            g.put32(SI, START_INFO_MAGIC);
        }
        for off in (CMDLINE..RAM_SIZE as u64).step_by(8) {
            if rand() % 3 == 0 {
                g.put64(off, rand());
            }
        }
        if let Ok(info) = g.parse() {
            let _ = info.memory_map().usable_bytes();
            let _ = info.modules().count();
            let _ = info.cmdline();
        }
    }
}
