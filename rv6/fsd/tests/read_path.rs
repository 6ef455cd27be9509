//! `Server::read_path` (what `Files::read_path` runs): a regular file read
//! without a handle, with its size; directories and devices refused with
//! their error numbers; no handle left behind; an unlinked file it was the
//! last to hold is freed, as by a close.

use interfaces::rv6::{ROOT, errno, open_flags};
use rv6_fs::{Fs, MemDisk, MkfsOptions, Profile, block_on, check};
use rv6_fsd::server::Server;

const OWNER: u32 = 7;

fn server() -> Server<MemDisk> {
    let profile = Profile::Native;
    let disk = MemDisk::new(profile.block_size(), 2048);
    let mut opts = MkfsOptions::for_blocks(profile, 2048);
    opts.inodes = 200;
    Server::new(block_on(Fs::format(disk, opts, 64)).expect("format"))
}

/// Creates `path` holding `bytes` through a handle, as a client would.
fn create(s: &mut Server<MemDisk>, path: &str, bytes: &[u8]) {
    let flags = open_flags::WRITE | open_flags::CREATE;
    let opened = block_on(s.open(OWNER, ROOT, path, flags));
    assert_eq!(opened.errno, 0, "create {path}");
    let handle = opened.value as u32;
    let mut offset = 0;
    for piece in bytes.chunks(5000) {
        let n = block_on(s.write(OWNER, handle, offset, piece)).expect("write");
        assert_eq!(n, piece.len());
        offset += n as u64;
    }
    assert_eq!(block_on(s.close(OWNER, handle)).errno, 0);
}

#[test]
fn a_small_file_is_read_whole_with_its_size() {
    let mut s = server();
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    create(&mut s, "page.html", &body);
    let mut buf = vec![0u8; 16384];
    let (n, size) = block_on(s.read_path(OWNER, ROOT, "page.html", 0, &mut buf)).unwrap();
    assert_eq!((n, size), (body.len(), body.len() as u64));
    assert_eq!(&buf[..n], &body[..]);
    // From an offset, and past the end.
    let (n, size) = block_on(s.read_path(OWNER, ROOT, "page.html", 9_000, &mut buf)).unwrap();
    assert_eq!((n, size), (1_000, 10_000));
    assert_eq!(&buf[..n], &body[9_000..]);
    let (n, _) = block_on(s.read_path(OWNER, ROOT, "page.html", 20_000, &mut buf)).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_larger_file_says_it_is_larger() {
    let mut s = server();
    let body = vec![b'x'; 40_000];
    create(&mut s, "big", &body);
    let mut buf = vec![0u8; 16384];
    let (n, size) = block_on(s.read_path(OWNER, ROOT, "big", 0, &mut buf)).unwrap();
    assert_eq!((n, size), (16384, 40_000));
    // A read through a handle says the size too.
    let opened = block_on(s.open(OWNER, ROOT, "big", open_flags::READ));
    assert_eq!(opened.errno, 0);
    let read = block_on(s.read(OWNER, opened.value as u32, 32_768, &mut buf));
    assert_eq!(read, Ok((40_000 - 32_768, 40_000)));
    assert_eq!(block_on(s.close(OWNER, opened.value as u32)).errno, 0);
}

#[test]
fn directories_devices_and_missing_files_are_refused() {
    let mut s = server();
    assert_eq!(block_on(s.mkdir(OWNER, ROOT, "docs")).errno, 0);
    assert_eq!(block_on(s.mknod(OWNER, ROOT, "console", 1, 1)).errno, 0);
    let mut buf = vec![0u8; 512];
    let mut read = |path: &str| block_on(s.read_path(OWNER, ROOT, path, 0, &mut buf));
    assert_eq!(read("docs"), Err(errno::EISDIR));
    assert_eq!(read("console"), Err(errno::ENODEV));
    assert_eq!(read("missing"), Err(errno::ENOENT));
    assert_eq!(read("docs/missing"), Err(errno::ENOENT));
    assert_eq!(read(&"n".repeat(300)), Err(errno::ENAMETOOLONG));
    // A directory handle that is not one of ours.
    assert_eq!(
        block_on(s.read_path(OWNER, 99, "x", 0, &mut buf)),
        Err(errno::EBADF)
    );
}

#[test]
fn no_handle_is_left_and_an_unlinked_file_is_freed() {
    let mut s = server();
    create(&mut s, "gone", &vec![b'g'; 9000]);
    // Opened by a client, unlinked, read by path, closed: the read by path
    // took and released its own reference, so the close frees it.
    let opened = block_on(s.open(OWNER, ROOT, "gone", open_flags::READ));
    assert_eq!(opened.errno, 0);
    let mut buf = vec![0u8; 16384];
    assert_eq!(
        block_on(s.read_path(OWNER, ROOT, "gone", 0, &mut buf)),
        Ok((9000, 9000))
    );
    assert_eq!(block_on(s.unlink(OWNER, ROOT, "gone")).errno, 0);
    assert_eq!(
        block_on(s.read_path(OWNER, ROOT, "gone", 0, &mut buf)),
        Err(errno::ENOENT)
    );
    assert_eq!(s.open_handles(), 1, "read_path left a handle");
    assert_eq!(block_on(s.close(OWNER, opened.value as u32)).errno, 0);
    assert_eq!(s.open_handles(), 0);
    block_on(s.commit()).expect("commit");
    let mut disk = block_on(s.into_fs().unmount()).expect("unmount");
    let report = block_on(check(&mut disk, Profile::Native)).expect("fsck");
    assert!(report.clean(), "fsck: {:#?}", report.problems);
    // The unlinked file's blocks are free again: only the root's are used.
    assert_eq!(report.files, 0, "the unlinked file is still there");
}
