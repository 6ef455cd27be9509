//! Host tests: real images built by the workspace (`make images`, or
//! `tools/build-images.sh`), corrupted variants of them, a bounded
//! mutation fuzz, and signed archives made here.

extern crate std;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use std::path::PathBuf;

use super::*;

const NAMES: &[&str] = &["idle", "counter", "checksum", "client", "broken"];

fn image_dir() -> PathBuf {
    match std::env::var_os("DOMAIN_IMAGES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/images/x86_64-unknown-none/release"),
    }
}

/// The real image `name`, or `None` if images were not built (then the
/// test says so; `make test` builds them first and sets
/// `LOADER_TESTS_NEED_IMAGES`, which turns a missing image into a failure).
fn real_image(name: &str) -> Option<Vec<u8>> {
    let path = image_dir().join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            if std::env::var_os("LOADER_TESTS_NEED_IMAGES").is_some() {
                panic!(
                    "{}: {e} (build the images first: make images)",
                    path.display()
                );
            }
            std::eprintln!(
                "skipping: {} not built ({e}); run `make images`",
                path.display()
            );
            None
        }
    }
}

fn plan(bytes: &[u8]) -> Result<Plan, LoadError> {
    Plan::new(bytes, &Limits::default())
}

/// Asserts `result` is a refusal that `expected` accepts (a variant
/// pattern), naming `what` when it is not.
fn refused(result: Result<Plan, LoadError>, what: &str, expected: impl Fn(&Refusal) -> bool) {
    match result {
        Err(LoadError::Refused(why)) => {
            assert!(expected(&why), "refused for '{why}', expected {what}")
        }
        Err(other) => panic!("expected a refusal ({what}), got {other}"),
        Ok(_) => panic!("expected a refusal ({what}), got a plan"),
    }
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}
fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}
fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}
fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// File offsets of the program headers.
fn program_headers(bytes: &[u8]) -> Vec<usize> {
    let phoff = get_u64(bytes, 32) as usize;
    let phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
    (0..phnum).map(|i| phoff + i * 56).collect()
}

fn first_load(bytes: &[u8], executable: bool) -> usize {
    *program_headers(bytes)
        .iter()
        .find(|&&ph| {
            let kind = u32::from_le_bytes(bytes[ph..ph + 4].try_into().unwrap());
            let flags = u32::from_le_bytes(bytes[ph + 4..ph + 8].try_into().unwrap());
            kind == abi::PT_LOAD && (flags & abi::PF_X != 0) == executable
        })
        .expect("a load segment")
}

#[test]
fn real_images_plan_and_load() {
    for name in NAMES {
        let Some(bytes) = real_image(name) else {
            return;
        };
        let plan = plan(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            plan.span > 0 && plan.span.is_multiple_of(PAGE),
            "{name}: span {:#x}",
            plan.span
        );
        assert!(
            plan.segments.iter().any(|s| s.perms.execute),
            "{name}: no code"
        );
        assert!(
            plan.segments
                .iter()
                .all(|s| !(s.perms.write && s.perms.execute))
        );
        assert!(
            !plan.relocations.is_empty(),
            "{name}: a Rust image has vtables to relocate"
        );
        let pages = plan.pages();
        for pair in pages.windows(2) {
            assert!(
                pair[0].0 + pair[0].1 <= pair[1].0,
                "{name}: page ranges overlap"
            );
        }
        if let Some((start, len)) = plan.relro {
            assert!(
                pages
                    .iter()
                    .any(|&(s, l, p)| s == start && l == len && !p.write && !p.execute)
            );
        }
        let base = 0xFFFF_B800_0040_0000u64;
        let mut memory = vec![0u8; plan.span as usize];
        plan.load_into(&bytes, &mut memory, base).unwrap();
        for &(offset, addend) in &plan.relocations {
            assert_eq!(
                get_u64(&memory, offset as usize),
                base.wrapping_add_signed(addend)
            );
        }
        // Code bytes are the file's.
        let code = plan.segments.iter().find(|s| s.perms.execute).unwrap();
        assert_eq!(
            &memory[code.vaddr as usize..(code.vaddr + code.file_size) as usize],
            &bytes[code.file_offset as usize..(code.file_offset + code.file_size) as usize]
        );
    }
}

#[test]
fn corrupted_headers_are_refused_with_reasons() {
    let Some(good) = real_image("idle") else {
        return;
    };
    assert!(matches!(plan(&good[..10]), Err(LoadError::Elf(_))));
    assert!(matches!(
        plan(b"not an elf at all, just text"),
        Err(LoadError::Elf(_))
    ));
    let mut bytes = good.clone();
    bytes[0] = 0x7e;
    assert!(matches!(plan(&bytes), Err(LoadError::Elf(_))));

    let mut bytes = good.clone();
    put_u16(&mut bytes, 18, 40); // EM_ARM
    refused(plan(&bytes), "another machine", |r| {
        matches!(r, Refusal::Machine(_))
    });

    let mut bytes = good.clone();
    put_u16(&mut bytes, 16, abi::ET_EXEC);
    refused(plan(&bytes), "not PIE", |r| *r == Refusal::NotPie);

    let mut bytes = good.clone();
    let ph = first_load(&bytes, true);
    put_u32(&mut bytes, ph + 4, abi::PF_R | abi::PF_W | abi::PF_X);
    refused(plan(&bytes), "W+X", |r| {
        matches!(r, Refusal::WritableAndExecutable(_))
    });

    let mut bytes = good.clone();
    let ph = first_load(&bytes, false);
    put_u64(&mut bytes, ph + 40, 1 << 40); // p_memsz: 1 TiB
    refused(plan(&bytes), "too large", |r| {
        matches!(r, Refusal::TooLarge { .. })
    });

    let mut bytes = good.clone();
    let ph = first_load(&bytes, true);
    put_u64(&mut bytes, ph + 32, 1 << 30); // p_filesz past the file
    let result = plan(&bytes);
    assert!(
        result.is_err(),
        "a segment past the end of the file must be refused"
    );

    let mut bytes = good.clone();
    let ph = first_load(&bytes, true);
    put_u64(&mut bytes, ph + 48, 16); // p_align
    refused(plan(&bytes), "misaligned", |r| {
        matches!(r, Refusal::Misaligned { .. })
    });

    let mut bytes = good.clone();
    put_u64(&mut bytes, 24, 0); // e_entry: not in code
    refused(plan(&bytes), "entry outside code", |r| {
        matches!(r, Refusal::EntryNotExecutable(_))
    });

    // Two segments on the same page.
    let mut bytes = good.clone();
    let (code, data) = (first_load(&bytes, true), first_load(&bytes, false));
    let code_vaddr = get_u64(&bytes, code + 16);
    let data_offset = get_u64(&bytes, data + 8);
    let _ = data_offset;
    put_u64(&mut bytes, data + 16, code_vaddr);
    let code_offset = get_u64(&bytes, code + 8);
    put_u64(&mut bytes, data + 8, code_offset);
    refused(plan(&bytes), "shared page", |r| {
        matches!(r, Refusal::SharedPage(..))
    });
}

#[test]
fn unsupported_relocations_are_refused_by_type() {
    let Some(good) = real_image("idle") else {
        return;
    };
    let plan_ok = plan(&good).unwrap();
    // Find the first RELATIVE entry in the file: its r_offset and addend
    // match the plan's first relocation.
    let (offset, addend) = plan_ok.relocations[0];
    let mut at = None;
    for i in (0..good.len() - 24).step_by(8) {
        if get_u64(&good, i) == offset
            && get_u64(&good, i + 8) == u64::from(abi::R_X86_64_RELATIVE)
            && get_u64(&good, i + 16) as i64 == addend
        {
            at = Some(i);
            break;
        }
    }
    let at = at.expect("relocation entry in the file");
    let mut bytes = good.clone();
    put_u64(&mut bytes, at + 8, u64::from(abi::R_X86_64_64));
    refused(plan(&bytes), "relocation type 1", |r| {
        matches!(r, Refusal::RelocationType { kind: 1, .. })
    });
    let mut bytes = good.clone();
    put_u64(&mut bytes, at, 1 << 40);
    refused(plan(&bytes), "relocation outside", |r| {
        matches!(r, Refusal::RelocationOutsideSegments(_))
    });
}

use kcore::rng::Rng;

#[test]
fn random_mutations_never_panic_and_plans_stay_in_bounds() {
    let Some(good) = real_image("idle") else {
        return;
    };
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let mut accepted = 0;
    for case in 0..3000 {
        let mut bytes = good.clone();
        // Mostly the headers (the interesting part), sometimes anywhere.
        for _ in 0..1 + rng.below(4) {
            let region = if case % 4 == 0 {
                bytes.len()
            } else {
                1024.min(bytes.len())
            };
            match rng.below(4) {
                0 => {
                    let i = rng.below(region);
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(region);
                    bytes[i] = rng.next_u64() as u8;
                }
                2 => {
                    let i = rng.below(region.saturating_sub(8).max(1));
                    let value = [0, u64::MAX, 1 << 40, rng.next_u64()][rng.below(4)];
                    if i + 8 <= bytes.len() {
                        put_u64(&mut bytes, i, value);
                    }
                }
                _ => {
                    let keep = rng.below(bytes.len());
                    bytes.truncate(keep.max(1));
                }
            }
        }
        if let Ok(plan) = plan(&bytes) {
            accepted += 1;
            assert!(plan.span <= Limits::default().max_span);
            let mut memory = vec![0u8; plan.span as usize];
            plan.load_into(&bytes, &mut memory, 0x4000_0000)
                .expect("a checked plan loads");
        }
    }
    std::eprintln!("{accepted} of 3000 mutated images still planned (harmless changes)");
}

// ---- signed archives ---------------------------------------------------------

fn cpio(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let add = |name: &str, data: &[u8], out: &mut Vec<u8>| {
        let header = std::format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0o100644,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    };
    for (name, data) in entries {
        add(name, data, &mut out);
    }
    add("TRAILER!!!", &[], &mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| std::format!("{b:02x}")).collect()
}

struct Signed {
    archive: Vec<u8>,
    public: [u8; 32],
}

fn signed(
    images: &[(&str, &[u8])],
    tamper: impl Fn(&mut String, &mut Vec<(String, Vec<u8>)>),
) -> Signed {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let mut manifest = String::from("domain-manifest v1\n");
    for (name, bytes) in images {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        manifest += &std::format!("image {name} {} {}\n", bytes.len(), hex(&digest));
    }
    let signature = key.sign(manifest.as_bytes()).to_bytes();
    let mut files: Vec<(String, Vec<u8>)> = images
        .iter()
        .map(|(n, b)| (std::format!("{n}.elf"), b.to_vec()))
        .collect();
    let mut manifest_after = manifest.clone();
    tamper(&mut manifest_after, &mut files);
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("manifest", manifest_after.as_bytes()),
        ("manifest.sig", &signature),
    ];
    for (name, bytes) in &files {
        entries.push((name, bytes));
    }
    Signed {
        archive: cpio(&entries),
        public: key.verifying_key().to_bytes(),
    }
}

#[test]
fn signed_archive_gives_images_whose_digests_match() {
    let a: &[u8] = b"image a bytes";
    let b: &[u8] = &[0u8; 5000];
    let s = signed(&[("alpha", a), ("beta", b)], |_, _| {});
    let catalog = Catalog::open(&s.archive, &s.public).unwrap();
    assert_eq!(catalog.names().collect::<Vec<_>>(), ["alpha", "beta"]);
    assert_eq!(catalog.image("alpha").unwrap(), a);
    assert_eq!(catalog.image("beta").unwrap(), b);
    assert_eq!(catalog.image("gamma"), Err(LoadError::NotInManifest));
}

#[test]
fn tampering_and_wrong_keys_are_refused() {
    let a: &[u8] = b"image a bytes";
    // A changed manifest: the signature no longer verifies.
    let s = signed(&[("alpha", a)], |m, _| *m = m.replace("alpha", "alphb"));
    assert_eq!(
        Catalog::open(&s.archive, &s.public).err(),
        Some(LoadError::BadSignature)
    );
    // A changed image: the digest no longer matches.
    let s = signed(&[("alpha", a)], |_, files| files[0].1[0] ^= 1);
    let catalog = Catalog::open(&s.archive, &s.public).unwrap();
    assert_eq!(catalog.image("alpha"), Err(LoadError::DigestMismatch));
    // A longer image.
    let s = signed(&[("alpha", a)], |_, files| files[0].1.push(0));
    let catalog = Catalog::open(&s.archive, &s.public).unwrap();
    assert!(matches!(
        catalog.image("alpha"),
        Err(LoadError::SizeMismatch { .. })
    ));
    // Listed but absent.
    let s = signed(&[("alpha", a)], |_, files| files.clear());
    let catalog = Catalog::open(&s.archive, &s.public).unwrap();
    assert_eq!(catalog.image("alpha"), Err(LoadError::MissingImage));
    // Another key.
    let s = signed(&[("alpha", a)], |_, _| {});
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
        .verifying_key()
        .to_bytes();
    assert_eq!(
        Catalog::open(&s.archive, &other).err(),
        Some(LoadError::BadSignature)
    );
    // No key in the kernel.
    assert_eq!(
        Catalog::open(&s.archive, &[0; 32]).err(),
        Some(LoadError::NoKey)
    );
    // No signature, no manifest.
    let bare = cpio(&[("manifest", b"domain-manifest v1\n")]);
    assert_eq!(
        Catalog::open(&bare, &s.public).err(),
        Some(LoadError::MissingSignature)
    );
    let empty = cpio(&[]);
    assert_eq!(
        Catalog::open(&empty, &s.public).err(),
        Some(LoadError::MissingManifest)
    );
    // Garbage.
    assert!(matches!(
        Catalog::open(b"garbage", &s.public),
        Err(LoadError::Archive(_))
    ));
}

#[test]
fn errors_read_well() {
    let text = LoadError::DigestMismatch.to_string();
    assert!(text.contains("SHA-256") && text.contains("tampered"));
    assert!(LoadError::NoKey.to_string().contains("signing key"));
}
