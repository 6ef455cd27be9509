//! fsck: checks an image against every rule the file system keeps,
//! reading the device directly (no cache).
//!
//! A committed transaction in the log is checked as installed (as the
//! next mount will install it), and reported in [`Report::log_blocks`].
//!
//! Rules: a valid superblock; a log header naming blocks of the file
//! system; every allocated inode
//! of a known kind, with a size the format holds and exactly the blocks
//! below its size (no holes, no pointers past it), each a data block
//! claimed by no other inode; the bitmap marking exactly the metadata
//! blocks and the claimed blocks; directories a whole number of entries,
//! `.` and `..` first and right, valid distinct names naming allocated
//! inodes, every directory reachable from the root by exactly one path;
//! every inode's link count equal to the entries naming it (`.` not
//! counted), and no allocated inode that no entry names.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::disk::Disk;
use crate::layout::{
    DIRENT, Dinode, Kind, NDIRECT, Profile, Superblock, decode_dirent, valid_name, word,
};
use crate::{Error, ROOT, Result};

/// What [`check`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every rule broken, one line each (empty for a clean image).
    pub problems: Vec<String>,
    pub files: u32,
    pub dirs: u32,
    pub devices: u32,
    /// Data blocks in use (by files, directories and indirect blocks).
    pub used_blocks: u32,
    pub free_blocks: u32,
    /// Blocks of a committed transaction the log holds (checked as the
    /// next mount will install them; 0 for an empty log).
    pub log_blocks: u32,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Problems beyond this many are counted, not listed.
const MAX_LISTED: usize = 50;

struct Checker<'d, D: Disk> {
    disk: &'d mut D,
    /// The committed log's blocks, read instead of their homes: the
    /// image is checked as the next mount will see it.
    overlay: BTreeMap<u32, Vec<u8>>,
    sb: Superblock,
    p: Profile,
    report: Report,
    hidden: usize,
}

impl<D: Disk> Checker<'_, D> {
    fn problem(&mut self, text: String) {
        if self.report.problems.len() < MAX_LISTED {
            self.report.problems.push(text);
        } else {
            self.hidden += 1;
        }
    }

    async fn block(&mut self, block: u32) -> Result<Vec<u8>> {
        if let Some(data) = self.overlay.get(&block) {
            return Ok(data.clone());
        }
        let mut data = vec![0u8; self.p.block_size()];
        self.disk.read(block, &mut data).await?;
        Ok(data)
    }

    fn data_block(&self, block: u32) -> bool {
        block >= self.sb.data_start() && block < self.sb.size
    }

    /// Claims `block` for inode `inum`; false (with a problem) if it is
    /// not a data block or is claimed already.
    fn claim(&mut self, owners: &mut [u32], inum: u32, block: u32, what: &str) -> bool {
        if !self.data_block(block) {
            self.problem(format!(
                "inode {inum}: {what} block {block} is outside the data region"
            ));
            return false;
        }
        let owner = &mut owners[block as usize];
        if *owner != 0 {
            let first = *owner;
            self.problem(format!(
                "inode {inum}: {what} block {block} is also used by inode {first}"
            ));
            return false;
        }
        *owner = inum;
        true
    }

    /// Checks the pointers of one indirect block: entries below `used`
    /// are blocks of the file, the rest zero. Returns the blocks.
    async fn indirect(
        &mut self,
        owners: &mut [u32],
        inum: u32,
        block: u32,
        used: u64,
        level: u32,
    ) -> Result<Vec<u32>> {
        let n = self.p.nindirect() as u64;
        let data = self.block(block).await?;
        let mut blocks = Vec::new();
        for i in 0..n {
            let b = word(&data, i as usize);
            let wanted = if level == 1 { i < used } else { i * n < used };
            if !wanted {
                if b != 0 {
                    self.problem(format!(
                        "inode {inum}: pointer past the end of the file in block {block}"
                    ));
                }
                continue;
            }
            if b == 0 {
                self.problem(format!("inode {inum}: hole (missing block) below its size"));
                continue;
            }
            if !self.claim(
                owners,
                inum,
                b,
                if level == 1 { "data" } else { "indirect" },
            ) {
                continue;
            }
            if level == 1 {
                blocks.push(b);
            } else {
                let below = (used - i * n).min(n);
                blocks.extend(Box::pin(self.indirect(owners, inum, b, below, 1)).await?);
            }
        }
        Ok(blocks)
    }

    /// The data blocks of a file, in order, checked.
    async fn file_blocks(
        &mut self,
        owners: &mut [u32],
        inum: u32,
        ino: &Dinode,
    ) -> Result<Vec<u32>> {
        let bsize = self.p.block_size() as u64;
        let n = self.p.nindirect() as u64;
        let count = (ino.size as u64).div_ceil(bsize);
        let mut blocks = Vec::new();
        for (i, &b) in ino.addrs.iter().take(NDIRECT).enumerate() {
            if (i as u64) < count {
                if b == 0 {
                    self.problem(format!("inode {inum}: hole (missing block) below its size"));
                } else if self.claim(owners, inum, b, "data") {
                    blocks.push(b);
                }
            } else if b != 0 {
                self.problem(format!("inode {inum}: pointer past the end of the file"));
            }
        }
        let rest = count.saturating_sub(NDIRECT as u64);
        let ind = ino.addrs[NDIRECT];
        if rest > 0 {
            if ind == 0 {
                self.problem(format!("inode {inum}: missing indirect block"));
            } else if self.claim(owners, inum, ind, "indirect") {
                blocks.extend(self.indirect(owners, inum, ind, rest.min(n), 1).await?);
            }
        } else if ind != 0 {
            self.problem(format!(
                "inode {inum}: indirect block past the end of the file"
            ));
        }
        if self.p.double_indirect() {
            let rest = rest.saturating_sub(n);
            let top = ino.addrs[NDIRECT + 1];
            if rest > 0 {
                if top == 0 {
                    self.problem(format!("inode {inum}: missing double-indirect block"));
                } else if self.claim(owners, inum, top, "indirect") {
                    blocks.extend(self.indirect(owners, inum, top, rest, 2).await?);
                }
            } else if top != 0 {
                self.problem(format!(
                    "inode {inum}: double-indirect block past the end of the file"
                ));
            }
        }
        Ok(blocks)
    }
}

/// Checks the file system on `disk`. `Err` only if the device fails or
/// the superblock is unusable (nothing else can be checked then); every
/// other fault is a line of the report.
pub async fn check<D: Disk>(disk: &mut D, profile: Profile) -> Result<Report> {
    let mut block = vec![0u8; profile.block_size()];
    disk.read(1, &mut block).await?;
    let sb = Superblock::decode(profile, &block, disk.blocks())?;
    let mut c = Checker {
        disk,
        overlay: BTreeMap::new(),
        sb,
        p: profile,
        report: Report::default(),
        hidden: 0,
    };
    match crate::cache::read_log(c.disk, &sb).await {
        Ok(Some(log)) => {
            c.report.log_blocks = log.len() as u32;
            c.overlay = log.into_iter().collect();
        }
        Ok(None) => {}
        Err(Error::Corrupt) => c.problem(String::from(
            "log: the header names blocks outside the file system",
        )),
        Err(e) => return Err(e),
    }

    // Inodes and the blocks they claim.
    let mut owners = vec![0u32; sb.size as usize];
    let mut inodes = vec![Dinode::FREE; sb.ninodes as usize];
    let mut blocks_of: Vec<Vec<u32>> = vec![Vec::new(); sb.ninodes as usize];
    let ipb = profile.inodes_per_block() as u32;
    let isize = profile.inode_size();
    for ib in 0..sb.ninodes.div_ceil(ipb) {
        let data = c.block(sb.inodestart + ib).await?;
        for slot in 0..ipb {
            let inum = ib * ipb + slot;
            if inum >= sb.ninodes {
                break;
            }
            let at = slot as usize * isize;
            inodes[inum as usize] = Dinode::decode(profile, &data[at..at + isize]);
        }
    }
    for inum in 1..sb.ninodes {
        let ino = inodes[inum as usize];
        let kind = match Kind::from_code(ino.kind) {
            Ok(Some(kind)) => kind,
            Ok(None) => continue,
            Err(_) => {
                c.problem(format!("inode {inum}: unknown type {}", ino.kind));
                continue;
            }
        };
        match kind {
            Kind::Dir => c.report.dirs += 1,
            Kind::File => c.report.files += 1,
            Kind::Device => c.report.devices += 1,
        }
        if ino.size as u64 > profile.max_file_size() {
            c.problem(format!(
                "inode {inum}: size {} is past the largest file",
                ino.size
            ));
            continue;
        }
        blocks_of[inum as usize] = c.file_blocks(&mut owners, inum, &ino).await?;
    }
    if inodes[ROOT as usize].kind != Kind::Dir.code() {
        c.problem(String::from("inode 1 (the root) is not a directory"));
    }

    // The bitmap against the claims.
    let bpb = profile.bits_per_block() as u32;
    let (mut lost, mut unmarked) = (0u32, 0u32);
    let mut first_lost = None;
    let mut first_unmarked = None;
    let bpb = bpb as u64;
    let needed = (sb.size as u64).div_ceil(bpb) as u32;
    for bm in 0..needed.min(sb.nbitmap()) {
        let bits = c.block(sb.bmapstart + bm).await?;
        let first = bm as u64 * bpb;
        for b in first..((bm as u64 + 1) * bpb).min(sb.size as u64) {
            let bit = (b - first) as usize;
            let b = b as u32;
            let marked = bits[bit / 8] & (1 << (bit % 8)) != 0;
            let used = b < sb.data_start() || owners[b as usize] != 0;
            if b >= sb.data_start() {
                if marked {
                    c.report.used_blocks += 1;
                } else {
                    c.report.free_blocks += 1;
                }
            }
            if marked && !used {
                lost += 1;
                first_lost.get_or_insert(b);
            } else if used && !marked {
                unmarked += 1;
                first_unmarked.get_or_insert(b);
            }
        }
    }
    if let Some(b) = first_lost {
        c.problem(format!(
            "bitmap: {lost} blocks marked in use that nothing uses (first: {b})"
        ));
    }
    if let Some(b) = first_unmarked {
        c.problem(format!(
            "bitmap: {unmarked} blocks in use but marked free (first: {b})"
        ));
    }

    // The directory tree.
    let mut refs = vec![0u32; sb.ninodes as usize];
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    queue.push_back((ROOT, ROOT));
    seen.insert(ROOT);
    while let Some((dir, parent)) = queue.pop_front() {
        let ino = inodes[dir as usize];
        if !(ino.size as usize).is_multiple_of(DIRENT) {
            c.problem(format!(
                "directory {dir}: size {} is not a whole number of entries",
                ino.size
            ));
        }
        let entries = ino.size as usize / DIRENT;
        let per_block = profile.block_size() / DIRENT;
        let mut names = BTreeSet::new();
        let blocks = blocks_of[dir as usize].clone();
        for (bi, &b) in blocks.iter().enumerate() {
            let data = c.block(b).await?;
            for e in 0..per_block {
                let index = bi * per_block + e;
                if index >= entries {
                    break;
                }
                let (inum, name) = decode_dirent(&data[e * DIRENT..(e + 1) * DIRENT]);
                let inum = inum as u32;
                let want = match index {
                    0 => Some((b".".as_slice(), dir)),
                    1 => Some((b"..".as_slice(), parent)),
                    _ => None,
                };
                if let Some((wname, winum)) = want {
                    if name != wname || inum != winum {
                        c.problem(format!(
                            "directory {dir}: entry {index} should be '{}' -> {winum}",
                            String::from_utf8_lossy(wname)
                        ));
                    }
                    if index == 1 && inum != 0 && inum < sb.ninodes {
                        refs[inum as usize] += 1;
                    }
                    continue;
                }
                if inum == 0 {
                    continue;
                }
                let shown = String::from_utf8_lossy(name).into_owned();
                if valid_name(name).is_err() || name == b"." || name == b".." {
                    c.problem(format!("directory {dir}: bad name {shown:?}"));
                }
                if !names.insert(name.to_vec()) {
                    c.problem(format!("directory {dir}: name {shown:?} appears twice"));
                }
                if inum >= sb.ninodes || inodes[inum as usize].kind == 0 {
                    c.problem(format!(
                        "directory {dir}: {shown:?} names free or invalid inode {inum}"
                    ));
                    continue;
                }
                refs[inum as usize] += 1;
                if inodes[inum as usize].kind == Kind::Dir.code() {
                    if seen.insert(inum) {
                        queue.push_back((inum, dir));
                    } else {
                        c.problem(format!("directory {inum}: reachable by more than one path"));
                    }
                }
            }
        }
    }
    for inum in 1..sb.ninodes {
        let ino = inodes[inum as usize];
        if ino.kind == 0 || Kind::from_code(ino.kind).is_err() {
            continue;
        }
        if refs[inum as usize] == 0 {
            c.problem(format!(
                "inode {inum}: allocated but no directory names it (nlink {})",
                ino.nlink
            ));
        } else if ino.nlink as u32 != refs[inum as usize] || ino.nlink < 0 {
            c.problem(format!(
                "inode {inum}: link count {} but {} entries name it",
                ino.nlink, refs[inum as usize]
            ));
        }
    }
    if c.hidden > 0 {
        let hidden = c.hidden;
        c.report
            .problems
            .push(format!("... and {hidden} more problems"));
    }
    Ok(c.report)
}
