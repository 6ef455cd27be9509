//! Packs domain images into the boot archive the kernel loads them from
//! (see `kernel/src/domain/loaded.rs` and `kernel/loader`): a cpio newc
//! archive holding `manifest` (each image's name, size and SHA-256),
//! `manifest.sig` (the manifest's Ed25519 signature with the build key) and
//! `NAME.elf` for each image. Deterministic: the same inputs and key give
//! the same bytes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// What was packed, per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cpio newc archive of `entries` (regular files, mode 0644, mtime 0),
/// with its trailer.
pub fn write_cpio(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer: (&str, &[u8]) = ("TRAILER!!!", &[]);
    for (index, (name, data)) in entries.iter().chain([&trailer]).enumerate() {
        let mode = if name == &"TRAILER!!!" { 0 } else { 0o100644 };
        let fields = [
            index + 1,
            mode,
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
            0,
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}

/// The signing key at `key` (32 raw bytes of seed), made from the OS's
/// randomness if the file does not exist (mode 0600). Its public half is
/// (re)written to `public`.
pub fn signing_key(key: &Path, public: &Path) -> Result<SigningKey, String> {
    let seed: [u8; 32] = match fs::read(key) {
        Ok(bytes) => bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "{}: a key is 32 bytes, this file has {}",
                key.display(),
                b.len()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
            if let Some(dir) = key.parent() {
                fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let mut file = {
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options
                    .open(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?
            };
            file.write_all(&seed)
                .map_err(|e| format!("{}: {e}", key.display()))?;
            eprintln!("pack: generated a new signing key in {}", key.display());
            seed
        }
        Err(e) => return Err(format!("{}: {e}", key.display())),
    };
    let signing = SigningKey::from_bytes(&seed);
    if let Some(dir) = public.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(public, signing.verifying_key().to_bytes())
        .map_err(|e| format!("{}: {e}", public.display()))?;
    Ok(signing)
}

/// Writes the signed archive `out` of `images` (name, file), signed with
/// the key at `key` (see [`signing_key`]).
pub fn pack(
    key: &Path,
    public: &Path,
    out: &Path,
    images: &[(String, PathBuf)],
) -> Result<Vec<Summary>, String> {
    pack_with_starts(key, public, out, images, &[])
}

/// [`pack`], plus the domains the kernel starts at boot (`start` lines of
/// the manifest: image, domain name), in order.
pub fn pack_with_starts(
    key: &Path,
    public: &Path,
    out: &Path,
    images: &[(String, PathBuf)],
    starts: &[(String, String)],
) -> Result<Vec<Summary>, String> {
    let signing = signing_key(key, public)?;
    let mut manifest = String::from(kcore::manifest::HEADER);
    manifest.push('\n');
    let mut files = Vec::new();
    let mut summaries = Vec::new();
    for (name, path) in images {
        if !kcore::manifest::is_valid_name(name) {
            return Err(format!(
                "bad image name '{name}' (1-32 of [a-z0-9_-], starting with a letter)"
            ));
        }
        if summaries.iter().any(|s: &Summary| &s.name == name) {
            return Err(format!("image '{name}' given twice"));
        }
        let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() as u64 > kcore::manifest::MAX_IMAGE {
            return Err(format!(
                "{}: larger than the 64 MiB image limit",
                path.display()
            ));
        }
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        manifest += &format!("image {name} {} {}\n", bytes.len(), hex(&sha256));
        summaries.push(Summary {
            name: name.clone(),
            size: bytes.len() as u64,
            sha256,
        });
        files.push((format!("{name}.elf"), bytes));
    }
    for (image, domain) in starts {
        if !summaries.iter().any(|s| &s.name == image) {
            return Err(format!("--start {image}: no such image"));
        }
        if !kcore::manifest::is_valid_name(domain) {
            return Err(format!("--start {image}:{domain}: bad domain name"));
        }
        manifest += &format!("start {image} {domain}\n");
    }
    // What the kernel will parse must parse.
    kcore::manifest::Manifest::parse(manifest.as_bytes()).map_err(|e| format!("manifest: {e}"))?;
    let signature = signing.sign(manifest.as_bytes()).to_bytes();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("manifest", manifest.as_bytes()),
        ("manifest.sig", &signature),
    ];
    for (name, bytes) in &files {
        entries.push((name, bytes));
    }
    let archive = write_cpio(&entries);
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(out, archive).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(summaries)
}
