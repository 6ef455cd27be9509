//! Tests of the individual table parsers: MADT, FADT (and power-off), MCFG,
//! DMAR.

use super::testfw::*;
use super::*;
use std::vec;
use std::vec::Vec;

fn with_madt(entries: &[Vec<u8>]) -> Result<Madt, AcpiError> {
    let mut fw = Firmware::qemu_like();
    fw.put(MADT, &madt(0xfee0_0000, 0, entries));
    fw.parse().unwrap().madt().cloned()
}

#[test]
fn madt_entry_errors() {
    let bad = |offset| {
        Err::<(), _>(AcpiError::BadEntry {
            table: Signature::MADT,
            offset,
        })
    };
    assert_eq!(
        with_madt(&[lapic(0, 0, 1), vec![0, 0, 0, 0]]).unwrap_err(),
        bad(52).unwrap_err()
    );
    assert_eq!(with_madt(&[vec![7, 1]]).unwrap_err(), bad(44).unwrap_err());
    // Entry claims more bytes than the table has.
    assert_eq!(
        with_madt(&[vec![1, 12, 0, 0, 0, 0]]).unwrap_err(),
        bad(44).unwrap_err()
    );
    // Entry too short for its type.
    assert_eq!(
        with_madt(&[vec![1, 6, 0, 0, 0, 0]]).unwrap_err(),
        bad(44).unwrap_err()
    );
    assert_eq!(
        with_madt(&[vec![9, 8, 0, 0, 0, 0, 0, 0]]).unwrap_err(),
        bad(44).unwrap_err()
    );
    // A lone trailing byte.
    assert_eq!(
        with_madt(&[lapic(0, 0, 1), vec![0]]).unwrap_err(),
        bad(52).unwrap_err()
    );

    let many: Vec<_> = (0..=MAX_PROCESSORS)
        .map(|i| lapic(i as u8, i as u8, 1))
        .collect();
    let err = AcpiError::TooManyEntries {
        table: Signature::MADT,
        what: "processors",
    };
    assert_eq!(with_madt(&many).unwrap_err(), err);
    assert_eq!(
        with_madt(&many[1..]).unwrap().processors().len(),
        MAX_PROCESSORS
    );
    let many: Vec<_> = (0..=MAX_IOAPICS).map(|i| ioapic(i as u8, 0, 0)).collect();
    assert!(matches!(
        with_madt(&many),
        Err(AcpiError::TooManyEntries {
            what: "I/O APICs",
            ..
        })
    ));

    let mut fw = Firmware::qemu_like();
    fw.put(MADT, &table(b"APIC", 1, &[0; 7]));
    let err = AcpiError::BadLength {
        signature: Signature::MADT,
        length: 43,
    };
    assert_eq!(fw.parse().unwrap().madt().unwrap_err(), err);
}

#[test]
fn madt_overrides_and_unknown_entries() {
    let mut override_entry = vec![5, 12, 0, 0];
    override_entry.extend_from_slice(&0x1_0000_0000u64.to_le_bytes());
    let unknown = vec![0x7f, 5, 1, 2, 3];
    let long_lapic = [lapic(4, 4, 1), vec![0xaa; 4]].concat();
    let mut long_lapic = long_lapic;
    long_lapic[1] = 12;
    let x2nmi = vec![0xa, 12, 3, 0, 7, 0, 0, 0, 1, 0, 0, 0];
    let madt = with_madt(&[unknown, override_entry, long_lapic, x2nmi]).unwrap();
    assert_eq!(madt.local_apic_address(), 0x1_0000_0000);
    assert!(!madt.pcat_compat());
    assert_eq!(madt.enabled_apic_ids().collect::<Vec<_>>(), [4]);
    assert_eq!(
        madt.nmis().next(),
        Some(&LocalApicNmi {
            acpi_uid: Some(7),
            flags: 3,
            lint: 1
        })
    );
    let empty = with_madt(&[]).unwrap();
    assert_eq!(empty.processors().len(), 0);
    assert_eq!(empty.ioapics().next(), None);

    let iso = InterruptOverride {
        bus: 0,
        source_irq: 4,
        gsi: 20,
        flags: 0b1111,
    };
    assert_eq!(
        (iso.polarity(), iso.trigger()),
        (Polarity::ActiveLow, Trigger::Level)
    );
    assert!(iso.active_low() && iso.level_triggered());
    let iso = InterruptOverride {
        flags: 0b1010,
        ..iso
    };
    assert_eq!(
        (iso.polarity(), iso.trigger()),
        (Polarity::Reserved, Trigger::Reserved)
    );
}

#[test]
fn fadt_versions_and_errors() {
    // An ACPI 1.0 FADT: 116 bytes, no reset register, no X_DSDT.
    let mut fw = Firmware::qemu_like();
    fw.put(
        FADT,
        &fadt(&FadtFields {
            length: 116,
            ..FadtFields::default()
        }),
    );
    let acpi = fw.parse().unwrap();
    let f = acpi.fadt().unwrap();
    assert_eq!((f.dsdt, f.reset_reg, f.reset()), (DSDT, None, None));
    assert_eq!(acpi.s5().unwrap().slp_typ_a, 5);

    // X_DSDT wins over DSDT when set; DSDT is used when it is zero.
    fw.put(
        FADT,
        &fadt(&FadtFields {
            dsdt32: 0x1234,
            ..FadtFields::default()
        }),
    );
    assert_eq!(fw.parse().unwrap().fadt().unwrap().dsdt, DSDT);
    fw.put(
        FADT,
        &fadt(&FadtFields {
            x_dsdt: 0,
            ..FadtFields::default()
        }),
    );
    assert_eq!(fw.parse().unwrap().fadt().unwrap().dsdt, DSDT);

    // No reset without the flag.
    fw.put(
        FADT,
        &fadt(&FadtFields {
            flags: 0,
            ..FadtFields::default()
        }),
    );
    assert_eq!(fw.parse().unwrap().fadt().unwrap().reset(), None);

    fw.put(
        FADT,
        &fadt(&FadtFields {
            length: 115,
            ..FadtFields::default()
        }),
    );
    let err = AcpiError::BadLength {
        signature: Signature::FADT,
        length: 115,
    };
    assert_eq!(fw.parse().unwrap().fadt().unwrap_err(), err);
    assert_eq!(fw.parse().unwrap().poweroff().unwrap_err(), err);
}

#[test]
fn poweroff_port_checks() {
    let power = |f: FadtFields| {
        let mut fw = Firmware::qemu_like();
        fw.put(FADT, &fadt(&f));
        fw.parse().unwrap().poweroff()
    };
    let off = power(FadtFields {
        pm1b_cnt: 0x704,
        smi_cmd: 0,
        ..FadtFields::default()
    })
    .unwrap();
    assert_eq!(off.pm1b_cnt, Some(0x704));
    assert!(!off.needs_acpi_enable(0));
    let bad = |what, value| Err(AcpiError::BadPort { what, value });
    assert_eq!(
        power(FadtFields {
            pm1a_cnt: 0,
            ..FadtFields::default()
        }),
        bad("PM1a_CNT_BLK", 0)
    );
    assert_eq!(
        power(FadtFields {
            pm1a_cnt: 0x10000,
            ..FadtFields::default()
        }),
        bad("PM1a_CNT_BLK", 0x10000)
    );
    assert_eq!(
        power(FadtFields {
            pm1b_cnt: 0x1_0004,
            ..FadtFields::default()
        }),
        bad("PM1b_CNT_BLK", 0x1_0004)
    );
    assert_eq!(
        power(FadtFields {
            smi_cmd: u32::MAX,
            ..FadtFields::default()
        }),
        bad("SMI_CMD", 0xffff_ffff)
    );

    // Out-of-range fields set directly are masked to three bits.
    let wild = AcpiPowerOff {
        slp_typ_a: 0xffff,
        ..off
    };
    assert_eq!(wild.sleep_value_a(), 7 << 10 | SLP_EN);
}

#[test]
fn mcfg_errors() {
    let parse = |bytes: Vec<u8>| {
        let mut fw = Firmware::qemu_like();
        fw.put(MCFG, &bytes);
        fw.parse().unwrap().mcfg().cloned()
    };
    let ok = parse(mcfg(&[
        (0xe000_0000, 0, 0, 0x3f),
        (0xf000_0000, 1, 0x40, 0x40),
    ]))
    .unwrap();
    assert_eq!(ok.entries().len(), 2);
    assert_eq!(
        ok.find(1, 0x40).unwrap().config_address(0x40, 31, 7),
        Some(0xf000_0000 + (31 << 15) + (7 << 12))
    );
    let e = ok.entries()[0];
    assert_eq!(
        (
            e.config_address(0x40, 0, 0),
            e.config_address(0, 32, 0),
            e.config_address(0, 0, 8)
        ),
        (None, None, None)
    );
    let top = McfgEntry {
        base_address: u64::MAX - 0x1000,
        segment: 0,
        start_bus: 0,
        end_bus: 1,
    };
    assert_eq!(top.config_address(1, 0, 0), None);

    assert_eq!(parse(mcfg(&[])).unwrap().entries(), []);
    let err = AcpiError::BadEntry {
        table: Signature::MCFG,
        offset: 60,
    };
    assert_eq!(parse(mcfg(&[(0, 0, 0, 0), (0, 0, 9, 8)])).unwrap_err(), err);
    let many = vec![(0u64, 0u16, 0u8, 0u8); MAX_MCFG_ENTRIES + 1];
    assert!(matches!(
        parse(mcfg(&many)),
        Err(AcpiError::TooManyEntries { .. })
    ));
    let err = AcpiError::BadLength {
        signature: Signature::MCFG,
        length: 50,
    };
    assert_eq!(parse(table(b"MCFG", 1, &[0; 14])).unwrap_err(), err);
    let err = AcpiError::BadLength {
        signature: Signature::MCFG,
        length: 40,
    };
    assert_eq!(parse(table(b"MCFG", 1, &[0; 4])).unwrap_err(), err);
}

/// A QEMU-like machine whose XSDT also lists a DMAR made of `bytes`.
fn with_dmar(bytes: &[u8]) -> Result<Dmar, AcpiError> {
    let mut fw = Firmware::qemu_like();
    fw.put(XSDT, &xsdt(&[FADT, MADT, MCFG, DMAR]));
    fw.put(DMAR, bytes);
    fw.parse().unwrap().dmar().cloned()
}

#[test]
fn dmar_units_are_found_and_other_structures_skipped() {
    let rmrr = {
        let mut s = vec![1, 0, 24, 0];
        s.extend_from_slice(&[0; 20]);
        s
    };
    let dmar = with_dmar(&dmar(
        38,
        &[
            drhd(1, 0, 0xfed9_0000, 0),
            rmrr,
            drhd(0, 1, 0x1_0000_0000, 0),
        ],
    ))
    .unwrap();
    assert_eq!(dmar.host_address_width, 39);
    assert_eq!(
        dmar.units(),
        [
            DmarUnit::new(0xfed9_0000, 0, true),
            DmarUnit::new(0x1_0000_0000, 1, false),
        ]
    );
    assert!(
        dmar.units()[0].covers(3, 4, 0),
        "include-all covers anything"
    );
    assert!(
        !dmar.units()[1].covers(0, 4, 0),
        "an empty scope covers nothing"
    );
    // No DMAR: no IOMMU (not an error of the other tables).
    let fw = Firmware::qemu_like();
    assert_eq!(
        fw.parse().unwrap().dmar().unwrap_err(),
        AcpiError::MissingTable(Signature::DMAR)
    );
}

/// A device scope entry: type, start bus, (device, function) path.
fn scope(kind: u8, bus: u8, path: &[(u8, u8)]) -> Vec<u8> {
    let mut s = vec![kind, (6 + 2 * path.len()) as u8, 0, 0, 0, bus];
    for &(d, f) in path {
        s.extend_from_slice(&[d, f]);
    }
    s
}

#[test]
fn dmar_device_scopes_name_the_covered_endpoints() {
    // What QEMU's intel-iommu describes: no include-all flag, an I/O APIC
    // and each endpoint of bus 0 in the device scope.
    let mut unit = drhd(0, 0, 0xfed9_0000, 0);
    for entry in [
        scope(3, 0xff, &[(0, 0)]),
        scope(1, 0, &[(0, 0)]),
        scope(1, 0, &[(4, 0)]),
        scope(1, 0, &[(0x1f, 2)]),
        scope(1, 0, &[(1, 0), (0, 0)]), // behind a bridge: not resolved
    ] {
        unit.extend_from_slice(&entry);
    }
    let length = unit.len() as u16;
    unit[2..4].copy_from_slice(&length.to_le_bytes());
    let parsed = with_dmar(&dmar(38, &[unit.clone()])).unwrap();
    let found = parsed.units()[0];
    assert!(!found.include_all);
    assert_eq!(found.endpoints(), [0x0000, 0x0020, 0x00fa]);
    assert!(found.covers(0, 4, 0));
    assert!(found.covers(0, 0x1f, 2));
    assert!(!found.covers(0, 5, 0));
    assert!(
        !found.covers(1, 0, 0),
        "behind a bridge: unknown, not covered"
    );
    assert!(found.scope_incomplete);
    // A scope entry that runs past its unit, or is too short.
    let mut long = unit.clone();
    long[16 + 1] = 200;
    assert_eq!(
        with_dmar(&dmar(38, &[long])).map(|d| d.units().to_vec()),
        Err(AcpiError::BadEntry {
            table: Signature::DMAR,
            offset: 48 + 16,
        })
    );
    let mut short = unit;
    short[16 + 1] = 2;
    assert_eq!(
        with_dmar(&dmar(38, &[short])).map(|d| d.units().to_vec()),
        Err(AcpiError::BadEntry {
            table: Signature::DMAR,
            offset: 48 + 16,
        })
    );
}

#[test]
fn dmar_errors() {
    let bad = |offset| {
        Err::<Vec<DmarUnit>, _>(AcpiError::BadEntry {
            table: Signature::DMAR,
            offset,
        })
    };
    let units = |bytes: Vec<u8>| with_dmar(&bytes).map(|d| d.units().to_vec());
    // A structure of length 0 would never end the walk.
    assert_eq!(units(dmar(38, &[vec![1, 0, 0, 0]])), bad(48));
    // One that runs past the end of the table.
    let mut long = drhd(1, 0, 0xfed9_0000, 0);
    long[2] = 200;
    assert_eq!(units(dmar(38, &[long])), bad(48));
    // A DRHD shorter than its fixed part.
    assert_eq!(units(dmar(38, &[vec![0, 0, 8, 0, 1, 0, 0, 0]])), bad(48));
    // Three trailing bytes that cannot hold a structure header.
    assert_eq!(
        units(dmar(38, &[drhd(1, 0, 0xfed9_0000, 0), vec![0, 0, 0]])),
        bad(64)
    );
    // Too short to hold the fixed fields.
    assert_eq!(
        with_dmar(&table(b"DMAR", 1, &[0; 4])).map(|d| d.units().to_vec()),
        Err(AcpiError::BadLength {
            signature: Signature::DMAR,
            length: 40,
        })
    );
    // More units than kept.
    let many: Vec<Vec<u8>> = (0..=MAX_DMAR_UNITS)
        .map(|i| drhd(0, 0, 0x1000 * i as u64, 0))
        .collect();
    assert_eq!(
        units(dmar(38, &many)),
        Err(AcpiError::TooManyEntries {
            table: Signature::DMAR,
            what: "remapping units",
        })
    );
}
