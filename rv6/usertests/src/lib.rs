//! `usertests`: rv6's file-system tests run in the guest, through the
//! `fs/files` interface (after xv6's usertests), a program started from
//! its image file (`programs`), and the write workload the crash tests
//! run. Driven from the console:
//!
//! - `call usertests 1` starts the suite; each test logs
//!   `usertests: NAME ok` or `usertests: NAME FAILED: why`, and the end
//!   `usertests: N passed, M failed`. `call usertests 2` is its state
//!   (0 not run, 1 running, 2 all passed, 3 some failed).
//! - `call usertests 5` runs the tests that fill the device (diskfull,
//!   outofinodes), for a small one (the RAM disk); state as for `1`.
//! - `call usertests 10` starts the writer: it writes files
//!   `/crash/f0`, `/crash/f1`, ... (20 KiB each, contents derived from
//!   the number; written as `/crash/tmp` and renamed into place), and
//!   counts those whose rename returned (acknowledged, so durable). When
//!   the file system crashes under it, it connects again and rewrites
//!   the file it was on. `11` stops it and answers the count, `12`
//!   answers the count so far, `15` the failed calls it saw.
//! - `call usertests 13 N` checks that `/crash/f0` .. `f{N-1}` are all
//!   there, whole: `14` is its state (0, 1 running, 2 ok, 3 failed).
//! - `call usertests 20 B` runs one round of the file-system benchmark
//!   (see [`bench`]), the raw rows on the device from block B on (0: the
//!   file system only); `21` is its state (0, 1 running, 2 done, 3
//!   failed), and it logs `fsbench: done` or `fsbench: failed: why`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bench;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{Exports, Kernel, Mutex, RRef, RpcResult, log, sleep, spawn};
use interfaces::control::{Control, HELP, Text};
use interfaces::rv6::errno;
use rv6_ulib::{APPEND, Errno, Files, open_flags};

type Outcome = Result<(), String>;

const RW_CREATE: u32 = open_flags::READ | open_flags::WRITE | open_flags::CREATE;

fn fail<T>(what: &str, e: Errno) -> Result<T, String> {
    Err(format!("{what}: {e}"))
}

/// `r` must fail with `code`.
fn expect_errno<T>(what: &str, r: Result<T, Errno>, code: i32) -> Outcome {
    match r {
        Err(Errno::Os(e)) if e == code => Ok(()),
        Err(e) => Err(format!("{what}: {e}, expected errno {code}")),
        Ok(_) => Err(format!("{what}: succeeded, expected errno {code}")),
    }
}

fn ensure(cond: bool, what: &str) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(String::from(what))
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

macro_rules! t {
    ($what:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return fail($what, e),
        }
    };
}

async fn smallfile(fs: &mut Files) -> Outcome {
    t!("write", fs.write_file("/small", b"hello rv6").await);
    let back = t!("read", fs.read_file("/small").await);
    ensure(back == b"hello rv6", "contents differ")?;
    ensure(t!("stat", fs.stat("/small").await).size == 9, "size")?;
    t!("unlink", fs.unlink("/small").await);
    expect_errno(
        "read after unlink",
        fs.read_file("/small").await,
        errno::ENOENT,
    )
}

async fn bigwrite(fs: &mut Files) -> Outcome {
    // Three times the log (1 MiB): written in several transactions.
    let data = pattern(3 << 20, 1);
    t!("write", fs.write_file("/bigwrite", &data).await);
    let back = t!("read", fs.read_file("/bigwrite").await);
    ensure(back == data, "contents differ")?;
    t!("unlink", fs.unlink("/bigwrite").await);
    Ok(())
}

async fn bigfile(fs: &mut Files) -> Outcome {
    let h = t!("open", fs.open("/bigfile", RW_CREATE).await);
    for i in 0..20u64 {
        let piece = pattern(100 * 1024, i);
        t!("write", fs.write_at(h, i * 100 * 1024, &piece).await);
    }
    let mut buf = vec![0u8; 100 * 1024];
    for i in 0..20u64 {
        let n = t!("read", fs.read_at(h, i * 100 * 1024, &mut buf).await);
        ensure(
            n == buf.len() && buf == pattern(100 * 1024, i),
            "piece differs",
        )?;
    }
    t!("truncate", fs.truncate(h, 0).await);
    ensure(
        t!("fstat", fs.fstat(h).await).size == 0,
        "size after truncate",
    )?;
    t!("close", fs.close(h).await);
    t!("unlink", fs.unlink("/bigfile").await);
    Ok(())
}

async fn truncate(fs: &mut Files) -> Outcome {
    let data = pattern(5000, 2);
    t!("write", fs.write_file("/trunc", &data).await);
    let h = t!(
        "open",
        fs.open("/trunc", open_flags::READ | open_flags::WRITE)
            .await
    );
    t!("shrink", fs.truncate(h, 100).await);
    t!("grow", fs.truncate(h, 10_000).await);
    t!("close", fs.close(h).await);
    let back = t!("read", fs.read_file("/trunc").await);
    ensure(back.len() == 10_000, "size")?;
    ensure(back[..100] == data[..100], "kept bytes")?;
    ensure(back[100..].iter().all(|&b| b == 0), "grown bytes are zero")?;
    // Opening with TRUNCATE empties it.
    let h = t!(
        "open",
        fs.open("/trunc", open_flags::WRITE | open_flags::TRUNCATE)
            .await
    );
    ensure(t!("fstat", fs.fstat(h).await).size == 0, "O_TRUNC")?;
    t!("close", fs.close(h).await);
    t!("unlink", fs.unlink("/trunc").await);
    Ok(())
}

async fn createdelete(fs: &mut Files) -> Outcome {
    t!("mkdir", fs.mkdir("/cd").await);
    for i in 0..100 {
        t!(
            "create",
            fs.write_file(&format!("/cd/f{i}"), &[i as u8; 10]).await
        );
    }
    ensure(t!("list", fs.list("/cd").await).len() == 102, "100 entries")?;
    for i in 0..100 {
        t!("unlink", fs.unlink(&format!("/cd/f{i}")).await);
    }
    ensure(t!("list", fs.list("/cd").await).len() == 2, "empty again")?;
    t!("rmdir", fs.rmdir("/cd").await);
    Ok(())
}

async fn dirtest(fs: &mut Files) -> Outcome {
    t!("mkdir", fs.mkdir("/dd").await);
    t!("chdir", fs.chdir("/dd").await);
    t!("create", fs.write_file("relative", b"x").await);
    t!("chdir /", fs.chdir("/").await);
    ensure(
        t!("read", fs.read_file("/dd/relative").await) == b"x",
        "relative create",
    )?;
    expect_errno("rmdir non-empty", fs.rmdir("/dd").await, errno::ENOTEMPTY)?;
    t!("unlink", fs.unlink("/dd/relative").await);
    t!("rmdir", fs.rmdir("/dd").await);
    expect_errno("chdir removed", fs.chdir("/dd").await, errno::ENOENT)
}

async fn unlinkread(fs: &mut Files) -> Outcome {
    t!("write", fs.write_file("/ur", b"hello").await);
    let h = t!(
        "open",
        fs.open("/ur", open_flags::READ | open_flags::WRITE).await
    );
    t!("unlink", fs.unlink("/ur").await);
    // A new file of the same name is another file.
    t!("recreate", fs.write_file("/ur", b"yyy").await);
    let mut buf = [0u8; 5];
    ensure(
        t!("read", fs.read_at(h, 0, &mut buf).await) == 5 && &buf == b"hello",
        "old data",
    )?;
    t!("write", fs.write_at(h, 5, b"!").await);
    t!("close", fs.close(h).await);
    ensure(
        t!("read new", fs.read_file("/ur").await) == b"yyy",
        "new file",
    )?;
    t!("unlink", fs.unlink("/ur").await);
    Ok(())
}

async fn linktest(fs: &mut Files) -> Outcome {
    t!("write", fs.write_file("/lf1", b"hello").await);
    t!("link", fs.link("/lf1", "/lf2").await);
    t!("unlink", fs.unlink("/lf1").await);
    expect_errno("old name", fs.read_file("/lf1").await, errno::ENOENT)?;
    ensure(
        t!("read", fs.read_file("/lf2").await) == b"hello",
        "via the link",
    )?;
    ensure(t!("stat", fs.stat("/lf2").await).nlink == 1, "link count")?;
    t!("link back", fs.link("/lf2", "/lf1").await);
    expect_errno(
        "link onto existing",
        fs.link("/lf2", "/lf1").await,
        errno::EEXIST,
    )?;
    expect_errno("link missing", fs.link("/nope", "/x").await, errno::ENOENT)?;
    expect_errno(
        "link a directory",
        fs.link("/", "/rootlink").await,
        errno::EPERM,
    )?;
    t!("unlink", fs.unlink("/lf1").await);
    t!("unlink", fs.unlink("/lf2").await);
    Ok(())
}

async fn subdir(fs: &mut Files) -> Outcome {
    t!("mkdir", fs.mkdir("/sd").await);
    t!("write", fs.write_file("/sd/ff", b"ff").await);
    t!("mkdir", fs.mkdir("/sd/dd").await);
    t!("write", fs.write_file("/sd/dd/ff", b"FF").await);
    ensure(
        t!("read", fs.read_file("/sd/dd/../ff").await) == b"ff",
        "..",
    )?;
    ensure(
        t!("read", fs.read_file("/sd/./dd/./ff").await) == b"FF",
        ".",
    )?;
    t!("chdir", fs.chdir("/sd/dd").await);
    ensure(
        t!("read", fs.read_file("../../sd/ff").await) == b"ff",
        "relative ..",
    )?;
    t!("chdir /", fs.chdir("/").await);
    expect_errno(
        "file as directory",
        fs.open("/sd/ff/x", RW_CREATE).await,
        errno::ENOTDIR,
    )?;
    expect_errno(
        "missing directory",
        fs.open("/sd/xx/ff", RW_CREATE).await,
        errno::ENOENT,
    )?;
    expect_errno("mkdir over file", fs.mkdir("/sd/ff").await, errno::EEXIST)?;
    expect_errno("rmdir non-empty", fs.rmdir("/sd").await, errno::ENOTEMPTY)?;
    expect_errno(
        "unlink a directory",
        fs.unlink("/sd/dd").await,
        errno::EISDIR,
    )?;
    t!("rename", fs.rename("/sd/dd", "/sd/moved").await);
    ensure(
        t!("read", fs.read_file("/sd/moved/ff").await) == b"FF",
        "renamed dir",
    )?;
    expect_errno(
        "rename into itself",
        fs.rename("/sd", "/sd/moved/sd").await,
        errno::EINVAL,
    )?;
    t!("unlink", fs.unlink("/sd/moved/ff").await);
    t!("rmdir", fs.rmdir("/sd/moved").await);
    t!("unlink", fs.unlink("/sd/ff").await);
    t!("rmdir", fs.rmdir("/sd").await);
    Ok(())
}

async fn fourteen(fs: &mut Files) -> Outcome {
    t!("mkdir 14", fs.mkdir("/12345678901234").await);
    t!(
        "write 14",
        fs.write_file("/12345678901234/12345678901234", b"x").await
    );
    ensure(
        t!("read", fs.read_file("/12345678901234/12345678901234").await) == b"x",
        "14",
    )?;
    expect_errno(
        "15 bytes",
        fs.mkdir("/123456789012345").await,
        errno::ENAMETOOLONG,
    )?;
    t!("unlink", fs.unlink("/12345678901234/12345678901234").await);
    t!("rmdir", fs.rmdir("/12345678901234").await);
    Ok(())
}

async fn rmdot(fs: &mut Files) -> Outcome {
    t!("mkdir", fs.mkdir("/dots").await);
    expect_errno("rmdir .", fs.rmdir("/dots/.").await, errno::EINVAL)?;
    expect_errno("rmdir ..", fs.rmdir("/dots/..").await, errno::ENOTEMPTY)?;
    expect_errno("rmdir /", fs.rmdir("/").await, errno::EPERM)?;
    t!("rmdir", fs.rmdir("/dots").await);
    Ok(())
}

async fn dirfile(fs: &mut Files) -> Outcome {
    t!("write", fs.write_file("/dirfile", b"").await);
    expect_errno(
        "create under a file",
        fs.open("/dirfile/x", RW_CREATE).await,
        errno::ENOTDIR,
    )?;
    expect_errno(
        "mkdir under a file",
        fs.mkdir("/dirfile/x").await,
        errno::ENOTDIR,
    )?;
    expect_errno(
        "open / for writing",
        fs.open("/", open_flags::WRITE).await,
        errno::EISDIR,
    )?;
    expect_errno(
        "link under a file",
        fs.link("/dirfile", "/dirfile/x").await,
        errno::ENOTDIR,
    )?;
    t!("unlink", fs.unlink("/dirfile").await);
    Ok(())
}

async fn bigdir(fs: &mut Files) -> Outcome {
    t!("mkdir", fs.mkdir("/bd").await);
    t!("write", fs.write_file("/bd/f", b"").await);
    for i in 0..500 {
        t!("link", fs.link("/bd/f", &format!("/bd/x{i}")).await);
    }
    ensure(t!("list", fs.list("/bd").await).len() == 503, "503 entries")?;
    ensure(
        t!("stat", fs.stat("/bd/f").await).nlink == 501,
        "link count",
    )?;
    for i in 0..500 {
        t!("unlink", fs.unlink(&format!("/bd/x{i}")).await);
    }
    t!("unlink", fs.unlink("/bd/f").await);
    t!("rmdir", fs.rmdir("/bd").await);
    Ok(())
}

async fn iref(fs: &mut Files) -> Outcome {
    // Inodes and blocks are reused, not leaked.
    for i in 0..100 {
        t!("mkdir", fs.mkdir("/iref").await);
        t!("create", fs.write_file("/iref/f", &[i as u8; 100]).await);
        t!("unlink", fs.unlink("/iref/f").await);
        t!("rmdir", fs.rmdir("/iref").await);
    }
    Ok(())
}

async fn badargs(fs: &mut Files) -> Outcome {
    let long = "/a".repeat(300);
    expect_errno(
        "long path",
        fs.open(&long, open_flags::READ).await,
        errno::ENAMETOOLONG,
    )?;
    expect_errno("bad handle", fs.close(0x7fff_0000).await, errno::EBADF)?;
    let mut buf = [0u8; 4];
    expect_errno(
        "read bad handle",
        fs.read_at(12345, 0, &mut buf).await,
        errno::EBADF,
    )?;
    t!("write", fs.write_file("/ro", b"data").await);
    let h = t!("open", fs.open("/ro", open_flags::READ).await);
    expect_errno(
        "write read-only",
        fs.write_at(h, 0, b"x").await,
        errno::EBADF,
    )?;
    t!("close", fs.close(h).await);
    expect_errno(
        "closed handle",
        fs.read_at(h, 0, &mut buf).await,
        errno::EBADF,
    )?;
    let w = t!("open", fs.open("/ro", open_flags::WRITE).await);
    expect_errno(
        "read write-only",
        fs.read_at(w, 0, &mut buf).await,
        errno::EBADF,
    )?;
    t!("close", fs.close(w).await);
    expect_errno(
        "exclusive",
        fs.open("/ro", RW_CREATE | open_flags::EXCLUSIVE).await,
        errno::EEXIST,
    )?;
    expect_errno("bad flags", fs.open("/ro", 0x1000).await, errno::EINVAL)?;
    expect_errno(
        "empty path",
        fs.open("", open_flags::READ).await,
        errno::ENOENT,
    )?;
    t!("unlink", fs.unlink("/ro").await);
    Ok(())
}

/// Runs `work(i)` for i in 0..n in n tasks of their own, each with its
/// own connection; the first failure, if any.
async fn together(n: usize, test: usize) -> Outcome {
    let results: Arc<Mutex<Vec<Option<Outcome>>>> = Arc::new(Mutex::new(vec![None; n]));
    for i in 0..n {
        let results = results.clone();
        spawn(async move {
            let r = match Files::connect() {
                Ok(mut fs) => concurrent(test, i, &mut fs).await,
                Err(e) => fail("connect", e),
            };
            results.lock()[i] = Some(r);
        })
        .map_err(|e| format!("spawn: {e:?}"))?;
    }
    loop {
        sleep(Duration::from_millis(20)).await;
        let done = results.lock().iter().all(Option::is_some);
        if done {
            break;
        }
    }
    let all = core::mem::take(&mut *results.lock());
    for r in all.into_iter().flatten() {
        r?;
    }
    Ok(())
}

async fn concurrent(test: usize, i: usize, fs: &mut Files) -> Outcome {
    match test {
        // fourfiles: each task writes its own file in pieces.
        0 => {
            let name = format!("/four{i}");
            let h = t!("open", fs.open(&name, RW_CREATE).await);
            for k in 0..25u64 {
                t!(
                    "write",
                    fs.write_at(h, k * 4096, &pattern(4096, i as u64 * 100 + k))
                        .await
                );
            }
            t!("close", fs.close(h).await);
            let back = t!("read", fs.read_file(&name).await);
            for k in 0..25usize {
                ensure(
                    back[k * 4096..(k + 1) * 4096] == pattern(4096, i as u64 * 100 + k as u64),
                    "piece",
                )?;
            }
            t!("unlink", fs.unlink(&name).await);
            Ok(())
        }
        // concreate: tasks create and remove the same names at once;
        // every call either works or fails the POSIX way.
        1 => {
            for k in 0..40 {
                let name = format!("/cc{}", (k * 7 + i * 3) % 10);
                match fs.write_file(&name, &[k as u8; 64]).await {
                    Ok(()) | Err(Errno::Os(errno::ENOENT)) => {}
                    Err(e) => return fail("create", e),
                }
                if k % 3 == i % 3 {
                    match fs.unlink(&name).await {
                        Ok(()) | Err(Errno::Os(errno::ENOENT)) => {}
                        Err(e) => return fail("unlink", e),
                    }
                }
            }
            Ok(())
        }
        // linkunlink: tasks link, unlink and create the same names at once.
        3 => {
            for k in 0..60usize {
                let x = (k * 7 + i * 13) % 3;
                let name = format!("/lu{x}");
                let r = match k % 3 {
                    0 => fs.write_file(&name, b"x").await,
                    1 => fs.link("/lu0", &name).await,
                    _ => fs.unlink(&name).await,
                };
                match r {
                    Ok(()) | Err(Errno::Os(errno::ENOENT)) | Err(Errno::Os(errno::EEXIST)) => {}
                    Err(e) => return fail("linkunlink", e),
                }
            }
            Ok(())
        }
        // manywrites: each task makes a directory and writes files in it
        // again and again.
        4 => {
            let dir = format!("/mw{i}");
            t!("mkdir", fs.mkdir(&dir).await);
            for round in 0..5u64 {
                for f in 0..6u64 {
                    let data = pattern(3000, round * 10 + f);
                    t!("write", fs.write_file(&format!("{dir}/f{f}"), &data).await);
                }
            }
            for f in 0..6u64 {
                let back = t!("read", fs.read_file(&format!("{dir}/f{f}")).await);
                ensure(back == pattern(3000, 40 + f), "last round's data")?;
                t!("unlink", fs.unlink(&format!("{dir}/f{f}")).await);
            }
            t!("rmdir", fs.rmdir(&dir).await);
            Ok(())
        }
        // sharedfd-like: tasks append to one file; nothing is lost.
        2 => {
            let h = t!(
                "open",
                fs.open("/shared", open_flags::WRITE | open_flags::CREATE)
                    .await
            );
            for _ in 0..50 {
                t!(
                    "append",
                    fs.write_at(h, APPEND, &[b'a' + i as u8; 100]).await
                );
            }
            t!("close", fs.close(h).await);
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn linkunlink(fs: &mut Files) -> Outcome {
    together(4, 3).await?;
    for x in 0..3 {
        match fs.unlink(&format!("/lu{x}")).await {
            Ok(()) | Err(Errno::Os(errno::ENOENT)) => {}
            Err(e) => return fail("cleanup", e),
        }
    }
    Ok(())
}

async fn manywrites(_fs: &mut Files) -> Outcome {
    together(4, 4).await
}

async fn fourfiles(_fs: &mut Files) -> Outcome {
    together(4, 0).await
}

async fn concreate(fs: &mut Files) -> Outcome {
    together(4, 1).await?;
    for k in 0..10 {
        match fs.unlink(&format!("/cc{k}")).await {
            Ok(()) | Err(Errno::Os(errno::ENOENT)) => {}
            Err(e) => return fail("cleanup", e),
        }
    }
    Ok(())
}

async fn sharedfd(fs: &mut Files) -> Outcome {
    together(4, 2).await?;
    let data = t!("read", fs.read_file("/shared").await);
    ensure(data.len() == 4 * 50 * 100, "every append is there")?;
    for c in 0..4u8 {
        let n = data.iter().filter(|&&b| b == b'a' + c).count();
        ensure(n == 5000, "each task's bytes")?;
    }
    t!("unlink", fs.unlink("/shared").await);
    Ok(())
}

/// diskfull: writes until the device is full (`ENOSPC`), checks that
/// what was written reads back and that freeing it gives the room back.
async fn diskfull(fs: &mut Files) -> Outcome {
    let piece = pattern(256 * 1024, 7);
    let mut files = 0;
    let mut full = false;
    while files < 1000 {
        match fs.write_file(&format!("/full{files}"), &piece).await {
            Ok(()) => files += 1,
            Err(Errno::Os(errno::ENOSPC)) => {
                full = true;
                break;
            }
            Err(e) => return fail("write", e),
        }
    }
    ensure(full && files > 0, "the device filled up")?;
    expect_errno(
        "another block",
        fs.write_file("/more", &[1; 4096]).await,
        errno::ENOSPC,
    )?;
    for i in 0..files {
        let back = t!("read back", fs.read_file(&format!("/full{i}")).await);
        ensure(back == piece, "a full device lost nothing")?;
    }
    let _ = fs.unlink(&format!("/full{files}")).await;
    let _ = fs.unlink("/more").await;
    for i in 0..files {
        t!("unlink", fs.unlink(&format!("/full{i}")).await);
    }
    t!("room again", fs.write_file("/after", &piece).await);
    t!("unlink", fs.unlink("/after").await);
    Ok(())
}

/// outofinodes: creates files until no inode is left, then removes them
/// and creates again.
async fn outofinodes(fs: &mut Files) -> Outcome {
    t!("mkdir", fs.mkdir("/inodes").await);
    let mut made = 0;
    let mut out = false;
    while made < 100_000 {
        match fs.write_file(&format!("/inodes/i{made}"), b"").await {
            Ok(()) => made += 1,
            Err(Errno::Os(errno::ENOSPC)) => {
                out = true;
                break;
            }
            Err(e) => return fail("create", e),
        }
    }
    ensure(out && made > 10, "inodes ran out")?;
    for i in 0..made {
        t!("unlink", fs.unlink(&format!("/inodes/i{i}")).await);
    }
    t!("create again", fs.write_file("/inodes/again", b"x").await);
    t!("unlink", fs.unlink("/inodes/again").await);
    t!("rmdir", fs.rmdir("/inodes").await);
    log(&format!(
        "usertests: outofinodes: {made} files made before ENOSPC"
    ));
    Ok(())
}

/// The tests that fill the device: run on a small one (the RAM disk).
async fn small_device(shared: Arc<Shared>) {
    let mut fs = connect_retrying().await;
    let mut failed = 0;
    for name in ["diskfull", "outofinodes"] {
        let r = if name == "diskfull" {
            diskfull(&mut fs).await
        } else {
            outofinodes(&mut fs).await
        };
        match r {
            Ok(()) => log(&format!("usertests: {name} ok")),
            Err(why) => {
                failed += 1;
                log(&format!("usertests: {name} FAILED: {why}"));
            }
        }
    }
    log(&format!(
        "usertests: small device: {} passed, {failed} failed",
        2 - failed
    ));
    shared
        .suite
        .store(if failed == 0 { 2 } else { 3 }, Ordering::Relaxed);
}

/// A program from the file system: `/bin/hello` (a signed archive the
/// build made, copied in by `rv6fs mkfs`) verified and run by the kernel,
/// killed by its spawner; tampered and foreign archives refused.
async fn programs(fs: &mut Files) -> Outcome {
    let _ = fs.unlink("/hello.out").await;
    let archive = t!("read /bin/hello", fs.read_file("/bin/hello").await);
    let owner =
        domain_sdk::spawn_program(&archive, "hello-1").map_err(|e| format!("spawn: {e}"))?;
    let mut seen = false;
    for _ in 0..500 {
        if let Ok(data) = fs.read_file("/hello.out").await {
            seen = data == b"hello from a program\n";
            if seen {
                break;
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
    ensure(seen, "the program did not write /hello.out")?;
    ensure(domain_sdk::is_alive(owner), "the program is running")?;
    domain_sdk::kill_domain("hello-1").map_err(|e| format!("kill: {e}"))?;
    let mut gone = false;
    for _ in 0..200 {
        if !domain_sdk::is_alive(owner) {
            gone = true;
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    ensure(gone, "the killed program is gone")?;
    // One byte changed anywhere (here in the image) and it is refused.
    let mut tampered = archive.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x40;
    match domain_sdk::spawn_program(&tampered, "hello-2") {
        Err(e) if e.contains("refused") => {}
        Err(e) => return Err(format!("tampered archive: unexpected error {e}")),
        Ok(_) => return Err(String::from("a tampered archive was run")),
    }
    match domain_sdk::spawn_program(b"not an archive", "hello-3") {
        Err(_) => {}
        Ok(_) => return Err(String::from("garbage was run")),
    }
    match domain_sdk::spawn_program(&archive, "bad/name") {
        Err(e) if e.contains("bad domain name") => {}
        other => return Err(format!("bad name: {other:?}")),
    }
    // Only what it spawned may a domain kill.
    ensure(
        domain_sdk::kill_domain("fs").is_err(),
        "killing fs is refused",
    )?;
    // The console is not this domain's: nothing is written.
    ensure(
        !domain_sdk::console_write(b"not mine\n"),
        "console_write refused",
    )?;
    // At most 64 programs per spawner (the one killed above counts until
    // its reclaim ends, so 63 or 64 new ones).
    let mut spawned = 0;
    let refusal = loop {
        match domain_sdk::spawn_program(&archive, &format!("many-{spawned}")) {
            Ok(_) => spawned += 1,
            Err(e) => break e,
        }
        if spawned > 100 {
            break String::from("no limit");
        }
    };
    for i in 0..spawned {
        let _ = domain_sdk::kill_domain(&format!("many-{i}"));
    }
    ensure(
        (63..=64).contains(&spawned) && refusal.contains("64 programs"),
        &format!("the limit: {spawned}, {refusal}"),
    )?;
    t!("unlink", fs.unlink("/hello.out").await);
    Ok(())
}

const TESTS: [&str; 21] = [
    "smallfile",
    "bigwrite",
    "bigfile",
    "truncate",
    "createdelete",
    "dirtest",
    "unlinkread",
    "linktest",
    "subdir",
    "fourteen",
    "rmdot",
    "dirfile",
    "bigdir",
    "iref",
    "badargs",
    "fourfiles",
    "concreate",
    "sharedfd",
    "linkunlink",
    "manywrites",
    "programs",
];

async fn run_one(i: usize, fs: &mut Files) -> Outcome {
    match i {
        0 => smallfile(fs).await,
        1 => bigwrite(fs).await,
        2 => bigfile(fs).await,
        3 => truncate(fs).await,
        4 => createdelete(fs).await,
        5 => dirtest(fs).await,
        6 => unlinkread(fs).await,
        7 => linktest(fs).await,
        8 => subdir(fs).await,
        9 => fourteen(fs).await,
        10 => rmdot(fs).await,
        11 => dirfile(fs).await,
        12 => bigdir(fs).await,
        13 => iref(fs).await,
        14 => badargs(fs).await,
        15 => fourfiles(fs).await,
        16 => concreate(fs).await,
        17 => sharedfd(fs).await,
        18 => linkunlink(fs).await,
        19 => manywrites(fs).await,
        _ => programs(fs).await,
    }
}

#[derive(Default)]
struct Shared {
    suite: AtomicU64,
    writer_on: AtomicBool,
    acked: AtomicU64,
    writer_errors: AtomicU64,
    verify: AtomicU64,
    bench: AtomicU64,
}

async fn suite(shared: Arc<Shared>) {
    let mut fs = match Files::connect() {
        Ok(fs) => fs,
        Err(e) => {
            log(&format!("usertests: cannot reach fs/files: {e}"));
            shared.suite.store(3, Ordering::Relaxed);
            return;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for (i, name) in TESTS.iter().enumerate() {
        match run_one(i, &mut fs).await {
            Ok(()) => {
                passed += 1;
                log(&format!("usertests: {name} ok"));
            }
            Err(why) => {
                failed += 1;
                log(&format!("usertests: {name} FAILED: {why}"));
            }
        }
    }
    log(&format!("usertests: {passed} passed, {failed} failed"));
    shared
        .suite
        .store(if failed == 0 { 2 } else { 3 }, Ordering::Relaxed);
}

/// The bytes of workload file `n`.
fn crash_file(n: u64) -> Vec<u8> {
    pattern(20 * 1024, 1000 + n)
}

async fn connect_retrying() -> Files {
    loop {
        if let Ok(fs) = Files::connect() {
            return fs;
        }
        sleep(Duration::from_millis(50)).await;
    }
}

async fn writer(shared: Arc<Shared>) {
    let mut fs = connect_retrying().await;
    let _ = fs.mkdir("/crash").await;
    let mut n = shared.acked.load(Ordering::Relaxed);
    while shared.writer_on.load(Ordering::Relaxed) {
        let r = async {
            fs.write_file("/crash/tmp", &crash_file(n)).await?;
            fs.rename("/crash/tmp", &format!("/crash/f{n}")).await
        }
        .await;
        match r {
            Ok(()) => {
                n += 1;
                shared.acked.store(n, Ordering::Relaxed);
            }
            Err(e) => {
                shared.writer_errors.fetch_add(1, Ordering::Relaxed);
                if matches!(e, Errno::Rpc(_)) {
                    // The file system crashed: wait for its successor.
                    sleep(Duration::from_millis(50)).await;
                    fs = connect_retrying().await;
                } else {
                    log(&format!("usertests: writer: file {n}: {e}"));
                    sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

async fn verify(shared: Arc<Shared>, count: u64) {
    let mut fs = connect_retrying().await;
    let mut bad = 0;
    for n in 0..count {
        match fs.read_file(&format!("/crash/f{n}")).await {
            Ok(data) if data == crash_file(n) => {}
            Ok(data) => {
                bad += 1;
                log(&format!(
                    "usertests: /crash/f{n}: {} bytes, contents differ",
                    data.len()
                ));
            }
            Err(e) => {
                bad += 1;
                log(&format!("usertests: /crash/f{n}: {e}"));
            }
        }
    }
    log(&format!("usertests: verified {count} files: {bad} bad"));
    shared
        .verify
        .store(if bad == 0 { 2 } else { 3 }, Ordering::Relaxed);
}

async fn bench_round(shared: Arc<Shared>, raw_start: u64) {
    match bench::run(1, raw_start).await {
        Ok(()) => {
            log("fsbench: done");
            shared.bench.store(2, Ordering::Relaxed);
        }
        Err(e) => {
            log(&format!("fsbench: failed: {e}"));
            shared.bench.store(3, Ordering::Relaxed);
        }
    }
}

async fn bench_timed(shared: Arc<Shared>, row: usize, ms: u64) {
    match bench::timed(row, ms).await {
        Ok((iterations, us)) => {
            log(&format!(
                "fsbench-timed: {} {iterations} {us} done",
                bench::ROWS[row]
            ));
            shared.bench.store(2, Ordering::Relaxed);
        }
        Err(e) => {
            log(&format!("fsbench: failed: {e}"));
            shared.bench.store(3, Ordering::Relaxed);
        }
    }
}

/// The control interface, holding the state the tasks it starts share.
struct Ctl(Arc<Shared>);

impl Control for Ctl {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {
        let me = self.0.clone();
        let this = &*self.0;
        Ok(match op {
            1 => {
                if this.suite.swap(1, Ordering::Relaxed) == 1 {
                    return Ok(0);
                }
                u64::from(spawn(suite(me)).is_ok())
            }
            2 => this.suite.load(Ordering::Relaxed),
            5 => {
                if this.suite.swap(1, Ordering::Relaxed) == 1 {
                    return Ok(0);
                }
                u64::from(spawn(small_device(me)).is_ok())
            }
            10 => {
                if this.writer_on.swap(true, Ordering::Relaxed) {
                    return Ok(0);
                }
                u64::from(spawn(writer(me)).is_ok())
            }
            11 => {
                this.writer_on.store(false, Ordering::Relaxed);
                this.acked.load(Ordering::Relaxed)
            }
            12 => this.acked.load(Ordering::Relaxed),
            13 => {
                this.verify.store(1, Ordering::Relaxed);
                u64::from(spawn(verify(me, arg)).is_ok())
            }
            14 => this.verify.load(Ordering::Relaxed),
            15 => this.writer_errors.load(Ordering::Relaxed),
            20 => {
                if this.bench.swap(1, Ordering::Relaxed) == 1 {
                    return Ok(0);
                }
                u64::from(spawn(bench_round(me, arg)).is_ok())
            }
            21 => this.bench.load(Ordering::Relaxed),
            22 => {
                let (row, ms) = ((arg & 0xff) as usize, arg >> 8);
                if row >= bench::ROWS.len() || !(1..=600_000).contains(&ms) {
                    return Ok(0);
                }
                if this.bench.swap(1, Ordering::Relaxed) == 1 {
                    return Ok(0);
                }
                u64::from(spawn(bench_timed(me, row, ms)).is_ok())
            }
            _ => 0,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer(
                "rv6 file-system tests over fs/files\n\
                 1: start the suite (logs each test)\n2: suite state (0 idle, 1 running, 2 passed, 3 failed)\n\
                 5: start diskfull and outofinodes (for a small device)\n\
                 10: start the writer\n11: stop it; files acknowledged\n12: files acknowledged so far\n\
                 13 N: check /crash/f0..f{N-1}\n14: check state (0, 1 running, 2 ok, 3 failed)\n\
                 15: failed calls the writer saw\n\
                 20 B: one benchmark round (raw rows from block B; 0: none)\n21: its state\n\
                 22 ROW+256*MS: file-system row ROW (0-6) repeated for MS milliseconds",
            ),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let ctl = Arc::new(Ctl(Arc::new(Shared::default())));
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", ctl))
}
