use super::*;

/// A function's configuration space with BARs that decode like hardware:
/// writes keep only the address bits a BAR of its size implements.
struct Model {
    regs: [u32; 1024],
    /// Size masks per BAR register (0: not implemented).
    masks: [u32; 6],
    /// Read-only type bits per BAR register (none for the upper half of a
    /// 64-bit BAR).
    types: [u32; 6],
}

impl ConfigSpace for Model {
    fn read32(&self, offset: u16) -> u32 {
        self.regs[offset as usize / 4]
    }
    fn write32(&mut self, offset: u16, value: u32) {
        let index = offset as usize / 4;
        if (4..10).contains(&index) {
            let bar = index - 4;
            self.regs[index] = (value & self.masks[bar]) | self.types[bar];
        } else {
            self.regs[index] = value;
        }
    }
}

fn nvme_like() -> Model {
    let mut m = Model {
        regs: [0; 1024],
        masks: [0xFFFF_C000, 0xFFFF_FFFF, 0, 0, 0xFFFF_FF00, 0],
        types: [0x4, 0, 0, 0, 0x1, 0],
    };
    m.regs[0] = 0x0010_1B36; // 1b36:0010
    m.regs[1] = 0x0000_0006; // memory + bus master
    m.regs[2] = 0x0108_0202; // class 01, subclass 08, prog-if 02, rev 2
    m.regs[3] = 0x0000_0000;
    m.regs[4] = 0xFEBD_0000 | 0x4; // 64-bit memory BAR, 16 KiB
    m.regs[5] = 0x0000_0001; // upper half: 0x1_FEBD_0000
    m.regs[8] = 0x0000_C001; // I/O BAR, 256 ports
    m
}

#[test]
fn reads_the_header() {
    let m = nvme_like();
    let h = Header::read(&m).unwrap();
    assert_eq!((h.vendor, h.device), (0x1B36, 0x0010));
    assert_eq!((h.class, h.subclass, h.prog_if, h.revision), (1, 8, 2, 2));
    assert_eq!(h.class_name(), "NVMe controller");
    assert!(!h.multifunction);
    let mut empty = nvme_like();
    empty.regs[0] = 0xFFFF_FFFF;
    assert!(Header::read(&empty).is_none());
}

#[test]
fn sizes_64_bit_and_io_bars_and_restores_everything() {
    let mut m = nvme_like();
    let before = m.regs;
    let bars = probe_bars(&mut m);
    assert_eq!(
        bars[0],
        Bar::Memory {
            address: 0x1_FEBD_0000,
            size: 16 * 1024,
            wide: true,
            prefetchable: false
        }
    );
    assert_eq!(bars[1], Bar::None, "the upper half of BAR0");
    assert_eq!(
        bars[4],
        Bar::Io {
            port: 0xC000,
            size: 256
        }
    );
    assert_eq!(bars[2], Bar::None);
    assert_eq!(m.regs, before, "every register restored");
}

#[test]
fn a_32_bit_bar() {
    let mut m = nvme_like();
    m.regs[4] = 0xFEB0_0000; // 32-bit, 1 MiB
    m.masks[0] = 0xFFF0_0000;
    m.types[0] = 0;
    m.masks[1] = 0;
    m.regs[5] = 0;
    let bars = probe_bars(&mut m);
    assert_eq!(
        bars[0],
        Bar::Memory {
            address: 0xFEB0_0000,
            size: 1 << 20,
            wide: false,
            prefetchable: false
        }
    );
    assert_eq!(bars[1], Bar::None);
}
