//! Differential test: random operations applied to the file system and
//! to a model of POSIX semantics in memory; after each step the results
//! (success or the same error) and the whole tree (names, kinds, link
//! counts, contents) must agree, and every few hundred steps the image is
//! unmounted, checked with fsck and mounted again.

use std::collections::BTreeMap;

use rv6_fs::{Error, Fs, Kind, MemDisk, MkfsOptions, OpenFlags, Profile, ROOT, block_on, check};

#[derive(Clone, Debug)]
enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, u32>),
}

/// The model: nodes by id (1 = root), each directory's entries, and the
/// parent of each directory.
struct Model {
    nodes: BTreeMap<u32, Node>,
    parent: BTreeMap<u32, u32>,
    next: u32,
    max_size: u64,
}

type R<T> = Result<T, Error>;

impl Model {
    fn new(max_size: u64) -> Model {
        let mut nodes = BTreeMap::new();
        nodes.insert(1, Node::Dir(BTreeMap::new()));
        let mut parent = BTreeMap::new();
        parent.insert(1, 1);
        Model {
            nodes,
            parent,
            next: 2,
            max_size,
        }
    }

    fn dir(&self, id: u32) -> R<&BTreeMap<String, u32>> {
        match &self.nodes[&id] {
            Node::Dir(entries) => Ok(entries),
            Node::File(_) => Err(Error::NotDir),
        }
    }

    fn child(&self, dir: u32, name: &str) -> R<Option<u32>> {
        let entries = self.dir(dir)?;
        Ok(match name {
            "." => Some(dir),
            ".." => Some(self.parent[&dir]),
            _ => entries.get(name).copied(),
        })
    }

    /// (directory, last component) as the file system's walk does.
    fn walk_parent<'p>(&self, path: &'p str) -> R<(u32, Option<&'p str>)> {
        let mut dir = 1;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                self.dir(dir)?;
                return Ok((dir, Some(part)));
            }
            dir = self.child(dir, part)?.ok_or(Error::NotFound)?;
        }
        Ok((dir, None))
    }

    fn lookup(&self, path: &str) -> R<u32> {
        match self.walk_parent(path)? {
            (dir, None) => Ok(dir),
            (dir, Some(name)) => self.child(dir, name)?.ok_or(Error::NotFound),
        }
    }

    fn is_dir(&self, id: u32) -> bool {
        matches!(self.nodes[&id], Node::Dir(_))
    }

    fn links(&self, id: u32) -> usize {
        let mut n = 0;
        for (did, node) in &self.nodes {
            if let Node::Dir(entries) = node {
                n += entries.values().filter(|&&v| v == id).count();
                if self.parent[did] == id {
                    n += 1; // its `..`
                }
            }
        }
        n
    }

    fn gc(&mut self) {
        let dead: Vec<u32> = self
            .nodes
            .keys()
            .copied()
            .filter(|&id| id != 1 && self.links(id) == 0)
            .collect();
        for id in dead {
            self.nodes.remove(&id);
            self.parent.remove(&id);
        }
    }

    fn entries_mut(&mut self, dir: u32) -> &mut BTreeMap<String, u32> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir(entries)) => entries,
            _ => panic!("model: {dir} is not a directory"),
        }
    }

    fn write(&mut self, path: &str, off: u64, data: &[u8]) -> R<()> {
        let (dir, name) = self.walk_parent(path)?;
        let id = match name {
            None => dir,
            Some(name) => match self.child(dir, name)? {
                Some(id) => id,
                None => {
                    let id = self.next;
                    self.next += 1;
                    self.nodes.insert(id, Node::File(Vec::new()));
                    self.entries_mut(dir).insert(name.to_string(), id);
                    id
                }
            },
        };
        let max = self.max_size;
        match self.nodes.get_mut(&id) {
            Some(Node::File(bytes)) => {
                if off + data.len() as u64 > max {
                    return Err(Error::TooBig);
                }
                let end = off as usize + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[off as usize..end].copy_from_slice(data);
                Ok(())
            }
            _ => Err(Error::IsDir),
        }
    }

    fn truncate(&mut self, path: &str, size: u64) -> R<()> {
        let id = self.lookup(path)?;
        match self.nodes.get_mut(&id) {
            Some(Node::File(bytes)) => {
                bytes.resize(size as usize, 0);
                Ok(())
            }
            _ => Err(Error::IsDir),
        }
    }

    fn mkdir(&mut self, path: &str) -> R<()> {
        let (dir, name) = self.walk_parent(path)?;
        let name = name.ok_or(Error::Exists)?;
        if self.child(dir, name)?.is_some() {
            return Err(Error::Exists);
        }
        let id = self.next;
        self.next += 1;
        self.nodes.insert(id, Node::Dir(BTreeMap::new()));
        self.parent.insert(id, dir);
        self.entries_mut(dir).insert(name.to_string(), id);
        Ok(())
    }

    fn remove(&mut self, path: &str, want_dir: bool) -> R<()> {
        let (dir, name) = self.walk_parent(path)?;
        let name = name.ok_or(Error::NotPermitted)?;
        match name {
            "." => return Err(Error::Invalid),
            ".." => {
                return Err(if want_dir {
                    Error::NotEmpty
                } else {
                    Error::IsDir
                });
            }
            _ => {}
        }
        let id = self.child(dir, name)?.ok_or(Error::NotFound)?;
        match (want_dir, self.is_dir(id)) {
            (true, false) => return Err(Error::NotDir),
            (false, true) => return Err(Error::IsDir),
            _ => {}
        }
        if want_dir && !self.dir(id)?.is_empty() {
            return Err(Error::NotEmpty);
        }
        self.entries_mut(dir).remove(name);
        self.gc();
        Ok(())
    }

    fn link(&mut self, old: &str, new: &str) -> R<()> {
        let id = self.lookup(old)?;
        if self.is_dir(id) {
            return Err(Error::NotPermitted);
        }
        let (dir, name) = self.walk_parent(new)?;
        let name = name.ok_or(Error::Exists)?;
        if self.child(dir, name)?.is_some() {
            return Err(Error::Exists);
        }
        self.entries_mut(dir).insert(name.to_string(), id);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> R<()> {
        let (fdir, fname) = self.walk_parent(from)?;
        let (tdir, tname) = self.walk_parent(to)?;
        let (Some(fname), Some(tname)) = (fname, tname) else {
            return Err(Error::Invalid);
        };
        if [fname, tname].iter().any(|n| *n == "." || *n == "..") {
            return Err(Error::Invalid);
        }
        let src = self.child(fdir, fname)?.ok_or(Error::NotFound)?;
        let dst = self.child(tdir, tname)?;
        if let Some(dst) = dst {
            if dst == src {
                return Ok(());
            }
            match (self.is_dir(src), self.is_dir(dst)) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) if !self.dir(dst)?.is_empty() => return Err(Error::NotEmpty),
                _ => {}
            }
        }
        if self.is_dir(src) && tdir != fdir {
            let mut d = tdir;
            loop {
                if d == src {
                    return Err(Error::Invalid);
                }
                if d == 1 {
                    break;
                }
                d = self.parent[&d];
            }
        }
        self.entries_mut(tdir).insert(tname.to_string(), src);
        self.entries_mut(fdir).remove(fname);
        if self.is_dir(src) {
            self.parent.insert(src, tdir);
        }
        self.gc();
        Ok(())
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A path of directories named a, b or c (now and then `.` or
    /// `..`), ending in a directory name or, with `file`, mostly in a
    /// file name (x, y, z).
    fn path(&mut self, file: bool) -> String {
        const DIRS: [&str; 5] = ["a", "b", "c", ".", ".."];
        const FILES: [&str; 3] = ["x", "y", "z"];
        let depth = match self.below(20) {
            0..=7 => 1,
            8..=15 => 2,
            _ => 3,
        };
        let mut path = String::new();
        for level in 0..depth {
            path.push('/');
            if level + 1 == depth && file && self.below(8) != 0 {
                path.push_str(FILES[self.below(3) as usize]);
            } else {
                let i = if self.below(12) == 0 {
                    3 + self.below(2)
                } else {
                    self.below(3)
                };
                path.push_str(DIRS[i as usize]);
            }
        }
        path
    }
}

/// Walks the file system's tree and the model's side by side.
fn compare(fs: &mut Fs<MemDisk>, model: &Model, step: usize) {
    let mut stack = vec![(ROOT, 1u32, String::from("/"))];
    while let Some((inum, id, path)) = stack.pop() {
        let stat = block_on(fs.stat(inum)).unwrap();
        assert_eq!(
            stat.nlink as usize,
            model.links(id),
            "step {step}: link count of {path}"
        );
        match &model.nodes[&id] {
            Node::File(bytes) => {
                assert_eq!(stat.kind, Kind::File, "step {step}: {path}");
                assert_eq!(stat.size, bytes.len() as u64, "step {step}: size of {path}");
                let mut buf = vec![0u8; bytes.len()];
                assert_eq!(block_on(fs.read(inum, 0, &mut buf)).unwrap(), bytes.len());
                assert!(buf == *bytes, "step {step}: contents of {path}");
            }
            Node::Dir(entries) => {
                assert_eq!(stat.kind, Kind::Dir, "step {step}: {path}");
                let listed = block_on(fs.list(inum)).unwrap();
                let names: Vec<&str> = listed
                    .iter()
                    .map(|e| e.name.as_str())
                    .filter(|n| *n != "." && *n != "..")
                    .collect();
                let want: Vec<&str> = entries.keys().map(String::as_str).collect();
                let mut sorted = names.clone();
                sorted.sort();
                assert_eq!(sorted, want, "step {step}: entries of {path}");
                for e in listed {
                    if e.name == "." || e.name == ".." {
                        continue;
                    }
                    stack.push((e.inum, entries[&e.name], format!("{path}{}/", e.name)));
                }
            }
        }
    }
}

fn remount(fs: Fs<MemDisk>, profile: Profile, step: usize) -> Fs<MemDisk> {
    let mut disk = block_on(fs.unmount()).unwrap();
    let report = block_on(check(&mut disk, profile)).unwrap();
    assert!(report.clean(), "step {step}: fsck {:#?}", report.problems);
    block_on(Fs::mount(disk, profile, 32)).unwrap()
}

fn run(profile: Profile, blocks: u32, steps: usize, seed: u64, max_write: u64) {
    let disk = MemDisk::new(profile.block_size(), blocks as usize);
    let mut fs = block_on(Fs::format(
        disk,
        MkfsOptions::for_blocks(profile, blocks),
        32,
    ))
    .unwrap();
    let mut model = Model::new(profile.max_file_size());
    let mut rng = Rng(seed);
    let mut counts = BTreeMap::<&str, (u32, u32)>::new();
    let wflags = OpenFlags {
        write: true,
        create: true,
        ..OpenFlags::default()
    };
    for step in 0..steps {
        let (name, got, want) = match rng.below(20) {
            0..=5 => {
                let path = rng.path(true);
                let off = rng.below(max_write);
                let len = rng.below(max_write) as usize;
                let seed = rng.next() as u8;
                let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
                let got = block_on(async {
                    let inum = fs.open(ROOT, &path, wflags).await?;
                    let r = fs.write(inum, off, &data).await;
                    fs.release(inum).await?;
                    r.map(|n| assert_eq!(n, data.len()))
                });
                ("write", got, model.write(&path, off, &data))
            }
            6..=7 => {
                let path = rng.path(true);
                let size = rng.below(max_write * 2);
                let got = block_on(async {
                    let flags = OpenFlags {
                        write: true,
                        ..OpenFlags::default()
                    };
                    let inum = fs.open(ROOT, &path, flags).await?;
                    let r = fs.truncate(inum, size).await;
                    fs.release(inum).await?;
                    r
                });
                ("truncate", got, model.truncate(&path, size))
            }
            8..=10 => {
                let path = rng.path(false);
                ("mkdir", block_on(fs.mkdir(ROOT, &path)), model.mkdir(&path))
            }
            11..=12 => {
                let path = rng.path(false);
                (
                    "rmdir",
                    block_on(fs.rmdir(ROOT, &path)),
                    model.remove(&path, true),
                )
            }
            13..=14 => {
                let path = rng.path(true);
                (
                    "unlink",
                    block_on(fs.unlink(ROOT, &path)),
                    model.remove(&path, false),
                )
            }
            15 => {
                let (a, b) = (rng.path(true), rng.path(true));
                ("link", block_on(fs.link(ROOT, &a, &b)), model.link(&a, &b))
            }
            16..=17 => {
                let file = rng.below(2) == 0;
                let (a, b) = (rng.path(file), rng.path(file));
                (
                    "rename",
                    block_on(fs.rename(ROOT, &a, &b)),
                    model.rename(&a, &b),
                )
            }
            18 => {
                // Unlink while open: the data stays readable until closed.
                let path = rng.path(true);
                let before = model.lookup(&path).map(|id| match &model.nodes[&id] {
                    Node::File(bytes) => Some(bytes.clone()),
                    Node::Dir(_) => None,
                });
                let got = block_on(async {
                    let inum = fs.open(ROOT, &path, OpenFlags::default()).await?;
                    let r = async {
                        let size = fs.stat(inum).await?.size as usize;
                        fs.unlink(ROOT, &path).await?;
                        let mut buf = vec![0u8; size];
                        fs.read(inum, 0, &mut buf).await?;
                        Ok(buf)
                    }
                    .await;
                    fs.release(inum).await?;
                    r
                });
                let model_result = before.clone().and_then(|_| model.remove(&path, false));
                if let (Ok(bytes), Ok(Some(expected))) = (&got, &before) {
                    assert!(bytes == expected, "step {step}: contents read after unlink");
                }
                ("open-unlink", got.map(|_| ()), model_result)
            }
            _ => {
                fs = remount(fs, profile, step);
                ("remount", Ok(()), Ok(()))
            }
        };
        assert_eq!(got, want, "step {step}: {name}");
        let c = counts.entry(name).or_default();
        if got.is_ok() {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
        compare(&mut fs, &model, step);
    }
    remount(fs, profile, steps);
    // The workload did reach every operation's success and error paths.
    for (name, (ok, err)) in &counts {
        assert!(*ok > 0, "{name} never succeeded: {counts:?}");
        if *name != "remount" {
            assert!(*err > 0, "{name} never failed: {counts:?}");
        }
    }
    eprintln!("{profile:?}: {counts:?}");
}

#[test]
fn ten_thousand_random_operations_match_the_model_native() {
    run(Profile::Native, 8192, 10_000, 0x9e37_79b9_7f4a_7c15, 24_000);
}

#[test]
fn random_operations_match_the_model_xv6_profile() {
    // 512-byte blocks and a 29-block log: large writes are split into
    // several transactions.
    run(Profile::Xv6, 16_384, 3_000, 0x1234_5678_9abc_def1, 12_000);
}
