use super::*;
use std::format;
use std::vec;
use std::vec::Vec;

/// Writes a newc archive (the format `tools/pack` writes).
fn write(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let all = entries.iter().copied().chain([(TRAILER, &[][..])]);
    for (index, (name, data)) in all.enumerate() {
        let fields = [
            index + 1,
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
            0,
        ];
        out.extend_from_slice(MAGIC);
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

#[test]
fn round_trips_every_padding() {
    let sizes = [0usize, 1, 2, 3, 4, 5, 4096];
    let files: Vec<(std::string::String, Vec<u8>)> = sizes
        .iter()
        .map(|&n| (format!("f{n}"), (0..n).map(|i| i as u8).collect()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bytes = write(&refs);
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.len(), sizes.len());
    for ((name, data), entry) in files.iter().zip(archive.entries()) {
        assert_eq!(entry.name, name);
        assert_eq!(entry.data, &data[..]);
        assert_eq!(entry.mode, 0o100644);
    }
    assert_eq!(archive.find("f5"), Some(&[0u8, 1, 2, 3, 4][..]));
    assert_eq!(archive.find("nope"), None);
    // Trailing padding after the trailer is fine.
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 512]);
    assert_eq!(Archive::parse(&padded).unwrap().len(), sizes.len());
}

#[test]
fn empty_archive_is_just_a_trailer() {
    let bytes = write(&[]);
    let archive = Archive::parse(&bytes).unwrap();
    assert!(archive.is_empty());
    assert_eq!(archive.entries().count(), 0);
}

#[test]
fn paths_are_relative_and_clean() {
    assert!(Archive::parse(&write(&[("dir/file", b"x")])).is_ok());
    for bad in ["/abs", "a//b", "../up", "a/../b", "./x", "a/"] {
        assert!(
            matches!(
                Archive::parse(&write(&[(bad, b"x")])),
                Err(CpioError::BadName { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn every_error_is_reported() {
    let good = write(&[("a", b"hello"), ("b", b"world!")]);
    assert!(matches!(
        Archive::parse(b""),
        Err(CpioError::Truncated { offset: 0 })
    ));
    let mut old = good.clone();
    old[..6].copy_from_slice(b"070707");
    let error = Archive::parse(&old).unwrap_err();
    assert_eq!(
        error,
        CpioError::BadMagic {
            offset: 0,
            other_cpio: true
        }
    );
    assert!(format!("{error}").contains("only newc"));
    assert!(matches!(
        Archive::parse(b"PK\x03\x04 a zip file, not cpio at all, nope nope nope"),
        Err(CpioError::BadMagic {
            other_cpio: false,
            ..
        })
    ));
    let mut hex = good.clone();
    hex[6 + 6 * 8] = b'g'; // file size field
    assert!(matches!(
        Archive::parse(&hex),
        Err(CpioError::BadHex { .. })
    ));
    for cut in [5, 50, 110, 113, 118, good.len() - 20] {
        assert!(Archive::parse(&good[..cut]).is_err(), "cut at {cut}");
    }
    // A file size running past the end.
    let mut long = good.clone();
    long[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"7fffffff");
    assert!(matches!(
        Archive::parse(&long),
        Err(CpioError::Truncated { .. })
    ));
    // Name sizes.
    let mut zero = good.clone();
    zero[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000000");
    assert!(matches!(
        Archive::parse(&zero),
        Err(CpioError::BadNameSize { .. })
    ));
    let mut huge = good.clone();
    huge[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00100000");
    assert!(matches!(
        Archive::parse(&huge),
        Err(CpioError::BadNameSize { .. })
    ));
    // Name without its NUL.
    let mut nul = good.clone();
    nul[110 + 1] = b'x';
    assert!(Archive::parse(&nul).is_err());
    // Duplicates, no trailer.
    assert!(matches!(
        Archive::parse(&write(&[("a", b"1"), ("a", b"2")])),
        Err(CpioError::Duplicate { .. })
    ));
    let without_trailer = &good[..good.len() - 124];
    assert!(matches!(
        Archive::parse(without_trailer),
        Err(CpioError::NoTrailer | CpioError::Truncated { .. })
    ));
}

#[test]
fn too_many_entries() {
    let names: Vec<std::string::String> = (0..=MAX_ENTRIES).map(|i| format!("f{i}")).collect();
    let refs: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    assert_eq!(
        Archive::parse(&write(&refs)).err(),
        Some(CpioError::TooManyEntries)
    );
}

#[test]
fn errors_name_their_entry_and_offset() {
    let good = write(&[("a", b"hello"), ("b", b"world!")]);
    // The second entry starts after a's header, name (padded) and data.
    let second = (HEADER + 2).next_multiple_of(4) + 8;
    for flavour in [&b"070707"[..], b"070702"] {
        let mut other = good.clone();
        other[second..second + 6].copy_from_slice(flavour);
        let error = Archive::parse(&other).unwrap_err();
        assert_eq!(
            error,
            CpioError::BadMagic {
                offset: second,
                other_cpio: true
            }
        );
        let message = format!("{error}");
        assert!(message.contains("only newc"), "{message}");
        assert!(message.contains(&format!("{second}")), "{message}");
    }
    let mut hex = good.clone();
    hex[second + 6 + 8 + 3] = b'z'; // b's mode field
    assert_eq!(
        Archive::parse(&hex).err(),
        Some(CpioError::BadHex {
            offset: second + 6 + 8
        })
    );
    assert!(format!("{}", Archive::parse(&hex).unwrap_err()).contains(&format!("{}", second + 14)));
    assert_eq!(
        Archive::parse(&write(&[("a", b"1"), ("b", b""), ("a", b"2")])).err(),
        Some(CpioError::Duplicate {
            // a: header and name 112, data 4; b: 112, no data.
            offset: 112 + 4 + 112
        })
    );
    for error in [
        CpioError::Truncated { offset: 1234 },
        CpioError::BadNameSize {
            offset: 1234,
            size: 0,
        },
        CpioError::BadName { offset: 1234 },
        CpioError::Duplicate { offset: 1234 },
    ] {
        assert!(format!("{error}").contains("1234"), "{error}");
    }
    assert!(format!("{}", CpioError::TooManyEntries).contains("1024"));
    assert!(format!("{}", CpioError::NoTrailer).contains("TRAILER!!!"));
}

#[test]
fn names_must_be_nul_terminated_utf8() {
    let good = write(&[("ab", b"x")]);
    // The NUL replaced: the name runs on into its padding.
    let mut no_nul = good.clone();
    no_nul[HEADER + 2] = b'c';
    assert_eq!(
        Archive::parse(&no_nul).err(),
        Some(CpioError::BadName { offset: 0 })
    );
    // A NUL inside the name.
    let mut inner = good.clone();
    inner[HEADER] = 0;
    assert_eq!(
        Archive::parse(&inner).err(),
        Some(CpioError::BadName { offset: 0 })
    );
    // Not UTF-8.
    let mut latin1 = good.clone();
    latin1[HEADER] = 0xe9;
    assert_eq!(
        Archive::parse(&latin1).err(),
        Some(CpioError::BadName { offset: 0 })
    );
    // A name size running past the end of the archive.
    let mut long = good.clone();
    long[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00001000");
    assert_eq!(
        Archive::parse(&long).err(),
        Some(CpioError::Truncated { offset: 0 })
    );
    // The longest name is accepted.
    let name = "n".repeat(MAX_NAME - 1);
    let archive = write(&[(&name, b"data")]);
    assert_eq!(
        Archive::parse(&archive).unwrap().find(&name),
        Some(&b"data"[..])
    );
}

#[test]
fn the_walk_stops_at_the_trailer() {
    // Whatever follows the trailer (padding, garbage) is not read.
    let mut bytes = write(&[("a", b"1")]);
    bytes.extend_from_slice(b"not an entry at all");
    let archive = Archive::parse(&bytes).unwrap();
    assert_eq!(archive.len(), 1);
    // Zero padding where the next header should be is not a trailer.
    let mut cut = write(&[("a", b"1")]);
    let trailer = cut.len() - (HEADER + 11).next_multiple_of(4);
    cut.truncate(trailer);
    assert_eq!(Archive::parse(&cut).err(), Some(CpioError::NoTrailer));
    cut.extend_from_slice(&[0; 256]);
    assert_eq!(
        Archive::parse(&cut).err(),
        Some(CpioError::BadMagic {
            offset: trailer,
            other_cpio: false
        })
    );
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let good = write(&[
        ("manifest", b"domain-manifest v1\n"),
        ("a.elf", &[7; 300]),
        ("b.elf", b"xyz"),
    ]);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..2000 {
        let mut bytes = good.clone();
        match rng.below(3) {
            0 => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(rng.below(bytes.len())),
            _ => {
                let i = rng.below(bytes.len());
                bytes.insert(i, rng.next() as u8);
            }
        }
        if let Ok(archive) = Archive::parse(&bytes) {
            let range = bytes.as_ptr_range();
            for entry in archive.entries() {
                assert!(range.contains(&entry.data.as_ptr()) || entry.data.is_empty());
                assert!(entry.data.as_ptr_range().end <= range.end);
            }
            assert_eq!(archive.entries().count(), archive.len());
        }
    }
    let _ = vec![0u8; 0];
}
