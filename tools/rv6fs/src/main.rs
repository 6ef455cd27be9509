//! `rv6fs`: makes, checks and reads rv6 file-system images on the host.
//!
//! ```text
//! rv6fs mkfs IMAGE [--size-mib N] [--fs-mib N] [--profile native|xv6]
//!                  [--inodes N] [--log-blocks N] [--from DIR] [HOST=PATH ...]
//! rv6fs fsck IMAGE [--replay]
//! rv6fs ls IMAGE [PATH]
//! rv6fs cat IMAGE PATH
//! ```
//!
//! `mkfs` writes a new file system over IMAGE (made, or grown, to
//! `--size-mib`; else IMAGE's size; the file system takes the first
//! `--fs-mib` of it, or all), copying in the tree under `--from`
//! and each HOST file to PATH. `fsck` finds the profile from the
//! superblock, prints every problem and exits 1 if there is one (2 if
//! the image is not a file system at all); `--replay` first replays a
//! committed log and frees orphans, as a mount does.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rv6_fs::{Disk, Error, Fs, Kind, MkfsOptions, OpenFlags, Profile, ROOT, block_on, check};

/// An image file as a block device.
struct FileDisk {
    file: File,
    block_size: usize,
    blocks: u64,
}

impl FileDisk {
    fn open(path: &Path, block_size: usize) -> std::io::Result<FileDisk> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let blocks = file.metadata()?.len() / block_size as u64;
        Ok(FileDisk {
            file,
            block_size,
            blocks,
        })
    }
}

impl Disk for FileDisk {
    fn blocks(&self) -> u64 {
        self.blocks
    }

    async fn read(&mut self, block: u32, buf: &mut [u8]) -> Result<(), Error> {
        self.file
            .read_exact_at(buf, block as u64 * self.block_size as u64)
            .map_err(|_| Error::Io)
    }

    async fn write(&mut self, writes: &[(u32, &[u8])]) -> Result<(), Error> {
        for (block, data) in writes {
            self.file
                .write_all_at(data, *block as u64 * self.block_size as u64)
                .map_err(|_| Error::Io)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.file.sync_data().map_err(|_| Error::Io)
    }
}

/// Which profile the image's superblock is in: the native magic at
/// byte 4096, else xv6's layout at byte 512.
fn detect(path: &Path) -> Result<Profile, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut word = [0u8; 4];
    if file.read_exact_at(&mut word, 4096).is_ok()
        && u32::from_le_bytes(word) == rv6_fs::layout::MAGIC
    {
        return Ok(Profile::Native);
    }
    Ok(Profile::Xv6)
}

const CACHE_BLOCKS: usize = 1024;

fn mount(path: &Path) -> Result<Fs<FileDisk>, String> {
    let profile = detect(path)?;
    let disk = FileDisk::open(path, profile.block_size())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    block_on(Fs::mount(disk, profile, CACHE_BLOCKS)).map_err(|e| {
        format!(
            "{}: not an rv6 file system ({profile:?} profile): {e}",
            path.display()
        )
    })
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: rv6fs mkfs IMAGE [--size-mib N] [--fs-mib N] [--profile native|xv6] [--inodes N] [--log-blocks N] [--from DIR] [HOST=PATH ...]\n       rv6fs fsck IMAGE [--replay]\n       rv6fs ls IMAGE [PATH]\n       rv6fs cat IMAGE PATH"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("mkfs") if args.len() >= 2 => mkfs(&args[1..]),
        Some("fsck") if args.len() >= 2 => return fsck(&args[1..]),
        Some("ls") if args.len() >= 2 => ls(&args[1], args.get(2).map_or("/", String::as_str)),
        Some("cat") if args.len() == 3 => cat(&args[1], &args[2]),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rv6fs: {message}");
            ExitCode::from(1)
        }
    }
}

fn number(value: Option<&String>, flag: &str) -> Result<u64, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag} needs a number"))
}

fn mkfs(args: &[String]) -> Result<(), String> {
    let image = PathBuf::from(&args[0]);
    let mut profile = Profile::Native;
    let mut size_mib = None;
    let mut fs_mib = None;
    let mut inodes = None;
    let mut log_blocks = None;
    let mut from = None;
    let mut puts = Vec::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--size-mib" => size_mib = Some(number(args.get(i + 1), "--size-mib")?),
            "--fs-mib" => fs_mib = Some(number(args.get(i + 1), "--fs-mib")?),
            "--inodes" => inodes = Some(number(args.get(i + 1), "--inodes")? as u32),
            "--log-blocks" => log_blocks = Some(number(args.get(i + 1), "--log-blocks")? as u32),
            "--from" => from = args.get(i + 1).map(PathBuf::from),
            "--profile" => {
                profile = match args.get(i + 1).map(String::as_str) {
                    Some("native") => Profile::Native,
                    Some("xv6") => Profile::Xv6,
                    _ => return Err("--profile is native or xv6".into()),
                }
            }
            put if put.contains('=') => {
                let (host, path) = put.split_once('=').unwrap_or_default();
                puts.push((PathBuf::from(host), path.to_string()));
                i += 1;
                continue;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 2;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&image)
        .map_err(|e| format!("{}: {e}", image.display()))?;
    if let Some(mib) = size_mib {
        file.set_len(mib << 20)
            .map_err(|e| format!("{}: {e}", image.display()))?;
    }
    drop(file);
    let disk = FileDisk::open(&image, profile.block_size())
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let mut blocks =
        u32::try_from(disk.blocks()).map_err(|_| "the image is too large".to_string())?;
    if let Some(mib) = fs_mib {
        let want = (mib << 20) / profile.block_size() as u64;
        if want > blocks as u64 {
            return Err(format!("--fs-mib {mib} is larger than the image"));
        }
        blocks = want as u32;
    }
    let mut opts = MkfsOptions::for_blocks(profile, blocks);
    if let Some(n) = inodes {
        opts.inodes = n;
    }
    if let Some(n) = log_blocks {
        opts.log_blocks = n;
    }
    let mut fs = block_on(Fs::format(disk, opts, CACHE_BLOCKS)).map_err(|e| {
        format!(
            "{}: cannot make a file system ({opts:?}): {e}",
            image.display()
        )
    })?;
    if let Some(dir) = from {
        copy_tree(&mut fs, &dir, "")?;
    }
    for (host, path) in puts {
        copy_file(&mut fs, &host, &path)?;
    }
    block_on(fs.unmount()).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok(())
}

fn copy_tree(fs: &mut Fs<FileDisk>, dir: &Path, at: &str) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| format!("{n:?}: not UTF-8"))?;
        let path = format!("{at}/{name}");
        let kind = entry.file_type().map_err(|e| format!("{path}: {e}"))?;
        if kind.is_dir() {
            block_on(fs.mkdir(ROOT, &path)).map_err(|e| format!("mkdir {path}: {e}"))?;
            copy_tree(fs, &entry.path(), &path)?;
        } else if kind.is_file() {
            copy_file(fs, &entry.path(), &path)?;
        }
    }
    Ok(())
}

fn copy_file(fs: &mut Fs<FileDisk>, host: &Path, path: &str) -> Result<(), String> {
    let data = std::fs::read(host).map_err(|e| format!("{}: {e}", host.display()))?;
    let flags = OpenFlags {
        write: true,
        create: true,
        truncate: true,
        ..OpenFlags::default()
    };
    block_on(async {
        let inum = fs.open(ROOT, path, flags).await?;
        let n = fs.write(inum, 0, &data).await;
        fs.release(inum).await?;
        match n {
            Ok(n) if n == data.len() => Ok(()),
            Ok(_) => Err(Error::NoSpace),
            Err(e) => Err(e),
        }
    })
    .map_err(|e| format!("{path}: {e}"))
}

fn fsck(args: &[String]) -> ExitCode {
    let image = PathBuf::from(&args[0]);
    let replay = args[1..].iter().any(|a| a == "--replay");
    let profile = match detect(&image) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rv6fs: {e}");
            return ExitCode::from(2);
        }
    };
    if replay {
        match mount(&image).and_then(|fs| block_on(fs.unmount()).map_err(|e| e.to_string())) {
            Ok(_) => {}
            Err(e) => {
                eprintln!("rv6fs: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut disk = match FileDisk::open(&image, profile.block_size()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rv6fs: {}: {e}", image.display());
            return ExitCode::from(2);
        }
    };
    match block_on(check(&mut disk, profile)) {
        Err(e) => {
            eprintln!(
                "rv6fs: {}: not an rv6 file system ({profile:?} profile): {e}",
                image.display()
            );
            ExitCode::from(2)
        }
        Ok(report) => {
            for problem in &report.problems {
                println!("{problem}");
            }
            if report.log_blocks > 0 {
                println!(
                    "log: a committed transaction of {} blocks (checked as the next mount installs it)",
                    report.log_blocks
                );
            }
            println!(
                "{}: {profile:?} profile, {} files, {} directories, {} devices, {} data blocks used, {} free: {}",
                image.display(),
                report.files,
                report.dirs,
                report.devices,
                report.used_blocks,
                report.free_blocks,
                if report.clean() { "clean" } else { "PROBLEMS" }
            );
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn ls(image: &str, path: &str) -> Result<(), String> {
    let mut fs = mount(Path::new(image))?;
    let dir = block_on(fs.lookup(ROOT, path)).map_err(|e| format!("{path}: {e}"))?;
    let entries = block_on(fs.list(dir)).map_err(|e| format!("{path}: {e}"))?;
    for e in entries {
        let s = block_on(fs.stat(e.inum)).map_err(|err| format!("{}: {err}", e.name))?;
        let kind = match s.kind {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Device => "dev",
        };
        println!(
            "{kind:4} {:5} {:3} {:10} {}",
            s.inum, s.nlink, s.size, e.name
        );
    }
    Ok(())
}

fn cat(image: &str, path: &str) -> Result<(), String> {
    use std::io::Write;
    let mut fs = mount(Path::new(image))?;
    let inum = block_on(fs.lookup(ROOT, path)).map_err(|e| format!("{path}: {e}"))?;
    let size = block_on(fs.stat(inum))
        .map_err(|e| format!("{path}: {e}"))?
        .size;
    let mut data = vec![0u8; size as usize];
    block_on(fs.read(inum, 0, &mut data)).map_err(|e| format!("{path}: {e}"))?;
    std::io::stdout()
        .write_all(&data)
        .map_err(|e| e.to_string())
}
