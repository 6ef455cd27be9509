//! The on-disk format: superblock, inodes, directory entries, log header,
//! and where each region starts. All integers are little-endian.
//!
//! ```text
//! block 0        boot block (unused)
//! block 1        superblock
//! logstart       log header: count n, then n home block numbers
//! logstart+1..   up to nlog-1 logged blocks
//! inodestart..   inodes, inode_size bytes each (inode 0 unused, 1 = root)
//! bmapstart..    one bit per block of the whole device (1 = in use)
//! then           data blocks
//! ```

use crate::{Error, Result};

/// Bytes of a name in a directory entry; shorter names are NUL-padded.
pub const DIRSIZ: usize = 14;
/// Bytes of one directory entry: a 16-bit inode number and the name.
pub const DIRENT: usize = 2 + DIRSIZ;
/// Direct block addresses in an inode.
pub const NDIRECT: usize = 12;
/// The smallest log, header included: one ordinary operation changes up
/// to 16 blocks, and the log must hold one whole.
pub const MIN_LOG_BLOCKS: u32 = 17;
/// The native profile's superblock magic (xv6-riscv's value).
pub const MAGIC: u32 = 0x1020_3040;

/// The two on-disk profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// 4 KiB blocks, magic number, 128-byte inodes with a double-indirect
    /// block: the default, one `BDev` block per file-system block.
    Native,
    /// xv6-public's format: 512-byte blocks, no magic, 64-byte inodes,
    /// no double-indirect block.
    Xv6,
}

impl Profile {
    pub const fn block_size(self) -> usize {
        match self {
            Profile::Native => 4096,
            Profile::Xv6 => 512,
        }
    }

    pub const fn inode_size(self) -> usize {
        match self {
            Profile::Native => 128,
            Profile::Xv6 => 64,
        }
    }

    pub const fn double_indirect(self) -> bool {
        matches!(self, Profile::Native)
    }

    /// Block addresses an inode holds (direct, indirect, double).
    pub const fn addrs(self) -> usize {
        NDIRECT + 1 + self.double_indirect() as usize
    }

    /// Block addresses in one indirect block.
    pub const fn nindirect(self) -> usize {
        self.block_size() / 4
    }

    /// Blocks one log header can describe (the native header also holds
    /// a sequence number and checksums: five words, then three per block).
    pub const fn log_header_room(self) -> usize {
        match self {
            Profile::Native => (self.block_size() / 4 - 5) / 3,
            Profile::Xv6 => self.block_size() / 4 - 1,
        }
    }

    /// Inodes per block.
    pub const fn inodes_per_block(self) -> usize {
        self.block_size() / self.inode_size()
    }

    /// Bits (blocks) per bitmap block.
    pub const fn bits_per_block(self) -> usize {
        self.block_size() * 8
    }

    /// The largest file, in blocks.
    pub const fn max_file_blocks(self) -> u64 {
        let n = self.nindirect() as u64;
        NDIRECT as u64 + n + if self.double_indirect() { n * n } else { 0 }
    }

    /// The largest file, in bytes (the size field is 32 bits).
    pub const fn max_file_size(self) -> u64 {
        let blocks = self.max_file_blocks() * self.block_size() as u64;
        if blocks > u32::MAX as u64 {
            u32::MAX as u64
        } else {
            blocks
        }
    }
}

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// A device node (`major`, `minor` name the device).
    Device,
}

impl Kind {
    pub const fn code(self) -> i16 {
        match self {
            Kind::Dir => 1,
            Kind::File => 2,
            Kind::Device => 3,
        }
    }

    /// The kind of a type code; `Ok(None)` for a free inode.
    pub fn from_code(code: i16) -> Result<Option<Kind>> {
        match code {
            0 => Ok(None),
            1 => Ok(Some(Kind::Dir)),
            2 => Ok(Some(Kind::File)),
            3 => Ok(Some(Kind::Device)),
            _ => Err(Error::Corrupt),
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Reads the little-endian word `index` of a block.
pub fn word(block: &[u8], index: usize) -> u32 {
    u32_at(block, index * 4)
}

/// Writes the little-endian word `index` of a block.
pub fn set_word(block: &mut [u8], index: usize, value: u32) {
    block[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
}

/// The superblock: where everything is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub profile: Profile,
    /// Blocks in the file system.
    pub size: u32,
    /// Data blocks.
    pub nblocks: u32,
    pub ninodes: u32,
    /// Log blocks, the header included.
    pub nlog: u32,
    pub logstart: u32,
    pub inodestart: u32,
    pub bmapstart: u32,
}

impl Superblock {
    /// Lays out a file system of `size` blocks with `ninodes` inodes and a
    /// log of `nlog` blocks (header included), as xv6's mkfs does.
    pub fn plan(profile: Profile, size: u32, ninodes: u32, nlog: u32) -> Result<Superblock> {
        let ipb = profile.inodes_per_block() as u32;
        let bpb = profile.bits_per_block() as u32;
        let header_room = profile.log_header_room() as u32;
        if ninodes < 2
            || nlog < MIN_LOG_BLOCKS
            || nlog - 1 > header_room
            || ninodes > u16::MAX as u32
        {
            return Err(Error::Invalid);
        }
        let ninodeblocks = ninodes.div_ceil(ipb);
        let nbitmap = size.div_ceil(bpb);
        let nmeta = 2u32
            .checked_add(nlog)
            .and_then(|n| n.checked_add(ninodeblocks))
            .and_then(|n| n.checked_add(nbitmap))
            .ok_or(Error::Invalid)?;
        // Room for the root directory and a little more.
        if size < nmeta + 8 {
            return Err(Error::NoSpace);
        }
        Ok(Superblock {
            profile,
            size,
            nblocks: size - nmeta,
            ninodes,
            nlog,
            logstart: 2,
            inodestart: 2 + nlog,
            bmapstart: 2 + nlog + ninodeblocks,
        })
    }

    /// The first data block.
    pub fn data_start(&self) -> u32 {
        self.size - self.nblocks
    }

    /// Bitmap blocks.
    pub fn nbitmap(&self) -> u32 {
        self.data_start() - self.bmapstart
    }

    /// Blocks the log holds (its header excluded).
    pub fn log_capacity(&self) -> usize {
        self.nlog as usize - 1
    }

    pub fn encode(&self, block: &mut [u8]) {
        block.fill(0);
        let fields = [
            self.size,
            self.nblocks,
            self.ninodes,
            self.nlog,
            self.logstart,
            self.inodestart,
            self.bmapstart,
        ];
        match self.profile {
            Profile::Native => {
                set_word(block, 0, MAGIC);
                for (i, field) in fields.iter().enumerate() {
                    set_word(block, 1 + i, *field);
                }
                set_word(block, 8, self.profile.block_size() as u32);
            }
            Profile::Xv6 => {
                for (i, field) in fields.iter().enumerate() {
                    set_word(block, i, *field);
                }
            }
        }
    }

    /// Decodes and checks a superblock: every region in order, inside
    /// the device of `device_blocks` blocks, and the sizes the regions
    /// need.
    pub fn decode(profile: Profile, block: &[u8], device_blocks: u64) -> Result<Superblock> {
        let first = match profile {
            Profile::Native => {
                if word(block, 0) != MAGIC || word(block, 8) != profile.block_size() as u32 {
                    return Err(Error::Corrupt);
                }
                1
            }
            Profile::Xv6 => 0,
        };
        let f = |i: usize| word(block, first + i);
        let sb = Superblock {
            profile,
            size: f(0),
            nblocks: f(1),
            ninodes: f(2),
            nlog: f(3),
            logstart: f(4),
            inodestart: f(5),
            bmapstart: f(6),
        };
        let ipb = profile.inodes_per_block() as u64;
        let bpb = profile.bits_per_block() as u64;
        let sane = sb.size as u64 <= device_blocks
            && sb.nblocks >= 1
            && sb.nblocks < sb.size
            && sb.ninodes >= 2
            && sb.ninodes <= u16::MAX as u32
            && sb.nlog >= MIN_LOG_BLOCKS
            && (sb.nlog as usize) <= profile.log_header_room() + 1
            && sb.logstart == 2
            && sb.inodestart as u64 == sb.logstart as u64 + sb.nlog as u64
            && sb.bmapstart as u64 >= sb.inodestart as u64 + (sb.ninodes as u64).div_ceil(ipb)
            && (sb.data_start() as u64) >= sb.bmapstart as u64 + (sb.size as u64).div_ceil(bpb);
        if sane { Ok(sb) } else { Err(Error::Corrupt) }
    }
}

/// An inode as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dinode {
    /// 0 for a free inode, else [`Kind::code`].
    pub kind: i16,
    pub major: i16,
    pub minor: i16,
    pub nlink: i16,
    pub size: u32,
    /// Direct blocks, the indirect block, the double-indirect block
    /// (the last only in the native profile).
    pub addrs: [u32; NDIRECT + 2],
}

impl Dinode {
    pub const FREE: Dinode = Dinode {
        kind: 0,
        major: 0,
        minor: 0,
        nlink: 0,
        size: 0,
        addrs: [0; NDIRECT + 2],
    };

    pub fn decode(profile: Profile, bytes: &[u8]) -> Dinode {
        let mut addrs = [0; NDIRECT + 2];
        for (i, addr) in addrs.iter_mut().take(profile.addrs()).enumerate() {
            *addr = u32_at(bytes, 12 + 4 * i);
        }
        Dinode {
            kind: i16_at(bytes, 0),
            major: i16_at(bytes, 2),
            minor: i16_at(bytes, 4),
            nlink: i16_at(bytes, 6),
            size: u32_at(bytes, 8),
            addrs,
        }
    }

    pub fn encode(&self, profile: Profile, bytes: &mut [u8]) {
        bytes.fill(0);
        bytes[0..2].copy_from_slice(&self.kind.to_le_bytes());
        bytes[2..4].copy_from_slice(&self.major.to_le_bytes());
        bytes[4..6].copy_from_slice(&self.minor.to_le_bytes());
        bytes[6..8].copy_from_slice(&self.nlink.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.size.to_le_bytes());
        for (i, addr) in self.addrs.iter().take(profile.addrs()).enumerate() {
            bytes[12 + 4 * i..16 + 4 * i].copy_from_slice(&addr.to_le_bytes());
        }
    }
}

/// A directory entry's inode number and name bytes (without padding).
pub fn decode_dirent(bytes: &[u8]) -> (u16, &[u8]) {
    let inum = u16::from_le_bytes([bytes[0], bytes[1]]);
    let name = &bytes[2..DIRENT];
    let len = name.iter().position(|&b| b == 0).unwrap_or(DIRSIZ);
    (inum, &name[..len])
}

/// Whether the directory entry `bytes` is in use and named `name` (what
/// `decode_dirent` would say for a `name` without NUL bytes, without
/// finding the stored name's end first).
pub fn dirent_is(bytes: &[u8], name: &[u8]) -> bool {
    let stored = &bytes[2..DIRENT];
    bytes[..2] != [0, 0]
        && name.len() <= DIRSIZ
        && stored[..name.len()] == *name
        && stored.get(name.len()).is_none_or(|&b| b == 0)
}

/// Writes a directory entry; `name` must be at most [`DIRSIZ`] bytes.
pub fn encode_dirent(bytes: &mut [u8], inum: u16, name: &[u8]) {
    bytes[..DIRENT].fill(0);
    bytes[0..2].copy_from_slice(&inum.to_le_bytes());
    bytes[2..2 + name.len()].copy_from_slice(name);
}

/// Whether `name` can be stored as one path component.
pub fn valid_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        Err(Error::Invalid)
    } else if name.len() > DIRSIZ {
        Err(Error::NameTooLong)
    } else {
        Ok(())
    }
}
