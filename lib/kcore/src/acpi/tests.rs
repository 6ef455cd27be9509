//! Tests of RSDP and root-table validation, per-table isolation, and fuzzing.

use super::testfw::*;
use super::*;
use std::vec;
use std::vec::Vec;

#[test]
fn parses_qemu_like_tables() {
    let acpi = Firmware::qemu_like().parse().unwrap();
    assert_eq!(acpi.revision(), 2);
    assert_eq!(&acpi.oem_id(), b"KCORE ");
    assert_eq!(acpi.root().signature, Signature::XSDT);
    assert_eq!(acpi.tables().count(), 3);
    assert!(acpi.tables().all(|t| t.is_ok()));

    let madt = acpi.madt().unwrap();
    assert_eq!(madt.local_apic_address(), 0xfee0_0000);
    assert!(madt.pcat_compat());
    assert_eq!(madt.processors().len(), 4);
    assert_eq!(madt.enabled_apic_ids().collect::<Vec<_>>(), [0, 1, 300]);
    let offline = madt.processors().nth(2).unwrap();
    assert!(!offline.enabled && offline.online_capable && !offline.x2apic);
    let x2 = madt.processors().nth(3).unwrap();
    assert_eq!((x2.apic_id, x2.acpi_uid, x2.x2apic), (300, 3, true));
    let io: Vec<_> = madt.ioapics().copied().collect();
    assert_eq!(
        io,
        [IoApic {
            id: 0,
            address: 0xfec0_0000,
            gsi_base: 0
        }]
    );
    assert_eq!(madt.overrides().len(), 2);
    assert_eq!(madt.isa_irq(0), (2, Polarity::ActiveHigh, Trigger::Edge));
    assert_eq!(madt.isa_irq(9), (9, Polarity::ActiveHigh, Trigger::Level));
    assert_eq!(madt.isa_irq(4), (4, Polarity::ActiveHigh, Trigger::Edge));
    let irq9 = madt.overrides().find(|o| o.source_irq == 9).unwrap();
    assert!(irq9.level_triggered() && !irq9.active_low());
    assert_eq!(
        madt.nmis().next(),
        Some(&LocalApicNmi {
            acpi_uid: None,
            flags: 5,
            lint: 1
        })
    );

    let fadt = acpi.fadt().unwrap();
    assert_eq!(fadt.dsdt, DSDT);
    assert_eq!(
        (
            fadt.sci_int,
            fadt.smi_cmd,
            fadt.acpi_enable,
            fadt.acpi_disable
        ),
        (9, 0xb2, 0xf1, 0xf0)
    );
    assert_eq!(
        (fadt.pm1a_evt_blk, fadt.pm1a_cnt_blk, fadt.pm1b_cnt_blk),
        (0x600, 0x604, 0)
    );
    assert_eq!(
        (fadt.pm_tmr_blk, fadt.pm1_cnt_len, fadt.pm_tmr_len),
        (0x608, 2, 4)
    );
    assert_eq!((fadt.century, fadt.iapc_boot_arch), (0x32, 2));
    let reset = GenericAddress {
        address_space: 1,
        bit_width: 8,
        bit_offset: 0,
        access_size: 1,
        address: 0xcf9,
    };
    assert_eq!(fadt.reset(), Some((reset, 6)));
    assert!(!fadt.hardware_reduced());

    let mcfg = acpi.mcfg().unwrap();
    assert_eq!(
        mcfg.entries(),
        [McfgEntry {
            base_address: 0xb000_0000,
            segment: 0,
            start_bus: 0,
            end_bus: 0xff
        }]
    );
    assert_eq!(
        mcfg.find(0, 3).unwrap().config_address(3, 2, 1),
        Some(0xb000_0000 + (3 << 20) + (2 << 15) + (1 << 12))
    );
    assert_eq!(mcfg.find(1, 0), None);

    assert_eq!(
        acpi.s5(),
        Ok(SleepType {
            slp_typ_a: 5,
            slp_typ_b: 5
        })
    );
    let off = acpi.poweroff().unwrap();
    assert_eq!(off.pm1a_cnt, 0x604);
    assert_eq!(off.pm1b_cnt, None);
    assert_eq!(off.sleep_value_a(), 5 << 10 | 1 << 13);
    assert_eq!(off.sleep_value_b(), 0x3400);
    assert!(off.needs_acpi_enable(0));
    assert!(!off.needs_acpi_enable(SCI_EN));
}

#[test]
fn acpi_1_uses_the_rsdt() {
    let mut fw = Firmware::qemu_like();
    fw.put(RSDP, &rsdp_v1(RSDT as u32));
    let acpi = fw.parse().unwrap();
    assert_eq!(acpi.revision(), 0);
    assert_eq!(acpi.root().signature, Signature::RSDT);
    assert_eq!(acpi.madt().unwrap().processors().len(), 4);
    // A v2 RSDP with no XSDT falls back to the RSDT too.
    fw.put(RSDP, &rsdp_v2(RSDT as u32, 0));
    assert_eq!(fw.parse().unwrap().root().signature, Signature::RSDT);
}

#[test]
fn rsdp_errors() {
    let mut fw = Firmware::qemu_like();
    let good = rsdp_v2(RSDT as u32, XSDT);
    let mut bad = good.clone();
    bad[0] = b'X';
    fw.put(RSDP, &bad);
    assert_eq!(fw.parse().unwrap_err(), AcpiError::BadRsdpSignature);

    let mut bad = good.clone();
    bad[8] ^= 1;
    fw.put(RSDP, &bad);
    assert_eq!(fw.parse().unwrap_err(), AcpiError::BadRsdpChecksum);

    let mut bad = good.clone();
    bad[32] ^= 1;
    fw.put(RSDP, &bad);
    assert_eq!(fw.parse().unwrap_err(), AcpiError::BadRsdpExtendedChecksum);

    for length in [20u32, 35, 1025, u32::MAX] {
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&length.to_le_bytes());
        fix_checksum(&mut bad, 32);
        fw.put(RSDP, &bad);
        assert_eq!(fw.parse().unwrap_err(), AcpiError::BadRsdpLength(length));
    }

    fw.put(RSDP, &rsdp_v2(0, 0));
    assert_eq!(fw.parse().unwrap_err(), AcpiError::NoRootTable);

    let mem = fw.memory();
    assert!(matches!(
        Acpi::parse(&mem, MEM_SIZE as u64 - 10),
        Err(AcpiError::Unreadable { what: "RSDP", .. })
    ));
    assert!(matches!(
        Acpi::parse(&mem, u64::MAX - 5),
        Err(AcpiError::Unreadable { .. })
    ));
    // The v2 part runs past the end of memory.
    let mut tail = vec![0u8; 20];
    tail.copy_from_slice(&rsdp_v2(RSDT as u32, XSDT)[..20]);
    assert!(matches!(
        Acpi::parse(&crate::SliceMemory::new(0, &tail), 0),
        Err(AcpiError::Unreadable { .. })
    ));
}

#[test]
fn root_table_errors() {
    let mut fw = Firmware::qemu_like();
    fw.put(RSDP, &rsdp_v2(0, FADT));
    let found = Signature(*b"FACP");
    assert_eq!(
        fw.parse().unwrap_err(),
        AcpiError::BadSignature {
            expected: Signature::XSDT,
            found
        }
    );

    let mut fw = Firmware::qemu_like();
    fw.mem[XSDT as usize + 40] ^= 0x40;
    assert_eq!(
        fw.parse().unwrap_err(),
        AcpiError::BadChecksum(Signature::XSDT)
    );

    for length in [0u32, 35, MAX_TABLE_LEN + 1, u32::MAX] {
        let mut fw = Firmware::qemu_like();
        fw.put32(XSDT + 4, length);
        assert_eq!(
            fw.parse().unwrap_err(),
            AcpiError::BadLength {
                signature: Signature::XSDT,
                length
            }
        );
    }

    // Length runs past the end of memory.
    let mut fw = Firmware::qemu_like();
    fw.put32(XSDT + 4, MEM_SIZE as u32);
    assert!(matches!(
        fw.parse().unwrap_err(),
        AcpiError::Unreadable { what: "table", .. }
    ));

    // Table at the very top of the address space.
    fw.put(RSDP, &rsdp_v2(0, u64::MAX - 40));
    assert!(matches!(
        fw.parse().unwrap_err(),
        AcpiError::Unreadable { .. }
    ));

    // Entry area not a whole number of pointers.
    let mut fw = Firmware::qemu_like();
    let mut x = xsdt(&[FADT]);
    x.extend_from_slice(&[0, 0, 0]);
    let len = x.len() as u32;
    x[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut x, 9);
    fw.put(XSDT, &x);
    assert_eq!(
        fw.parse().unwrap_err(),
        AcpiError::BadLength {
            signature: Signature::XSDT,
            length: 47
        }
    );

    let mut fw = Firmware::qemu_like();
    fw.put(XSDT, &xsdt(&[FADT; MAX_TABLES + 1]));
    assert_eq!(
        fw.parse().unwrap_err(),
        AcpiError::TooManyTables(MAX_TABLES + 1)
    );
    fw.put(XSDT, &xsdt(&[FADT; MAX_TABLES]));
    assert_eq!(fw.parse().unwrap().tables().count(), MAX_TABLES);
}

#[test]
fn one_bad_table_does_not_hide_the_others() {
    let mut fw = Firmware::qemu_like();
    fw.mem[MADT as usize + 50] ^= 1;
    fw.put(
        XSDT,
        &xsdt(&[FADT, 0, MADT, MCFG, MEM_SIZE as u64 - 8, u64::MAX - 3]),
    );
    let acpi = fw.parse().unwrap();
    assert_eq!(
        acpi.madt().unwrap_err(),
        AcpiError::BadChecksum(Signature::MADT)
    );
    assert_eq!(
        acpi.find_table(Signature::MADT).unwrap_err(),
        AcpiError::BadChecksum(Signature::MADT)
    );
    assert!(acpi.fadt().is_ok() && acpi.mcfg().is_ok() && acpi.s5().is_ok());
    // The null entry is skipped; the two out-of-range ones are listed as errors.
    assert_eq!(acpi.tables().count(), 5);
    assert_eq!(acpi.tables().filter(|t| t.is_err()).count(), 3);
    assert_eq!(
        acpi.find_table(Signature(*b"HPET")).unwrap_err(),
        AcpiError::MissingTable(Signature(*b"HPET"))
    );

    let mut fw = Firmware::qemu_like();
    fw.put(XSDT, &xsdt(&[MADT]));
    let acpi = fw.parse().unwrap();
    assert_eq!(
        acpi.fadt().unwrap_err(),
        AcpiError::MissingTable(Signature::FADT)
    );
    assert_eq!(
        acpi.mcfg().unwrap_err(),
        AcpiError::MissingTable(Signature::MCFG)
    );
    assert_eq!(
        acpi.s5().unwrap_err(),
        AcpiError::MissingTable(Signature::FADT)
    );
    assert_eq!(
        acpi.poweroff().unwrap_err(),
        AcpiError::MissingTable(Signature::FADT)
    );
    assert!(acpi.madt().is_ok());
}

#[test]
fn every_error_displays() {
    let sig = Signature(*b"A\0C\x7f");
    assert_eq!(sig.to_string(), "A?C?");
    assert_eq!(format!("{:?}", Signature::MADT), "\"APIC\"");
    let errors = [
        AcpiError::Unreadable {
            what: "x",
            phys: 0,
            error: crate::MemError::OutOfRange,
        },
        AcpiError::BadRsdpSignature,
        AcpiError::BadRsdpChecksum,
        AcpiError::BadRsdpExtendedChecksum,
        AcpiError::BadRsdpLength(3),
        AcpiError::NoRootTable,
        AcpiError::BadSignature {
            expected: sig,
            found: sig,
        },
        AcpiError::BadLength {
            signature: sig,
            length: 1,
        },
        AcpiError::BadChecksum(sig),
        AcpiError::TooManyTables(99),
        AcpiError::MissingTable(sig),
        AcpiError::TooManyEntries {
            table: sig,
            what: "x",
        },
        AcpiError::BadEntry {
            table: sig,
            offset: 4,
        },
        AcpiError::S5NotFound,
        AcpiError::BadS5("x"),
        AcpiError::BadPort {
            what: "x",
            value: 1,
        },
    ];
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        AcpiError::BadChecksum(Signature::MADT).to_string(),
        "table APIC has a bad checksum"
    );
}

/// Random corruption, with checksums repaired half the time so the damage
/// reaches the table parsers: never a panic, whatever the bytes say.
#[test]
fn fuzzed_tables_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tables = [XSDT, FADT, MADT, MCFG, DSDT];
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut fw = Firmware::qemu_like();
        let target = tables[(rand() % tables.len() as u64) as usize];
        for _ in 0..1 + rand() % 4 {
            let at = target as usize + (rand() % 80) as usize;
            fw.mem[at] = match rand() % 3 {
                0 => 0,
                1 => 0xff,
                _ => rand() as u8,
            };
        }
        if rand() % 2 == 0 {
            let len = u32::from_le_bytes(fw.mem[target as usize + 4..][..4].try_into().unwrap());
            if (36..0x4000).contains(&len) {
                fw.fix_table(target);
            }
        }
        if let Ok(acpi) = fw.parse() {
            parsed += 1;
            let _ = acpi.tables().count();
            if let Ok(madt) = acpi.madt() {
                let _ = (
                    madt.enabled_apic_ids().count(),
                    madt.isa_irq(0),
                    madt.nmis().count(),
                );
            }
            let _ = (
                acpi.fadt().map(|f| f.reset()),
                acpi.mcfg().map(|m| m.find(0, 0).copied()),
            );
            let _ = (acpi.s5(), acpi.poweroff());
        }
    }
    assert!(
        parsed > 1000,
        "only {parsed} inputs parsed; the fuzzer is not reaching the table parsers"
    );
}

#[test]
fn spcr_names_the_console_uart() {
    let mut fw = Firmware::qemu_like();
    // No SPCR on the machine: missing, and nothing else changes.
    assert_eq!(
        fw.parse().unwrap().spcr().unwrap_err(),
        AcpiError::MissingTable(Signature::SPCR)
    );
    fw.put(XSDT, &xsdt(&[FADT, MADT, MCFG, SPCR]));
    // COM2 (a 16550 at I/O port 0x2f8, IRQ 3, 115200 baud).
    fw.put(SPCR, &spcr(0, 1, 0x2f8, 1, 3, 3, 7));
    let acpi = fw.parse().unwrap();
    let s = acpi.spcr().unwrap();
    assert_eq!(s.io_port_16550(), Some(0x2f8));
    assert_eq!(s.pc_at_irq(), Some(3));
    assert_eq!(s.baud, Some(115_200));
    // A memory-mapped UART, an ARM PL011, port 0 and a wide port: no
    // I/O-port 16550 to use.
    for (interface, space, address) in [
        (0u8, 0u8, 0xfed0_0000u64),
        (3, 1, 0x3f8),
        (0, 1, 0),
        (0, 1, 0x1_0000),
    ] {
        fw.put(SPCR, &spcr(interface, space, address, 1, 4, 4, 7));
        let acpi = fw.parse().unwrap();
        assert_eq!(
            acpi.spcr().unwrap().io_port_16550(),
            None,
            "{interface} {space} {address:#x}"
        );
    }
    // An IRQ only as a GSI, or out of the PC-AT range: no PC-AT IRQ.
    fw.put(SPCR, &spcr(0, 1, 0x3f8, 2, 4, 20, 0));
    let acpi = fw.parse().unwrap();
    assert_eq!(acpi.spcr().unwrap().pc_at_irq(), None);
    assert_eq!(acpi.spcr().unwrap().baud, None);
    // Too short: refused, the other tables unharmed.
    let mut short = spcr(0, 1, 0x2f8, 1, 3, 3, 7);
    short.truncate(60);
    short[4..8].copy_from_slice(&60u32.to_le_bytes());
    fix_checksum(&mut short, 9);
    fw.put(SPCR, &short);
    let acpi = fw.parse().unwrap();
    assert!(matches!(acpi.spcr(), Err(AcpiError::BadLength { .. })));
    assert!(acpi.madt().is_ok());
}
