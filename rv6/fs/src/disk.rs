//! The block device the file system runs on.

use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;

use crate::{Error, Result};

/// A block device in units of the file system's block size. The
/// file-system domain implements it over `BDev`, the host tools over an
/// image file, the tests over memory (and over devices that fail or cut
/// power on purpose).
///
/// Ordering contract: a write that completed may still be lost by a crash
/// until a later [`Disk::flush`] completes; after that it is durable.
/// The log relies on nothing else.
///
/// The futures are `Send` (so a file system on any device can run in a
/// task an executor may move between polls); implementations write
/// `async fn`.
pub trait Disk: Send {
    /// Blocks the device holds.
    fn blocks(&self) -> u64;
    /// Reads block `block` into `buf` (one block long).
    fn read(&mut self, block: u32, buf: &mut [u8]) -> impl Future<Output = Result<()>> + Send;
    /// Writes each `(block, data)`; `data` is one block long. The writes
    /// may complete in any order.
    fn write(&mut self, writes: &[(u32, &[u8])]) -> impl Future<Output = Result<()>> + Send;
    /// Makes every completed write durable.
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;
    /// Reads each block of `blocks` into the matching block-sized piece
    /// of `bufs` (a device batches them; by default one at a time).
    fn read_many(
        &mut self,
        blocks: &[u32],
        bufs: &mut [u8],
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            let size = bufs.len() / blocks.len().max(1);
            for (block, buf) in blocks.iter().zip(bufs.chunks_mut(size.max(1))) {
                self.read(*block, buf).await?;
            }
            Ok(())
        }
    }
}

/// A device in memory: what the tests and the host tools use.
#[derive(Clone)]
pub struct MemDisk {
    block_size: usize,
    bytes: Vec<u8>,
}

impl MemDisk {
    /// A zeroed device of `blocks` blocks of `block_size` bytes.
    pub fn new(block_size: usize, blocks: usize) -> MemDisk {
        MemDisk {
            block_size,
            bytes: vec![0; block_size * blocks],
        }
    }

    /// A device holding `bytes` (an image; a partial last block is
    /// ignored).
    pub fn from_bytes(block_size: usize, mut bytes: Vec<u8>) -> MemDisk {
        let whole = bytes.len() / block_size * block_size;
        bytes.truncate(whole);
        MemDisk { block_size, bytes }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    fn range(&self, block: u32, len: usize) -> Result<core::ops::Range<usize>> {
        let start = block as usize * self.block_size;
        if len != self.block_size || start + len > self.bytes.len() {
            return Err(Error::Io);
        }
        Ok(start..start + len)
    }
}

impl Disk for MemDisk {
    fn blocks(&self) -> u64 {
        (self.bytes.len() / self.block_size) as u64
    }

    async fn read(&mut self, block: u32, buf: &mut [u8]) -> Result<()> {
        let range = self.range(block, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    async fn write(&mut self, writes: &[(u32, &[u8])]) -> Result<()> {
        for (block, data) in writes {
            let range = self.range(*block, data.len())?;
            self.bytes[range].copy_from_slice(data);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
