//! The buffer cache, the running transaction and the write-ahead log.
//!
//! Every change goes to a cached block and adds the block to the running
//! transaction, which pins it in the cache until [`Cache::commit`]
//! installs it. Changes are grouped in *units*: [`Cache::begin_unit`]
//! starts recording each block's content before its first change, and
//! [`Cache::abort_unit`] puts those back, so an operation that fails
//! part-way leaves nothing behind. A unit never spans a commit.
//!
//! Commit, native profile (two flushes; the header carries a checksum
//! of itself and of every logged block, so a commit whose writes reached
//! the device only in part is recognised and ignored):
//! 1. if the previous commit's home writes are not known durable, flush
//!    (the log is about to be overwritten);
//! 2. write each transaction block to its log slot and the header (count,
//!    sequence number, home block numbers, checksums); flush: the commit
//!    point;
//! 3. write each block home (made durable by the next commit's step 1,
//!    or by [`Cache::quiesce`]).
//!
//! Commit, xv6 profile (xv6's format: the header is a count and the home
//! block numbers, nothing to check, so every step is ordered by a flush):
//! 1. write each block to its log slot; flush;
//! 2. write the header; flush: the commit point;
//! 3. write each block home; flush;
//! 4. write an empty header; flush.
//!
//! [`replay`] at mount installs a committed header's blocks again and
//! empties the header; [`Cache::quiesce`] (a clean unmount) empties it too,
//! so an image at rest has an empty log.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, btree_map};
use alloc::vec;
use alloc::vec::Vec;

use crate::disk::Disk;
use crate::layout::{Profile, Superblock, set_word, word};
use crate::{Error, Result};

struct Entry {
    data: Box<[u8]>,
    /// When it was last used (the cache's clock).
    stamp: u64,
    /// Its record in `Cache::lru` (`None` while in the transaction). It
    /// may be older than `stamp`: a hit only moves the stamp, and
    /// eviction re-files a record it finds out of date.
    queued: Option<u64>,
    /// In the running transaction (so pinned).
    in_txn: bool,
    /// Changed in the open unit already (its earlier content recorded).
    in_unit: bool,
}

/// A block's state before the open unit first changed it.
struct Undo {
    block: u32,
    /// Its content, or `None` for a block the unit took fresh (just
    /// allocated): dropped from the cache on abort.
    before: Option<Box<[u8]>>,
    was_in_txn: bool,
}

/// Counters, for tests and `stat`-like reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub commits: u64,
    pub logged_blocks: u64,
}

pub(crate) struct Cache {
    bsize: usize,
    capacity: usize,
    entries: BTreeMap<u32, Entry>,
    /// One record per block that may be evicted (those of the
    /// transaction have none), oldest first: a stamp at or before the
    /// block's last use -> the block. A hit costs one lookup in
    /// `entries` and none here; eviction takes the oldest record and, if
    /// its block was used since, files it again under its last use, so
    /// the block evicted is exactly the least recently used.
    lru: BTreeMap<u64, u32>,
    clock: u64,
    txn: BTreeSet<u32>,
    unit: Option<Vec<Undo>>,
    logstart: u32,
    log_capacity: usize,
    profile: Profile,
    /// Home writes of the last commit issued but not flushed yet.
    unflushed_install: bool,
    /// Sequence number of the last commit.
    sequence: u64,
    pub(crate) stats: CacheStats,
}

impl Cache {
    pub(crate) fn new(sb: &Superblock, capacity: usize) -> Cache {
        Cache {
            bsize: sb.profile.block_size(),
            capacity: capacity.max(16),
            entries: BTreeMap::new(),
            lru: BTreeMap::new(),
            clock: 0,
            txn: BTreeSet::new(),
            unit: None,
            logstart: sb.logstart,
            log_capacity: sb.log_capacity(),
            profile: sb.profile,
            unflushed_install: false,
            sequence: 0,
            stats: CacheStats::default(),
        }
    }

    /// Blocks in the running transaction.
    pub(crate) fn txn_len(&self) -> usize {
        self.txn.len()
    }

    pub(crate) fn log_capacity(&self) -> usize {
        self.log_capacity
    }

    /// Marks `block` used now; whether it is cached.
    fn touch(&mut self, block: u32) -> bool {
        match self.entries.get_mut(&block) {
            Some(entry) => {
                self.clock += 1;
                entry.stamp = self.clock;
                true
            }
            None => false,
        }
    }

    /// Puts a block that left the transaction back among those that may
    /// be evicted.
    fn unpin(&mut self, block: u32) {
        self.clock += 1;
        let clock = self.clock;
        if let Some(entry) = self.entries.get_mut(&block) {
            entry.in_txn = false;
            entry.stamp = clock;
            if let Some(old) = entry.queued.replace(clock) {
                self.lru.remove(&old);
            }
            self.lru.insert(clock, block);
        }
    }

    /// Makes room for one more entry by dropping the least recently used
    /// block that is not in the transaction (if every one is, the cache
    /// grows past its capacity: the transaction is bounded by the log).
    fn evict(&mut self) {
        if self.entries.len() < self.capacity {
            return;
        }
        while let Some((queued, block)) = self.lru.pop_first() {
            let Some(entry) = self.entries.get_mut(&block) else {
                continue;
            };
            if entry.queued != Some(queued) {
                // Not this block's record (cannot happen): drop it.
                continue;
            }
            if entry.stamp == queued {
                self.entries.remove(&block);
                return;
            }
            // Used since it was filed: file it under its last use.
            entry.queued = Some(entry.stamp);
            self.lru.insert(entry.stamp, block);
        }
    }

    fn insert(&mut self, block: u32, data: Box<[u8]>) {
        self.evict();
        self.clock += 1;
        self.lru.insert(self.clock, block);
        self.entries.insert(
            block,
            Entry {
                data,
                stamp: self.clock,
                queued: Some(self.clock),
                in_txn: false,
                in_unit: false,
            },
        );
    }

    async fn load<D: Disk>(&mut self, disk: &mut D, block: u32) -> Result<()> {
        if self.touch(block) {
            self.stats.hits += 1;
            return Ok(());
        }
        self.stats.misses += 1;
        let mut data = vec![0u8; self.bsize].into_boxed_slice();
        disk.read(block, &mut data).await?;
        self.insert(block, data);
        Ok(())
    }

    /// Brings the blocks of `blocks` not cached yet in with one device
    /// request (read-ahead); as many as fit without evicting blocks of
    /// the transaction.
    pub(crate) async fn prefetch<D: Disk>(&mut self, disk: &mut D, blocks: &[u32]) -> Result<()> {
        let mut missing: Vec<u32> = Vec::new();
        for &b in blocks {
            if !self.entries.contains_key(&b) && !missing.contains(&b) {
                missing.push(b);
            }
        }
        missing.truncate(self.capacity / 4);
        if missing.is_empty() {
            return Ok(());
        }
        let mut data = vec![0u8; self.bsize * missing.len()];
        disk.read_many(&missing, &mut data).await?;
        for (b, bytes) in missing.iter().zip(data.chunks_exact(self.bsize)) {
            self.stats.misses += 1;
            self.insert(*b, bytes.to_vec().into_boxed_slice());
        }
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` of `block` into `out`.
    pub(crate) async fn read<D: Disk>(
        &mut self,
        disk: &mut D,
        block: u32,
        offset: usize,
        out: &mut [u8],
    ) -> Result<()> {
        let data = self.block(disk, block).await?;
        let src = data.get(offset..offset + out.len()).ok_or(Error::Corrupt)?;
        out.copy_from_slice(src);
        Ok(())
    }

    /// `block`'s content where the cache holds it (read in place: no
    /// copy). A cached block costs one lookup. A block brought in here
    /// is inserted before the least recently used one is evicted (the
    /// content returned borrows the map), so the cache may hold one
    /// block over its capacity until the next call.
    pub(crate) async fn block<D: Disk>(&mut self, disk: &mut D, block: u32) -> Result<&[u8]> {
        while self.entries.len() > self.capacity {
            let before = self.entries.len();
            self.evict();
            if self.entries.len() == before {
                break;
            }
        }
        self.clock += 1;
        let clock = self.clock;
        let entry = match self.entries.entry(block) {
            btree_map::Entry::Occupied(o) => {
                self.stats.hits += 1;
                let entry = o.into_mut();
                entry.stamp = clock;
                entry
            }
            btree_map::Entry::Vacant(v) => {
                self.stats.misses += 1;
                let mut data = vec![0u8; self.bsize].into_boxed_slice();
                disk.read(block, &mut data).await?;
                self.lru.insert(clock, block);
                v.insert(Entry {
                    data,
                    stamp: clock,
                    queued: Some(clock),
                    in_txn: false,
                    in_unit: false,
                })
            }
        };
        Ok(&entry.data)
    }

    /// Word `index` of `block`.
    pub(crate) async fn read_word<D: Disk>(
        &mut self,
        disk: &mut D,
        block: u32,
        index: usize,
    ) -> Result<u32> {
        let data = self.block(disk, block).await?;
        if (index + 1) * 4 > data.len() {
            return Err(Error::Corrupt);
        }
        Ok(word(data, index))
    }

    /// Records what the open unit needs to undo a change to `block`, and
    /// adds the block to the transaction. `fresh`: the block was just
    /// allocated, its old content is of no interest.
    fn will_change(&mut self, block: u32, fresh: bool) -> Result<()> {
        let entry = self.entries.get_mut(&block).ok_or(Error::Io)?;
        if !entry.in_txn && self.txn.len() >= self.log_capacity {
            // The operation's reservation was too small: refuse rather
            // than overflow the log (the unit is aborted).
            return Err(Error::NoSpace);
        }
        let unit = self.unit.as_mut().ok_or(Error::Invalid)?;
        if !entry.in_unit {
            entry.in_unit = true;
            let before = if fresh && !entry.in_txn {
                None
            } else {
                Some(entry.data.clone())
            };
            unit.push(Undo {
                block,
                before,
                was_in_txn: entry.in_txn,
            });
        }
        if !entry.in_txn {
            entry.in_txn = true;
            self.txn.insert(block);
            if let Some(queued) = entry.queued.take() {
                self.lru.remove(&queued);
            }
        }
        Ok(())
    }

    /// Writes `data` at `offset` of `block`.
    pub(crate) async fn write<D: Disk>(
        &mut self,
        disk: &mut D,
        block: u32,
        offset: usize,
        data: &[u8],
    ) -> Result<()> {
        self.load(disk, block).await?;
        if offset + data.len() > self.bsize {
            return Err(Error::Corrupt);
        }
        self.will_change(block, false)?;
        let entry = self.entries.get_mut(&block).ok_or(Error::Io)?;
        entry.data[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Sets word `index` of `block`.
    pub(crate) async fn write_word<D: Disk>(
        &mut self,
        disk: &mut D,
        block: u32,
        index: usize,
        value: u32,
    ) -> Result<()> {
        self.write(disk, block, index * 4, &value.to_le_bytes())
            .await
    }

    /// Gives a just-allocated block the content `data` placed at
    /// `offset`, zeros elsewhere, without reading it from the device.
    pub(crate) fn write_fresh(&mut self, block: u32, offset: usize, data: &[u8]) -> Result<()> {
        if offset + data.len() > self.bsize {
            return Err(Error::Corrupt);
        }
        if !self.touch(block) {
            self.insert(block, vec![0u8; self.bsize].into_boxed_slice());
        }
        self.will_change(block, true)?;
        let entry = self.entries.get_mut(&block).ok_or(Error::Io)?;
        entry.data.fill(0);
        entry.data[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    pub(crate) fn begin_unit(&mut self) {
        debug_assert!(self.unit.is_none(), "units do not nest");
        self.unit = Some(Vec::new());
    }

    /// Keeps the open unit's changes.
    pub(crate) fn end_unit(&mut self) {
        for undo in self.unit.take().unwrap_or_default() {
            if let Some(entry) = self.entries.get_mut(&undo.block) {
                entry.in_unit = false;
            }
        }
    }

    /// Puts back every block the open unit changed.
    pub(crate) fn abort_unit(&mut self) {
        let undos = self.unit.take().unwrap_or_default();
        for undo in undos.into_iter().rev() {
            match undo.before {
                Some(before) => {
                    if let Some(entry) = self.entries.get_mut(&undo.block) {
                        entry.data = before;
                        entry.in_unit = false;
                        if !undo.was_in_txn {
                            self.txn.remove(&undo.block);
                            self.unpin(undo.block);
                        }
                    }
                }
                None => {
                    if let Some(entry) = self.entries.remove(&undo.block)
                        && let Some(queued) = entry.queued
                    {
                        self.lru.remove(&queued);
                    }
                    self.txn.remove(&undo.block);
                }
            }
        }
    }

    /// Makes the transaction durable and installs it (see the module
    /// documentation). On an error the device's state is in doubt: the
    /// caller stops using this cache (a remount replays or discards the
    /// log).
    pub(crate) async fn commit<D: Disk>(&mut self, disk: &mut D) -> Result<()> {
        debug_assert!(self.unit.is_none(), "commit inside a unit");
        if self.txn.is_empty() {
            return Ok(());
        }
        let blocks: Vec<u32> = self.txn.iter().copied().collect();
        let mut header = vec![0u8; self.bsize];
        match self.profile {
            Profile::Native => {
                if self.unflushed_install {
                    disk.flush().await?;
                    self.unflushed_install = false;
                }
                self.sequence += 1;
                let mut datas = Vec::with_capacity(blocks.len());
                for block in &blocks {
                    datas.push(&self.entries.get(block).ok_or(Error::Io)?.data[..]);
                }
                encode_header(&mut header, self.sequence, &blocks, &datas);
                let mut writes = Vec::with_capacity(blocks.len() + 1);
                for (i, data) in datas.iter().enumerate() {
                    writes.push((self.logstart + 1 + i as u32, *data));
                }
                writes.push((self.logstart, &header[..]));
                disk.write(&writes).await?;
                disk.flush().await?;
                let installs: Vec<(u32, &[u8])> =
                    blocks.iter().copied().zip(datas.iter().copied()).collect();
                disk.write(&installs).await?;
                self.unflushed_install = true;
            }
            Profile::Xv6 => {
                {
                    let mut writes = Vec::with_capacity(blocks.len());
                    for (i, block) in blocks.iter().enumerate() {
                        let entry = self.entries.get(block).ok_or(Error::Io)?;
                        writes.push((self.logstart + 1 + i as u32, &entry.data[..]));
                    }
                    disk.write(&writes).await?;
                }
                disk.flush().await?;
                set_word(&mut header, 0, blocks.len() as u32);
                for (i, block) in blocks.iter().enumerate() {
                    set_word(&mut header, 1 + i, *block);
                }
                disk.write(&[(self.logstart, &header)]).await?;
                disk.flush().await?;
                {
                    let mut writes = Vec::with_capacity(blocks.len());
                    for block in &blocks {
                        let entry = self.entries.get(block).ok_or(Error::Io)?;
                        writes.push((*block, &entry.data[..]));
                    }
                    disk.write(&writes).await?;
                }
                disk.flush().await?;
                header.fill(0);
                disk.write(&[(self.logstart, &header)]).await?;
                disk.flush().await?;
            }
        }
        for block in &blocks {
            self.unpin(*block);
        }
        self.txn.clear();
        self.stats.commits += 1;
        self.stats.logged_blocks += blocks.len() as u64;
        // Entries pinned past the capacity may go now.
        while self.entries.len() > self.capacity {
            let before = self.entries.len();
            self.evict();
            if self.entries.len() == before {
                break;
            }
        }
        Ok(())
    }

    /// Makes the last commit's home writes durable and empties the log
    /// header (a clean unmount: the image at rest has an empty log).
    pub(crate) async fn quiesce<D: Disk>(&mut self, disk: &mut D) -> Result<()> {
        if self.profile == Profile::Native && self.unflushed_install {
            disk.flush().await?;
            let header = vec![0u8; self.bsize];
            disk.write(&[(self.logstart, &header)]).await?;
            disk.flush().await?;
            self.unflushed_install = false;
        }
        Ok(())
    }
}

/// A 64-bit FNV-1a hash: the log's checksum (it detects blocks that a
/// crash left half written or stale, not tampering).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Header of the native log: word 0 the count n, words 1-2 the
/// sequence number, words 3-4 the checksum of the rest of the header
/// (computed with these words zero), then per block its home number and
/// its data's checksum (three words).
const HEADER_WORDS: usize = 5;
const ENTRY_WORDS: usize = 3;

fn encode_header(header: &mut [u8], sequence: u64, homes: &[u32], datas: &[&[u8]]) {
    header.fill(0);
    set_word(header, 0, homes.len() as u32);
    set_word(header, 1, sequence as u32);
    set_word(header, 2, (sequence >> 32) as u32);
    for (i, (home, data)) in homes.iter().zip(datas).enumerate() {
        let at = HEADER_WORDS + i * ENTRY_WORDS;
        let sum = checksum(data);
        set_word(header, at, *home);
        set_word(header, at + 1, sum as u32);
        set_word(header, at + 2, (sum >> 32) as u32);
    }
    let sum = checksum(header);
    set_word(header, 3, sum as u32);
    set_word(header, 4, (sum >> 32) as u32);
}

/// The committed transaction the log holds, if any: each home block
/// number with its logged content. `None` for an empty log, or a native
/// header whose checksums do not match (a commit that did not complete).
/// Home block numbers outside the inode, bitmap and data regions make the
/// image [`Error::Corrupt`].
pub(crate) async fn read_log<D: Disk>(
    disk: &mut D,
    sb: &Superblock,
) -> Result<Option<Vec<(u32, Vec<u8>)>>> {
    let bsize = sb.profile.block_size();
    let mut header = vec![0u8; bsize];
    disk.read(sb.logstart, &mut header).await?;
    let n = word(&header, 0) as usize;
    if n == 0 {
        return Ok(None);
    }
    if n > sb.log_capacity() || n > sb.profile.log_header_room() {
        return Err(Error::Corrupt);
    }
    if sb.profile == Profile::Native {
        let stored = word(&header, 3) as u64 | (word(&header, 4) as u64) << 32;
        let mut zeroed = header.clone();
        set_word(&mut zeroed, 3, 0);
        set_word(&mut zeroed, 4, 0);
        if checksum(&zeroed) != stored {
            return Ok(None);
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let home = match sb.profile {
            Profile::Native => word(&header, HEADER_WORDS + i * ENTRY_WORDS),
            Profile::Xv6 => word(&header, 1 + i),
        };
        if home < sb.inodestart || home >= sb.size {
            return Err(Error::Corrupt);
        }
        let mut data = vec![0u8; bsize];
        disk.read(sb.logstart + 1 + i as u32, &mut data).await?;
        if sb.profile == Profile::Native {
            let at = HEADER_WORDS + i * ENTRY_WORDS;
            let want = word(&header, at + 1) as u64 | (word(&header, at + 2) as u64) << 32;
            if checksum(&data) != want {
                return Ok(None);
            }
        }
        out.push((home, data));
    }
    Ok(Some(out))
}

/// Installs a committed log left by a crash and empties the log; returns
/// how many blocks it installed.
pub(crate) async fn replay<D: Disk>(disk: &mut D, sb: &Superblock) -> Result<usize> {
    let bsize = sb.profile.block_size();
    let mut header = vec![0u8; bsize];
    disk.read(sb.logstart, &mut header).await?;
    if word(&header, 0) == 0 {
        return Ok(0);
    }
    let log = read_log(disk, sb).await?;
    let n = log.as_ref().map_or(0, Vec::len);
    if let Some(log) = log {
        let writes: Vec<(u32, &[u8])> = log.iter().map(|(home, data)| (*home, &data[..])).collect();
        disk.write(&writes).await?;
        disk.flush().await?;
    }
    header.fill(0);
    disk.write(&[(sb.logstart, &header)]).await?;
    disk.flush().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on;
    use crate::disk::MemDisk;

    fn cache(capacity: usize) -> Cache {
        let sb = Superblock {
            profile: Profile::Native,
            size: 64,
            nblocks: 40,
            ninodes: 16,
            nlog: 8,
            logstart: 2,
            inodestart: 11,
            bmapstart: 12,
        };
        Cache::new(&sb, capacity)
    }

    /// Which of `blocks` the cache holds.
    fn cached(c: &Cache, blocks: core::ops::Range<u32>) -> Vec<u32> {
        blocks.filter(|b| c.entries.contains_key(b)).collect()
    }

    #[test]
    fn eviction_takes_the_least_recently_used_block() {
        let mut disk = MemDisk::new(Profile::Native.block_size(), 64);
        let mut c = cache(16);
        let mut one = [0u8; 4];
        for b in 0..16 {
            block_on(c.read(&mut disk, b, 0, &mut one)).unwrap();
        }
        // Use 0, 5 and 3 again (hits move only their stamps), then bring
        // in three new blocks: the cache holds one over its capacity
        // until the next miss, so two go, 1 and 2, the oldest untouched.
        for b in [0, 5, 3] {
            block_on(c.read(&mut disk, b, 0, &mut one)).unwrap();
        }
        assert_eq!(c.stats.hits, 3);
        for b in 16..19 {
            block_on(c.read(&mut disk, b, 0, &mut one)).unwrap();
        }
        assert_eq!(c.entries.len(), 17);
        let mut expected: Vec<u32> = (0..19).filter(|b| ![1, 2].contains(b)).collect();
        assert_eq!(cached(&c, 0..19), expected);
        // Six more: 4 and 6 to 10 go; 0, 3 and 5, used after them, stay.
        for b in 19..25 {
            block_on(c.read(&mut disk, b, 0, &mut one)).unwrap();
        }
        expected = [0, 3, 5].into_iter().chain(11..25).collect();
        assert_eq!(cached(&c, 0..25), expected);
        // One record per evictable block, none left behind.
        assert_eq!(c.lru.len(), c.entries.len());
    }

    #[test]
    fn blocks_of_the_transaction_are_never_evicted() {
        let mut disk = MemDisk::new(Profile::Native.block_size(), 64);
        let mut c = cache(16);
        c.begin_unit();
        block_on(c.write(&mut disk, 0, 0, &[1, 2, 3])).unwrap();
        c.end_unit();
        let mut one = [0u8; 4];
        for b in 1..40 {
            block_on(c.read(&mut disk, b, 0, &mut one)).unwrap();
        }
        assert!(c.entries.contains_key(&0));
        block_on(c.read(&mut disk, 0, 0, &mut one)).unwrap();
        assert_eq!(one, [1, 2, 3, 0]);
        // Committed, it may go like any other (filed as used at the
        // commit): seventeen newer blocks push it out.
        block_on(c.commit(&mut disk)).unwrap();
        assert_eq!(c.lru.len(), c.entries.len());
        for b in 40..56 {
            block_on(c.read(&mut disk, b, 0, &mut one)).unwrap();
        }
        assert!(c.entries.contains_key(&0));
        block_on(c.read(&mut disk, 56, 0, &mut one)).unwrap();
        assert!(!c.entries.contains_key(&0));
    }
}
