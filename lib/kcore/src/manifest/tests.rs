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
    for i in 0..MAX_GRANTS {
        t += &format!(
            "supervise i{} i{}\n",
            i % MAX_IMAGES,
            MAX_IMAGES - 1 - i / 2
        );
    }
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert_eq!(m.images().count(), MAX_IMAGES);
    assert_eq!(m.starts().count(), MAX_STARTS);
    assert_eq!(m.grants().count(), MAX_GRANTS);
}

/// A manifest with two images, `a` and `b`, then `extra`.
fn with_images(extra: &[&str]) -> String {
    let mut lines = std::vec![
        HEADER.to_string(),
        format!("image a 1 {D1}"),
        format!("image b 2 {D2}"),
    ];
    lines.extend(extra.iter().map(|l| l.to_string()));
    let refs: std::vec::Vec<&str> = lines.iter().map(|l| l.as_str()).collect();
    text(&refs)
}

#[test]
fn grants_are_parsed_and_answer_the_kernels_questions() {
    let t = with_images(&[
        "export a checksum",
        "export a control",
        "device b 01:08:02",
        "device a 02:00:00:8086",
        "supervise a b",
        "start a",
    ]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert_eq!(m.grants().count(), 5);
    assert_eq!(m.images().count(), 2);
    assert_eq!(m.starts().count(), 1);
    assert_eq!(
        m.rights_of("a").collect::<std::vec::Vec<_>>(),
        [
            Right::Export("checksum"),
            Right::Export("control"),
            Right::Device(DeviceMatch {
                class: (2, 0, 0),
                vendor: Some(0x8086)
            }),
            Right::Supervise("b"),
        ]
    );
    assert!(m.may_export("a", "checksum"));
    assert!(!m.may_export("b", "checksum"));
    assert!(!m.may_export("a", "check"));
    assert!(!m.may_export("nope", "checksum"));
    // Any vendor, or exactly the one granted.
    assert!(m.may_claim("b", (1, 8, 2), 0x1b36));
    assert!(m.may_claim("b", (1, 8, 2), 0xffff));
    assert!(!m.may_claim("b", (1, 8, 3), 0x1b36));
    assert!(!m.may_claim("a", (1, 8, 2), 0x1b36));
    assert!(m.may_claim("a", (2, 0, 0), 0x8086));
    assert!(!m.may_claim("a", (2, 0, 0), 0x10ec));
    assert!(m.may_claim_class("a", (2, 0, 0)));
    assert!(!m.may_claim_class("a", (1, 8, 2)));
    // Supervision is directed and by image.
    assert!(m.may_supervise("a", "b"));
    assert!(!m.may_supervise("b", "a"));
    assert!(!m.may_supervise("a", "a"));
}

#[test]
fn an_image_without_grants_has_no_rights() {
    let t = with_images(&[]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert_eq!(m.grants().count(), 0);
    assert!(!m.may_export("a", "control"));
    assert!(!m.may_claim("a", (1, 8, 2), 0));
    assert!(!m.may_claim_class("a", (1, 8, 2)));
    assert!(!m.may_supervise("a", "b"));
}

#[test]
fn grants_may_precede_their_images() {
    let t = text(&[
        HEADER,
        "supervise a b",
        "export b bdev",
        &format!("image a 1 {D1}"),
        &format!("image b 2 {D2}"),
    ]);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert!(m.may_supervise("a", "b") && m.may_export("b", "bdev"));
}

#[test]
fn hostile_grants_are_refused_with_their_line() {
    let bad = |extra: &[&str]| Manifest::parse(with_images(extra).as_bytes()).unwrap_err();
    // Unlisted images, as grantee or as supervise target.
    assert_eq!(
        bad(&["export c checksum"]),
        ManifestError::UnknownImage { line: 4 }
    );
    assert_eq!(
        bad(&["device c 01:08:02"]),
        ManifestError::UnknownImage { line: 4 }
    );
    assert_eq!(
        bad(&["supervise a c"]),
        ManifestError::UnknownImage { line: 4 }
    );
    assert_eq!(
        bad(&["supervise c a"]),
        ManifestError::UnknownImage { line: 4 }
    );
    // Word counts and spacing.
    for line in [
        "export a",
        "export",
        "export a b c",
        "export  a b",
        "export a b ",
        "supervise a",
        "device a",
        "device a 01:08:02 x",
        "export\ta b",
    ] {
        assert_eq!(bad(&[line]), ManifestError::BadLine { line: 4 }, "{line:?}");
    }
    // Names as for images.
    for line in [
        "export a Checksum",
        "export a has.dot",
        "export a 1x",
        "export A x",
        "device a/b 01:08:02",
        "supervise a B",
        "export a a_very_long_name_that_is_over_32_chars",
    ] {
        assert_eq!(bad(&[line]), ManifestError::BadName { line: 4 }, "{line:?}");
    }
    // Devices: exactly CC:SS:PP[:VVVV], lowercase hex.
    for device in [
        "01:08",
        "01:08:02:",
        "01:08:02:1b36:00",
        "1:08:02",
        "001:08:02",
        "01:08:0G",
        "01:08:02:1B36",
        "0A:08:02",
        "01:08:02:1b3",
        "01:08:02:01b36",
        "::",
        "+1:08:02",
        "01-08-02",
    ] {
        assert_eq!(
            bad(&[&format!("device a {device}")]),
            ManifestError::BadDevice { line: 4 },
            "{device}"
        );
    }
    // The same grant twice.
    assert_eq!(
        bad(&["export a x", "export b x", "export a x"]),
        ManifestError::DuplicateGrant { line: 6 }
    );
    assert_eq!(
        bad(&["device a 01:08:02", "device a 01:08:02"]),
        ManifestError::DuplicateGrant { line: 5 }
    );
}

#[test]
fn grants_are_bounded() {
    let mut extra = std::vec::Vec::new();
    for i in 0..MAX_GRANTS {
        extra.push(format!("export a e{i}"));
    }
    let refs: std::vec::Vec<&str> = extra.iter().map(|l| l.as_str()).collect();
    let t = with_images(&refs);
    let m = Manifest::parse(t.as_bytes()).unwrap();
    assert_eq!(m.grants().count(), MAX_GRANTS);
    assert!(m.may_export("a", &format!("e{}", MAX_GRANTS - 1)));
    extra.push("export b one-more".into());
    let refs: std::vec::Vec<&str> = extra.iter().map(|l| l.as_str()).collect();
    assert_eq!(
        Manifest::parse(with_images(&refs).as_bytes()).unwrap_err(),
        ManifestError::TooManyGrants
    );
}

#[test]
fn device_matches_parse_exactly() {
    assert_eq!(
        DeviceMatch::parse("01:08:02"),
        Some(DeviceMatch {
            class: (1, 8, 2),
            vendor: None
        })
    );
    assert_eq!(
        DeviceMatch::parse("ff:ff:ff:ffff"),
        Some(DeviceMatch {
            class: (0xff, 0xff, 0xff),
            vendor: Some(0xffff)
        })
    );
    assert_eq!(DeviceMatch::parse(""), None);
    assert_eq!(DeviceMatch::parse("01:08:02:"), None);
}

#[test]
fn new_errors_display_their_line() {
    for (error, needle) in [
        (ManifestError::BadDevice { line: 3 }, "line 3"),
        (ManifestError::UnknownImage { line: 4 }, "line 4"),
        (ManifestError::DuplicateGrant { line: 5 }, "line 5"),
        (ManifestError::TooManyGrants, "512"),
    ] {
        let message = format!("{error}");
        assert!(message.contains(needle), "{message}");
    }
}

#[test]
fn random_mutations_of_grants_never_panic() {
    let good = with_images(&[
        "export a checksum",
        "device b 01:08:02:1b36",
        "supervise a b",
        "start b",
    ]);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..4000 {
        let mut bytes = good.clone().into_bytes();
        for _ in 0..(next() % 3 + 1) {
            if bytes.is_empty() {
                break;
            }
            let i = (next() % bytes.len() as u64) as usize;
            match next() % 3 {
                0 => bytes[i] ^= 1 << (next() % 8),
                1 => bytes.truncate(i),
                _ => bytes.insert(i, b" :\nabx0"[(next() % 7) as usize]),
            }
        }
        if let Ok(m) = Manifest::parse(&bytes) {
            // Whatever parsed names listed images only.
            for grant in m.grants() {
                assert!(m.find(grant.image).is_some(), "{grant:?}");
                if let Right::Supervise(target) = grant.right {
                    assert!(m.find(target).is_some());
                }
                if let Right::Export(name) = grant.right {
                    assert!(is_valid_name(name));
                }
            }
        }
    }
}
