//! Crash consistency: a workload runs on a device that dies after its
//! k-th write, for every k the workload reaches. The device has a write
//! cache: writes since the last flush survive the crash all, none or a
//! random part of them. After each crash the image is mounted (which
//! replays the log and frees orphans), fsck must find it clean, and its
//! tree must be the one after some prefix of the operations: at least
//! every operation whose commit completed (acknowledged), at most those
//! begun, none half applied.

use std::collections::BTreeMap;

use rv6_fs::{
    Disk, Error, Fs, Kind, MemDisk, MkfsOptions, OpenFlags, Profile, ROOT, block_on, check,
};

/// A device with a volatile write cache that stops after `budget` writes.
struct CrashDisk {
    durable: MemDisk,
    /// Completed writes not yet flushed, in order.
    pending: Vec<(u32, Vec<u8>)>,
    budget: usize,
    writes: usize,
}

impl CrashDisk {
    fn new(image: MemDisk, budget: usize) -> CrashDisk {
        CrashDisk {
            durable: image,
            pending: Vec::new(),
            budget,
            writes: 0,
        }
    }

    /// What survives the crash: the durable image plus the pending
    /// writes `keep` selects.
    fn crash(mut self, mut keep: impl FnMut(usize) -> bool) -> MemDisk {
        let pending = std::mem::take(&mut self.pending);
        for (i, (block, data)) in pending.iter().enumerate() {
            if keep(i) {
                block_on(self.durable.write(&[(*block, data)])).unwrap();
            }
        }
        self.durable
    }
}

impl Disk for CrashDisk {
    fn blocks(&self) -> u64 {
        self.durable.blocks()
    }

    async fn read(&mut self, block: u32, buf: &mut [u8]) -> Result<(), Error> {
        if let Some((_, data)) = self.pending.iter().rev().find(|(b, _)| *b == block) {
            buf.copy_from_slice(data);
            return Ok(());
        }
        self.durable.read(block, buf).await
    }

    async fn write(&mut self, writes: &[(u32, &[u8])]) -> Result<(), Error> {
        for (block, data) in writes {
            if self.writes >= self.budget {
                return Err(Error::Io);
            }
            self.writes += 1;
            self.pending.push((*block, data.to_vec()));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.writes >= self.budget {
            return Err(Error::Io);
        }
        for (block, data) in std::mem::take(&mut self.pending) {
            self.durable.write(&[(block, &data)]).await?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// `open(O_CREAT)` and close.
    Create(String),
    /// `open` (no create), write, close.
    Write(String, u64, usize, u8),
    Mkdir(String),
    Unlink(String),
    Rmdir(String),
    Rename(String, String),
    Link(String, String),
    Truncate(String, u64),
}

async fn apply<D: Disk>(fs: &mut Fs<D>, op: &Op) -> Result<(), Error> {
    match op {
        Op::Create(path) => {
            let flags = OpenFlags {
                write: true,
                create: true,
                ..OpenFlags::default()
            };
            let inum = fs.open(ROOT, path, flags).await?;
            fs.release(inum).await
        }
        Op::Write(path, off, len, seed) => {
            let flags = OpenFlags {
                write: true,
                ..OpenFlags::default()
            };
            let inum = fs.open(ROOT, path, flags).await?;
            let data: Vec<u8> = (0..*len).map(|i| (i as u8).wrapping_add(*seed)).collect();
            let r = fs.write(inum, *off, &data).await;
            fs.release(inum).await?;
            r.map(|_| ())
        }
        Op::Mkdir(path) => fs.mkdir(ROOT, path).await,
        Op::Unlink(path) => fs.unlink(ROOT, path).await,
        Op::Rmdir(path) => fs.rmdir(ROOT, path).await,
        Op::Rename(a, b) => fs.rename(ROOT, a, b).await,
        Op::Link(a, b) => fs.link(ROOT, a, b).await,
        Op::Truncate(path, size) => {
            let flags = OpenFlags {
                write: true,
                ..OpenFlags::default()
            };
            let inum = fs.open(ROOT, path, flags).await?;
            let r = fs.truncate(inum, *size).await;
            fs.release(inum).await?;
            r
        }
    }
}

/// Every path in the tree with its kind, link count and contents.
type Tree = BTreeMap<String, (Kind, u16, Vec<u8>)>;

fn snapshot<D: Disk>(fs: &mut Fs<D>) -> Tree {
    let mut tree = BTreeMap::new();
    let mut stack = vec![(ROOT, String::new())];
    while let Some((dir, path)) = stack.pop() {
        for e in block_on(fs.list(dir)).unwrap() {
            if e.name == "." || e.name == ".." {
                continue;
            }
            let p = format!("{path}/{}", e.name);
            let stat = block_on(fs.stat(e.inum)).unwrap();
            let mut data = vec![0u8; stat.size as usize];
            if stat.kind == Kind::Dir {
                stack.push((e.inum, p.clone()));
                data.clear();
            } else {
                block_on(fs.read(e.inum, 0, &mut data)).unwrap();
            }
            tree.insert(p, (stat.kind, stat.nlink, data));
        }
    }
    tree
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn path(&mut self) -> String {
        let names = ["a", "b", "x", "y"];
        let depth = 1 + self.below(2);
        (0..depth)
            .map(|_| format!("/{}", names[self.below(4) as usize]))
            .collect()
    }
}

fn workload(seed: u64, n: usize) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut ops = Vec::new();
    for _ in 0..n {
        let op = match rng.below(10) {
            0..=3 => {
                let path = rng.path();
                ops.push(Op::Create(path.clone()));
                Op::Write(
                    path,
                    rng.below(9000),
                    1 + rng.below(9000) as usize,
                    rng.below(256) as u8,
                )
            }
            4 => Op::Mkdir(rng.path()),
            5 => Op::Unlink(rng.path()),
            6 => Op::Rmdir(rng.path()),
            7 => Op::Rename(rng.path(), rng.path()),
            8 => Op::Link(rng.path(), rng.path()),
            _ => Op::Truncate(rng.path(), rng.below(12000)),
        };
        ops.push(op);
    }
    ops
}

/// An image with a big file (freed by the workload's first operation,
/// in several transactions) and a directory.
fn base_image() -> MemDisk {
    let profile = Profile::Native;
    let blocks = 2048;
    let mut opts = MkfsOptions::for_blocks(profile, blocks);
    opts.log_blocks = 64;
    let disk = MemDisk::new(profile.block_size(), blocks as usize);
    let mut fs = block_on(Fs::format(disk, opts, 32)).unwrap();
    block_on(async {
        fs.mkdir(ROOT, "/a").await.unwrap();
        let flags = OpenFlags {
            write: true,
            create: true,
            ..OpenFlags::default()
        };
        let inum = fs.open(ROOT, "/big", flags).await.unwrap();
        let data = vec![7u8; 4096 * 300];
        fs.write(inum, 0, &data).await.unwrap();
        fs.release(inum).await.unwrap();
    });
    block_on(fs.unmount()).unwrap()
}

/// Operations per commit, in order (group commit of 1 to 3).
fn batches(n: usize) -> Vec<usize> {
    let mut rng = Rng(77);
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let b = (1 + rng.below(3) as usize).min(left);
        out.push(b);
        left -= b;
    }
    out
}

/// Runs the workload on `disk`; returns (acknowledged, begun) operation
/// counts when the device dies (or all of them).
fn run<D: Disk>(fs: &mut Fs<D>, ops: &[Op], batches: &[usize]) -> (usize, usize) {
    let mut acked = 0;
    let mut begun = 0;
    for &b in batches {
        for op in &ops[begun..begun + b] {
            begun += 1;
            if let Err(Error::Io) = block_on(apply(fs, op)) {
                return (acked, begun);
            }
        }
        if block_on(fs.commit()).is_err() {
            return (acked, begun);
        }
        acked = begun;
    }
    (acked, begun)
}

#[test]
fn every_crash_point_recovers_to_an_acknowledged_prefix() {
    let profile = Profile::Native;
    let mut ops = vec![Op::Unlink("/big".into())];
    ops.extend(workload(0xdead_beef_1234_5678, 120));
    let batches = batches(ops.len());
    let base = base_image();

    // The states after each prefix of the operations, on a perfect device.
    let mut states = Vec::new();
    let mut fs = block_on(Fs::mount(base.clone(), profile, 32)).unwrap();
    states.push(snapshot(&mut fs));
    for op in &ops {
        let _ = block_on(apply(&mut fs, op));
        states.push(snapshot(&mut fs));
    }
    // How many writes the whole workload makes.
    let total = {
        let mut fs = block_on(Fs::mount(
            CrashDisk::new(base.clone(), usize::MAX),
            profile,
            32,
        ))
        .unwrap();
        assert_eq!(run(&mut fs, &ops, &batches), (ops.len(), ops.len()));
        fs.into_disk().writes
    };
    assert!(
        total > 200,
        "the workload writes enough to be interesting: {total}"
    );

    let mut seed = 1u64;
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for k in 0..=total {
        for survivors in ["none", "all", "random"] {
            let disk = CrashDisk::new(base.clone(), k);
            let mut fs = block_on(Fs::mount(disk, profile, 32)).unwrap();
            let (acked, begun) = run(&mut fs, &ops, &batches);
            let crashed = fs.into_disk();
            let image = crashed.crash(|_| match survivors {
                "none" => false,
                "all" => true,
                _ => {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    seed >> 63 == 1
                }
            });
            let mut fs = block_on(Fs::mount(image, profile, 32))
                .unwrap_or_else(|e| panic!("k={k} {survivors}: mount after the crash: {e:?}"));
            let tree = snapshot(&mut fs);
            let mut disk = block_on(fs.unmount()).unwrap();
            let report = block_on(check(&mut disk, profile)).unwrap();
            assert!(
                report.clean(),
                "k={k} {survivors}: fsck {:#?}",
                report.problems
            );
            let matched = (acked..=begun).find(|&i| states[i] == tree);
            if matched.is_none() {
                let brief = |t: &Tree| -> Vec<String> {
                    t.iter()
                        .map(|(p, (k, n, d))| format!("{p} {k:?} {n} {}", d.len()))
                        .collect()
                };
                eprintln!("got: {:?}", brief(&tree));
                for (i, state) in states.iter().enumerate().take(begun + 1).skip(acked) {
                    eprintln!("state {i}: {:?}", brief(state));
                }
                eprintln!("ops: {:?}", &ops[..=begun.min(ops.len() - 1)]);
            }
            assert!(
                matched.is_some(),
                "k={k} {survivors}: the recovered tree is not the state after any of operations {acked}..={begun}"
            );
            *outcomes
                .entry(if matched == Some(acked) {
                    "acknowledged"
                } else {
                    "later"
                })
                .or_default() += 1;
        }
    }
    // Both outcomes happen: crashes between the commit point and the
    // acknowledgment keep the operation, earlier ones lose it.
    assert!(outcomes.len() == 2, "{outcomes:?}");
    eprintln!("{total} crash points x 3: {outcomes:?}");
}
