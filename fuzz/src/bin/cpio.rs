//! Any bytes as a cpio newc archive: `kcore::cpio::Archive::parse` must
//! refuse or give an archive whose every entry reads back (no panic, no
//! overflow, entries counted as parsed, each findable by name).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(archive) = kcore::cpio::Archive::parse(data) {
            let mut count = 0;
            for entry in archive.entries() {
                count += 1;
                // Touch every byte so a bad slice would show.
                let sum = entry.data.iter().fold(0u8, |a, &b| a.wrapping_add(b));
                core::hint::black_box((entry.name.len(), entry.mode, sum));
                assert!(
                    archive.find(entry.name).is_some(),
                    "entry {:?} listed but not found",
                    entry.name
                );
            }
            assert_eq!(count, archive.len(), "entries() yields len() entries");
            assert_eq!(archive.is_empty(), count == 0);
        }
    });
}
