//! Packs domain images into the boot archive the kernel loads them from
//! (see `kernel/src/domain/loaded.rs` and `kernel/loader`): a cpio newc
//! archive holding `manifest` (each image's name, size and SHA-256, its
//! grants, the boot domains), `manifest.sig` (the manifest's Ed25519
//! signature with the build key) and `NAME.elf` for each image.
//! Deterministic: the same inputs and key give the same bytes.
//!
//! The grants (`export`, `device`, `supervise` lines: see
//! `kcore::manifest`) come from each image's crate, which declares them in
//! its `Cargo.toml`:
//!
//! ```toml
//! [package.metadata.domain]
//! exports = ["checksum", "control"]   # export names it may publish
//! devices = ["01:08:02"]              # PCI class:subclass:progif[:vendor]
//! supervises = ["nvme"]               # images whose domains it may restart
//! ```
//!
//! [`policies_from_metadata`] reads them from `cargo metadata` output.

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
    // Written only when it changes: the kernel's build embeds this file
    // and rebuilds when its timestamp moves, so rewriting the same bytes
    // on every `make` would recompile the kernel for nothing.
    let bytes = signing.verifying_key().to_bytes();
    if fs::read(public).ok().as_deref() != Some(&bytes[..]) {
        fs::write(public, bytes).map_err(|e| format!("{}: {e}", public.display()))?;
    }
    Ok(signing)
}

/// What one image is granted (its crate's `[package.metadata.domain]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Export names it may publish.
    pub exports: Vec<String>,
    /// PCI functions it may claim: `CC:SS:PP` or `CC:SS:PP:VVVV`.
    pub devices: Vec<String>,
    /// Images whose domains it may supervise.
    pub supervises: Vec<String>,
}

/// The keys `[package.metadata.domain]` may have.
/// The keys of `[package.metadata.domain]`. `program = true` marks an rv6
/// program: besides the boot archive, `tools/build-images.sh` packs it
/// alone into a signed archive of its own (`build/programs/NAME`), which
/// rv6's file system holds and `Kernel::spawn_program` runs; it grants
/// nothing.
const POLICY_KEYS: [&str; 4] = ["exports", "devices", "supervises", "program"];

/// The policy of each image in `images` (in that order), from the JSON of
/// `cargo metadata --format-version 1 --no-deps`: the package with a
/// binary target of the image's name and an `image` feature (a domain
/// crate) must have a `[package.metadata.domain]` table with only the keys
/// `exports`, `devices` and `supervises`, each a list of strings (missing:
/// empty). Strict, so a typo is an error, not a missing right.
pub fn policies_from_metadata(json: &str, images: &[String]) -> Result<Vec<Policy>, String> {
    let metadata: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata: no 'packages' list")?;
    let mut policies = Vec::new();
    for image in images {
        let is_image_crate = |p: &&serde_json::Value| {
            p["features"].get("image").is_some()
                && p["targets"].as_array().is_some_and(|targets| {
                    targets.iter().any(|t| {
                        t["name"] == image.as_str()
                            && t["kind"]
                                .as_array()
                                .is_some_and(|k| k.iter().any(|k| k == "bin"))
                    })
                })
        };
        let mut found = packages.iter().filter(is_image_crate);
        let (Some(package), None) = (found.next(), found.next()) else {
            return Err(format!(
                "image '{image}': not exactly one crate with an 'image' feature and a binary target '{image}'"
            ));
        };
        let crate_name = package["name"].as_str().unwrap_or("?");
        let table = package["metadata"]["domain"].as_object().ok_or(format!(
            "image '{image}' (crate {crate_name}): its Cargo.toml has no [package.metadata.domain] table (declare at least its exports)"
        ))?;
        if let Some(key) = table.keys().find(|k| !POLICY_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "image '{image}' (crate {crate_name}): unknown key '{key}' in [package.metadata.domain] (known: {POLICY_KEYS:?})"
            ));
        }
        let list = |key: &str| -> Result<Vec<String>, String> {
            let Some(value) = table.get(key) else {
                return Ok(Vec::new());
            };
            value
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|i| i.as_str().map(String::from))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or(format!(
                    "image '{image}' (crate {crate_name}): [package.metadata.domain] {key} is not a list of strings"
                ))
        };
        policies.push(Policy {
            exports: list("exports")?,
            devices: list("devices")?,
            supervises: list("supervises")?,
        });
    }
    Ok(policies)
}

/// Writes the signed archive `out` of `images` (name, file), signed with
/// the key at `key` (see [`signing_key`]). The images are granted nothing.
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
    pack_with_policies(key, public, out, images, &[], starts)
}

/// [`pack_with_starts`], plus each image's grants: `policies[i]` is
/// `images[i]`'s (missing ones grant nothing). Written after the image
/// lines, image by image, each list in its given order.
pub fn pack_with_policies(
    key: &Path,
    public: &Path,
    out: &Path,
    images: &[(String, PathBuf)],
    policies: &[Policy],
    starts: &[(String, String)],
) -> Result<Vec<Summary>, String> {
    if policies.len() > images.len() {
        return Err("more policies than images".into());
    }
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
    for ((image, _), policy) in images.iter().zip(policies) {
        let lines = [
            ("export", &policy.exports),
            ("device", &policy.devices),
            ("supervise", &policy.supervises),
        ];
        for (keyword, values) in lines {
            for value in values {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(format!("image '{image}': bad {keyword} '{value}'"));
                }
                manifest += &format!("{keyword} {image} {value}\n");
            }
        }
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
