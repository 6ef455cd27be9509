//! The file system's operations over a RAM device, each checked with fsck.

use rv6_fs::{Error, Fs, Kind, MemDisk, MkfsOptions, OpenFlags, Profile, ROOT, block_on, check};

fn fresh(profile: Profile, blocks: u32) -> Fs<MemDisk> {
    let disk = MemDisk::new(profile.block_size(), blocks as usize);
    block_on(Fs::format(
        disk,
        MkfsOptions::for_blocks(profile, blocks),
        64,
    ))
    .expect("format")
}

const CREATE: OpenFlags = OpenFlags {
    write: true,
    create: true,
    exclusive: false,
    truncate: false,
};

/// Commits, unmounts, runs fsck (which must be clean) and mounts again.
fn cycle(fs: Fs<MemDisk>, profile: Profile) -> Fs<MemDisk> {
    let mut disk = block_on(fs.unmount()).expect("unmount");
    let report = block_on(check(&mut disk, profile)).expect("check");
    assert!(report.clean(), "fsck: {:#?}", report.problems);
    block_on(Fs::mount(disk, profile, 64)).expect("mount")
}

fn write_file(fs: &mut Fs<MemDisk>, path: &str, data: &[u8]) {
    block_on(async {
        let inum = fs.open(ROOT, path, CREATE).await.expect("open");
        assert_eq!(fs.write(inum, 0, data).await.expect("write"), data.len());
        fs.release(inum).await.expect("close");
    });
}

fn read_file(fs: &mut Fs<MemDisk>, path: &str) -> Result<Vec<u8>, Error> {
    block_on(async {
        let inum = fs.lookup(ROOT, path).await?;
        let size = fs.stat(inum).await?.size as usize;
        let mut buf = vec![0u8; size + 10];
        let n = fs.read(inum, 0, &mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    })
}

fn names(fs: &mut Fs<MemDisk>, path: &str) -> Vec<String> {
    block_on(async {
        let dir = fs.lookup(ROOT, path).await.unwrap();
        let mut names: Vec<String> = fs
            .list(dir)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        names
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn files_survive_remount_in_both_profiles() {
    for profile in [Profile::Native, Profile::Xv6] {
        let mut fs = fresh(profile, 2048);
        write_file(&mut fs, "/a", b"hello");
        write_file(
            &mut fs,
            "b",
            &pattern(100_000.min(profile.max_file_size() as usize - 1), 7),
        );
        block_on(fs.mkdir(ROOT, "/d")).unwrap();
        write_file(&mut fs, "/d/c", b"in a directory");
        let mut fs = cycle(fs, profile);
        assert_eq!(read_file(&mut fs, "/a").unwrap(), b"hello");
        assert_eq!(read_file(&mut fs, "/d/c").unwrap(), b"in a directory");
        assert_eq!(
            read_file(&mut fs, "/d/../d/./c").unwrap(),
            b"in a directory"
        );
        assert_eq!(
            read_file(&mut fs, "/b").unwrap(),
            pattern(100_000.min(profile.max_file_size() as usize - 1), 7)
        );
        assert_eq!(names(&mut fs, "/"), [".", "..", "a", "b", "d"]);
    }
}

#[test]
fn a_large_file_uses_the_double_indirect_block_and_is_freed_whole() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 8192);
    let free_before = {
        let mut disk = block_on(fs.unmount()).unwrap();
        let r = block_on(check(&mut disk, profile)).unwrap();
        fs = block_on(Fs::mount(disk, profile, 64)).unwrap();
        r.free_blocks
    };
    // 12 + 1024 blocks direct and indirect; this is past them.
    let big = pattern(4096 * (12 + 1024 + 300) + 123, 3);
    write_file(&mut fs, "/big", &big);
    let mut fs = cycle(fs, profile);
    assert_eq!(read_file(&mut fs, "/big").unwrap(), big);
    // Shrink to inside the direct blocks, then check and remove.
    block_on(async {
        let inum = fs.lookup(ROOT, "/big").await.unwrap();
        fs.truncate(inum, 5000).await.unwrap();
        assert_eq!(fs.stat(inum).await.unwrap().size, 5000);
    });
    let mut fs = cycle(fs, profile);
    assert_eq!(read_file(&mut fs, "/big").unwrap(), big[..5000]);
    block_on(fs.unlink(ROOT, "/big")).unwrap();
    let mut disk = block_on(fs.unmount()).unwrap();
    let report = block_on(check(&mut disk, profile)).unwrap();
    assert!(report.clean(), "{:#?}", report.problems);
    assert_eq!(
        report.free_blocks, free_before,
        "every block of the big file is free again"
    );
}

#[test]
fn writing_past_the_end_fills_zeros_and_truncate_grows_with_zeros() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 1024);
    block_on(async {
        let inum = fs.open(ROOT, "/sparse", CREATE).await.unwrap();
        fs.write(inum, 10_000, b"end").await.unwrap();
        let mut buf = vec![0xaau8; 10_003];
        assert_eq!(fs.read(inum, 0, &mut buf).await.unwrap(), 10_003);
        assert!(buf[..10_000].iter().all(|&b| b == 0));
        assert_eq!(&buf[10_000..], b"end");
        fs.truncate(inum, 3).await.unwrap();
        fs.truncate(inum, 9000).await.unwrap();
        let mut buf = vec![0xaau8; 9000];
        assert_eq!(fs.read(inum, 0, &mut buf).await.unwrap(), 9000);
        assert!(buf.iter().all(|&b| b == 0), "no stale bytes come back");
        fs.release(inum).await.unwrap();
    });
    cycle(fs, profile);
}

#[test]
fn posix_errors_for_bad_arguments() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 1024);
    write_file(&mut fs, "/f", b"x");
    block_on(fs.mkdir(ROOT, "/d")).unwrap();
    write_file(&mut fs, "/d/x", b"x");
    block_on(async {
        let ro = OpenFlags::default();
        assert_eq!(fs.open(ROOT, "/nope", ro).await, Err(Error::NotFound));
        assert_eq!(fs.open(ROOT, "/f/x", CREATE).await, Err(Error::NotDir));
        assert_eq!(fs.open(ROOT, "/d", CREATE).await, Err(Error::IsDir));
        assert_eq!(
            fs.open(ROOT, "/123456789012345", CREATE).await,
            Err(Error::NameTooLong)
        );
        assert!(
            fs.open(ROOT, "/12345678901234", CREATE).await.is_ok(),
            "14 bytes fit"
        );
        let long = "/a".repeat(300);
        assert_eq!(fs.open(ROOT, &long, ro).await, Err(Error::NameTooLong));
        let excl = OpenFlags {
            exclusive: true,
            ..CREATE
        };
        assert_eq!(fs.open(ROOT, "/f", excl).await, Err(Error::Exists));
        assert_eq!(fs.mkdir(ROOT, "/f").await, Err(Error::Exists));
        assert_eq!(fs.mkdir(ROOT, "/").await, Err(Error::Exists));
        assert_eq!(fs.rmdir(ROOT, "/d").await, Err(Error::NotEmpty));
        assert_eq!(fs.rmdir(ROOT, "/f").await, Err(Error::NotDir));
        assert_eq!(fs.rmdir(ROOT, "/d/.").await, Err(Error::Invalid));
        assert_eq!(fs.rmdir(ROOT, "/").await, Err(Error::NotPermitted));
        assert_eq!(fs.unlink(ROOT, "/d").await, Err(Error::IsDir));
        assert_eq!(fs.unlink(ROOT, "/nope").await, Err(Error::NotFound));
        assert_eq!(fs.link(ROOT, "/d", "/d2").await, Err(Error::NotPermitted));
        assert_eq!(fs.link(ROOT, "/f", "/d/x").await, Err(Error::Exists));
        assert_eq!(fs.rename(ROOT, "/d", "/d/x/y").await, Err(Error::NotDir));
        assert_eq!(
            fs.rename(ROOT, "/d", "/d/sub").await,
            Err(Error::Invalid),
            "into itself"
        );
        assert_eq!(fs.rename(ROOT, "/f", "/d").await, Err(Error::IsDir));
        assert_eq!(fs.open(ROOT, "", ro).await, Err(Error::NotFound));
        assert_eq!(fs.lookup(ROOT, "/f/").await, Err(Error::NotDir));
        let f = fs.lookup(ROOT, "/f").await.unwrap();
        assert_eq!(fs.read_dir(f, 0).await, Err(Error::NotDir));
        assert_eq!(
            fs.open(f, "x", ro).await,
            Err(Error::NotDir),
            "a file as working directory"
        );
    });
    cycle(fs, profile);
}

#[test]
fn rename_moves_files_and_directories_and_replaces_atomically() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 1024);
    block_on(fs.mkdir(ROOT, "/a")).unwrap();
    block_on(fs.mkdir(ROOT, "/a/inner")).unwrap();
    block_on(fs.mkdir(ROOT, "/b")).unwrap();
    write_file(&mut fs, "/a/inner/f", b"one");
    write_file(&mut fs, "/g", b"two");
    block_on(fs.rename(ROOT, "/a/inner", "/b/moved")).unwrap();
    assert_eq!(read_file(&mut fs, "/b/moved/f").unwrap(), b"one");
    assert_eq!(read_file(&mut fs, "/b/moved/../moved/f").unwrap(), b"one");
    // Replacing a file.
    block_on(fs.rename(ROOT, "/g", "/b/moved/f")).unwrap();
    assert_eq!(read_file(&mut fs, "/b/moved/f").unwrap(), b"two");
    assert_eq!(read_file(&mut fs, "/g"), Err(Error::NotFound));
    // Replacing an empty directory with a directory.
    block_on(fs.mkdir(ROOT, "/empty")).unwrap();
    block_on(fs.rename(ROOT, "/b/moved", "/empty")).unwrap();
    assert_eq!(read_file(&mut fs, "/empty/f").unwrap(), b"two");
    // Renaming onto itself (a hard link) does nothing.
    block_on(fs.link(ROOT, "/empty/f", "/h")).unwrap();
    block_on(fs.rename(ROOT, "/h", "/empty/f")).unwrap();
    assert_eq!(read_file(&mut fs, "/h").unwrap(), b"two");
    let mut fs = cycle(fs, profile);
    assert_eq!(names(&mut fs, "/"), [".", "..", "a", "b", "empty", "h"]);
    let s = block_on(async {
        let i = fs.lookup(ROOT, "/h").await.unwrap();
        fs.stat(i).await.unwrap()
    });
    assert_eq!((s.nlink, s.kind), (2, Kind::File));
}

#[test]
fn an_unlinked_open_file_lives_until_closed() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 1024);
    write_file(&mut fs, "/f", &pattern(50_000, 1));
    block_on(async {
        let inum = fs.open(ROOT, "/f", OpenFlags::default()).await.unwrap();
        fs.unlink(ROOT, "/f").await.unwrap();
        assert_eq!(fs.lookup(ROOT, "/f").await, Err(Error::NotFound));
        let mut buf = vec![0u8; 50_000];
        assert_eq!(fs.read(inum, 0, &mut buf).await.unwrap(), 50_000);
        assert_eq!(buf, pattern(50_000, 1));
        fs.release(inum).await.unwrap();
    });
    cycle(fs, profile);
}

#[test]
fn an_unlinked_open_file_is_freed_by_the_next_mount_after_a_crash() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 1024);
    write_file(&mut fs, "/f", &pattern(50_000, 1));
    block_on(async {
        let inum = fs.open(ROOT, "/f", OpenFlags::default()).await.unwrap();
        fs.unlink(ROOT, "/f").await.unwrap();
        fs.commit().await.unwrap();
        let _ = inum;
    });
    // Crash with the file open: the image has an inode with no link.
    let mut disk = fs.into_disk();
    let report = block_on(check(&mut disk, profile)).unwrap();
    assert!(!report.clean(), "fsck sees the orphan");
    let fs = block_on(Fs::mount(disk, profile, 64)).unwrap();
    cycle(fs, profile);
}

#[test]
fn full_device_gives_no_space_and_loses_nothing() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 400);
    write_file(&mut fs, "/keep", b"precious");
    let written = block_on(async {
        let inum = fs.open(ROOT, "/fill", CREATE).await.unwrap();
        let data = pattern(4 << 20, 9);
        let n = fs.write(inum, 0, &data).await.unwrap();
        assert!(n < data.len(), "the device is smaller than the write");
        assert_eq!(
            fs.write(inum, n as u64, &data[..4096]).await,
            Err(Error::NoSpace)
        );
        fs.release(inum).await.unwrap();
        n
    });
    let mut fs = cycle(fs, profile);
    assert_eq!(
        read_file(&mut fs, "/fill").unwrap(),
        pattern(4 << 20, 9)[..written]
    );
    assert_eq!(read_file(&mut fs, "/keep").unwrap(), b"precious");
    // Inodes run out too.
    let mut made = 0;
    loop {
        match block_on(fs.open(ROOT, &format!("/n{made}"), CREATE)) {
            Ok(inum) => block_on(fs.release(inum)).unwrap(),
            Err(e) => {
                assert!(matches!(e, Error::NoInodes | Error::NoSpace), "{e:?}");
                break;
            }
        }
        made += 1;
    }
    block_on(fs.unlink(ROOT, "/fill")).unwrap();
    cycle(fs, profile);
}

#[test]
fn corrupt_images_give_errors_not_panics() {
    let profile = Profile::Native;
    let mut fs = fresh(profile, 512);
    write_file(&mut fs, "/f", &pattern(20_000, 2));
    block_on(fs.mkdir(ROOT, "/d")).unwrap();
    let disk = block_on(fs.unmount()).unwrap();
    let image = disk.into_bytes();
    // Garbage in every byte of the metadata, one block at a time: mount
    // and a walk of everything either work or fail with an error.
    let sb = {
        let d = MemDisk::from_bytes(4096, image.clone());
        *block_on(Fs::mount(d, profile, 64)).unwrap().superblock()
    };
    let mut seed = 1u64;
    for block in 0..sb.data_start() + 4 {
        let mut bytes = image.clone();
        for b in &mut bytes[block as usize * 4096..(block as usize + 1) * 4096] {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (seed >> 56) as u8;
        }
        let mut disk = MemDisk::from_bytes(4096, bytes);
        let _ = block_on(check(&mut disk, profile));
        if let Ok(mut fs) = block_on(Fs::mount(disk, profile, 64)) {
            let _ = read_file(&mut fs, "/f");
            let _ = block_on(fs.list(ROOT));
            let _ = block_on(fs.mkdir(ROOT, "/new"));
            write_file_tolerant(&mut fs);
        }
    }
    assert_eq!(
        block_on(Fs::mount(MemDisk::new(4096, 64), profile, 64)).err(),
        Some(Error::Corrupt),
        "a blank device is no file system"
    );
}

fn write_file_tolerant(fs: &mut Fs<MemDisk>) {
    block_on(async {
        if let Ok(inum) = fs.open(ROOT, "/w", CREATE).await {
            let _ = fs.write(inum, 0, &[1; 9000]).await;
            let _ = fs.release(inum).await;
        }
        let _ = fs.commit().await;
    });
}

#[test]
fn small_writes_share_a_transaction_until_the_log_is_full() {
    // 8 MiB in 16 KiB writes, no commit asked for: the transaction is
    // committed only when the log (254 blocks) cannot take the next
    // write, about once per 250 blocks (once per write before a fix).
    let profile = Profile::Native;
    let mut fs = fresh(profile, 16384);
    let data = pattern(16384, 5);
    block_on(async {
        let f = fs.open(ROOT, "/f", CREATE).await.unwrap();
        for i in 0..512u64 {
            fs.write(f, i * 16384, &data).await.unwrap();
        }
        fs.release(f).await.unwrap();
    });
    let commits = fs.cache_stats().commits;
    assert!(commits <= 16, "{commits} commits for 2,048 blocks of data");
    let mut fs = cycle(fs, profile);
    let back = read_file(&mut fs, "/f").unwrap();
    assert_eq!(back.len(), 8 << 20);
    assert!(back.chunks(16384).all(|c| c == data));
}

/// Reads from any offset, of any length, alone or continuing the last
/// one (read-ahead), give the file's bytes: in both profiles, from a warm
/// cache and, after a remount, a cold one; past the direct blocks too.
#[test]
fn reads_at_any_offset_and_length_give_the_files_bytes() {
    for profile in [Profile::Native, Profile::Xv6] {
        let bsize = profile.block_size();
        let size = bsize * 40 + 123;
        let mut fs = fresh(profile, 2048);
        let data = pattern(size, 7);
        write_file(&mut fs, "/f", &data);
        for cold in [false, true] {
            if cold {
                fs = cycle(fs, profile);
            }
            let offsets = [
                0,
                1,
                bsize - 1,
                bsize,
                bsize + 5,
                3 * bsize - 1,
                13 * bsize + 7,
            ];
            let lengths = [1, 100, bsize, bsize + 1, 2 * bsize - 3, 16384, 40_000, size];
            block_on(async {
                let inum = fs.lookup(ROOT, "/f").await.unwrap();
                fs.acquire(inum);
                for &off in &offsets {
                    for &len in &lengths {
                        let mut buf = vec![0u8; len];
                        let n = fs.read(inum, off as u64, &mut buf).await.unwrap();
                        let want = &data[off.min(size)..(off + len).min(size)];
                        assert_eq!(n, want.len(), "{profile:?} read {len} at {off}");
                        assert!(buf[..n] == *want, "{profile:?} read {len} at {off}");
                        // The next read continues this one: read-ahead.
                        let mut next = vec![0u8; 3 * bsize];
                        let m = fs.read(inum, (off + n) as u64, &mut next).await.unwrap();
                        let want = &data[(off + n).min(size)..(off + n + 3 * bsize).min(size)];
                        assert!(next[..m] == *want, "{profile:?} read after {off}+{n}");
                    }
                }
                fs.release(inum).await.unwrap();
            });
        }
        cycle(fs, profile);
    }
}
