//! The file system's block device over `BDev`: one 4 KiB file-system
//! block per device block, reads one at a time, writes in batches of up
//! to [`BATCH`] (one call each), the request buffers kept and reused.

use alloc::string::String;
use alloc::vec::Vec;

use domain_sdk::{RRef, RRefDeque, lookup};
use interfaces::bdev::{BATCH, BDev, BDevProxy, BLOCK, Io, status};
use rv6_fs::{Disk, Error};

pub struct BDevDisk {
    dev: BDevProxy,
    blocks: u64,
    /// Request buffers not in use.
    spare: Vec<RRef<Io>>,
}

/// The device to mount: `rv6_disk=NAME` if given, else the first of
/// the NVMe shadow, the NVMe driver and the RAM disk found.
pub async fn find() -> Result<(String, BDevDisk), String> {
    let names: Vec<String> = match domain_sdk::boot_option("rv6_disk") {
        Some(name) => alloc::vec![name],
        None => ["nvme-shadow/bdev", "nvme/bdev", "ramdisk/bdev"]
            .iter()
            .map(|s| String::from(*s))
            .collect(),
    };
    for name in names.iter().cloned() {
        let Ok(dev) = lookup::<dyn BDev + Send + Sync>(&name) else {
            continue;
        };
        let geometry = dev
            .geometry()
            .await
            .map_err(|e| alloc::format!("{name}: geometry: {e:?}"))?;
        return Ok((
            name,
            BDevDisk {
                dev,
                blocks: geometry.blocks,
                spare: Vec::new(),
            },
        ));
    }
    Err(alloc::format!(
        "no block device: none of {names:?} is exported"
    ))
}

impl BDevDisk {
    fn io(&mut self, block: u32) -> Result<RRef<Io>, Error> {
        let mut io = match self.spare.pop() {
            Some(io) => io,
            None => RRef::try_new(Io::new(0)).map_err(|_| Error::Io)?,
        };
        io.block = block as u64;
        io.status = status::PENDING;
        Ok(io)
    }

    fn keep(&mut self, mut batch: RRef<RRefDeque<Io, BATCH>>) {
        while let Some(io) = batch.pop_front() {
            if self.spare.len() < BATCH {
                self.spare.push(io);
            }
        }
    }
}

impl Disk for BDevDisk {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    async fn read(&mut self, block: u32, buf: &mut [u8]) -> Result<(), Error> {
        if buf.len() != BLOCK {
            return Err(Error::Io);
        }
        let io = self.io(block)?;
        let mut batch = RRef::try_new(RRefDeque::new()).map_err(|_| Error::Io)?;
        batch.push_back(io).map_err(|_| Error::Io)?;
        let batch = self.dev.read(batch).await.map_err(|_| Error::Io)?;
        let ok = match batch.iter().next() {
            Some(io) if io.status == status::OK && io.block == block as u64 => {
                buf.copy_from_slice(&io.data);
                true
            }
            _ => false,
        };
        self.keep(batch);
        if ok { Ok(()) } else { Err(Error::Io) }
    }

    async fn write(&mut self, writes: &[(u32, &[u8])]) -> Result<(), Error> {
        for group in writes.chunks(BATCH) {
            let mut batch = RRef::try_new(RRefDeque::new()).map_err(|_| Error::Io)?;
            for (block, data) in group {
                if data.len() != BLOCK {
                    return Err(Error::Io);
                }
                let mut io = self.io(*block)?;
                io.data.copy_from_slice(data);
                batch.push_back(io).map_err(|_| Error::Io)?;
            }
            let statuses = self.dev.write(&batch).await.map_err(|_| Error::Io)?;
            self.keep(batch);
            if statuses.iter().take(group.len()).any(|s| *s != status::OK) {
                return Err(Error::Io);
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.dev.flush().await.map_err(|_| Error::Io)
    }

    async fn read_many(&mut self, blocks: &[u32], bufs: &mut [u8]) -> Result<(), Error> {
        if bufs.len() != blocks.len() * BLOCK {
            return Err(Error::Io);
        }
        for (group, out) in blocks.chunks(BATCH).zip(bufs.chunks_mut(BATCH * BLOCK)) {
            let mut batch = RRef::try_new(RRefDeque::new()).map_err(|_| Error::Io)?;
            for block in group {
                let io = self.io(*block)?;
                batch.push_back(io).map_err(|_| Error::Io)?;
            }
            let batch = self.dev.read(batch).await.map_err(|_| Error::Io)?;
            let mut ok = batch.len() == group.len();
            for ((io, block), piece) in batch.iter().zip(group).zip(out.chunks_exact_mut(BLOCK)) {
                if io.status != status::OK || io.block != *block as u64 {
                    ok = false;
                    break;
                }
                piece.copy_from_slice(&io.data);
            }
            self.keep(batch);
            if !ok {
                return Err(Error::Io);
            }
        }
        Ok(())
    }
}

/// Whether block 1 holds a native superblock (its magic).
pub async fn has_file_system(disk: &mut BDevDisk) -> bool {
    let mut block = alloc::vec![0u8; BLOCK];
    disk.read(1, &mut block).await.is_ok() && block[..4] == rv6_fs::layout::MAGIC.to_le_bytes()
}
