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
