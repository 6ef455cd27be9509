//! Compatibility with xv6-public's format: an image written by rv6's
//! file system in the xv6 profile is read back, tree and contents, by an
//! independent reader (the PyPI package `xv6-filesystem-reader` 0.2.0,
//! which `make setup` installs into `build/pylib`).
//!
//! Without the package the test says so and passes, unless
//! `RV6_REQUIRE_XV6READER` is set (as `make test` sets it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use rv6_fs::{Fs, MemDisk, MkfsOptions, OpenFlags, Profile, ROOT, block_on, check};

fn pylib() -> Option<PathBuf> {
    let dir = std::env::var_os("RV6_PYLIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/pylib"));
    dir.join("reader.py").exists().then_some(dir)
}

const SCRIPT: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import reader
disc = reader.DiscImage(sys.argv[2])
def walk(d, path):
    for f in d.files:
        p = path + "/" + f.name
        if f.inode.is_dir():
            print(p, "dir")
            walk(f, p)
        else:
            print(p, f.read().hex())
walk(disc.inodes.root_inode.to_file("/"), "")
"#;

#[test]
fn the_xv6_reader_reads_what_rv6_writes() {
    let Some(lib) = pylib() else {
        assert!(
            std::env::var_os("RV6_REQUIRE_XV6READER").is_none(),
            "xv6-filesystem-reader is not installed in build/pylib (make setup installs it)"
        );
        eprintln!("skipped: xv6-filesystem-reader is not installed (make setup installs it)");
        return;
    };
    let profile = Profile::Xv6;
    let blocks = 4096;
    let disk = MemDisk::new(profile.block_size(), blocks);
    let mut fs = block_on(Fs::format(
        disk,
        MkfsOptions::for_blocks(profile, blocks as u32),
        64,
    ))
    .unwrap();
    let mut want = BTreeMap::new();
    let create = OpenFlags {
        write: true,
        create: true,
        ..OpenFlags::default()
    };
    block_on(async {
        fs.mkdir(ROOT, "/dir").await.unwrap();
        fs.mkdir(ROOT, "/dir/nested").await.unwrap();
        let files: [(&str, usize); 5] = [
            ("/small", 5),
            ("/dir/twelve", 12 * 512),
            // Past the 12 direct blocks: the indirect block.
            ("/dir/nested/indirect", 60_000),
            ("/fourteen-bytes", 700),
            ("/gone", 100),
        ];
        for (i, (path, len)) in files.iter().enumerate() {
            let data: Vec<u8> = (0..*len).map(|j| (j * 7 + i) as u8).collect();
            let inum = fs.open(ROOT, path, create).await.unwrap();
            fs.write(inum, 0, &data).await.unwrap();
            fs.release(inum).await.unwrap();
            want.insert(
                path.to_string(),
                data.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            );
        }
        // A freed entry the reader must skip, and a second name.
        fs.unlink(ROOT, "/gone").await.unwrap();
        want.remove("/gone");
        fs.link(ROOT, "/small", "/dir/also-small").await.unwrap();
        want.insert("/dir/also-small".into(), want["/small"].clone());
    });
    want.insert("/dir".into(), "dir".into());
    want.insert("/dir/nested".into(), "dir".into());
    let mut disk = block_on(fs.unmount()).unwrap();
    assert!(block_on(check(&mut disk, profile)).unwrap().clean());
    let image = std::env::temp_dir().join(format!("rv6-xv6-{}.img", std::process::id()));
    std::fs::write(&image, disk.bytes()).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&lib)
        .arg(&image)
        .output()
        .expect("run python3");
    let _ = std::fs::remove_file(&image);
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (p, v) = l.split_once(' ').unwrap();
            (p.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, value) in &want {
        assert!(
            got[path] == *value,
            "{path}: the reader sees different contents"
        );
    }
}
