//! Synthetic firmware for the ACPI tests: tables with correct checksums in
//! a fake physical memory, which tests then corrupt.

use std::vec;
use std::vec::Vec;

use crate::SliceMemory;

pub const MEM_SIZE: usize = 0x20000;
pub const RSDP: u64 = 0x100;
pub const XSDT: u64 = 0x1000;
pub const RSDT: u64 = 0x1800;
pub const FADT: u64 = 0x2000;
pub const MADT: u64 = 0x3000;
pub const MCFG: u64 = 0x4000;
pub const DMAR: u64 = 0x5000;
pub const DSDT: u64 = 0x8000;

pub struct Firmware {
    pub mem: Vec<u8>,
}

/// Sets byte `at` so that `bytes` sums to zero.
pub fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = 0u8.wrapping_sub(sum);
}

/// A table: header with `signature` and a correct checksum, then `body`.
pub fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 36];
    t[..4].copy_from_slice(signature);
    t[4..8].copy_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t[8] = revision;
    t[10..16].copy_from_slice(b"KCORE ");
    t[16..24].copy_from_slice(b"TESTTABL");
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

pub fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = vec![0u8; 20];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(b"KCORE ");
    r[16..20].copy_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut r, 8);
    r
}

pub fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = vec![0u8; 36];
    r[..20].copy_from_slice(&rsdp_v1(rsdt));
    r[15] = 2;
    fix_checksum(&mut r[..20], 8);
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    fix_checksum(&mut r, 32);
    r
}

pub fn xsdt(tables: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = tables.iter().flat_map(|t| t.to_le_bytes()).collect();
    table(b"XSDT", 1, &body)
}

pub fn rsdt(tables: &[u32]) -> Vec<u8> {
    let body: Vec<u8> = tables.iter().flat_map(|t| t.to_le_bytes()).collect();
    table(b"RSDT", 1, &body)
}

/// A MADT body prefix (local APIC address, flags) plus entries.
pub fn madt(local_apic: u32, flags: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&local_apic.to_le_bytes());
    body.extend_from_slice(&flags.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    table(b"APIC", 4, &body)
}

pub fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![0, 8, uid, id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

pub fn ioapic(id: u8, address: u32, gsi_base: u32) -> Vec<u8> {
    let mut e = vec![1, 12, id, 0];
    e.extend_from_slice(&address.to_le_bytes());
    e.extend_from_slice(&gsi_base.to_le_bytes());
    e
}

pub fn iso(source: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = vec![2, 10, 0, source];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

pub fn x2apic(id: u32, uid: u32, flags: u32) -> Vec<u8> {
    let mut e = vec![9, 16, 0, 0];
    e.extend_from_slice(&id.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(&uid.to_le_bytes());
    e
}

/// FADT fields the tests set; the rest stay zero.
pub struct FadtFields {
    pub length: usize,
    pub dsdt32: u32,
    pub x_dsdt: u64,
    pub smi_cmd: u32,
    pub acpi_enable: u8,
    pub pm1a_cnt: u32,
    pub pm1b_cnt: u32,
    pub flags: u32,
}

impl Default for FadtFields {
    fn default() -> Self {
        FadtFields {
            length: 244,
            dsdt32: DSDT as u32,
            x_dsdt: DSDT,
            smi_cmd: 0xb2,
            acpi_enable: 0xf1,
            pm1a_cnt: 0x604,
            pm1b_cnt: 0,
            flags: 1 << 10,
        }
    }
}

pub fn fadt(f: &FadtFields) -> Vec<u8> {
    let mut b = vec![0u8; 244];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(40, &f.dsdt32.to_le_bytes());
    put(46, &9u16.to_le_bytes());
    put(48, &f.smi_cmd.to_le_bytes());
    put(52, &[f.acpi_enable, 0xf0]);
    put(56, &0x600u32.to_le_bytes());
    put(64, &f.pm1a_cnt.to_le_bytes());
    put(68, &f.pm1b_cnt.to_le_bytes());
    put(76, &0x608u32.to_le_bytes());
    put(89, &[2, 0, 4]);
    put(108, &[0x32]);
    put(109, &2u16.to_le_bytes());
    put(112, &f.flags.to_le_bytes());
    put(116, &[1, 8, 0, 1]);
    put(120, &0xcf9u64.to_le_bytes());
    put(128, &[6]);
    put(140, &f.x_dsdt.to_le_bytes());
    table(b"FACP", 3, &b[36..f.length])
}

pub fn mcfg(entries: &[(u64, u16, u8, u8)]) -> Vec<u8> {
    let mut body = vec![0u8; 8];
    for &(base, seg, start, end) in entries {
        body.extend_from_slice(&base.to_le_bytes());
        body.extend_from_slice(&seg.to_le_bytes());
        body.extend_from_slice(&[start, end, 0, 0, 0, 0]);
    }
    table(b"MCFG", 1, &body)
}

/// A DMAR with host address width `width` (as stored: bits - 1) and the
/// given remapping structures (whole, from their type field on).
pub fn dmar(width: u8, structures: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![width, 0];
    body.extend_from_slice(&[0; 10]);
    for s in structures {
        body.extend_from_slice(s);
    }
    table(b"DMAR", 1, &body)
}

/// A DRHD structure: flags, segment, register base, `scope` bytes of
/// device scope after it.
pub fn drhd(flags: u8, segment: u16, base: u64, scope: usize) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&0u16.to_le_bytes());
    s.extend_from_slice(&((16 + scope) as u16).to_le_bytes());
    s.extend_from_slice(&[flags, 0]);
    s.extend_from_slice(&segment.to_le_bytes());
    s.extend_from_slice(&base.to_le_bytes());
    s.extend_from_slice(&vec![0u8; scope]);
    s
}

/// AML for `Name(\_S5_, Package(4){a, b, 0, 0})` with `a`, `b` encoded as given.
pub fn s5_aml(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut elements = vec![4u8];
    elements.extend_from_slice(a);
    elements.extend_from_slice(b);
    elements.extend_from_slice(&[0, 0]);
    let mut aml = vec![
        0x08,
        b'\\',
        b'_',
        b'S',
        b'5',
        b'_',
        0x12,
        (elements.len() + 1) as u8,
    ];
    aml.extend_from_slice(&elements);
    aml
}

/// A DSDT with some AML before the `_S5_` definition.
pub fn dsdt(aml: &[u8]) -> Vec<u8> {
    let mut body = vec![
        0x10, 0x0b, b'\\', b'_', b'S', b'B', b'_', 0x5b, 0x82, 0x05, b'P', b'C',
    ];
    body.extend_from_slice(aml);
    table(b"DSDT", 2, &body)
}

impl Firmware {
    /// A QEMU-like machine: two CPUs (one disabled) plus an x2APIC CPU, one
    /// I/O APIC, overrides for IRQ 0 and 9, an MCFG, and `\_S5_` = {5, 5}.
    pub fn qemu_like() -> Firmware {
        let mut fw = Firmware {
            mem: vec![0; MEM_SIZE],
        };
        fw.put(RSDP, &rsdp_v2(RSDT as u32, XSDT));
        fw.put(XSDT, &xsdt(&[FADT, MADT, MCFG]));
        fw.put(RSDT, &rsdt(&[FADT as u32, MADT as u32, MCFG as u32]));
        fw.put(FADT, &fadt(&FadtFields::default()));
        let entries = [
            lapic(0, 0, 1),
            lapic(1, 1, 1),
            lapic(2, 2, 2),
            ioapic(0, 0xfec0_0000, 0),
            iso(0, 2, 0),
            iso(9, 9, 0x000d),
            vec![4, 6, 0xff, 5, 0, 1],
            x2apic(300, 3, 1),
        ];
        fw.put(MADT, &madt(0xfee0_0000, 1, &entries));
        fw.put(MCFG, &mcfg(&[(0xb000_0000, 0, 0, 0xff)]));
        fw.put(DSDT, &dsdt(&s5_aml(&[0x0a, 5], &[0x0a, 5])));
        fw
    }

    pub fn put(&mut self, at: u64, bytes: &[u8]) {
        self.mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }

    pub fn put32(&mut self, at: u64, v: u32) {
        self.put(at, &v.to_le_bytes());
    }

    /// Re-computes the checksum of the table at `at` after a test edited it.
    pub fn fix_table(&mut self, at: u64) {
        let len = u32::from_le_bytes(
            self.mem[at as usize + 4..at as usize + 8]
                .try_into()
                .unwrap(),
        ) as usize;
        fix_checksum(&mut self.mem[at as usize..at as usize + len], 9);
    }

    pub fn memory(&self) -> SliceMemory<'_> {
        SliceMemory::new(0, &self.mem)
    }

    pub fn parse(&self) -> Result<super::Acpi, super::AcpiError> {
        super::Acpi::parse(&self.memory(), RSDP)
    }
}

/// Where the tests put an SPCR.
pub const SPCR: u64 = 0x6000;

/// An SPCR (80 bytes): interface type, base address (space, address),
/// interrupt type, IRQ, GSI, baud-rate code.
pub fn spcr(
    interface: u8,
    space: u8,
    address: u64,
    interrupt: u8,
    irq: u8,
    gsi: u32,
    baud: u8,
) -> Vec<u8> {
    let mut body = vec![0u8; 80 - 36];
    body[0] = interface;
    body[4] = space;
    body[5] = 8;
    body[8..16].copy_from_slice(&address.to_le_bytes());
    body[16] = interrupt;
    body[17] = irq;
    body[18..22].copy_from_slice(&gsi.to_le_bytes());
    body[22] = baud;
    table(b"SPCR", 2, &body)
}
