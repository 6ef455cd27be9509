//! Just enough AML to find `\_S5_`: the sleep-type values for soft-off.
//!
//! This is a byte search, not an interpreter: we look for the NameOp
//! `Name(_S5_, Package(){a, b, ...})` and decode the first two elements.
//! That is what firmware emits in practice (QEMU's included); a `_S5_`
//! built by a method would need a real AML interpreter.

use super::{AcpiError, Sdt};
use crate::PhysMemory;

const NAME_OP: u8 = 0x08;
const ROOT_CHAR: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xff;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const NAME: &[u8; 4] = b"_S5_";
/// SLP_TYP is a 3-bit field.
const MAX_SLP_TYP: u32 = 7;

/// The S5 sleep-type values (`SLP_TYPa`, `SLP_TYPb`), each at most 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepType {
    /// SLP_TYP for the PM1a control register.
    pub slp_typ_a: u16,
    /// SLP_TYP for the PM1b control register.
    pub slp_typ_b: u16,
}

/// Reads bytes of the table one at a time, never past `end`.
struct Cursor<'m, M> {
    mem: &'m M,
    pos: u64,
    end: u64,
}

impl<M: PhysMemory> Cursor<'_, M> {
    fn byte(&mut self, why: &'static str) -> Result<u8, AcpiError> {
        if self.pos >= self.end {
            return Err(AcpiError::BadS5(why));
        }
        let b = self
            .mem
            .read_u8(self.pos)
            .map_err(|error| AcpiError::Unreadable {
                what: "DSDT",
                phys: self.pos,
                error,
            })?;
        self.pos += 1;
        Ok(b)
    }

    /// A PkgLength: one lead byte whose top two bits count the bytes that
    /// follow. Returns the end of the package.
    fn package_end(&mut self) -> Result<u64, AcpiError> {
        let start = self.pos;
        let lead = self.byte("truncated package length")?;
        let follow = lead >> 6;
        let mut len = u64::from(if follow == 0 {
            lead & 0x3f
        } else {
            lead & 0x0f
        });
        for i in 0..follow {
            len |= u64::from(self.byte("truncated package length")?) << (4 + 8 * u32::from(i));
        }
        let end = start
            .checked_add(len)
            .ok_or(AcpiError::BadS5("package length overflows"))?;
        if end > self.end || end <= self.pos {
            return Err(AcpiError::BadS5("package length out of bounds"));
        }
        Ok(end)
    }

    /// A sleep-type element: ZeroOp, OneOp, a Byte/Word/DWord constant, or
    /// (as some firmware writes it) a raw byte.
    fn sleep_type(&mut self) -> Result<u16, AcpiError> {
        let truncated = "truncated element";
        let value = match self.byte(truncated)? {
            ZERO_OP => 0,
            ONE_OP => 1,
            ONES_OP => return Err(AcpiError::BadS5("sleep type is Ones")),
            BYTE_PREFIX => u32::from(self.byte(truncated)?),
            WORD_PREFIX => u32::from(u16::from_le_bytes([
                self.byte(truncated)?,
                self.byte(truncated)?,
            ])),
            DWORD_PREFIX => {
                let mut b = [0u8; 4];
                for x in &mut b {
                    *x = self.byte(truncated)?;
                }
                u32::from_le_bytes(b)
            }
            raw => u32::from(raw),
        };
        if value > MAX_SLP_TYP {
            return Err(AcpiError::BadS5("sleep type out of range"));
        }
        Ok(value as u16)
    }
}

/// Finds `Name(_S5_, Package(){...})` in the DSDT's AML.
pub(super) fn find_s5(mem: &impl PhysMemory, dsdt: &Sdt) -> Result<SleepType, AcpiError> {
    let (body, end) = (dsdt.body(), dsdt.end());
    let mut chunk = [0u8; 256];
    let mut pos = body;
    while pos < end {
        let n = (end - pos).min(chunk.len() as u64) as usize;
        let buf = chunk.get_mut(..n).unwrap_or_default();
        mem.read(pos, buf).map_err(|error| AcpiError::Unreadable {
            what: "DSDT",
            phys: pos,
            error,
        })?;
        for (i, window) in buf.windows(NAME.len()).enumerate() {
            if window == NAME
                && let Some(found) = decode_candidate(mem, body, end, pos + i as u64)?
            {
                return Ok(found);
            }
        }
        if pos + n as u64 >= end {
            break;
        }
        // Overlap by three bytes so a name straddling chunks is seen once.
        pos += (n - (NAME.len() - 1)) as u64;
    }
    Err(AcpiError::S5NotFound)
}

/// `name` is the address of a `_S5_` match. `Ok(None)`: not a definition
/// of a package (a reference, or a coincidence), keep looking.
fn decode_candidate(
    mem: &impl PhysMemory,
    body: u64,
    end: u64,
    name: u64,
) -> Result<Option<SleepType>, AcpiError> {
    let at = |addr: u64| -> Result<Option<u8>, AcpiError> {
        if addr < body || addr >= end {
            return Ok(None);
        }
        mem.read_u8(addr)
            .map(Some)
            .map_err(|error| AcpiError::Unreadable {
                what: "DSDT",
                phys: addr,
                error,
            })
    };
    let before = name.checked_sub(1).map_or(Ok(None), at)?;
    let named = match before {
        Some(NAME_OP) => true,
        Some(ROOT_CHAR) => name.checked_sub(2).map_or(Ok(None), at)? == Some(NAME_OP),
        _ => false,
    };
    let mut cur = Cursor {
        mem,
        pos: name + NAME.len() as u64,
        end,
    };
    if !named || at(cur.pos)? != Some(PACKAGE_OP) {
        return Ok(None);
    }
    cur.pos += 1;
    cur.end = cur.package_end()?;
    let count = cur.byte("missing element count")?;
    if count < 2 {
        return Err(AcpiError::BadS5("fewer than two elements"));
    }
    let slp_typ_a = cur.sleep_type()?;
    let slp_typ_b = cur.sleep_type()?;
    Ok(Some(SleepType {
        slp_typ_a,
        slp_typ_b,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testfw::*;
    use super::super::{AcpiError, Signature};
    use super::SleepType;
    use std::vec;
    use std::vec::Vec;

    fn s5_of(aml: &[u8]) -> Result<SleepType, AcpiError> {
        let mut fw = Firmware::qemu_like();
        fw.put(DSDT, &dsdt(aml));
        fw.parse().unwrap().s5()
    }

    fn typ(a: u16, b: u16) -> Result<SleepType, AcpiError> {
        Ok(SleepType {
            slp_typ_a: a,
            slp_typ_b: b,
        })
    }

    #[test]
    fn element_encodings() {
        assert_eq!(s5_of(&s5_aml(&[0x00], &[0x01])), typ(0, 1));
        assert_eq!(s5_of(&s5_aml(&[0x0a, 7], &[0x0a, 0])), typ(7, 0));
        assert_eq!(
            s5_of(&s5_aml(&[0x0b, 3, 0], &[0x0c, 2, 0, 0, 0])),
            typ(3, 2)
        );
        assert_eq!(s5_of(&s5_aml(&[5], &[6])), typ(5, 6));
    }

    #[test]
    fn name_without_root_prefix_and_long_package_length() {
        // Name(_S5_, Package(2){0x0A 4, 0x0A 4}) with a two-byte PkgLength
        // padded to 18 bytes.
        let mut aml = vec![
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x42, 0x01, 2, 0x0a, 4, 0x0a, 4,
        ];
        aml.extend_from_slice(&[0xa3; 11]); // Noop padding inside the package
        assert_eq!(s5_of(&aml), typ(4, 4));
    }

    #[test]
    fn references_and_non_packages_are_skipped() {
        // Store(_S5_, Local0): a reference, not a definition.
        let mut aml = vec![0x70, b'_', b'S', b'5', b'_', 0x60];
        // Name(_S5_, 3): a name, but not a package.
        aml.extend_from_slice(&[0x08, b'_', b'S', b'5', b'_', 0x0a, 3]);
        assert_eq!(s5_of(&aml), Err(AcpiError::S5NotFound));
        aml.extend_from_slice(&s5_aml(&[0x0a, 2], &[0x0a, 1]));
        assert_eq!(s5_of(&aml), typ(2, 1));
        // `_S5_` at the very start of the body has nothing before it.
        assert_eq!(
            s5_of(&[b'_', b'S', b'5', b'_', 0x12, 4, 2, 0, 0]),
            Err(AcpiError::S5NotFound)
        );
        assert_eq!(s5_of(&[]), Err(AcpiError::S5NotFound));
    }

    #[test]
    fn found_wherever_chunks_split_it() {
        for pad in 0..600 {
            let mut aml = vec![0xa3; pad];
            aml.extend_from_slice(&s5_aml(&[0x0a, 3], &[0x0a, 6]));
            assert_eq!(s5_of(&aml), typ(3, 6), "padding {pad}");
        }
        // The name as the last bytes of the table.
        for pad in 0..300 {
            let mut aml = vec![0xa3; pad];
            aml.extend_from_slice(&[0x08, b'_', b'S', b'5', b'_']);
            assert_eq!(s5_of(&aml), Err(AcpiError::S5NotFound), "padding {pad}");
        }
    }

    #[test]
    fn malformed_packages() {
        let name = [0x08, b'\\', b'_', b'S', b'5', b'_', 0x12];
        let with = |rest: &[u8]| [&name[..], rest].concat();
        let bad = |why| Err(AcpiError::BadS5(why));
        assert_eq!(s5_of(&with(&[])), bad("truncated package length"));
        assert_eq!(s5_of(&with(&[0x42])), bad("truncated package length"));
        assert_eq!(
            s5_of(&with(&[0x3f, 2, 0, 0])),
            bad("package length out of bounds")
        );
        assert_eq!(
            s5_of(&with(&[0xff, 0xff, 0xff, 0xff])),
            bad("package length out of bounds")
        );
        assert_eq!(
            s5_of(&with(&[0x01, 2, 0, 0])),
            bad("package length out of bounds")
        );
        assert_eq!(s5_of(&with(&[0x02, 1, 0])), bad("fewer than two elements"));
        assert_eq!(s5_of(&with(&[0x03, 2, 0])), bad("truncated element"));
        assert_eq!(s5_of(&with(&[0x04, 2, 0, 0x0a])), bad("truncated element"));
        assert_eq!(
            s5_of(&with(&[0x05, 2, 0, 0x0b, 1])),
            bad("truncated element")
        );
        assert_eq!(
            s5_of(&with(&[0x05, 2, 0x0a, 8, 0])),
            bad("sleep type out of range")
        );
        assert_eq!(
            s5_of(&with(&[0x07, 2, 0x0c, 0, 0, 0, 1])),
            bad("sleep type out of range")
        );
        assert_eq!(s5_of(&with(&[0x04, 2, 0xff, 0])), bad("sleep type is Ones"));
        assert_eq!(
            s5_of(&with(&[0x04, 2, 0x70, 0])),
            bad("sleep type out of range")
        );
        assert_eq!(s5_of(&with(&[0x01])), bad("package length out of bounds"));
    }

    #[test]
    fn dsdt_problems() {
        let mut fw = Firmware::qemu_like();
        fw.mem[DSDT as usize + 40] ^= 1;
        assert_eq!(
            fw.parse().unwrap().s5(),
            Err(AcpiError::BadChecksum(Signature::DSDT))
        );

        let mut fw = Firmware::qemu_like();
        fw.put(DSDT, &table(b"SSDT", 2, &s5_aml(&[0], &[0])));
        let found = Signature(*b"SSDT");
        assert_eq!(
            fw.parse().unwrap().s5(),
            Err(AcpiError::BadSignature {
                expected: Signature::DSDT,
                found
            })
        );

        let mut fw = Firmware::qemu_like();
        fw.put(
            FADT,
            &fadt(&FadtFields {
                dsdt32: 0,
                x_dsdt: 0,
                ..FadtFields::default()
            }),
        );
        assert_eq!(
            fw.parse().unwrap().s5(),
            Err(AcpiError::MissingTable(Signature::DSDT))
        );
        assert_eq!(
            fw.parse().unwrap().poweroff(),
            Err(AcpiError::MissingTable(Signature::DSDT))
        );

        for x_dsdt in [MEM_SIZE as u64 - 20, u64::MAX - 3] {
            let mut fw = Firmware::qemu_like();
            fw.put(
                FADT,
                &fadt(&FadtFields {
                    x_dsdt,
                    ..FadtFields::default()
                }),
            );
            assert!(matches!(
                fw.parse().unwrap().s5(),
                Err(AcpiError::Unreadable { .. })
            ));
        }

        // A DSDT ending exactly at the end of memory.
        let mut fw = Firmware::qemu_like();
        let table = dsdt(&s5_aml(&[1], &[1]));
        let at = (MEM_SIZE - table.len()) as u64;
        fw.put(at, &table);
        fw.put(
            FADT,
            &fadt(&FadtFields {
                x_dsdt: at,
                ..FadtFields::default()
            }),
        );
        assert_eq!(fw.parse().unwrap().s5(), typ(1, 1));
        let mut big: Vec<u8> = vec![0xa3; 0x10000];
        big.extend_from_slice(&s5_aml(&[0x0a, 7], &[0x0a, 7]));
        assert_eq!(s5_of(&big), typ(7, 7));
    }
}
