//! The archive `pack` writes is what the kernel's loader accepts.

use std::path::PathBuf;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pack-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn packed_archive_verifies_and_gives_back_the_images() {
    let dir = temp("roundtrip");
    std::fs::write(dir.join("a.bin"), b"first image").unwrap();
    std::fs::write(dir.join("b.bin"), vec![9u8; 10_000]).unwrap();
    let (key, public, out) = (
        dir.join("keys/k"),
        dir.join("keys/k.pub"),
        dir.join("out.cpio"),
    );
    let images = vec![
        ("alpha".to_string(), dir.join("a.bin")),
        ("beta".to_string(), dir.join("b.bin")),
    ];
    let summary = pack::pack(&key, &public, &out, &images).unwrap();
    assert_eq!(summary.len(), 2);
    let archive = std::fs::read(&out).unwrap();
    let public_key: [u8; 32] = std::fs::read(&public).unwrap().try_into().unwrap();
    let catalog = loader::Catalog::open(&archive, &public_key).unwrap();
    assert_eq!(catalog.names().collect::<Vec<_>>(), ["alpha", "beta"]);
    assert_eq!(catalog.image("alpha").unwrap(), b"first image");
    assert_eq!(catalog.image("beta").unwrap(), &vec![9u8; 10_000][..]);
    // The same key again: the same public key and the same bytes.
    let first_public = std::fs::read(&public).unwrap();
    pack::pack(&key, &public, &out, &images).unwrap();
    assert_eq!(std::fs::read(&public).unwrap(), first_public);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        archive,
        "deterministic output"
    );
    // A flipped manifest byte: the signature fails.
    let mut forged = archive.clone();
    let at = forged.windows(5).position(|w| w == b"alpha").unwrap();
    forged[at] = b'x';
    assert_eq!(
        loader::Catalog::open(&forged, &public_key).err(),
        Some(loader::LoadError::BadSignature)
    );
}

#[test]
fn bad_input_is_refused() {
    let dir = temp("bad");
    std::fs::write(dir.join("a.bin"), b"x").unwrap();
    let (key, public, out) = (dir.join("k"), dir.join("k.pub"), dir.join("o.cpio"));
    let err = pack::pack(
        &key,
        &public,
        &out,
        &[("Bad.Name".into(), dir.join("a.bin"))],
    )
    .unwrap_err();
    assert!(err.contains("bad image name"), "{err}");
    let err = pack::pack(&key, &public, &out, &[("a".into(), dir.join("missing"))]).unwrap_err();
    assert!(err.contains("missing"), "{err}");
    let twice = [
        ("a".into(), dir.join("a.bin")),
        ("a".into(), dir.join("a.bin")),
    ];
    assert!(
        pack::pack(&key, &public, &out, &twice)
            .unwrap_err()
            .contains("twice")
    );
    std::fs::write(dir.join("short.key"), [1u8; 5]).unwrap();
    let err = pack::pack(
        &dir.join("short.key"),
        &public,
        &out,
        &[("a".into(), dir.join("a.bin"))],
    )
    .unwrap_err();
    assert!(err.contains("32 bytes"), "{err}");
}
