//! The parts of the NVMe specification (base 1.4) the driver uses:
//! controller registers, command and completion layouts, PRPs, status.
//! Pure logic, tested on the host.

/// Controller registers (offsets into BAR0).
pub mod reg {
    /// Capabilities (64-bit).
    pub const CAP: u64 = 0x00;
    /// Version.
    pub const VS: u64 = 0x08;
    /// Controller configuration.
    pub const CC: u64 = 0x14;
    /// Controller status.
    pub const CSTS: u64 = 0x1C;
    /// Admin queue attributes.
    pub const AQA: u64 = 0x24;
    /// Admin submission queue base (64-bit).
    pub const ASQ: u64 = 0x28;
    /// Admin completion queue base (64-bit).
    pub const ACQ: u64 = 0x30;
    /// First doorbell.
    pub const DOORBELLS: u64 = 0x1000;
}

/// What CAP says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Largest queue, in entries.
    pub max_entries: u32,
    /// Bytes between doorbells.
    pub doorbell_stride: u64,
    /// How long enabling or disabling may take, in milliseconds.
    pub timeout_ms: u64,
    /// Smallest memory page size, in bytes.
    pub min_page: u64,
    /// Supports the NVM command set.
    pub nvm: bool,
}

impl Capabilities {
    pub fn parse(cap: u64) -> Capabilities {
        Capabilities {
            max_entries: (cap & 0xFFFF) as u32 + 1,
            doorbell_stride: 4 << ((cap >> 32) & 0xF),
            timeout_ms: ((cap >> 24) & 0xFF).max(1) * 500,
            min_page: 1 << (12 + ((cap >> 48) & 0xF)),
            nvm: (cap >> 37) & 1 == 1,
        }
    }

    /// Offset of queue `qid`'s submission tail doorbell.
    pub fn sq_doorbell(&self, qid: u16) -> u64 {
        reg::DOORBELLS + u64::from(qid) * 2 * self.doorbell_stride
    }

    /// Offset of queue `qid`'s completion head doorbell.
    pub fn cq_doorbell(&self, qid: u16) -> u64 {
        reg::DOORBELLS + (u64::from(qid) * 2 + 1) * self.doorbell_stride
    }
}

/// CC for enabling: NVM command set, 4 KiB pages, round robin, 64-byte
/// submission and 16-byte completion entries.
pub const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);
/// CSTS bits.
pub const CSTS_READY: u32 = 1;
pub const CSTS_FATAL: u32 = 1 << 1;

/// Admin opcodes.
pub mod admin {
    pub const CREATE_SQ: u8 = 0x01;
    pub const CREATE_CQ: u8 = 0x05;
    pub const IDENTIFY: u8 = 0x06;
    pub const SET_FEATURES: u8 = 0x09;
    /// Set Features: number of queues.
    pub const FEATURE_QUEUES: u32 = 0x07;
}

/// NVM opcodes.
pub mod io {
    pub const FLUSH: u8 = 0x00;
    pub const WRITE: u8 = 0x01;
    pub const READ: u8 = 0x02;
}

/// A submission queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Command {
    pub opcode: u8,
    pub cid: u16,
    pub nsid: u32,
    pub prp1: u64,
    pub prp2: u64,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
}

impl Command {
    /// The 16 dwords of the entry.
    pub fn encode(&self) -> [u32; 16] {
        let mut d = [0u32; 16];
        d[0] = u32::from(self.opcode) | (u32::from(self.cid) << 16);
        d[1] = self.nsid;
        d[6] = self.prp1 as u32;
        d[7] = (self.prp1 >> 32) as u32;
        d[8] = self.prp2 as u32;
        d[9] = (self.prp2 >> 32) as u32;
        d[10] = self.cdw10;
        d[11] = self.cdw11;
        d[12] = self.cdw12;
        d
    }

    /// Read or write of `count` logical blocks from `lba`.
    pub fn rw(write: bool, cid: u16, nsid: u32, lba: u64, count: u16, prps: (u64, u64)) -> Command {
        Command {
            opcode: if write { io::WRITE } else { io::READ },
            cid,
            nsid,
            prp1: prps.0,
            prp2: prps.1,
            cdw10: lba as u32,
            cdw11: (lba >> 32) as u32,
            cdw12: u32::from(count.saturating_sub(1)),
        }
    }
}

/// A completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub result: u32,
    pub sq_head: u16,
    pub sq_id: u16,
    pub cid: u16,
    pub phase: bool,
    /// Status field (type and code), 0 for success.
    pub status: u16,
}

impl Completion {
    pub fn decode(d: [u32; 4]) -> Completion {
        Completion {
            result: d[0],
            sq_head: d[2] as u16,
            sq_id: (d[2] >> 16) as u16,
            cid: d[3] as u16,
            phase: (d[3] >> 16) & 1 == 1,
            status: ((d[3] >> 17) & 0x7FFF) as u16,
        }
    }

    /// The block-device status this completion means: success, an LBA
    /// out of range, a media error (status code type 2), a malformed
    /// command (invalid opcode, field, namespace, or PRP offset: a driver
    /// bug), or any other device error.
    pub fn bdev_status(&self) -> u16 {
        use interfaces::bdev::status;
        let (kind, code) = ((self.status >> 8) & 0x7, self.status as u8);
        match (kind, code) {
            (0, 0x00) => status::OK,
            (0, 0x80) => status::OUT_OF_RANGE,
            (0, 0x01 | 0x02 | 0x0B | 0x13) => status::INVALID,
            (2, _) => status::MEDIA_ERROR,
            _ => status::DEVICE_ERROR,
        }
    }

    /// Status code type and code, for messages.
    pub fn describe(&self) -> (&'static str, u8) {
        let kind = match (self.status >> 8) & 0x7 {
            0 => "generic",
            1 => "command specific",
            2 => "media error",
            3 => "path error",
            _ => "vendor specific",
        };
        (kind, self.status as u8)
    }
}

/// The PRP entries for a transfer of `len` bytes at device address
/// `address` (4-byte aligned), with 4 KiB pages: PRP1 is the address;
/// PRP2 is the second page if the transfer touches exactly two, or the
/// address of a PRP list (written by `list`, which receives the page
/// addresses after the first) if more. `None` if misaligned or empty.
pub fn prps(
    address: u64,
    len: usize,
    list: impl FnOnce(&mut dyn Iterator<Item = u64>) -> u64,
) -> Option<(u64, u64)> {
    const PAGE: u64 = 4096;
    if len == 0 || !address.is_multiple_of(4) {
        return None;
    }
    let first_page = address & !(PAGE - 1);
    let end = address.checked_add(len as u64)?;
    let pages = (end - first_page).div_ceil(PAGE);
    Some(match pages {
        1 => (address, 0),
        2 => (address, first_page + PAGE),
        _ => {
            let mut rest = (1..pages).map(|i| first_page + i * PAGE);
            (address, list(&mut rest))
        }
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn capabilities() {
        // MQES 2047, TO 15 (7.5 s), DSTRD 1 (8 bytes), CSS NVM, MPSMIN 0.
        let cap = 2047 | (15 << 24) | (1 << 32) | (1 << 37);
        let c = Capabilities::parse(cap);
        assert_eq!(c.max_entries, 2048);
        assert_eq!(c.timeout_ms, 7500);
        assert_eq!(c.doorbell_stride, 8);
        assert_eq!(c.min_page, 4096);
        assert!(c.nvm);
        assert_eq!(c.sq_doorbell(0), 0x1000);
        assert_eq!(c.cq_doorbell(0), 0x1008);
        assert_eq!(c.sq_doorbell(1), 0x1010);
        assert_eq!(
            Capabilities::parse(0).timeout_ms,
            500,
            "a zero timeout is not forever"
        );
    }

    #[test]
    fn command_layout() {
        let c = Command::rw(true, 7, 1, 0x1_2345_6789, 8, (0xAAAA_0000, 0xBBBB_0000));
        let d = c.encode();
        assert_eq!(d[0], 0x01 | (7 << 16));
        assert_eq!(d[1], 1);
        assert_eq!((d[6], d[7]), (0xAAAA_0000, 0));
        assert_eq!((d[8], d[9]), (0xBBBB_0000, 0));
        assert_eq!((d[10], d[11]), (0x2345_6789, 1));
        assert_eq!(d[12], 7, "NLB is zero-based");
    }

    #[test]
    fn completion_layout() {
        let c = Completion::decode([5, 0, (3 << 16) | 9, (0x2 << 17) | (1 << 16) | 42]);
        assert_eq!((c.result, c.sq_head, c.sq_id, c.cid), (5, 9, 3, 42));
        assert!(c.phase);
        assert_eq!(c.status, 2);
        let media = Completion::decode([0, 0, 0, ((0x2 << 8 | 0x81) << 17)]);
        assert_eq!(media.describe(), ("media error", 0x81));
        use interfaces::bdev::status;
        let code =
            |sct: u32, sc: u32| Completion::decode([0, 0, 0, (sct << 8 | sc) << 17]).bdev_status();
        assert_eq!(code(0, 0), status::OK);
        assert_eq!(code(0, 0x80), status::OUT_OF_RANGE, "LBA out of range");
        assert_eq!(code(0, 0x02), status::INVALID, "invalid field");
        assert_eq!(code(2, 0x81), status::MEDIA_ERROR, "unrecovered read error");
        assert_eq!(code(0, 0x06), status::DEVICE_ERROR, "internal error");
    }

    #[test]
    fn prp_entries() {
        let none = |_: &mut dyn Iterator<Item = u64>| panic!("no list needed");
        assert_eq!(prps(0x10_0000, 4096, none), Some((0x10_0000, 0)));
        assert_eq!(prps(0x10_0040, 4096, none), Some((0x10_0040, 0x10_1000)));
        assert_eq!(prps(0x10_0040, 100, none), Some((0x10_0040, 0)));
        assert_eq!(prps(0x10_0002, 4, none), None, "misaligned");
        assert_eq!(prps(0x10_0000, 0, none), None);
        let mut seen = Vec::new();
        let got = prps(0x10_0040, 3 * 4096, |pages| {
            seen.extend(pages);
            0xFEED_0000
        });
        assert_eq!(got, Some((0x10_0040, 0xFEED_0000)));
        assert_eq!(seen, [0x10_1000, 0x10_2000, 0x10_3000]);
    }

    #[test]
    fn every_status_a_device_can_send_maps_to_a_block_status() {
        use interfaces::bdev::status;
        let known = [
            status::OK,
            status::OUT_OF_RANGE,
            status::INVALID,
            status::MEDIA_ERROR,
            status::DEVICE_ERROR,
        ];
        for field in 0..=0x7FFFu32 {
            let c = Completion::decode([0, 0, 0, (field << 17) | (1 << 16)]);
            let mapped = c.bdev_status();
            assert!(known.contains(&mapped), "status {field:#x} -> {mapped}");
            // Success is status code type 0 and code 0; the bits above
            // (retry delay, more, do not retry) only qualify a status.
            assert_eq!(
                mapped == status::OK,
                field & 0x7FF == 0,
                "status {field:#x}"
            );
            let _ = c.describe();
        }
    }
}
