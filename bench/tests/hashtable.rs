//! The three tables of the hashtable experiment hold the same items and
//! answer the same (the benchmark also checks its lookups' checksums).

use bench::hashtable::{C, CStyle, Idiomatic, keys, measure};

#[test]
fn c_idiomatic_and_c_style_tables_agree() {
    let slots = 1 << 12;
    let present = keys(slots / 4 * 3, 7);
    let (mut c, mut idiomatic, mut c_style) =
        (C::new(slots), Idiomatic::new(slots), CStyle::new(slots));
    for (i, &k) in present.iter().enumerate() {
        c.insert(k, i as u64 + 10);
        idiomatic.insert(k, i as u64 + 10);
        c_style.insert(k, i as u64 + 10);
    }
    for (i, &k) in present.iter().enumerate() {
        assert_eq!(idiomatic.get(k), Some(i as u64 + 10));
        assert_eq!(c_style.get(k), i as u64 + 10);
        assert_eq!(c.lookups(&[k]), i as u64 + 10);
    }
    // Absent keys (the generator never makes these).
    for k in [u64::MAX, 0xdead_0000_0000_0000] {
        assert_eq!(idiomatic.get(k), None);
        assert_eq!(c_style.get(k), 0);
        assert_eq!(c.lookups(&[k]), 0);
    }
    // Overwriting keeps one entry per key.
    idiomatic.insert(present[0], 1);
    c_style.insert(present[0], 1);
    c.insert(present[0], 1);
    assert_eq!(
        (
            idiomatic.get(present[0]),
            c_style.get(present[0]),
            c.lookups(&present[..1])
        ),
        (Some(1), 1, 1)
    );
}

#[test]
fn a_measurement_runs_and_its_checksums_agree() {
    let row = measure(12, 4096, 1);
    assert!(row.checksum > 0);
    assert!(row.c > 0.0 && row.idiomatic > 0.0 && row.c_style > 0.0);
}
