//! `docs/authoring-domains.md` cannot rot: every code block it marks with
//! `file=PATH` must be that file (or, for `interfaces/src/lib.rs`, a part
//! of it) character for character. `make test` then builds those domains
//! as images and runs the guide's console session in QEMU
//! (`tools/qemu-test.py`, which reads the commands from the guide).

use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// (path, code) of every block marked `file=PATH`.
fn marked_blocks(guide: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let path = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="));
        let mut code = String::new();
        for body in lines.by_ref() {
            if body.starts_with("```") {
                break;
            }
            code.push_str(body);
            code.push('\n');
        }
        if let Some(path) = path {
            blocks.push((path.to_string(), code));
        }
    }
    blocks
}

#[test]
fn the_guide_shows_the_real_files() {
    let root = repo();
    let guide = fs::read_to_string(root.join("docs/authoring-domains.md")).unwrap();
    let blocks = marked_blocks(&guide);
    assert!(
        blocks.len() >= 5,
        "expected the guide's code blocks, found {}",
        blocks.len()
    );
    for (path, code) in blocks {
        let file = fs::read_to_string(root.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        if path == "interfaces/src/lib.rs" {
            assert!(
                file.contains(&code),
                "the guide's excerpt of {path} is not in the file"
            );
        } else {
            assert_eq!(
                code, file,
                "the guide's copy of {path} differs from the file"
            );
        }
    }
}

#[test]
fn the_guide_is_short() {
    // "well under 100 lines" for the service and its client, as promised.
    let root = repo();
    let lines: usize = [
        "domains/greeter/src/lib.rs",
        "domains/greeter/src/main.rs",
        "domains/greeter-client/src/lib.rs",
        "domains/greeter-client/src/main.rs",
    ]
    .iter()
    .map(|p| fs::read_to_string(root.join(p)).unwrap().lines().count())
    .sum();
    assert!(lines < 100, "{lines} lines");
}
