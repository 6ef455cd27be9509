//! The host cost of `Server::read_path` (what `Files::read_path` runs for
//! the HTTP server): a RAM disk holding a root with 25 files and
//! `/www/bytes/{64,1024,16384}`, then one path read 300,000 times from a
//! warm buffer cache. Prints the buffer-cache lookups one read takes and
//! the wall time per read.
//!
//! `cargo run --release -p rv6-fsd --example read_path_cost [PATH]`
//! (default `/www/bytes/64`).

use interfaces::rv6::{ROOT, open_flags};
use rv6_fs::{Fs, MemDisk, MkfsOptions, Profile, block_on};
use rv6_fsd::server::Server;

const OWNER: u32 = 7;
const READS: u32 = 300_000;

fn create(s: &mut Server<MemDisk>, path: &str, bytes: &[u8]) {
    let opened = block_on(s.open(OWNER, ROOT, path, open_flags::WRITE | open_flags::CREATE));
    assert_eq!(opened.errno, 0, "create {path}");
    let handle = opened.value as u32;
    block_on(s.write(OWNER, handle, 0, bytes)).expect("write");
    assert_eq!(block_on(s.close(OWNER, handle)).errno, 0);
}

fn main() {
    let profile = Profile::Native;
    let disk = MemDisk::new(profile.block_size(), 8192);
    let opts = MkfsOptions::for_blocks(profile, 8192);
    let mut s = Server::new(block_on(Fs::format(disk, opts, 512)).expect("format"));
    for i in 0..25 {
        create(&mut s, &format!("prog{i}"), &[1u8; 30_000]);
    }
    for dir in ["www", "www/bytes"] {
        assert_eq!(block_on(s.mkdir(OWNER, ROOT, dir)).errno, 0);
    }
    for n in [64usize, 1024, 16384] {
        create(&mut s, &format!("www/bytes/{n}"), &vec![b'x'; n]);
    }
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/www/bytes/64".into());
    let mut buf = vec![0u8; 16384];
    let hits = s.fs().cache_stats().hits;
    let (n, size) = block_on(s.read_path(OWNER, ROOT, &path, 0, &mut buf))
        .unwrap_or_else(|e| panic!("{path}: errno {e}"));
    assert_eq!(n as u64, size.min(16384));
    let lookups = s.fs().cache_stats().hits - hits;
    let start = std::time::Instant::now();
    for _ in 0..READS {
        block_on(s.read_path(OWNER, ROOT, &path, 0, &mut buf)).expect("read_path");
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(READS);
    println!("{path}: {n} bytes, {lookups} buffer-cache lookups, {ns:.0} ns per read_path");
}
