//! Grants: each image's `[package.metadata.domain]`, read from
//! `cargo metadata`, written as `export`/`device`/`supervise` lines of the
//! signed manifest, and read back with kcore.

use std::path::PathBuf;
use std::process::Command;

use kcore::cpio::Archive;
use kcore::manifest::{DeviceMatch, Manifest, Right};
use pack::{Policy, policies_from_metadata};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pack-policy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cargo metadata`-shaped JSON: one package per (name, bin, image
/// feature, metadata JSON or "null").
fn metadata(packages: &[(&str, &str, bool, &str)]) -> String {
    let packages: Vec<String> = packages
        .iter()
        .map(|(name, bin, image, meta)| {
            let features = if *image { r#"{"image": []}"# } else { "{}" };
            format!(
                r#"{{"name": "{name}", "features": {features}, "metadata": {meta},
                   "targets": [{{"name": "{name}", "kind": ["lib"]}}, {{"name": "{bin}", "kind": ["bin"]}}]}}"#
            )
        })
        .collect();
    format!(r#"{{"packages": [{}], "version": 1}}"#, packages.join(","))
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn metadata_gives_each_image_its_policy() {
    let json = metadata(&[
        (
            "driver-nvme",
            "nvme",
            true,
            r#"{"domain": {"exports": ["bdev", "control"], "devices": ["01:08:02"]}}"#,
        ),
        (
            "domain-shadow",
            "shadow",
            true,
            r#"{"domain": {"exports": ["bdev"], "supervises": ["nvme"]}}"#,
        ),
        ("domain-quiet", "quiet", true, r#"{"domain": {}}"#),
        // Not an image crate (no `image` feature): ignored.
        ("pack", "nvme", false, "null"),
    ]);
    let policies = policies_from_metadata(&json, &strings(&["shadow", "nvme", "quiet"])).unwrap();
    assert_eq!(
        policies,
        [
            Policy {
                exports: strings(&["bdev"]),
                devices: vec![],
                supervises: strings(&["nvme"]),
            },
            Policy {
                exports: strings(&["bdev", "control"]),
                devices: strings(&["01:08:02"]),
                supervises: vec![],
            },
            Policy::default(),
        ]
    );
}

#[test]
fn bad_metadata_is_refused_saying_why() {
    let one = |meta: &str| {
        policies_from_metadata(
            &metadata(&[("domain-x", "x", true, meta)]),
            &strings(&["x"]),
        )
        .unwrap_err()
    };
    for (meta, needle) in [
        ("null", "no [package.metadata.domain]"),
        (r#"{"other": {}}"#, "no [package.metadata.domain]"),
        (r#"{"domain": []}"#, "no [package.metadata.domain]"),
        (r#"{"domain": {"export": ["x"]}}"#, "unknown key 'export'"),
        (r#"{"domain": {"exports": "x"}}"#, "not a list of strings"),
        (r#"{"domain": {"exports": [1]}}"#, "not a list of strings"),
        (r#"{"domain": {"devices": [["01:08:02"]]}}"#, "not a list"),
    ] {
        let error = one(meta);
        assert!(error.contains(needle), "{meta}: {error}");
        assert!(error.contains("image 'x'"), "{error}");
    }
    // No crate for the image, or two.
    let json = metadata(&[("domain-x", "x", true, r#"{"domain": {}}"#)]);
    assert!(
        policies_from_metadata(&json, &strings(&["y"]))
            .unwrap_err()
            .contains("image 'y'")
    );
    let json = metadata(&[
        ("domain-x", "x", true, r#"{"domain": {}}"#),
        ("domain-x2", "x", true, r#"{"domain": {}}"#),
    ]);
    assert!(
        policies_from_metadata(&json, &strings(&["x"]))
            .unwrap_err()
            .contains("not exactly one crate")
    );
    assert!(policies_from_metadata("not json", &strings(&["x"])).is_err());
    assert!(policies_from_metadata("{}", &strings(&["x"])).is_err());
}

#[test]
fn grants_are_written_signed_and_parse_back() {
    let dir = temp("write");
    std::fs::write(dir.join("a.bin"), b"driver").unwrap();
    std::fs::write(dir.join("b.bin"), b"shadow").unwrap();
    let images = [
        ("drv".to_string(), dir.join("a.bin")),
        ("shadow".to_string(), dir.join("b.bin")),
    ];
    let policies = [
        Policy {
            exports: strings(&["bdev", "control"]),
            devices: strings(&["01:08:02", "02:00:00:8086"]),
            supervises: vec![],
        },
        Policy {
            exports: strings(&["bdev"]),
            devices: vec![],
            supervises: strings(&["drv"]),
        },
    ];
    let out = dir.join("o.cpio");
    let starts = [("shadow".to_string(), "shadow".to_string())];
    pack::pack_with_policies(
        &dir.join("k"),
        &dir.join("k.pub"),
        &out,
        &images,
        &policies,
        &starts,
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let archive = Archive::parse(&bytes).unwrap();
    let text = std::str::from_utf8(archive.find("manifest").unwrap()).unwrap();
    let grants: Vec<&str> = text.lines().filter(|l| !l.starts_with("image ")).collect();
    assert_eq!(
        grants,
        [
            "domain-manifest v1",
            "export drv bdev",
            "export drv control",
            "device drv 01:08:02",
            "device drv 02:00:00:8086",
            "export shadow bdev",
            "supervise shadow drv",
            "start shadow shadow",
        ]
    );
    let manifest = Manifest::parse(text.as_bytes()).unwrap();
    assert!(manifest.may_supervise("shadow", "drv"));
    assert!(!manifest.may_supervise("drv", "shadow"));
    assert!(manifest.may_claim("drv", (2, 0, 0), 0x8086));
    assert!(!manifest.may_claim("drv", (2, 0, 0), 0x10ec));
    assert_eq!(
        manifest.rights_of("drv").nth(2),
        Some(Right::Device(DeviceMatch {
            class: (1, 8, 2),
            vendor: None
        }))
    );
}

#[test]
fn bad_grants_are_refused_and_nothing_is_written() {
    let dir = temp("refuse");
    std::fs::write(dir.join("a.bin"), b"a").unwrap();
    let images = [("a".to_string(), dir.join("a.bin"))];
    let out = dir.join("o.cpio");
    for (policy, needle) in [
        (
            Policy {
                devices: strings(&["01:08:2"]),
                ..Policy::default()
            },
            "device",
        ),
        (
            Policy {
                devices: strings(&["01:08:02:1B36"]),
                ..Policy::default()
            },
            "device",
        ),
        (
            Policy {
                supervises: strings(&["nothing"]),
                ..Policy::default()
            },
            "does not list",
        ),
        (
            Policy {
                exports: strings(&["x", "x"]),
                ..Policy::default()
            },
            "twice",
        ),
        (
            Policy {
                exports: strings(&["Upper"]),
                ..Policy::default()
            },
            "names are",
        ),
        (
            Policy {
                exports: strings(&["a b"]),
                ..Policy::default()
            },
            "bad export",
        ),
        (
            Policy {
                exports: strings(&["x\nimage evil 1 00"]),
                ..Policy::default()
            },
            "bad export",
        ),
        (
            Policy {
                exports: strings(&[""]),
                ..Policy::default()
            },
            "bad export",
        ),
    ] {
        let error = pack::pack_with_policies(
            &dir.join("k"),
            &dir.join("k.pub"),
            &out,
            &images,
            std::slice::from_ref(&policy),
            &[],
        )
        .unwrap_err();
        assert!(error.contains(needle), "{policy:?}: {error}");
        assert!(!out.exists(), "{policy:?}: archive written");
    }
}

/// The workspace's own image crates, through `cargo metadata` and the
/// command line, as `tools/build-images.sh` does it.
#[test]
fn the_workspace_crates_declare_their_policies() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json = String::from_utf8(output.stdout).unwrap();
    let mut images = Vec::new();
    for folder in ["domains", "drivers"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap().flatten() {
            if entry.path().join("src/main.rs").exists() {
                images.push(entry.file_name().into_string().unwrap());
            }
        }
    }
    images.sort();
    let policies = policies_from_metadata(&json, &images).unwrap();
    let of = |name: &str| &policies[images.iter().position(|i| i == name).unwrap()];
    assert_eq!(of("nvme").devices, ["01:08:02"]);
    assert_eq!(of("nvme-shadow").supervises, ["nvme"]);
    assert!(of("checksum").exports.contains(&"checksum".to_string()));
    assert!(
        !of("attack-impersonate")
            .exports
            .contains(&"checksum".to_string())
    );
    assert!(of("attack-policy").supervises.is_empty());
    // The NIC drivers ask for Ethernet controllers of their vendor only.
    assert_eq!(of("igb").devices, ["02:00:00:8086"]);
    assert_eq!(of("ixgbe").devices, ["02:00:00:8086"]);
    assert_eq!(of("virtio-net").devices, ["02:00:00:1af4"]);
    assert_eq!(of("nic-shadow").supervises, ["igb", "virtio-net"]);
    // Only the drivers and the attackers ask for devices (`attack` is a
    // driver gone bad: granted the controller, it aims its DMA at the
    // kernel).
    for (image, policy) in images.iter().zip(&policies) {
        if ![
            "nvme",
            "igb",
            "ixgbe",
            "virtio-net",
            "attack-policy",
            "attack",
        ]
        .contains(&image.as_str())
        {
            assert!(policy.devices.is_empty(), "{image}: {policy:?}");
        }
    }

    // The command line, with dummy image files: the grants end up signed.
    let dir = temp("cli");
    let meta = dir.join("metadata.json");
    std::fs::write(&meta, &json).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        "--key".to_string(),
        path("k"),
        "--public".into(),
        path("k.pub"),
        "--out".into(),
        path("o.cpio"),
        "--metadata".into(),
        path("metadata.json"),
    ];
    for image in &images {
        let file = dir.join(format!("{image}.elf"));
        std::fs::write(&file, image.as_bytes()).unwrap();
        args.push(format!("{image}={}", file.display()));
    }
    let run = Command::new(env!("CARGO_BIN_EXE_pack"))
        .args(&args)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let bytes = std::fs::read(dir.join("o.cpio")).unwrap();
    let archive = Archive::parse(&bytes).unwrap();
    let manifest = Manifest::parse(archive.find("manifest").unwrap()).unwrap();
    assert!(manifest.may_supervise("nvme-shadow", "nvme"));
    assert!(manifest.may_claim("nvme", (1, 8, 2), 0x1b36));
    assert!(manifest.may_export("checksum", "checksum"));
    assert!(!manifest.may_export("attack-impersonate", "checksum"));
    assert!(!manifest.may_supervise("attack-policy", "nvme"));
    assert!(!manifest.may_claim("attack-policy", (1, 8, 2), 0x1b36));
}
