//! rv6's file system: xv6's on-disk format, async over a block device.
//!
//! The layout is xv6's (boot block, superblock, write-ahead log, inodes,
//! free-block bitmap, data), with the block size a parameter
//! ([`Profile`]):
//!
//! - [`Profile::Native`], the default: 4 KiB blocks (one `BDev` block),
//!   a magic number and the block size in the superblock, 128-byte inodes
//!   with 12 direct blocks, one indirect and one double-indirect block
//!   (files up to 4 GiB - 1).
//! - [`Profile::Xv6`]: xv6-public's format byte for byte (512-byte
//!   blocks, no magic, 64-byte inodes with 12 direct blocks and one
//!   indirect block, so files up to 70 KiB), which xv6's own tools read.
//!
//! [`Fs`] keeps a buffer cache and a transaction: every operation changes
//! cached blocks only, atomically (an operation that fails part-way is
//! rolled back in memory), and [`Fs::commit`] makes everything done since
//! the last commit durable at once through the log (group commit: one
//! commit covers as many operations as the caller batched). After a crash
//! at any moment, [`Fs::mount`] replays a committed log and reclaims
//! inodes that lost their last link, so every committed operation is
//! there and none is half applied. [`check`] is fsck.
//!
//! Nothing read from the device is trusted: block and inode numbers,
//! sizes and names are checked, and a structure that cannot be right is
//! [`Error::Corrupt`], never a panic.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod cache;
pub mod check;
mod disk;
mod fs;
pub mod layout;

pub use cache::CacheStats;
pub use check::{Report, check};
pub use disk::{Disk, MemDisk};
pub use fs::{DirEntry, Fs, MkfsOptions, OpenFlags, Stat};
pub use layout::{Kind, Profile};

use core::fmt;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

/// Inode number of the root directory.
pub const ROOT: u32 = 1;

/// Why an operation failed. [`Error::errno`] gives the POSIX number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such file or directory (`ENOENT`).
    NotFound,
    /// The name exists already (`EEXIST`).
    Exists,
    /// A path component that must be a directory is not (`ENOTDIR`).
    NotDir,
    /// A directory where a file is needed (`EISDIR`).
    IsDir,
    /// The directory is not empty (`ENOTEMPTY`).
    NotEmpty,
    /// A name longer than [`layout::DIRSIZ`] bytes or a path longer than
    /// [`fs::MAX_PATH`] (`ENAMETOOLONG`).
    NameTooLong,
    /// No free block (`ENOSPC`).
    NoSpace,
    /// No free inode (`ENOSPC` as well; told apart for messages).
    NoInodes,
    /// A bad argument: an empty name, `.` or `..` where they cannot be,
    /// a directory moved into itself (`EINVAL`).
    Invalid,
    /// The file would pass the largest size the format holds (`EFBIG`).
    TooBig,
    /// Too many links to one inode (`EMLINK`).
    TooManyLinks,
    /// The operation is not allowed on this kind of file, such as a hard
    /// link to a directory (`EPERM`).
    NotPermitted,
    /// The device failed a read, write or flush (`EIO`).
    Io,
    /// What is on the device cannot be a valid file system here: a block
    /// or inode number out of range, a bad magic number, a directory
    /// that is not a whole number of entries (`EUCLEAN`).
    Corrupt,
}

impl Error {
    /// The POSIX error number (Linux's values).
    pub fn errno(self) -> i32 {
        match self {
            Error::NotPermitted => 1,
            Error::NotFound => 2,
            Error::Io => 5,
            Error::Exists => 17,
            Error::NotDir => 20,
            Error::IsDir => 21,
            Error::Invalid => 22,
            Error::TooBig => 27,
            Error::NoSpace | Error::NoInodes => 28,
            Error::TooManyLinks => 31,
            Error::NameTooLong => 36,
            Error::NotEmpty => 39,
            Error::Corrupt => 117,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotFound => "no such file or directory",
            Error::Exists => "file exists",
            Error::NotDir => "not a directory",
            Error::IsDir => "is a directory",
            Error::NotEmpty => "directory not empty",
            Error::NameTooLong => "file name too long",
            Error::NoSpace => "no space left on device",
            Error::NoInodes => "no free inodes left on device",
            Error::Invalid => "invalid argument",
            Error::TooBig => "file too large",
            Error::TooManyLinks => "too many links",
            Error::NotPermitted => "operation not permitted",
            Error::Io => "input/output error",
            Error::Corrupt => "file system structure is corrupt",
        })
    }
}

/// What operations return.
pub type Result<T> = core::result::Result<T, Error>;

/// Runs `future` to completion by polling it in a loop, for devices
/// whose futures never wait ([`MemDisk`], the host tools' image files).
/// A future that returns `Pending` is polled again at once, so this must
/// not be used over a device that waits for a wake-up.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
