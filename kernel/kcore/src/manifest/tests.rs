use super::*;
use std::format;
use std::string::String;

const D1: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const D2: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn text(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn parses_images_comments_and_blank_lines() {
    let t = text(&[
        "# built by tools/pack",
        HEADER,
        "",
        &format!("image counter 1234 {D1}"),
        "# a comment",
        &format!("image idle 0 {D2}"),
    ]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    let images: std::vec::Vec<_> = m.images().collect();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].name, "counter");
    assert_eq!(images[0].size, 1234);
    assert_eq!(images[0].sha256[0], 0x00);
    assert_eq!(images[0].sha256[31], 0xff);
    assert_eq!(m.find("idle").unwrap().size, 0);
    assert!(m.find("nope").is_none());
}

#[test]
fn every_error_names_its_line() {
    let bad = |lines: &[&str]| Manifest::parse(text(lines).as_bytes()).unwrap_err();
    assert_eq!(
        bad(&["domain-manifest v2"]),
        ManifestError::NoHeader { line: 1 }
    );
    assert_eq!(
        Manifest::parse(b"").unwrap_err(),
        ManifestError::NoHeader { line: 1 }
    );
    assert_eq!(
        bad(&[HEADER, "image a 1"]),
        ManifestError::BadLine { line: 2 }
    );
    assert_eq!(
        bad(&[HEADER, &format!("image a 1 {D1} extra")]),
        ManifestError::BadLine { line: 2 }
    );
    assert_eq!(
        bad(&[HEADER, &format!("img a 1 {D1}")]),
        ManifestError::BadLine { line: 2 }
    );
    for name in [
        "Upper",
        "1digit",
        "",
        "has.dot",
        "a_very_long_name_that_is_over_32_chars",
    ] {
        assert_eq!(
            bad(&[HEADER, &format!("image {name} 1 {D1}")]),
            ManifestError::BadName { line: 2 },
            "{name}"
        );
    }
    for size in ["01", "-1", "1.5", "99999999999", "67108865", "x"] {
        assert_eq!(
            bad(&[HEADER, &format!("image a {size} {D1}")]),
            ManifestError::BadSize { line: 2 },
            "{size}"
        );
    }
    assert_eq!(
        bad(&[HEADER, &format!("image a 1 {}", &D1[1..])]),
        ManifestError::BadDigest { line: 2 }
    );
    assert_eq!(
        bad(&[HEADER, &format!("image a 1 {}", D1.to_uppercase())]),
        ManifestError::BadDigest { line: 2 }
    );
    assert_eq!(
        bad(&[
            HEADER,
            &format!("image a 1 {D1}"),
            &format!("image a 2 {D2}")
        ]),
        ManifestError::Duplicate { line: 3 }
    );
    assert_eq!(
        Manifest::parse(b"domain-manifest v1\r\n").unwrap_err(),
        ManifestError::NotText
    );
    assert_eq!(
        Manifest::parse(&[0xff, 0xfe]).unwrap_err(),
        ManifestError::NotText
    );
    let message = format!("{}", ManifestError::BadDigest { line: 7 });
    assert!(message.contains("line 7"));
}

#[test]
fn at_most_max_images() {
    let mut t = String::from(HEADER) + "\n";
    for i in 0..=MAX_IMAGES {
        t += &format!("image i{i} 1 {D1}\n");
    }
    assert_eq!(
        Manifest::parse(t.as_bytes()).unwrap_err(),
        ManifestError::TooManyImages
    );
}

#[test]
fn names() {
    assert!(is_valid_name("a"));
    assert!(is_valid_name("net-driver_2"));
    assert!(!is_valid_name("2net"));
    assert!(!is_valid_name("a/b"));
    assert!(!is_valid_name(&"a".repeat(33)));
}

#[test]
fn random_mutations_never_panic() {
    let good = text(&[
        HEADER,
        &format!("image counter 1234 {D1}"),
        &format!("image idle 0 {D2}"),
    ]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut bytes = good.clone().into_bytes();
        let i = (next() % bytes.len() as u64) as usize;
        match next() % 3 {
            0 => bytes[i] ^= 1 << (next() % 8),
            1 => bytes.truncate(i),
            _ => bytes.insert(i, next() as u8),
        }
        if let Ok(m) = Manifest::parse(&bytes) {
            for image in m.images() {
                assert!(is_valid_name(image.name) && image.size <= MAX_IMAGE);
            }
        }
    }
}

#[test]
fn start_lines_are_the_boot_graph() {
    let t = text(&[
        HEADER,
        &format!("image counter 10 {D1}"),
        &format!("image client 20 {D2}"),
        "start counter",
        "start client my-client",
    ]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    let starts: std::vec::Vec<_> = m.starts().collect();
    assert_eq!(
        starts,
        [
            Start {
                image: "counter",
                domain: "counter"
            },
            Start {
                image: "client",
                domain: "my-client"
            }
        ]
    );
    assert_eq!(m.images().count(), 2);
    let bad = |lines: &[&str]| Manifest::parse(text(lines).as_bytes()).unwrap_err();
    assert_eq!(
        bad(&[HEADER, &format!("image a 1 {D1}"), "start b"]),
        ManifestError::UnknownStart { line: 3 }
    );
    assert_eq!(
        bad(&[HEADER, &format!("image a 1 {D1}"), "start a b c"]),
        ManifestError::BadLine { line: 3 }
    );
    assert_eq!(
        bad(&[HEADER, &format!("image a 1 {D1}"), "start a B"]),
        ManifestError::BadName { line: 3 }
    );
}

#[test]
fn header_sizes_and_spacing() {
    // The header is the first line that is not blank or a comment.
    let t = text(&["", "# c", "", HEADER, &format!("image a 0 {D1}")]);
    assert_eq!(Manifest::parse(t.as_bytes()).unwrap().images().count(), 1);
    assert_eq!(
        Manifest::parse(text(&["# c", "", &format!("image a 0 {D1}")]).as_bytes()).unwrap_err(),
        ManifestError::NoHeader { line: 3 }
    );
    assert_eq!(
        Manifest::parse(b"# only a comment\n\n").unwrap_err(),
        ManifestError::NoHeader { line: 1 }
    );
    // A header alone is an empty manifest; the last line may lack its '\n'.
    let m = Manifest::parse(HEADER.as_bytes()).unwrap();
    assert_eq!(m.images().count(), 0);
    let t = format!("{HEADER}\nimage a 7 {D1}");
    assert_eq!(
        Manifest::parse(t.as_bytes())
            .unwrap()
            .find("a")
            .unwrap()
            .size,
        7
    );
    // The largest size is exactly 64 MiB.
    let t = text(&[HEADER, &format!("image a 67108864 {D1}")]);
    assert_eq!(
        Manifest::parse(t.as_bytes())
            .unwrap()
            .find("a")
            .unwrap()
            .size,
        MAX_IMAGE
    );
    // Words are separated by exactly one space; nothing else is blank.
    for line in [
        format!(" image a 1 {D1}"),
        format!("image  a 1 {D1}"),
        format!("image a 1 {D1} "),
        format!("image\ta 1 {D1}"),
        " ".into(),
    ] {
        assert_eq!(
            Manifest::parse(text(&[HEADER, &line]).as_bytes()).unwrap_err(),
            ManifestError::BadLine { line: 2 },
            "{line:?}"
        );
    }
    assert_eq!(
        Manifest::parse(text(&[HEADER, "", "#", "bogus"]).as_bytes()).unwrap_err(),
        ManifestError::BadLine { line: 4 }
    );
}

#[test]
fn digests_decode_exactly() {
    let digest: String = (0..32).map(|i| format!("{:02x}", i * 7)).collect();
    let t = text(&[HEADER, &format!("image a 1 {digest}")]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    let expected: [u8; 32] = core::array::from_fn(|i| (i * 7) as u8);
    assert_eq!(m.find("a").unwrap().sha256, expected);
    let mut bad = digest.clone();
    bad.replace_range(10..11, "g");
    assert_eq!(
        Manifest::parse(text(&[HEADER, &format!("image a 1 {bad}")]).as_bytes()).unwrap_err(),
        ManifestError::BadDigest { line: 2 }
    );
}

#[test]
fn every_error_displays_its_line() {
    for (error, needle) in [
        (ManifestError::NoHeader { line: 3 }, "line 3"),
        (ManifestError::BadLine { line: 4 }, "line 4"),
        (ManifestError::BadName { line: 5 }, "line 5"),
        (ManifestError::BadSize { line: 6 }, "line 6"),
        (ManifestError::BadDigest { line: 7 }, "line 7"),
        (ManifestError::Duplicate { line: 8 }, "line 8"),
        (ManifestError::UnknownStart { line: 9 }, "line 9"),
        (ManifestError::TooManyImages, "256"),
        (ManifestError::TooManyStarts, "256"),
        (ManifestError::NotText, "UTF-8"),
    ] {
        let message = format!("{error}");
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn start_may_precede_its_image_and_starts_are_bounded() {
    let t = text(&[HEADER, "start a", &format!("image a 1 {D1}")]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert_eq!(m.starts().count(), 1);
    let mut t = text(&[HEADER, &format!("image a 1 {D1}")]);
    for _ in 0..MAX_STARTS {
        t += "start a\n";
    }
    assert_eq!(
        Manifest::parse(t.as_bytes()).unwrap().starts().count(),
        MAX_STARTS
    );
    t += "start a\n";
    assert_eq!(
        Manifest::parse(t.as_bytes()).unwrap_err(),
        ManifestError::TooManyStarts
    );
}

#[test]
fn a_large_manifest_costs_linear_time() {
    // Many blank lines, then the most images and starts: parsing checks
    // duplicates and starts against the names seen, never by re-walking the
    // text for each line.
    let mut t = String::from(HEADER) + "\n";
    t += &"\n".repeat(200_000);
    for i in 0..MAX_IMAGES {
        t += &format!("image i{i} 1 {D1}\n");
    }
    for i in 0..MAX_STARTS {
        t += &format!("start i{}\n", MAX_IMAGES - 1 - i);
    }
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert_eq!(m.images().count(), MAX_IMAGES);
    assert_eq!(m.starts().count(), MAX_STARTS);
}
