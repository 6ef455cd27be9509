//! The archive `pack` writes, read back with kcore's parsers and checked
//! with sha2 and ed25519-dalek directly (independently of the loader).

use std::path::{Path, PathBuf};
use std::process::Command;

use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use kcore::cpio::Archive;
use kcore::manifest::Manifest;
use sha2::{Digest, Sha256};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pack-format-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn public_key(path: &Path) -> VerifyingKey {
    let bytes: [u8; 32] = std::fs::read(path).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&bytes).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn archive_parses_and_verifies_with_kcore_and_dalek() {
    let dir = temp("verify");
    let first = b"first image".to_vec();
    let second: Vec<u8> = (0..5003u32).map(|i| (i * 31) as u8).collect();
    std::fs::write(dir.join("a.bin"), &first).unwrap();
    std::fs::write(dir.join("b.bin"), &second).unwrap();
    let (key, public, out) = (
        dir.join("keys/new/k"),
        dir.join("pub/k.pub"),
        dir.join("out/boot.cpio"),
    );
    let images = vec![
        ("zeta".to_string(), dir.join("a.bin")),
        ("alpha".to_string(), dir.join("b.bin")),
    ];
    let summaries = pack::pack(&key, &public, &out, &images).unwrap();
    let expected = [("zeta", &first), ("alpha", &second)];
    assert_eq!(summaries.len(), 2);
    for (summary, (name, data)) in summaries.iter().zip(expected) {
        assert_eq!(summary.name, name);
        assert_eq!(summary.size, data.len() as u64);
        assert_eq!(summary.sha256, <[u8; 32]>::from(Sha256::digest(data)));
    }

    // The key file: 32 bytes, private, and the public file is its half.
    let seed: [u8; 32] = std::fs::read(&key).unwrap().try_into().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let verifying = public_key(&public);
    assert_eq!(SigningKey::from_bytes(&seed).verifying_key(), verifying);

    // The archive, in order, with regular-file modes.
    let bytes = std::fs::read(&out).unwrap();
    let archive = Archive::parse(&bytes).unwrap();
    let names: Vec<&str> = archive.entries().map(|e| e.name).collect();
    assert_eq!(names, ["manifest", "manifest.sig", "zeta.elf", "alpha.elf"]);
    assert!(archive.entries().all(|e| e.mode == 0o100644));
    assert_eq!(archive.find("zeta.elf"), Some(&first[..]));
    assert_eq!(archive.find("alpha.elf"), Some(&second[..]));

    // The manifest: exact text, and what kcore reads from it.
    let text = archive.find("manifest").unwrap();
    let expected_text = format!(
        "domain-manifest v1\nimage zeta {} {}\nimage alpha {} {}\n",
        first.len(),
        hex(&Sha256::digest(&first)),
        second.len(),
        hex(&Sha256::digest(&second)),
    );
    assert_eq!(std::str::from_utf8(text).unwrap(), expected_text);
    let manifest = Manifest::parse(text).unwrap();
    let listed: Vec<_> = manifest.images().map(|i| i.name).collect();
    assert_eq!(listed, ["zeta", "alpha"]);
    for (name, data) in expected {
        let image = manifest.find(name).unwrap();
        assert_eq!(image.size, data.len() as u64);
        assert_eq!(image.sha256, <[u8; 32]>::from(Sha256::digest(data)));
        let file = archive.find(&format!("{name}.elf")).unwrap();
        assert_eq!(image.sha256, <[u8; 32]>::from(Sha256::digest(file)));
    }

    // The signature: valid over the exact bytes, and over nothing else.
    let signature: [u8; 64] = archive.find("manifest.sig").unwrap().try_into().unwrap();
    let signature = Signature::from_bytes(&signature);
    verifying.verify_strict(text, &signature).unwrap();
    verifying.verify(text, &signature).unwrap();
    for at in [0, text.len() / 2, text.len() - 2] {
        let mut forged = text.to_vec();
        forged[at] ^= 0x01;
        assert!(
            verifying.verify_strict(&forged, &signature).is_err(),
            "byte {at}"
        );
    }
    let mut longer = text.to_vec();
    longer.extend_from_slice(b"image evil 1 ");
    assert!(verifying.verify_strict(&longer, &signature).is_err());
}

#[test]
fn the_key_is_reused_and_the_public_file_follows_it() {
    let dir = temp("reuse");
    std::fs::write(dir.join("a.bin"), b"x").unwrap();
    let images = [("a".to_string(), dir.join("a.bin"))];
    let (key, public) = (dir.join("k"), dir.join("k.pub"));
    pack::pack(&key, &public, &dir.join("1.cpio"), &images).unwrap();
    let seed = std::fs::read(&key).unwrap();
    let first = std::fs::read(&public).unwrap();
    assert_eq!(first.len(), 32);
    // A second run: the same key and public key, and the same archive.
    pack::pack(&key, &public, &dir.join("2.cpio"), &images).unwrap();
    assert_eq!(std::fs::read(&key).unwrap(), seed);
    assert_eq!(std::fs::read(&public).unwrap(), first);
    assert_eq!(
        std::fs::read(dir.join("1.cpio")).unwrap(),
        std::fs::read(dir.join("2.cpio")).unwrap()
    );
    // A damaged or missing public file is rewritten from the key.
    std::fs::write(&public, b"junk").unwrap();
    pack::pack(&key, &public, &dir.join("3.cpio"), &images).unwrap();
    assert_eq!(std::fs::read(&public).unwrap(), first);
    std::fs::remove_file(&public).unwrap();
    pack::pack(&key, &public, &dir.join("3.cpio"), &images).unwrap();
    assert_eq!(std::fs::read(&public).unwrap(), first);
    // Another key file: another key.
    let (other, other_public) = (dir.join("k2"), dir.join("k2.pub"));
    pack::pack(&other, &other_public, &dir.join("4.cpio"), &images).unwrap();
    assert_ne!(std::fs::read(&other_public).unwrap(), first);
    // A key of the wrong length is refused, whatever its length.
    for len in [0, 31, 33, 64] {
        std::fs::write(dir.join("bad.key"), vec![7u8; len]).unwrap();
        let err =
            pack::pack(&dir.join("bad.key"), &public, &dir.join("5.cpio"), &images).unwrap_err();
        assert!(err.contains("32 bytes") && err.contains("bad.key"), "{err}");
    }
}

#[test]
fn bad_names_are_refused_and_nothing_is_written() {
    let dir = temp("names");
    std::fs::write(dir.join("a.bin"), b"x").unwrap();
    let (key, public, out) = (dir.join("k"), dir.join("k.pub"), dir.join("o.cpio"));
    for name in [
        "",
        "Upper",
        "9lives",
        "-dash",
        "has space",
        "dot.elf",
        "a/b",
        "ünï",
        &"a".repeat(33),
    ] {
        let err = pack::pack(&key, &public, &out, &[(name.into(), dir.join("a.bin"))]).unwrap_err();
        assert!(err.contains("bad image name"), "{name}: {err}");
    }
    assert!(!out.exists());
    // The longest and oddest valid names are fine.
    let good = ["a".repeat(32), "a-b_c9".into()];
    for name in good {
        pack::pack(&key, &public, &out, &[(name, dir.join("a.bin"))]).unwrap();
    }
}

#[test]
fn write_cpio_round_trips_through_kcore() {
    let datas: Vec<Vec<u8>> = [0usize, 1, 2, 3, 4, 5, 4096]
        .iter()
        .map(|&n| vec![0xa5; n])
        .collect();
    let names: Vec<String> = (0..datas.len()).map(|i| format!("dir/f{i}")).collect();
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&datas)
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bytes = pack::write_cpio(&entries);
    assert_eq!(bytes.len() % 4, 0);
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.len(), entries.len());
    for (entry, (name, data)) in archive.entries().zip(&entries) {
        assert_eq!((entry.name, entry.data), (*name, *data));
    }
    let empty = pack::write_cpio(&[]);
    assert!(Archive::parse(&empty).unwrap().is_empty());
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pack"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_line() {
    let dir = temp("cli");
    std::fs::write(dir.join("a.bin"), b"hello").unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let (key, public, out) = (path("k"), path("k.pub"), path("o.cpio"));
    let image = format!("hello={}", path("a.bin"));
    let ok = run(&["--key", &key, "--public", &public, "--out", &out, &image]);
    assert!(ok.status.success(), "{ok:?}");
    let stdout = String::from_utf8(ok.stdout).unwrap();
    let digest = hex(&Sha256::digest(b"hello"));
    let line = stdout.lines().find(|l| l.contains("hello")).unwrap();
    assert!(
        line.contains(" 5 ") && line.contains(&digest[..16]),
        "{line}"
    );
    assert!(!line.contains(&digest[..17]), "{line}");
    assert!(Archive::parse(&std::fs::read(&out).unwrap()).is_ok());

    let missing = format!("gone={}", path("missing.bin"));
    let bad_name = format!("Bad={}", path("a.bin"));
    // A file where a directory of the output should be: unwritable.
    let unwritable = dir.join("a.bin/o.cpio").display().to_string();
    for (args, needle) in [
        (
            vec!["--key", &key, "--public", &public, "--out", &out, &missing],
            "missing.bin",
        ),
        (
            vec!["--key", &key, "--public", &public, "--out", &out, &bad_name],
            "bad image name",
        ),
        (
            vec![
                "--key", &key, "--public", &public, "--out", &out, &image, &image,
            ],
            "twice",
        ),
        (
            vec![
                "--key",
                &key,
                "--public",
                &public,
                "--out",
                &unwritable,
                &image,
            ],
            "a.bin",
        ),
        (
            vec!["--key", &key, "--public", &public, "--out", &out],
            "no images",
        ),
        (vec!["--public", &public, "--out", &out, &image], "--key"),
        (
            vec!["--key", &key, "--public", &public, "--out", &out, "stray"],
            "stray",
        ),
    ] {
        let result = run(&args);
        assert!(!result.status.success(), "{args:?}");
        let stderr = String::from_utf8(result.stderr).unwrap();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
