//! `utests`: rv6's usertests as an rv6 program, after xv6's usertests.
//! Where the `usertests` domain drives `fs/files` directly (and crashes
//! things), this program goes through what every rv6 program uses: the
//! process domain's calls (descriptors with offsets, paths from a working
//! directory, pipes, spawn and wait), and runs tests that need several
//! processes at once by spawning itself (`utests child NAME ARG`).
//!
//! `utests` runs every test; `utests NAME...` the ones named. Each test
//! works in a fresh directory `/utests.N` (N its index) removed after it.
//! The last line is `utests: P passed, F failed`; the status is 0 only
//! if none failed.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use interfaces::rv6::errno;
use rv6_ulib::{Errno, Process, STDERR, STDIN, STDOUT, open_flags};

type Result<T = ()> = core::result::Result<T, String>;

const RW: u32 = open_flags::READ | open_flags::WRITE;
const CREATE: u32 = RW | open_flags::CREATE;
/// `wait` for a process that is not a child (Linux's number).
const ECHILD: i32 = 10;
/// This program's path (children are spawned from it).
const SELF: &str = "/bin/utests";

/// What a failed call says, with what it was.
fn ctx<T>(what: &str, r: core::result::Result<T, Errno>) -> Result<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// That `r` failed with exactly `code`.
fn expect_err<T>(what: &str, r: core::result::Result<T, Errno>, code: i32) -> Result {
    match r {
        Err(e) if e.code() == code => Ok(()),
        Err(e) => Err(format!("{what}: {e}, expected error {code}")),
        Ok(_) => Err(format!("{what}: succeeded, expected error {code}")),
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result {
    if cond { Ok(()) } else { Err(what()) }
}

/// Bytes `i` of a test pattern seeded with `seed`.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn write_all(p: &mut Process, fd: u32, mut data: &[u8]) -> Result {
    while !data.is_empty() {
        let n = ctx("write", p.write(fd, data).await)?;
        ensure(n > 0, || String::from("write: wrote nothing"))?;
        data = &data[n..];
    }
    Ok(())
}

async fn write_file(p: &mut Process, path: &str, data: &[u8]) -> Result {
    let fd = ctx(path, p.open(path, CREATE | open_flags::TRUNCATE).await)?;
    let r = write_all(p, fd, data).await;
    ctx("close", p.close(fd).await)?;
    r
}

async fn read_file(p: &mut Process, path: &str) -> Result<Vec<u8>> {
    let fd = ctx(path, p.open(path, open_flags::READ).await)?;
    let r = ctx("read", p.read_all(fd).await);
    ctx("close", p.close(fd).await)?;
    r
}

/// Spawns `utests child NAME ARG` with `fds`; its pid.
async fn child(p: &mut Process, name: &str, arg: &str, fds: [u32; 3]) -> Result<u32> {
    ctx(
        "spawn",
        p.spawn(SELF, &["utests", "child", name, arg], fds).await,
    )
}

/// Waits for `pids`; an error unless every one exited with status 0.
async fn join(p: &mut Process, pids: &[u32]) -> Result {
    let mut failed = Vec::new();
    for &pid in pids {
        let (_, status) = ctx("wait", p.wait(pid).await)?;
        if status != 0 {
            failed.push(format!("child {pid}: status {status}"));
        }
    }
    ensure(failed.is_empty(), || failed.join(", "))
}

const TESTS: &[&str] = &[
    "open",
    "truncate",
    "createwrite",
    "dirtest",
    "unlinkread",
    "linktest",
    "subdir",
    "bigwrite",
    "bigfile",
    "fourteen",
    "rmdot",
    "dirfile",
    "iref",
    "bigdir",
    "pipe1",
    "badargs",
    "sharedfd",
    "fourfiles",
    "createdelete",
    "concreate",
    "linkunlink",
    "manywrites",
];

/// Tests that fill the device: run only when named (`utests diskfull
/// outofinodes`), on a small image, since they write until `ENOSPC`.
const FILLING: &[&str] = &["diskfull", "outofinodes"];

/// Runs test `name` (one of [`TESTS`]).
async fn run_test(p: &mut Process, name: &str) -> Result {
    match name {
        "open" => open(p).await,
        "truncate" => truncate(p).await,
        "createwrite" => createwrite(p).await,
        "dirtest" => dirtest(p).await,
        "unlinkread" => unlinkread(p).await,
        "linktest" => linktest(p).await,
        "subdir" => subdir(p).await,
        "bigwrite" => bigwrite(p).await,
        "bigfile" => bigfile(p).await,
        "fourteen" => fourteen(p).await,
        "rmdot" => rmdot(p).await,
        "dirfile" => dirfile(p).await,
        "iref" => iref(p).await,
        "bigdir" => bigdir(p).await,
        "pipe1" => pipe1(p).await,
        "badargs" => badargs(p).await,
        "sharedfd" => sharedfd(p).await,
        "fourfiles" => fourfiles(p).await,
        "createdelete" => createdelete(p).await,
        "concreate" => concreate(p).await,
        "linkunlink" => linkunlink(p).await,
        "manywrites" => manywrites(p).await,
        "diskfull" => diskfull(p).await,
        "outofinodes" => outofinodes(p).await,
        other => Err(format!("no test '{other}'")),
    }
}

async fn open(p: &mut Process) -> Result {
    expect_err(
        "open missing",
        p.open("nofile", open_flags::READ).await,
        errno::ENOENT,
    )?;
    write_file(p, "f", b"hello").await?;
    ensure(read_file(p, "f").await? == b"hello", || {
        String::from("read back")
    })?;
    expect_err(
        "create exclusive",
        p.open("f", CREATE | open_flags::EXCLUSIVE).await,
        errno::EEXIST,
    )
}

async fn truncate(p: &mut Process) -> Result {
    write_file(p, "t", b"1234567").await?;
    let fd = ctx("open", p.open("t", RW | open_flags::TRUNCATE).await)?;
    let st = ctx("fstat", p.fstat(fd).await)?;
    ensure(st.size == 0, || format!("size {} after truncate", st.size))?;
    write_all(p, fd, b"abc").await?;
    ctx("close", p.close(fd).await)?;
    ensure(read_file(p, "t").await? == b"abc", || {
        String::from("contents")
    })?;
    // Truncating through one descriptor while another reads: it reads
    // the end of the file, not stale data.
    let reader = ctx("open", p.open("t", open_flags::READ).await)?;
    write_file(p, "t", b"").await?;
    let mut buf = [0u8; 8];
    let n = ctx("read", p.read(reader, &mut buf).await)?;
    ctx("close", p.close(reader).await)?;
    ensure(n == 0, || format!("read {n} bytes of a truncated file"))
}

async fn createwrite(p: &mut Process) -> Result {
    for i in 0..50u32 {
        write_file(p, &format!("c{i}"), &pattern(i, 100 + i as usize)).await?;
    }
    for i in 0..50u32 {
        let got = read_file(p, &format!("c{i}")).await?;
        ensure(got == pattern(i, 100 + i as usize), || {
            format!("c{i}: contents")
        })?;
        ctx("unlink", p.unlink(&format!("c{i}")).await)?;
    }
    expect_err("stat gone", p.stat("c0").await, errno::ENOENT)
}

async fn dirtest(p: &mut Process) -> Result {
    ctx("mkdir", p.mkdir("dd").await)?;
    ctx("chdir dd", p.chdir("dd").await)?;
    write_file(p, "inside", b"x").await?;
    ctx("chdir ..", p.chdir("..").await)?;
    ensure(read_file(p, "dd/inside").await? == b"x", || {
        String::from("dd/inside")
    })?;
    expect_err("rmdir non-empty", p.rmdir("dd").await, errno::ENOTEMPTY)?;
    ctx("unlink", p.unlink("dd/inside").await)?;
    ctx("rmdir", p.rmdir("dd").await)?;
    expect_err("rmdir again", p.rmdir("dd").await, errno::ENOENT)
}

async fn unlinkread(p: &mut Process) -> Result {
    write_file(p, "u", b"hello").await?;
    let fd = ctx("open", p.open("u", RW).await)?;
    ctx("unlink", p.unlink("u").await)?;
    // A new file by the same name is another file.
    write_file(p, "u", b"yyy").await?;
    let mut buf = [0u8; 5];
    let n = ctx("read", p.read(fd, &mut buf).await)?;
    ensure(n == 5 && &buf == b"hello", || {
        String::from("unlinked file's data")
    })?;
    write_all(p, fd, b"more").await?;
    ctx("close", p.close(fd).await)?;
    ensure(read_file(p, "u").await? == b"yyy", || {
        String::from("new file")
    })?;
    ctx("unlink", p.unlink("u").await)
}

async fn linktest(p: &mut Process) -> Result {
    write_file(p, "a", b"hello").await?;
    ctx("link", p.link("a", "b").await)?;
    ctx("unlink a", p.unlink("a").await)?;
    expect_err("open a", p.open("a", open_flags::READ).await, errno::ENOENT)?;
    ensure(read_file(p, "b").await? == b"hello", || String::from("b"))?;
    ctx("link back", p.link("b", "a").await)?;
    expect_err("link over", p.link("b", "a").await, errno::EEXIST)?;
    expect_err("link missing", p.link("nosuch", "c").await, errno::ENOENT)?;
    let st = ctx("stat", p.stat("a").await)?;
    ensure(st.nlink == 2, || format!("nlink {}", st.nlink))?;
    ctx("unlink", p.unlink("a").await)?;
    ctx("unlink", p.unlink("b").await)
}

async fn subdir(p: &mut Process) -> Result {
    ctx("mkdir dd", p.mkdir("dd").await)?;
    ctx("mkdir dd/dd", p.mkdir("dd/dd").await)?;
    write_file(p, "dd/dd/ff", b"ff").await?;
    ensure(read_file(p, "dd/dd/../dd/ff").await? == b"ff", || {
        String::from("through ..")
    })?;
    ensure(read_file(p, "./dd/./dd/ff").await? == b"ff", || {
        String::from("through .")
    })?;
    ctx("chdir", p.chdir("dd/dd").await)?;
    ensure(read_file(p, "../dd/ff").await? == b"ff", || {
        String::from("relative ..")
    })?;
    ctx("chdir back", p.chdir("../..").await)?;
    expect_err("unlink a dir", p.unlink("dd").await, errno::EISDIR)?;
    expect_err(
        "open dir for writing",
        p.open("dd", RW).await,
        errno::EISDIR,
    )?;
    expect_err("rmdir non-empty", p.rmdir("dd").await, errno::ENOTEMPTY)?;
    ctx("unlink", p.unlink("dd/dd/ff").await)?;
    ctx("rmdir", p.rmdir("dd/dd").await)?;
    ctx("rmdir", p.rmdir("dd").await)
}

async fn bigwrite(p: &mut Process) -> Result {
    // Single writes larger than the log holds (the write is split into
    // atomic pieces), in growing sizes.
    for size in [499usize, 12 * 4096 + 3, 200 * 1024, 700 * 1024] {
        let data = pattern(size as u32, size);
        write_file(p, "big", &data).await?;
        ensure(read_file(p, "big").await? == data, || {
            format!("{size} bytes")
        })?;
    }
    ctx("unlink", p.unlink("big").await)
}

async fn bigfile(p: &mut Process) -> Result {
    // Past the direct and the indirect blocks (12 + 1024 of 4 KiB) into
    // the double-indirect ones.
    const SIZE: usize = 4_400 * 1024 + 777;
    let data = pattern(77, SIZE);
    let fd = ctx("open", p.open("bf", CREATE | open_flags::TRUNCATE).await)?;
    for piece in data.chunks(16 * 1024) {
        write_all(p, fd, piece).await?;
    }
    ctx("close", p.close(fd).await)?;
    let st = ctx("stat", p.stat("bf").await)?;
    ensure(st.size == SIZE as u64, || format!("size {}", st.size))?;
    ensure(read_file(p, "bf").await? == data, || {
        String::from("contents")
    })?;
    // A read from the middle, through seek.
    let fd = ctx("open", p.open("bf", open_flags::READ).await)?;
    ctx("seek", p.seek(fd, 4_300 * 1024, 0).await)?;
    let mut buf = vec![0u8; 5000];
    let n = ctx("read", p.read(fd, &mut buf).await)?;
    ctx("close", p.close(fd).await)?;
    ensure(buf[..n] == data[4_300 * 1024..4_300 * 1024 + n], || {
        String::from("seek + read")
    })?;
    ctx("unlink", p.unlink("bf").await)
}

async fn fourteen(p: &mut Process) -> Result {
    ctx("mkdir 14", p.mkdir("12345678901234").await)?;
    write_file(p, "12345678901234/12345678901234", b"14").await?;
    ensure(
        read_file(p, "12345678901234/12345678901234").await? == b"14",
        || String::from("14-byte names"),
    )?;
    expect_err(
        "15-byte name",
        p.open("123456789012345", CREATE).await,
        errno::ENAMETOOLONG,
    )?;
    ctx("unlink", p.unlink("12345678901234/12345678901234").await)?;
    ctx("rmdir", p.rmdir("12345678901234").await)
}

async fn rmdot(p: &mut Process) -> Result {
    ctx("mkdir", p.mkdir("dots").await)?;
    ctx("chdir", p.chdir("dots").await)?;
    let dot = p.rmdir(".").await;
    let dotdot = p.rmdir("..").await;
    ctx("chdir back", p.chdir("..").await)?;
    ensure(dot.is_err(), || String::from("rmdir . succeeded"))?;
    ensure(dotdot.is_err(), || String::from("rmdir .. succeeded"))?;
    ensure(p.rmdir("dots/.").await.is_err(), || {
        String::from("rmdir dots/. succeeded")
    })?;
    ctx("rmdir", p.rmdir("dots").await)
}

async fn dirfile(p: &mut Process) -> Result {
    write_file(p, "df", b"file").await?;
    expect_err("mkdir under a file", p.mkdir("df/x").await, errno::ENOTDIR)?;
    expect_err(
        "create under a file",
        p.open("df/x", CREATE).await,
        errno::ENOTDIR,
    )?;
    expect_err(
        "unlink under a file",
        p.unlink("df/x").await,
        errno::ENOTDIR,
    )?;
    expect_err(
        "link under a file",
        p.link("df", "df/x").await,
        errno::ENOTDIR,
    )?;
    expect_err("chdir to a file", p.chdir("df").await, errno::ENOTDIR)?;
    ctx("unlink", p.unlink("df").await)
}

async fn iref(p: &mut Process) -> Result {
    // Inode references taken by a working directory, links and open
    // files are all given back.
    for i in 0..40 {
        ctx("mkdir", p.mkdir("irefd").await)?;
        ctx("chdir", p.chdir("irefd").await)?;
        write_file(p, "x", &[i as u8]).await?;
        ctx("link", p.link("x", "y").await)?;
        ctx("unlink", p.unlink("x").await)?;
        ctx("unlink", p.unlink("y").await)?;
        ctx("chdir", p.chdir("..").await)?;
        ctx("rmdir", p.rmdir("irefd").await)?;
    }
    Ok(())
}

async fn bigdir(p: &mut Process) -> Result {
    write_file(p, "target", b"t").await?;
    for i in 0..500 {
        ctx("link", p.link("target", &format!("x{i:03}")).await)?;
    }
    let names = ctx("list", p.list(".").await)?;
    ensure(names.len() >= 501, || {
        format!("{} entries listed", names.len())
    })?;
    for i in 0..500 {
        ctx("unlink", p.unlink(&format!("x{i:03}")).await)?;
    }
    let st = ctx("stat", p.stat("target").await)?;
    ensure(st.nlink == 1, || {
        format!("nlink {} after 500 unlinks", st.nlink)
    })?;
    ctx("unlink", p.unlink("target").await)
}

async fn pipe1(p: &mut Process) -> Result {
    // A child writes 1,033 numbered blocks down a pipe; the parent reads
    // them all, in order, and then end of file.
    let (r, w) = ctx("pipe", p.pipe().await)?;
    let pid = child(p, "pipewriter", "1033", [STDIN, w, STDERR]).await?;
    ctx("close write end", p.close(w).await)?;
    let got = ctx("read", p.read_all(r).await)?;
    ctx("close", p.close(r).await)?;
    join(p, &[pid]).await?;
    let want: Vec<u8> = (0..1033u32).flat_map(|i| pattern(i, 95)).collect();
    ensure(got.len() == want.len(), || {
        format!("{} of {} bytes", got.len(), want.len())
    })?;
    ensure(got == want, || String::from("the data came out different"))
}

async fn badargs(p: &mut Process) -> Result {
    let long = "x".repeat(600);
    expect_err(
        "a 600-byte path",
        p.open(&long, CREATE).await,
        errno::ENAMETOOLONG,
    )?;
    let mut buf = [0u8; 4];
    expect_err("read fd 60", p.read(60, &mut buf).await, errno::EBADF)?;
    expect_err("write fd 1000", p.write(1000, b"x").await, errno::EBADF)?;
    expect_err("close fd 59", p.close(59).await, errno::EBADF)?;
    expect_err("fstat fd 58", p.fstat(58).await, errno::EBADF)?;
    ctx("mkdir", p.mkdir("d").await)?;
    expect_err(
        "write a directory",
        p.open("d", open_flags::WRITE).await,
        errno::EISDIR,
    )?;
    expect_err("mkdir existing", p.mkdir("d").await, errno::EEXIST)?;
    expect_err(
        "spawn a missing program",
        p.spawn("/bin/nosuch", &["x"], [0, 1, 2]).await,
        errno::ENOENT,
    )?;
    expect_err("wait for nobody's child", p.wait(4000).await, ECHILD)?;
    ctx("rmdir", p.rmdir("d").await)
}

async fn sharedfd(p: &mut Process) -> Result {
    // Two children write through the same open file (its offset shared,
    // as after fork): nothing overwritten, every byte there.
    let fd = ctx("open", p.open("sf", CREATE | open_flags::TRUNCATE).await)?;
    let a = child(p, "sharedwriter", "a", [STDIN, fd, STDERR]).await?;
    let b = child(p, "sharedwriter", "b", [STDIN, fd, STDERR]).await?;
    ctx("close", p.close(fd).await)?;
    join(p, &[a, b]).await?;
    let data = read_file(p, "sf").await?;
    let (na, nb) = (
        data.iter().filter(|&&c| c == b'a').count(),
        data.iter().filter(|&&c| c == b'b').count(),
    );
    ensure(na == 1000 && nb == 1000 && data.len() == 2000, || {
        format!("{na} a's, {nb} b's in {} bytes", data.len())
    })?;
    ctx("unlink", p.unlink("sf").await)
}

async fn fourfiles(p: &mut Process) -> Result {
    let mut pids = Vec::new();
    for i in 0..4 {
        pids.push(child(p, "filewriter", &i.to_string(), [STDIN, STDOUT, STDERR]).await?);
    }
    join(p, &pids).await?;
    for i in 0..4u32 {
        let got = read_file(p, &format!("ff{i}")).await?;
        ensure(got == pattern(100 + i, 12 * 1024), || {
            format!("ff{i}: contents")
        })?;
        ctx("unlink", p.unlink(&format!("ff{i}")).await)?;
    }
    Ok(())
}

async fn createdelete(p: &mut Process) -> Result {
    let mut pids = Vec::new();
    for i in 0..4 {
        pids.push(child(p, "createdelete", &i.to_string(), [STDIN, STDOUT, STDERR]).await?);
    }
    join(p, &pids).await?;
    // Each child left the odd-numbered of its 20 files.
    for i in 0..4 {
        for j in 0..20 {
            let there = p.stat(&format!("cd{i}-{j}")).await.is_ok();
            ensure(there == (j % 2 == 1), || {
                format!("cd{i}-{j}: there {there}")
            })?;
            if there {
                ctx("unlink", p.unlink(&format!("cd{i}-{j}")).await)?;
            }
        }
    }
    Ok(())
}

async fn concreate(p: &mut Process) -> Result {
    // Three children race creating, linking and unlinking the same 30
    // names; whatever is left is whole.
    let mut pids = Vec::new();
    for i in 0..3 {
        pids.push(child(p, "concreate", &i.to_string(), [STDIN, STDOUT, STDERR]).await?);
    }
    join(p, &pids).await?;
    for j in 0..30 {
        let name = format!("cc{j}");
        if let Ok(data) = read_file(p, &name).await {
            ensure(
                data.len() == 64 && data.iter().all(|&c| c == data[0]),
                || format!("{name}: {} bytes, mixed", data.len()),
            )?;
            ctx("unlink", p.unlink(&name).await)?;
        }
    }
    Ok(())
}

async fn linkunlink(p: &mut Process) -> Result {
    let mut pids = Vec::new();
    for i in 0..2 {
        pids.push(child(p, "linkunlink", &i.to_string(), [STDIN, STDOUT, STDERR]).await?);
    }
    join(p, &pids).await?;
    for j in 0..5 {
        let _ = p.unlink(&format!("lu{j}")).await;
    }
    Ok(())
}

async fn manywrites(p: &mut Process) -> Result {
    let mut pids = Vec::new();
    for i in 0..4 {
        pids.push(child(p, "manywrites", &i.to_string(), [STDIN, STDOUT, STDERR]).await?);
    }
    join(p, &pids).await
}

/// What a child does (`utests child NAME ARG`); its status.
async fn run_child(p: &mut Process, name: &str, arg: &str) -> Result {
    let n: u32 = arg.parse().unwrap_or(0);
    match name {
        "pipewriter" => {
            for i in 0..n {
                write_all(p, STDOUT, &pattern(i, 95)).await?;
            }
            Ok(())
        }
        "sharedwriter" => {
            let byte = arg.as_bytes().first().copied().unwrap_or(b'?');
            for _ in 0..100 {
                write_all(p, STDOUT, &[byte; 10]).await?;
            }
            Ok(())
        }
        "filewriter" => write_file(p, &format!("ff{n}"), &pattern(100 + n, 12 * 1024)).await,
        "createdelete" => {
            for j in 0..20 {
                write_file(p, &format!("cd{n}-{j}"), &[j as u8; 10]).await?;
                if j % 2 == 0 {
                    ctx("unlink", p.unlink(&format!("cd{n}-{j}")).await)?;
                }
            }
            Ok(())
        }
        "concreate" => {
            for round in 0..60u32 {
                let j = (round * 7 + n * 11) % 30;
                let name = format!("cc{j}");
                match (round + n) % 3 {
                    0 => {
                        let _ = write_file(p, &name, &[b'a' + n as u8; 64]).await;
                    }
                    1 => {
                        let other = format!("cc{}", (j + 1) % 30);
                        let _ = p.link(&other, &name).await;
                    }
                    _ => {
                        let _ = p.unlink(&name).await;
                    }
                }
            }
            Ok(())
        }
        "linkunlink" => {
            let mut x = 1 + n;
            for _ in 0..200 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let name = format!("lu{}", (x >> 8) % 5);
                match x % 3 {
                    0 => {
                        let _ = write_file(p, &name, b"lu").await;
                    }
                    1 => {
                        let _ = p.link("lu0", &name).await;
                    }
                    _ => {
                        let _ = p.unlink(&name).await;
                    }
                }
            }
            Ok(())
        }
        "manywrites" => {
            ctx("mkdir", p.mkdir(&format!("mw{n}")).await)?;
            for round in 0..3u32 {
                for j in 0..5u32 {
                    let path = format!("mw{n}/f{j}");
                    let data = pattern(n * 100 + j + round, 16 * 1024);
                    write_file(p, &path, &data).await?;
                    ensure(read_file(p, &path).await? == data, || {
                        format!("{path}: contents")
                    })?;
                }
            }
            for j in 0..5 {
                ctx("unlink", p.unlink(&format!("mw{n}/f{j}")).await)?;
            }
            ctx("rmdir", p.rmdir(&format!("mw{n}")).await)
        }
        other => Err(format!("no child task '{other}'")),
    }
}

/// diskfull: 256 KiB files written until the device is full (`ENOSPC`),
/// a write past that refused too; everything written reads back, and
/// removing it gives the room back. A file cut short by `ENOSPC` is
/// removed with the rest.
async fn diskfull(p: &mut Process) -> Result {
    let piece = pattern(7, 256 * 1024);
    let mut files = 0u32;
    let mut full = false;
    while files < 4096 {
        let path = format!("full{files}");
        let fd = match p.open(&path, CREATE | open_flags::TRUNCATE).await {
            Ok(fd) => fd,
            Err(e) if e.code() == errno::ENOSPC => {
                full = true;
                break;
            }
            Err(e) => return Err(format!("create {path}: {e}")),
        };
        let mut data = &piece[..];
        let mut written = Ok(());
        while !data.is_empty() {
            match p.write(fd, data).await {
                Ok(0) => {
                    written = Err(String::from("write: wrote nothing"));
                    break;
                }
                Ok(n) => data = &data[n..],
                Err(e) => {
                    written = Err(format!("write {path}: {e}"));
                    if e.code() == errno::ENOSPC {
                        full = true;
                    }
                    break;
                }
            }
        }
        ctx("close", p.close(fd).await)?;
        if full {
            break;
        }
        written?;
        files += 1;
    }
    ensure(full && files > 0, || {
        format!("the device never filled ({files} files of 256 KiB written)")
    })?;
    // A block more is refused too (the file may be made: an inode is
    // not a data block).
    match p.open("more", CREATE).await {
        Ok(fd) => {
            let r = p.write(fd, &[1; 4096]).await;
            ctx("close", p.close(fd).await)?;
            expect_err("a block more", r, errno::ENOSPC)?;
        }
        Err(e) => expect_err("a block more", Err::<(), _>(e), errno::ENOSPC)?,
    }
    for i in 0..files {
        let back = read_file(p, &format!("full{i}")).await?;
        ensure(back == piece, || {
            format!("full{i} changed on a full device")
        })?;
    }
    let _ = p.unlink(&format!("full{files}")).await;
    let _ = p.unlink("more").await;
    for i in 0..files {
        ctx("unlink", p.unlink(&format!("full{i}")).await)?;
    }
    write_file(p, "after", &piece).await?;
    ensure(read_file(p, "after").await? == piece, || {
        String::from("after freeing: read back")
    })?;
    p.print(&format!(
        "utests: diskfull: {files} files of 256 KiB before ENOSPC\n"
    ))
    .await;
    Ok(())
}

/// outofinodes: empty files made until no inode is left (`ENOSPC`),
/// then removed, and making a file works again.
async fn outofinodes(p: &mut Process) -> Result {
    ctx("mkdir", p.mkdir("inodes").await)?;
    let mut made = 0u32;
    let mut out = false;
    while made < 100_000 {
        match p.open(&format!("inodes/i{made}"), CREATE).await {
            Ok(fd) => {
                ctx("close", p.close(fd).await)?;
                made += 1;
            }
            Err(e) if e.code() == errno::ENOSPC => {
                out = true;
                break;
            }
            Err(e) => return Err(format!("create inodes/i{made}: {e}")),
        }
    }
    ensure(out && made > 10, || {
        format!("inodes never ran out ({made} files made)")
    })?;
    for i in 0..made {
        ctx("unlink", p.unlink(&format!("inodes/i{i}")).await)?;
    }
    write_file(p, "inodes/again", b"x").await?;
    ctx("unlink", p.unlink("inodes/again").await)?;
    ctx("rmdir", p.rmdir("inodes").await)?;
    p.print(&format!(
        "utests: outofinodes: {made} files made before ENOSPC\n"
    ))
    .await;
    Ok(())
}

/// Removes what a test left in its directory, then the directory.
async fn clean(p: &mut Process, dir: &str) {
    if let Ok(entries) = p.list(dir).await {
        for entry in entries {
            if entry.name == "." || entry.name == ".." {
                continue;
            }
            let path = format!("{dir}/{}", entry.name);
            if let Err(e) = p.unlink(&path).await
                && e.code() == errno::EISDIR
            {
                Box::pin(clean(p, &path)).await;
            }
        }
    }
    let _ = p.rmdir(dir).await;
}

use alloc::boxed::Box;

async fn main(p: &mut Process, args: Vec<String>) -> u32 {
    if args.get(1).map(String::as_str) == Some("child") {
        let name = args.get(2).map(String::as_str).unwrap_or("");
        let arg = args.get(3).map(String::as_str).unwrap_or("");
        return match run_child(p, name, arg).await {
            Ok(()) => 0,
            Err(e) => {
                p.eprint(&format!("utests child {name} {arg}: {e}\n")).await;
                1
            }
        };
    }
    let chosen: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    if let Some(unknown) = chosen
        .iter()
        .find(|c| !TESTS.contains(c) && !FILLING.contains(c))
    {
        p.eprint(&format!(
            "utests: no test '{unknown}' (tests: {}; when named: {})\n",
            TESTS.join(" "),
            FILLING.join(" ")
        ))
        .await;
        return 2;
    }
    let (mut passed, mut failed) = (0, 0);
    for (index, name) in TESTS.iter().chain(FILLING).enumerate() {
        let filling = FILLING.contains(name);
        if (chosen.is_empty() && filling) || (!chosen.is_empty() && !chosen.contains(name)) {
            continue;
        }
        let dir = format!("/utests.{index}");
        clean(p, &dir).await;
        let outcome = match p.mkdir(&dir).await {
            Ok(()) => match p.chdir(&dir).await {
                Ok(()) => run_test(p, name).await,
                Err(e) => Err(format!("chdir {dir}: {e}")),
            },
            Err(e) => Err(format!("mkdir {dir}: {e}")),
        };
        let _ = p.chdir("/").await;
        clean(p, &dir).await;
        match outcome {
            Ok(()) => {
                passed += 1;
                p.print(&format!("utests: {name} ok\n")).await;
            }
            Err(e) => {
                failed += 1;
                p.print(&format!("utests: {name} FAILED: {e}\n")).await;
            }
        }
    }
    p.print(&format!("utests: {passed} passed, {failed} failed\n"))
        .await;
    u32::from(failed > 0)
}

rv6_ulib::program!(main);
