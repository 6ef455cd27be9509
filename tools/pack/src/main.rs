//! `pack --key KEY --public PUB --out ARCHIVE [--start ...] [--metadata
//! JSON] NAME=PATH...`: see the library. With `--metadata` (the output of
//! `cargo metadata --format-version 1 --no-deps`, as a file), each image's
//! grants come from its crate's `[package.metadata.domain]`; without it the
//! images are granted nothing.

use std::path::PathBuf;
use std::process::exit;

fn usage(message: &str) -> ! {
    eprintln!("pack: {message}");
    eprintln!(
        "usage: pack --key KEYFILE --public PUBFILE --out ARCHIVE [--start IMAGE[:DOMAIN],...] [--metadata CARGO_METADATA_JSON] NAME=PATH [NAME=PATH ...]"
    );
    exit(2)
}

fn main() {
    let (mut key, mut public, mut out) = (None, None, None);
    let mut images = Vec::new();
    let mut starts = Vec::new();
    let mut metadata = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .map(PathBuf::from)
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--key" => key = Some(value("--key")),
            "--public" => public = Some(value("--public")),
            "--out" => out = Some(value("--out")),
            "--metadata" => metadata = Some(value("--metadata")),
            "--start" => {
                let start = value("--start").display().to_string();
                for one in start.split([',', ' ']).filter(|s| !s.is_empty()) {
                    let (image, domain) = one.split_once(':').unwrap_or((one, one));
                    starts.push((image.to_string(), domain.to_string()));
                }
            }
            "-h" | "--help" => usage("packs domain images into the signed boot archive"),
            image => match image.split_once('=') {
                Some((name, path)) => images.push((name.to_string(), PathBuf::from(path))),
                None => usage(&format!(
                    "unexpected argument '{image}' (images are NAME=PATH)"
                )),
            },
        }
    }
    let key = key.unwrap_or_else(|| usage("--key is required"));
    let public = public.unwrap_or_else(|| usage("--public is required"));
    let out = out.unwrap_or_else(|| usage("--out is required"));
    if images.is_empty() {
        usage("no images given");
    }
    let policies = match metadata {
        None => Vec::new(),
        Some(path) => {
            let names: Vec<String> = images.iter().map(|(name, _)| name.clone()).collect();
            let json = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                eprintln!("pack: {}: {e}", path.display());
                exit(1)
            });
            pack::policies_from_metadata(&json, &names).unwrap_or_else(|e| {
                eprintln!("pack: {e}");
                exit(1)
            })
        }
    };
    match pack::pack_with_policies(&key, &public, &out, &images, &policies, &starts) {
        Ok(summaries) => {
            for s in summaries {
                let digest: String = s.sha256[..8].iter().map(|b| format!("{b:02x}")).collect();
                println!("  {:<10} {:>8} bytes  sha256 {digest}...", s.name, s.size);
            }
            println!("  -> {}", out.display());
        }
        Err(e) => {
            eprintln!("pack: {e}");
            exit(1);
        }
    }
}
