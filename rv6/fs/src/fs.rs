//! The file system: inodes, block maps, directories, paths and the
//! operations built on them.
//!
//! Every public operation runs as one unit of the running transaction
//! (see `cache`): it either changes everything it must or, on an error,
//! nothing. Two kinds of work may not fit one transaction and are split
//! into units that each leave a consistent file system: writing more data
//! than the log holds (each piece is written whole, and the size grows
//! with it), and freeing the blocks of a large file (each piece frees the
//! last blocks and shrinks the size first). An inode whose last link goes
//! while it is open stays until it is closed; one that lost its last link
//! before a crash is freed by the next mount.
//!
//! Conventions (xv6's): a file's link count is the number of directory
//! entries naming it; a directory's is its entry in its parent plus the
//! `..` of each subdirectory (its own `.` does not count). Files never
//! have holes: the blocks of a file are exactly those below its size.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cache::{Cache, CacheStats, replay};
use crate::disk::Disk;
use crate::layout::{
    DIRENT, Dinode, Kind, NDIRECT, Profile, Superblock, decode_dirent, dirent_is, encode_dirent,
    valid_name,
};
use crate::{Error, ROOT, Result};

/// The longest path accepted, in bytes.
pub const MAX_PATH: usize = 512;
/// Blocks read ahead of a sequential read.
const READ_AHEAD: u64 = 32;
/// Transaction blocks one ordinary operation can change at most: a
/// rename's two directories (inode, data block, indirect blocks), the
/// moved directory's `..` block, the replaced inode and the bitmap.
const OP_BLOCKS: usize = crate::layout::MIN_LOG_BLOCKS as usize - 1;

/// Options for [`Fs::format`].
#[derive(Clone, Copy, Debug)]
pub struct MkfsOptions {
    pub profile: Profile,
    /// Blocks in the file system (at most the device's).
    pub blocks: u32,
    pub inodes: u32,
    /// Log blocks, header included.
    pub log_blocks: u32,
}

impl MkfsOptions {
    /// Defaults for a device of `blocks` blocks: one inode per 4 blocks
    /// up to 65,535 (at least 200), and a log of 255 blocks (native, 1 MiB)
    /// or xv6's 30.
    pub fn for_blocks(profile: Profile, blocks: u32) -> MkfsOptions {
        MkfsOptions {
            profile,
            blocks,
            inodes: (blocks / 4).clamp(200, u16::MAX as u32),
            log_blocks: match profile {
                Profile::Native => 255,
                Profile::Xv6 => 30,
            },
        }
    }
}

/// What [`Fs::open`] may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    pub write: bool,
    pub create: bool,
    /// With `create`: fail if the name exists.
    pub exclusive: bool,
    pub truncate: bool,
}

/// A file's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub inum: u32,
    pub kind: Kind,
    pub nlink: u16,
    pub size: u64,
    pub major: i16,
    pub minor: i16,
}

/// One entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub inum: u32,
}

/// Where the pointer to one block of a file lives.
#[derive(Clone, Copy)]
enum Slot {
    Inode(usize),
    Block(u32, usize),
}

/// A mounted file system over the device `D`.
pub struct Fs<D: Disk> {
    disk: D,
    sb: Superblock,
    profile: Profile,
    cache: Cache,
    /// Open references (descriptors, working directories) per inode.
    open: BTreeMap<u32, u32>,
    /// Inodes that lost their last link with no reference left: freed
    /// after the operation that made them so.
    orphans: Vec<u32>,
    /// A device error during a commit: the on-disk state is in doubt, so
    /// every operation fails until the file system is mounted again.
    failed: bool,
    next_inode: u32,
    next_block: u32,
    /// The file and offset the last read ended at (read-ahead).
    last_read: Option<(u32, u64)>,
}

impl<D: Disk> Fs<D> {
    /// Writes an empty file system (a root directory only) and mounts it.
    pub async fn format(mut disk: D, opts: MkfsOptions, cache_blocks: usize) -> Result<Fs<D>> {
        let p = opts.profile;
        if (opts.blocks as u64) > disk.blocks() {
            return Err(Error::Invalid);
        }
        let sb = Superblock::plan(p, opts.blocks, opts.inodes, opts.log_blocks)?;
        let bsize = p.block_size();
        let zero = vec![0u8; bsize];
        // Boot block, superblock, log, inodes and bitmap: cleared.
        let meta: Vec<u32> = (0..sb.data_start()).collect();
        for chunk in meta.chunks(64) {
            let writes: Vec<(u32, &[u8])> = chunk.iter().map(|b| (*b, &zero[..])).collect();
            disk.write(&writes).await?;
        }
        // The root directory: inode 1, its entries in the first data block.
        let root_block = sb.data_start();
        let mut dir = vec![0u8; bsize];
        encode_dirent(&mut dir[..DIRENT], ROOT as u16, b".");
        encode_dirent(&mut dir[DIRENT..2 * DIRENT], ROOT as u16, b"..");
        let mut root = Dinode::FREE;
        root.kind = Kind::Dir.code();
        root.nlink = 1;
        root.size = 2 * DIRENT as u32;
        root.addrs[0] = root_block;
        let mut inodes = vec![0u8; bsize];
        let isize = p.inode_size();
        let at = ROOT as usize % p.inodes_per_block() * isize;
        root.encode(p, &mut inodes[at..at + isize]);
        // Bitmap: every metadata block and the root's block in use.
        let bpb = p.bits_per_block() as u32;
        let used = root_block + 1;
        let mut bitmaps = Vec::new();
        for i in 0..sb.nbitmap() {
            let mut bits = vec![0u8; bsize];
            let first = i * bpb;
            for b in first..used.min(first + bpb) {
                let bit = (b - first) as usize;
                bits[bit / 8] |= 1 << (bit % 8);
            }
            bitmaps.push((sb.bmapstart + i, bits));
        }
        let mut super_block = vec![0u8; bsize];
        sb.encode(&mut super_block);
        let mut writes: Vec<(u32, &[u8])> = vec![
            (root_block, &dir[..]),
            (
                sb.inodestart + ROOT / p.inodes_per_block() as u32,
                &inodes[..],
            ),
        ];
        for (block, bits) in &bitmaps {
            writes.push((*block, &bits[..]));
        }
        disk.write(&writes).await?;
        disk.flush().await?;
        // The superblock last: an image without one is not a file system.
        disk.write(&[(1, &super_block[..])]).await?;
        disk.flush().await?;
        Fs::mount(disk, p, cache_blocks).await
    }

    /// Mounts the file system on `disk`: checks the superblock, replays
    /// a committed log and frees inodes that lost their last link before
    /// a crash.
    pub async fn mount(mut disk: D, profile: Profile, cache_blocks: usize) -> Result<Fs<D>> {
        let bsize = profile.block_size();
        if disk.blocks() < 2 {
            return Err(Error::Corrupt);
        }
        let mut block = vec![0u8; bsize];
        disk.read(1, &mut block).await?;
        let sb = Superblock::decode(profile, &block, disk.blocks())?;
        replay(&mut disk, &sb).await?;
        let mut fs = Fs {
            disk,
            sb,
            profile,
            cache: Cache::new(&sb, cache_blocks),
            open: BTreeMap::new(),
            orphans: Vec::new(),
            failed: false,
            next_inode: 1,
            next_block: sb.data_start(),
            last_read: None,
        };
        if fs.inode(ROOT).await?.kind != Kind::Dir.code() {
            return Err(Error::Corrupt);
        }
        for inum in 1..sb.ninodes {
            let ino = fs.inode(inum).await?;
            Kind::from_code(ino.kind)?;
            if ino.kind != 0 && ino.nlink <= 0 && inum != ROOT {
                fs.orphans.push(inum);
            }
        }
        fs.reclaim().await?;
        fs.commit().await?;
        Ok(fs)
    }

    /// Commits, makes the last commit's home writes durable and empties
    /// the log: the image at rest (a mount would replay nothing).
    pub async fn quiesce(&mut self) -> Result<()> {
        self.commit().await?;
        let r = self.cache.quiesce(&mut self.disk).await;
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Commits, leaves the log empty, and gives the device back.
    pub async fn unmount(mut self) -> Result<D> {
        self.commit().await?;
        self.cache.quiesce(&mut self.disk).await?;
        Ok(self.disk)
    }

    /// The device, without committing (what a crash leaves).
    pub fn into_disk(self) -> D {
        self.disk
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats
    }

    /// Makes every operation done so far durable, in one commit.
    pub async fn commit(&mut self) -> Result<()> {
        if self.failed {
            return Err(Error::Io);
        }
        let r = self.cache.commit(&mut self.disk).await;
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Operations done since the last commit have changed this many
    /// blocks.
    pub fn pending_blocks(&self) -> usize {
        self.cache.txn_len()
    }

    // ---- units ----

    /// Starts a unit that may change up to `room` blocks, committing
    /// first if the log could not hold them.
    async fn begin(&mut self, room: usize) -> Result<usize> {
        if self.failed {
            return Err(Error::Io);
        }
        if self.cache.txn_len() + room > self.cache.log_capacity() {
            self.commit().await?;
        }
        self.cache.begin_unit();
        Ok(self.orphans.len())
    }

    /// Ends the unit begun when `orphans` orphans were pending: keeps it
    /// if `r` is a success, else undoes it; then frees new orphans.
    async fn finish<T>(&mut self, orphans: usize, r: Result<T>) -> Result<T> {
        match r {
            Ok(value) => {
                self.cache.end_unit();
                self.reclaim().await?;
                Ok(value)
            }
            Err(e) => {
                self.cache.abort_unit();
                self.orphans.truncate(orphans);
                Err(e)
            }
        }
    }

    /// Frees every pending orphan: its blocks, a piece per unit, then
    /// the inode.
    async fn reclaim(&mut self) -> Result<()> {
        while let Some(inum) = self.orphans.pop() {
            match self.free_inode(inum).await {
                Ok(()) => {}
                // A device error: stop everything (the state is in doubt).
                Err(Error::Io) => {
                    self.failed = true;
                    return Err(Error::Io);
                }
                // A corrupt orphan stays (fsck reports it); the rest of
                // the file system goes on.
                Err(_) => {}
            }
        }
        Ok(())
    }

    async fn free_inode(&mut self, inum: u32) -> Result<()> {
        self.shrink(inum, 0).await?;
        self.begin(2).await?;
        let r = self.put_inode(inum, &Dinode::FREE).await;
        if r.is_ok() {
            self.cache.end_unit();
        } else {
            self.cache.abort_unit();
        }
        r
    }

    // ---- inodes ----

    fn inode_place(&self, inum: u32) -> Result<(u32, usize)> {
        if inum == 0 || inum >= self.sb.ninodes {
            return Err(Error::Corrupt);
        }
        let ipb = self.profile.inodes_per_block() as u32;
        let at = (inum % ipb) as usize * self.profile.inode_size();
        Ok((self.sb.inodestart + inum / ipb, at))
    }

    async fn inode(&mut self, inum: u32) -> Result<Dinode> {
        let (block, at) = self.inode_place(inum)?;
        let end = at + self.profile.inode_size();
        let data = self.cache.block(&mut self.disk, block).await?;
        let ino = Dinode::decode(self.profile, data.get(at..end).ok_or(Error::Corrupt)?);
        Kind::from_code(ino.kind)?;
        Ok(ino)
    }

    async fn put_inode(&mut self, inum: u32, ino: &Dinode) -> Result<()> {
        let (block, at) = self.inode_place(inum)?;
        let mut bytes = [0u8; 128];
        let bytes = &mut bytes[..self.profile.inode_size()];
        ino.encode(self.profile, bytes);
        self.cache.write(&mut self.disk, block, at, bytes).await
    }

    /// A live inode of any kind.
    async fn live(&mut self, inum: u32) -> Result<(Dinode, Kind)> {
        let ino = self.inode(inum).await?;
        match Kind::from_code(ino.kind)? {
            Some(kind) => Ok((ino, kind)),
            None => Err(Error::Corrupt),
        }
    }

    async fn ialloc(&mut self, kind: Kind) -> Result<u32> {
        let n = self.sb.ninodes;
        let start = self.next_inode.clamp(1, n - 1);
        for k in 0..n - 1 {
            let inum = 1 + (start - 1 + k) % (n - 1);
            let ino = self.inode(inum).await?;
            if ino.kind == 0 {
                let mut fresh = Dinode::FREE;
                fresh.kind = kind.code();
                self.put_inode(inum, &fresh).await?;
                self.next_inode = inum + 1;
                return Ok(inum);
            }
        }
        Err(Error::NoInodes)
    }

    async fn adjust_links(&mut self, inum: u32, delta: i16) -> Result<i16> {
        let mut ino = self.inode(inum).await?;
        let links = ino.nlink.checked_add(delta).ok_or(Error::TooManyLinks)?;
        ino.nlink = links.max(0);
        self.put_inode(inum, &ino).await?;
        if ino.nlink == 0 && !self.open.contains_key(&inum) {
            self.orphans.push(inum);
        }
        Ok(ino.nlink)
    }

    // ---- blocks ----

    fn check_block(&self, block: u32) -> Result<u32> {
        if block >= self.sb.data_start() && block < self.sb.size {
            Ok(block)
        } else {
            Err(Error::Corrupt)
        }
    }

    /// Allocates a data block; `zero` gives it zeroed content in the
    /// cache (else the caller writes all of it with `write_fresh`).
    async fn balloc(&mut self, zero: bool) -> Result<u32> {
        let first = self.sb.data_start();
        let hint = self.next_block.clamp(first, self.sb.size - 1);
        let found = match self.scan_free(hint, self.sb.size).await? {
            Some(b) => Some(b),
            None => self.scan_free(first, hint).await?,
        };
        let block = found.ok_or(Error::NoSpace)?;
        let bpb = self.profile.bits_per_block() as u32;
        let bit = (block % bpb) as usize;
        let bitmap = self.sb.bmapstart + block / bpb;
        let mut byte = [0u8];
        self.cache
            .read(&mut self.disk, bitmap, bit / 8, &mut byte)
            .await?;
        byte[0] |= 1 << (bit % 8);
        self.cache
            .write(&mut self.disk, bitmap, bit / 8, &byte)
            .await?;
        if zero {
            self.cache.write_fresh(block, 0, &[])?;
        }
        self.next_block = block + 1;
        Ok(block)
    }

    /// The first block in `from..to` the bitmap marks free.
    async fn scan_free(&mut self, from: u32, to: u32) -> Result<Option<u32>> {
        let bsize = self.profile.block_size();
        let bpb = self.profile.bits_per_block() as u32;
        let mut bits = vec![0u8; bsize];
        let mut b = from;
        while b < to {
            let bitmap = b / bpb;
            self.cache
                .read(&mut self.disk, self.sb.bmapstart + bitmap, 0, &mut bits)
                .await?;
            let end = ((bitmap as u64 + 1) * bpb as u64).min(to as u64) as u32;
            while b < end {
                let bit = (b % bpb) as usize;
                if bit.is_multiple_of(8) && bits[bit / 8] == 0xff {
                    b += 8;
                    continue;
                }
                if bits[bit / 8] & (1 << (bit % 8)) == 0 {
                    return Ok(Some(b));
                }
                b += 1;
            }
            b = b.max(end);
        }
        Ok(None)
    }

    async fn bfree(&mut self, block: u32) -> Result<()> {
        self.check_block(block)?;
        let bpb = self.profile.bits_per_block() as u32;
        let bitmap = self.sb.bmapstart + block / bpb;
        let bit = (block % bpb) as usize;
        let mut byte = [0u8];
        self.cache
            .read(&mut self.disk, bitmap, bit / 8, &mut byte)
            .await?;
        if byte[0] & (1 << (bit % 8)) == 0 {
            return Err(Error::Corrupt);
        }
        byte[0] &= !(1 << (bit % 8));
        self.cache
            .write(&mut self.disk, bitmap, bit / 8, &byte)
            .await
    }

    /// Where the pointer to block `index` of the file is. With `alloc`,
    /// missing indirect blocks are allocated (changing `ino`, which the
    /// caller writes back); without, `None` if one is missing.
    async fn slot(&mut self, ino: &mut Dinode, index: u64, alloc: bool) -> Result<Option<Slot>> {
        let n = self.profile.nindirect() as u64;
        if index < NDIRECT as u64 {
            return Ok(Some(Slot::Inode(index as usize)));
        }
        let index = index - NDIRECT as u64;
        if index < n {
            let Some(ind) = self.pointer_in_inode(ino, NDIRECT, alloc).await? else {
                return Ok(None);
            };
            return Ok(Some(Slot::Block(ind, index as usize)));
        }
        let index = index - n;
        if !self.profile.double_indirect() || index >= n * n {
            return Err(Error::TooBig);
        }
        let Some(top) = self.pointer_in_inode(ino, NDIRECT + 1, alloc).await? else {
            return Ok(None);
        };
        let outer = (index / n) as usize;
        let mut mid = self.cache.read_word(&mut self.disk, top, outer).await?;
        if mid == 0 {
            if !alloc {
                return Ok(None);
            }
            mid = self.balloc(true).await?;
            self.cache
                .write_word(&mut self.disk, top, outer, mid)
                .await?;
        } else {
            self.check_block(mid)?;
        }
        Ok(Some(Slot::Block(mid, (index % n) as usize)))
    }

    async fn pointer_in_inode(
        &mut self,
        ino: &mut Dinode,
        at: usize,
        alloc: bool,
    ) -> Result<Option<u32>> {
        let block = ino.addrs[at];
        if block != 0 {
            return self.check_block(block).map(Some);
        }
        if !alloc {
            return Ok(None);
        }
        let block = self.balloc(true).await?;
        ino.addrs[at] = block;
        Ok(Some(block))
    }

    async fn get(&mut self, ino: &Dinode, slot: Slot) -> Result<u32> {
        let block = match slot {
            Slot::Inode(i) => ino.addrs[i],
            Slot::Block(b, i) => self.cache.read_word(&mut self.disk, b, i).await?,
        };
        if block != 0 {
            self.check_block(block)?;
        }
        Ok(block)
    }

    async fn set(&mut self, ino: &mut Dinode, slot: Slot, block: u32) -> Result<()> {
        match slot {
            Slot::Inode(i) => {
                ino.addrs[i] = block;
                Ok(())
            }
            Slot::Block(b, i) => self.cache.write_word(&mut self.disk, b, i, block).await,
        }
    }

    /// The device block holding block `index` of a file, which must
    /// exist (files have no holes).
    async fn bmap(&mut self, ino: &mut Dinode, index: u64) -> Result<u32> {
        if let Some(&block) = ino.addrs.get(..NDIRECT).and_then(|d| d.get(index as usize)) {
            // A direct block: no walk.
            return match block {
                0 => Err(Error::Corrupt),
                block => self.check_block(block),
            };
        }
        let slot = self.slot(ino, index, false).await?.ok_or(Error::Corrupt)?;
        match self.get(ino, slot).await? {
            0 => Err(Error::Corrupt),
            block => Ok(block),
        }
    }

    // ---- file contents ----

    /// Reads from `off`; returns the bytes read (0 at or past the end).
    /// The blocks the read needs, and up to `ahead` blocks after them,
    /// are fetched from the device in one request first.
    async fn readi_ahead(
        &mut self,
        ino: &mut Dinode,
        off: u64,
        buf: &mut [u8],
        ahead: u64,
    ) -> Result<usize> {
        let size = ino.size as u64;
        if off >= size {
            return Ok(0);
        }
        let bsize = self.profile.block_size() as u64;
        let n = (size - off).min(buf.len() as u64) as usize;
        let first = off / bsize;
        let last = ((off + n as u64).div_ceil(bsize) + ahead).min(size.div_ceil(bsize));
        if last > first + 1 {
            let mut blocks = Vec::with_capacity((last - first) as usize);
            for index in first..last.min(first + 64) {
                blocks.push(self.bmap(ino, index).await?);
            }
            self.cache.prefetch(&mut self.disk, &blocks).await?;
            // The blocks just mapped cover the read: copy from them (no
            // second walk of the block map).
            let needed = ((off + n as u64).div_ceil(bsize) - first) as usize;
            if let Some(blocks) = blocks.get(..needed) {
                let mut done = 0;
                for (i, &block) in blocks.iter().enumerate() {
                    let at = if i == 0 { (off % bsize) as usize } else { 0 };
                    let len = (bsize as usize - at).min(n - done);
                    self.cache
                        .read(&mut self.disk, block, at, &mut buf[done..done + len])
                        .await?;
                    done += len;
                }
                return Ok(n);
            }
        }
        self.readi(ino, off, buf).await
    }

    /// Reads from `off`; returns the bytes read (0 at or past the end).
    async fn readi(&mut self, ino: &mut Dinode, off: u64, buf: &mut [u8]) -> Result<usize> {
        let size = ino.size as u64;
        if off >= size {
            return Ok(0);
        }
        let bsize = self.profile.block_size() as u64;
        let n = (size - off).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let block = self.bmap(ino, pos / bsize).await?;
            let at = (pos % bsize) as usize;
            let len = (bsize as usize - at).min(n - done);
            self.cache
                .read(&mut self.disk, block, at, &mut buf[done..done + len])
                .await?;
            done += len;
        }
        Ok(n)
    }

    /// Writes `data` at `off` (at most the size: callers fill gaps), in
    /// the open unit; grows the size. The caller writes `ino` back.
    async fn writei(&mut self, ino: &mut Dinode, off: u64, data: &[u8]) -> Result<()> {
        let bsize = self.profile.block_size() as u64;
        if off > ino.size as u64 {
            return Err(Error::Invalid);
        }
        let end = off + data.len() as u64;
        if end > self.profile.max_file_size() {
            return Err(Error::TooBig);
        }
        let mut done = 0;
        while done < data.len() {
            let pos = off + done as u64;
            let index = pos / bsize;
            let at = (pos % bsize) as usize;
            let len = (bsize as usize - at).min(data.len() - done);
            let piece = &data[done..done + len];
            let slot = self.slot(ino, index, true).await?.ok_or(Error::Corrupt)?;
            match self.get(ino, slot).await? {
                0 => {
                    // A new last block: nothing of it exists yet.
                    if at != 0 && pos > ino.size as u64 {
                        return Err(Error::Corrupt);
                    }
                    let block = self.balloc(false).await?;
                    self.cache.write_fresh(block, at, piece)?;
                    self.set(ino, slot, block).await?;
                }
                block => self.cache.write(&mut self.disk, block, at, piece).await?,
            }
            done += len;
            if pos + len as u64 > ino.size as u64 {
                ino.size = (pos + len as u64) as u32;
            }
        }
        Ok(())
    }

    /// Data blocks one unit of a large write may hold: with each, its
    /// bitmap block may change, and at most six more blocks (two new
    /// indirect blocks and their bitmap blocks, the double-indirect
    /// block, the inode).
    fn write_piece_blocks(&self) -> usize {
        ((self.cache.log_capacity() - 6) / 2).clamp(1, 256)
    }

    /// Blocks a unit of a write of `len` bytes at `off` may change.
    fn write_room(&self, off: u64, len: usize) -> usize {
        let bsize = self.profile.block_size() as u64;
        let blocks = (off % bsize + len as u64).div_ceil(bsize) as usize;
        2 * blocks + 6
    }

    /// Blocks one unit of a shrink frees at most: with each, its bitmap
    /// block and the block holding its pointer may change.
    fn shrink_piece_blocks(&self) -> usize {
        ((self.cache.log_capacity() - 4) / 3).clamp(1, 256)
    }

    /// Shrinks (or grows, with zeros) file `inum` to `size`, a piece per
    /// unit, each leaving the file consistent.
    async fn shrink(&mut self, inum: u32, size: u64) -> Result<()> {
        let piece = self.shrink_piece_blocks() as u64;
        loop {
            let orphans = self.begin(3 * piece as usize + 4).await?;
            let r = self.shrink_piece(inum, size, piece).await;
            let done = match r {
                Ok(done) => done,
                Err(e) => {
                    self.cache.abort_unit();
                    self.orphans.truncate(orphans);
                    return Err(e);
                }
            };
            self.cache.end_unit();
            if done {
                return Ok(());
            }
        }
    }

    /// Frees up to `piece` blocks from the end of the file, down to
    /// `size`; returns whether the file has reached it.
    async fn shrink_piece(&mut self, inum: u32, size: u64, piece: u64) -> Result<bool> {
        let bsize = self.profile.block_size() as u64;
        let mut ino = self.inode(inum).await?;
        let have = (ino.size as u64).div_ceil(bsize);
        let keep = size.div_ceil(bsize);
        if size > ino.size as u64 {
            return Err(Error::Invalid);
        }
        let lo = keep.max(have.saturating_sub(piece));
        for index in (lo..have).rev() {
            let slot = self
                .slot(&mut ino, index, false)
                .await?
                .ok_or(Error::Corrupt)?;
            let block = self.get(&ino, slot).await?;
            if block == 0 {
                return Err(Error::Corrupt);
            }
            self.bfree(block).await?;
            self.set(&mut ino, slot, 0).await?;
        }
        self.prune(&mut ino, lo, have).await?;
        ino.size = if lo > keep {
            (lo * bsize) as u32
        } else {
            size as u32
        };
        self.put_inode(inum, &ino).await?;
        Ok(lo == keep)
    }

    /// Frees the indirect blocks that map only blocks at or past `lo`
    /// (blocks `lo..have` were just freed).
    async fn prune(&mut self, ino: &mut Dinode, lo: u64, have: u64) -> Result<()> {
        let n = self.profile.nindirect() as u64;
        let direct = NDIRECT as u64;
        if lo <= direct && ino.addrs[NDIRECT] != 0 {
            self.bfree(self.check_block(ino.addrs[NDIRECT])?).await?;
            ino.addrs[NDIRECT] = 0;
        }
        if !self.profile.double_indirect() || ino.addrs[NDIRECT + 1] == 0 {
            return Ok(());
        }
        let top = self.check_block(ino.addrs[NDIRECT + 1])?;
        let base = direct + n;
        if have <= base {
            return Ok(());
        }
        let first_outer = lo.saturating_sub(base).div_ceil(n);
        let last_outer = (have - base).div_ceil(n);
        for outer in first_outer..last_outer {
            let mid = self
                .cache
                .read_word(&mut self.disk, top, outer as usize)
                .await?;
            if mid != 0 {
                self.bfree(self.check_block(mid)?).await?;
                self.cache
                    .write_word(&mut self.disk, top, outer as usize, 0)
                    .await?;
            }
        }
        if lo <= base {
            self.bfree(top).await?;
            ino.addrs[NDIRECT + 1] = 0;
        }
        Ok(())
    }

    // ---- directories ----

    /// The entry `name` of directory `dir`: its inode and byte offset.
    async fn dir_lookup(&mut self, dir: u32, name: &[u8]) -> Result<Option<(u32, u64)>> {
        let (mut ino, kind) = self.live(dir).await?;
        if kind != Kind::Dir {
            return Err(Error::NotDir);
        }
        if !(ino.size as usize).is_multiple_of(DIRENT) {
            return Err(Error::Corrupt);
        }
        if name.contains(&0) {
            // No entry's name holds a NUL (it ends there).
            return Ok(None);
        }
        // Each block's entries are scanned where the cache holds them.
        let bsize = self.profile.block_size() as u64;
        let size = ino.size as u64;
        let mut off = 0u64;
        while off < size {
            let block = self.bmap(&mut ino, off / bsize).await?;
            let n = (size - off).min(bsize) as usize;
            let data = self.cache.block(&mut self.disk, block).await?;
            let entries = data.get(..n).ok_or(Error::Corrupt)?.chunks_exact(DIRENT);
            for (i, entry) in entries.enumerate() {
                if dirent_is(entry, name) {
                    let inum = decode_dirent(entry).0 as u32;
                    return Ok(Some((inum, off + (i * DIRENT) as u64)));
                }
            }
            off += n as u64;
        }
        Ok(None)
    }

    /// Adds the entry `name` -> `inum` to `dir`, in the first free slot
    /// after `.` and `..` or at the end.
    async fn dir_link(&mut self, dir: u32, name: &[u8], inum: u32) -> Result<()> {
        let mut ino = self.inode(dir).await?;
        let bsize = self.profile.block_size();
        let mut chunk = vec![0u8; bsize];
        let mut off = 0u64;
        let mut free = None;
        while off < ino.size as u64 && free.is_none() {
            let n = self.readi(&mut ino, off, &mut chunk).await?;
            for (i, entry) in chunk[..n].chunks_exact(DIRENT).enumerate() {
                let at = off + (i * DIRENT) as u64;
                if at >= 2 * DIRENT as u64 && decode_dirent(entry).0 == 0 {
                    free = Some(at);
                    break;
                }
            }
            off += n as u64;
        }
        let at = free.unwrap_or(ino.size as u64);
        let mut entry = [0u8; DIRENT];
        encode_dirent(&mut entry, inum as u16, name);
        self.writei(&mut ino, at, &entry).await?;
        self.put_inode(dir, &ino).await
    }

    async fn dir_set(&mut self, dir: u32, at: u64, inum: u32, name: &[u8]) -> Result<()> {
        let mut ino = self.inode(dir).await?;
        let mut entry = [0u8; DIRENT];
        if inum != 0 {
            encode_dirent(&mut entry, inum as u16, name);
        }
        self.writei(&mut ino, at, &entry).await?;
        self.put_inode(dir, &ino).await
    }

    /// Whether `dir` holds nothing but `.` and `..`.
    async fn dir_empty(&mut self, dir: u32) -> Result<bool> {
        let mut ino = self.inode(dir).await?;
        let bsize = self.profile.block_size();
        let mut chunk = vec![0u8; bsize];
        let mut off = 0u64;
        while off < ino.size as u64 {
            let n = self.readi(&mut ino, off, &mut chunk).await?;
            for (i, entry) in chunk[..n].chunks_exact(DIRENT).enumerate() {
                if off + (i * DIRENT) as u64 >= 2 * DIRENT as u64 && decode_dirent(entry).0 != 0 {
                    return Ok(false);
                }
            }
            off += n as u64;
        }
        Ok(true)
    }

    // ---- paths ----

    /// Resolves `path` from `cwd` to the directory holding its last
    /// component and that component (`None` for a path naming the root
    /// directory or a chain of `.`/`..` ending there).
    async fn walk_parent<'p>(
        &mut self,
        cwd: u32,
        path: &'p str,
    ) -> Result<(u32, Option<&'p [u8]>)> {
        let bytes = path.as_bytes();
        if bytes.is_empty() {
            return Err(Error::NotFound);
        }
        if bytes.len() > MAX_PATH {
            return Err(Error::NameTooLong);
        }
        let mut dir = if bytes[0] == b'/' { ROOT } else { cwd };
        // Components as byte ranges, found before any await (an iterator
        // with a closure held across awaits makes rustc unable to prove
        // the future `Send`).
        let mut parts = Vec::new();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'/' {
                if i > start {
                    parts.push((start, i));
                }
                start = i + 1;
            }
        }
        if bytes.len() > start {
            parts.push((start, bytes.len()));
        }
        for (k, &(from, to)) in parts.iter().enumerate() {
            let part = &bytes[from..to];
            valid_name(part)?;
            if k + 1 == parts.len() {
                // The last component: its directory must be one.
                let (_, kind) = self.live(dir).await?;
                if kind != Kind::Dir {
                    return Err(Error::NotDir);
                }
                return Ok((dir, Some(part)));
            }
            dir = match self.dir_lookup(dir, part).await? {
                Some((inum, _)) => inum,
                None => return Err(Error::NotFound),
            };
        }
        Ok((dir, None))
    }

    /// The inode `path` names.
    pub async fn lookup(&mut self, cwd: u32, path: &str) -> Result<u32> {
        if self.failed {
            return Err(Error::Io);
        }
        let (dir, last) = self.walk_parent(cwd, path).await?;
        let inum = match last {
            None => dir,
            Some(name) => self.dir_lookup(dir, name).await?.ok_or(Error::NotFound)?.0,
        };
        if path.ends_with('/') && self.live(inum).await?.1 != Kind::Dir {
            return Err(Error::NotDir);
        }
        Ok(inum)
    }

    /// The directory and name for a new entry at `path`, which must not
    /// exist yet, in a directory that may take new entries.
    async fn new_name<'p>(&mut self, cwd: u32, path: &'p str) -> Result<(u32, &'p [u8])> {
        let (dir, last) = self.walk_parent(cwd, path).await?;
        let name = last.ok_or(Error::Exists)?;
        if self.dir_lookup(dir, name).await?.is_some() {
            return Err(Error::Exists);
        }
        self.parent_for_new(dir).await?;
        Ok((dir, name))
    }

    /// A directory that new entries may go into (one that is removed but
    /// still someone's working directory may not take any).
    async fn parent_for_new(&mut self, dir: u32) -> Result<()> {
        let (ino, kind) = self.live(dir).await?;
        if kind != Kind::Dir {
            return Err(Error::NotDir);
        }
        if ino.nlink <= 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    // ---- operations ----

    /// Takes a reference on `inum` (an open descriptor, a working
    /// directory): it outlives its last link until [`Fs::release`].
    pub fn acquire(&mut self, inum: u32) {
        *self.open.entry(inum).or_insert(0) += 1;
    }

    /// Drops a reference; an inode with no link and no reference left is
    /// freed.
    pub async fn release(&mut self, inum: u32) -> Result<()> {
        let Some(count) = self.open.get_mut(&inum) else {
            return Err(Error::Invalid);
        };
        if *count > 1 {
            *count -= 1;
            return Ok(());
        }
        if self.failed {
            return Err(Error::Io);
        }
        // Read before the reference goes, so a failed read leaves it.
        let ino = self.inode(inum).await?;
        self.open.remove(&inum);
        if ino.kind != 0 && ino.nlink <= 0 {
            self.orphans.push(inum);
            self.reclaim().await?;
        }
        Ok(())
    }

    /// Opens (and with `create`, makes) the file `path`; takes a
    /// reference on it (see [`Fs::release`]).
    pub async fn open(&mut self, cwd: u32, path: &str, flags: OpenFlags) -> Result<u32> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.open_unit(cwd, path, flags).await;
        let (inum, truncate) = self.finish(orphans, r).await?;
        if truncate {
            self.acquire(inum);
            let r = self.shrink(inum, 0).await;
            if r.is_err() {
                let _ = self.release(inum).await;
                return r.map(|()| inum);
            }
            return Ok(inum);
        }
        self.acquire(inum);
        Ok(inum)
    }

    async fn open_unit(&mut self, cwd: u32, path: &str, flags: OpenFlags) -> Result<(u32, bool)> {
        let (dir, last) = self.walk_parent(cwd, path).await?;
        let existing = match last {
            None => Some(dir),
            Some(name) => self.dir_lookup(dir, name).await?.map(|(inum, _)| inum),
        };
        let inum = match (existing, last) {
            (Some(inum), _) => {
                if flags.create && flags.exclusive {
                    return Err(Error::Exists);
                }
                inum
            }
            (None, Some(name)) if flags.create => {
                if path.ends_with('/') {
                    return Err(Error::IsDir);
                }
                self.parent_for_new(dir).await?;
                let inum = self.ialloc(Kind::File).await?;
                self.adjust_links(inum, 1).await?;
                self.dir_link(dir, name, inum).await?;
                inum
            }
            _ => return Err(Error::NotFound),
        };
        let (ino, kind) = self.live(inum).await?;
        if kind == Kind::Dir && (flags.write || flags.truncate) {
            return Err(Error::IsDir);
        }
        if path.ends_with('/') && kind != Kind::Dir {
            return Err(Error::NotDir);
        }
        Ok((inum, flags.truncate && kind == Kind::File && ino.size > 0))
    }

    /// Reads from `off` of `inum` into `buf`; returns the bytes read.
    pub async fn read(&mut self, inum: u32, off: u64, buf: &mut [u8]) -> Result<usize> {
        if self.failed {
            return Err(Error::Io);
        }
        let (mut ino, kind) = self.live(inum).await?;
        if kind == Kind::Dir {
            return Err(Error::IsDir);
        }
        // A read that continues the last one of this file reads ahead.
        let sequential = self.last_read == Some((inum, off));
        let ahead = if sequential { READ_AHEAD } else { 0 };
        let n = self.readi_ahead(&mut ino, off, buf, ahead).await?;
        self.last_read = Some((inum, off + n as u64));
        Ok(n)
    }

    /// Writes `data` at `off` of file `inum` (zeros fill any gap past the
    /// end), in as many units as the log needs; returns the bytes
    /// written, fewer than asked if the device filled up after some.
    pub async fn write(&mut self, inum: u32, off: u64, data: &[u8]) -> Result<usize> {
        let (ino, kind) = self.live(inum).await?;
        if kind != Kind::File {
            return Err(if kind == Kind::Dir {
                Error::IsDir
            } else {
                Error::Invalid
            });
        }
        let end = off.checked_add(data.len() as u64).ok_or(Error::TooBig)?;
        if end > self.profile.max_file_size() {
            return Err(Error::TooBig);
        }
        let bsize = self.profile.block_size();
        let size = ino.size as u64;
        // Zeros fill [size, off) first, in the same units as the data
        // that follows them, so a write that fits one unit is atomic.
        let start = off.min(size);
        let mut piece = self.write_piece_blocks() * bsize;
        let mut pos = start;
        while pos < end {
            // Pieces end on block boundaries, so each touches at most
            // `write_piece_blocks` blocks.
            let len = ((piece - (pos as usize % bsize)) as u64).min(end - pos);
            let zeros = off.saturating_sub(pos).min(len) as usize;
            let from = (pos + zeros as u64).saturating_sub(off) as usize;
            let to = (pos + len).saturating_sub(off) as usize;
            match self.write_unit(inum, pos, zeros, &data[from..to]).await {
                Ok(()) => pos += len,
                // The device is nearly full: write what still fits, in
                // smaller pieces, down to one block.
                Err(Error::NoSpace) if piece > bsize => {
                    piece = (piece / 2).max(bsize) / bsize * bsize
                }
                Err(Error::NoSpace) if pos > off => break,
                Err(e) => return Err(e),
            }
        }
        Ok(pos.saturating_sub(off) as usize)
    }

    /// One unit of a write: `zeros` zero bytes at `off`, then `data`.
    async fn write_unit(&mut self, inum: u32, off: u64, zeros: usize, data: &[u8]) -> Result<()> {
        let orphans = self.begin(self.write_room(off, zeros + data.len())).await?;
        let r = self.write_piece(inum, off, zeros, data).await;
        self.finish(orphans, r).await
    }

    async fn write_piece(&mut self, inum: u32, off: u64, zeros: usize, data: &[u8]) -> Result<()> {
        let mut ino = self.inode(inum).await?;
        if zeros > 0 {
            self.writei(&mut ino, off, &vec![0u8; zeros]).await?;
        }
        self.writei(&mut ino, off + zeros as u64, data).await?;
        self.put_inode(inum, &ino).await
    }

    /// Sets the size of file `inum`: frees blocks past it, or adds zeros.
    pub async fn truncate(&mut self, inum: u32, size: u64) -> Result<()> {
        let (ino, kind) = self.live(inum).await?;
        if kind != Kind::File {
            return Err(if kind == Kind::Dir {
                Error::IsDir
            } else {
                Error::Invalid
            });
        }
        if size > self.profile.max_file_size() {
            return Err(Error::TooBig);
        }
        if size <= ino.size as u64 {
            return self.shrink(inum, size).await;
        }
        // Writing nothing at `size` fills the gap with zeros.
        self.write(inum, size, &[]).await.map(|_| ())
    }

    pub async fn stat(&mut self, inum: u32) -> Result<Stat> {
        if self.failed {
            return Err(Error::Io);
        }
        let (ino, kind) = self.live(inum).await?;
        Ok(Stat {
            inum,
            kind,
            nlink: ino.nlink.max(0) as u16,
            size: ino.size as u64,
            major: ino.major,
            minor: ino.minor,
        })
    }

    /// Makes the directory `path`.
    pub async fn mkdir(&mut self, cwd: u32, path: &str) -> Result<()> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.make(cwd, path, Kind::Dir, 0, 0).await;
        self.finish(orphans, r).await.map(|_| ())
    }

    /// Makes the device node `path`.
    pub async fn mknod(&mut self, cwd: u32, path: &str, major: i16, minor: i16) -> Result<()> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.make(cwd, path, Kind::Device, major, minor).await;
        self.finish(orphans, r).await.map(|_| ())
    }

    async fn make(
        &mut self,
        cwd: u32,
        path: &str,
        kind: Kind,
        major: i16,
        minor: i16,
    ) -> Result<u32> {
        if kind != Kind::Dir && path.ends_with('/') {
            return Err(Error::NotDir);
        }
        let (dir, name) = self.new_name(cwd, path).await?;
        let inum = self.ialloc(kind).await?;
        let mut ino = self.inode(inum).await?;
        ino.nlink = 1;
        ino.major = major;
        ino.minor = minor;
        if kind == Kind::Dir {
            let mut entries = [0u8; 2 * DIRENT];
            encode_dirent(&mut entries[..DIRENT], inum as u16, b".");
            encode_dirent(&mut entries[DIRENT..], dir as u16, b"..");
            self.writei(&mut ino, 0, &entries).await?;
            self.adjust_links(dir, 1).await?;
        }
        self.put_inode(inum, &ino).await?;
        self.dir_link(dir, name, inum).await?;
        Ok(inum)
    }

    /// Adds the name `new` for the file `old`.
    pub async fn link(&mut self, cwd: u32, old: &str, new: &str) -> Result<()> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.link_unit(cwd, old, new).await;
        self.finish(orphans, r).await
    }

    async fn link_unit(&mut self, cwd: u32, old: &str, new: &str) -> Result<()> {
        let inum = self.lookup(cwd, old).await?;
        if self.live(inum).await?.1 == Kind::Dir {
            return Err(Error::NotPermitted);
        }
        if new.ends_with('/') {
            return Err(Error::NotDir);
        }
        let (dir, name) = self.new_name(cwd, new).await?;
        self.adjust_links(inum, 1).await?;
        self.dir_link(dir, name, inum).await
    }

    /// Removes the name `path` of a file or device.
    pub async fn unlink(&mut self, cwd: u32, path: &str) -> Result<()> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.remove(cwd, path, false).await;
        self.finish(orphans, r).await
    }

    /// Removes the empty directory `path`.
    pub async fn rmdir(&mut self, cwd: u32, path: &str) -> Result<()> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.remove(cwd, path, true).await;
        self.finish(orphans, r).await
    }

    async fn remove(&mut self, cwd: u32, path: &str, dir_wanted: bool) -> Result<()> {
        let (dir, last) = self.walk_parent(cwd, path).await?;
        let Some(name) = last else {
            // The root directory.
            return Err(Error::NotPermitted);
        };
        if name == b"." {
            return Err(Error::Invalid);
        }
        if name == b".." {
            return Err(if dir_wanted {
                Error::NotEmpty
            } else {
                Error::IsDir
            });
        }
        let (inum, at) = self.dir_lookup(dir, name).await?.ok_or(Error::NotFound)?;
        let (_, kind) = self.live(inum).await?;
        match (dir_wanted, kind == Kind::Dir) {
            (true, false) => return Err(Error::NotDir),
            (false, true) => return Err(Error::IsDir),
            _ => {}
        }
        if !dir_wanted && path.ends_with('/') {
            return Err(Error::NotDir);
        }
        if kind == Kind::Dir {
            if !self.dir_empty(inum).await? {
                return Err(Error::NotEmpty);
            }
            // Its `..` no longer names the parent.
            self.adjust_links(dir, -1).await?;
        }
        self.dir_set(dir, at, 0, b"").await?;
        self.adjust_links(inum, -1).await?;
        Ok(())
    }

    /// Renames `from` to `to`, replacing a file there (or an empty
    /// directory, if `from` is a directory), atomically.
    pub async fn rename(&mut self, cwd: u32, from: &str, to: &str) -> Result<()> {
        let orphans = self.begin(OP_BLOCKS).await?;
        let r = self.rename_unit(cwd, from, to).await;
        self.finish(orphans, r).await
    }

    async fn rename_unit(&mut self, cwd: u32, from: &str, to: &str) -> Result<()> {
        let (fdir, fname) = self.walk_parent(cwd, from).await?;
        let (tdir, tname) = self.walk_parent(cwd, to).await?;
        let (Some(fname), Some(tname)) = (fname, tname) else {
            return Err(Error::Invalid);
        };
        if matches!(fname, b"." | b"..") || matches!(tname, b"." | b"..") {
            return Err(Error::Invalid);
        }
        let (src, src_at) = self.dir_lookup(fdir, fname).await?.ok_or(Error::NotFound)?;
        let src_kind = self.live(src).await?.1;
        if src_kind != Kind::Dir && (from.ends_with('/') || to.ends_with('/')) {
            return Err(Error::NotDir);
        }
        let dst = self.dir_lookup(tdir, tname).await?;
        if let Some((dinum, _)) = dst {
            if dinum == src {
                return Ok(());
            }
            let dst_kind = self.live(dinum).await?.1;
            match (src_kind == Kind::Dir, dst_kind == Kind::Dir) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if !self.dir_empty(dinum).await? => return Err(Error::NotEmpty),
                _ => {}
            }
        } else {
            self.parent_for_new(tdir).await?;
        }
        if src_kind == Kind::Dir && tdir != fdir {
            // Not into itself or below it.
            let mut d = tdir;
            let mut steps = 0;
            loop {
                if d == src {
                    return Err(Error::Invalid);
                }
                if d == ROOT {
                    break;
                }
                // A `..` chain longer than there are inodes is a loop.
                steps += 1;
                if steps > self.sb.ninodes {
                    return Err(Error::Corrupt);
                }
                d = self.dir_lookup(d, b"..").await?.ok_or(Error::Corrupt)?.0;
            }
        }
        match dst {
            Some((dinum, at)) => {
                self.dir_set(tdir, at, src, tname).await?;
                if self.live(dinum).await?.1 == Kind::Dir {
                    // The replaced directory's `..` named tdir.
                    self.adjust_links(tdir, -1).await?;
                }
                self.adjust_links(dinum, -1).await?;
            }
            None => self.dir_link(tdir, tname, src).await?,
        }
        self.dir_set(fdir, src_at, 0, b"").await?;
        if src_kind == Kind::Dir && tdir != fdir {
            let (_, dotdot) = self.dir_lookup(src, b"..").await?.ok_or(Error::Corrupt)?;
            self.dir_set(src, dotdot, tdir, b"..").await?;
            self.adjust_links(fdir, -1).await?;
            self.adjust_links(tdir, 1).await?;
        }
        Ok(())
    }

    /// The first entry of directory `dir` at or after slot `slot`, and
    /// the slot after it.
    pub async fn read_dir(&mut self, dir: u32, slot: usize) -> Result<Option<(usize, DirEntry)>> {
        if self.failed {
            return Err(Error::Io);
        }
        let (mut ino, kind) = self.live(dir).await?;
        if kind != Kind::Dir {
            return Err(Error::NotDir);
        }
        let mut entry = [0u8; DIRENT];
        let mut slot = slot;
        loop {
            let off = (slot as u64).saturating_mul(DIRENT as u64);
            if off >= ino.size as u64 {
                return Ok(None);
            }
            if self.readi(&mut ino, off, &mut entry).await? < DIRENT {
                return Err(Error::Corrupt);
            }
            slot += 1;
            let (inum, name) = decode_dirent(&entry);
            if inum != 0 {
                let name = String::from_utf8_lossy(name).into_owned();
                return Ok(Some((
                    slot,
                    DirEntry {
                        name,
                        inum: inum as u32,
                    },
                )));
            }
        }
    }

    /// Every entry of directory `dir`, `.` and `..` included.
    pub async fn list(&mut self, dir: u32) -> Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        let mut slot = 0;
        while let Some((next, entry)) = self.read_dir(dir, slot).await? {
            entries.push(entry);
            slot = next;
        }
        Ok(entries)
    }

    /// Whether a device error has stopped the file system.
    pub fn has_failed(&self) -> bool {
        self.failed
    }
}
