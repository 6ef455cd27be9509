//! The 82576's registers this driver uses (datasheet, section 8), as
//! offsets into BAR 0.

pub const CTRL: u64 = 0x0000;
pub const STATUS: u64 = 0x0008;
pub const MDIC: u64 = 0x0020;
pub const IMC: u64 = 0x150C;
pub const RCTL: u64 = 0x0100;
pub const TCTL: u64 = 0x0400;
pub const RAL0: u64 = 0x5400;
pub const RAH0: u64 = 0x5404;

// Queue 0's receive and transmit rings (queue n: + 0x40 * n).
pub const RDBAL: u64 = 0xC000;
pub const RDBAH: u64 = 0xC004;
pub const RDLEN: u64 = 0xC008;
pub const SRRCTL: u64 = 0xC00C;
pub const RDH: u64 = 0xC010;
pub const RDT: u64 = 0xC018;
pub const RXDCTL: u64 = 0xC028;
pub const TDBAL: u64 = 0xE000;
pub const TDBAH: u64 = 0xE004;
pub const TDLEN: u64 = 0xE008;
pub const TDH: u64 = 0xE010;
pub const TDT: u64 = 0xE018;
pub const TXDCTL: u64 = 0xE028;

/// Queue `n`'s register `reg` (given as queue 0's).
pub const fn queue(reg: u64, n: usize) -> u64 {
    reg + 0x40 * n as u64
}

// Receive-side scaling (section 7.1.2.8): which queue a frame goes to.
pub const MRQC: u64 = 0x5818;
/// Redirection table: 32 registers of four one-byte entries; a frame goes
/// to the queue in entry (hash mod 128).
pub const RETA: u64 = 0x5C00;
/// The hash key: ten registers.
pub const RSSRK: u64 = 0x5C80;
pub const RXCSUM: u64 = 0x5000;
/// MRQC: multiple receive queues by RSS; hash TCP/IPv4, IPv4 and UDP/IPv4.
pub const MRQC_RSS: u32 = 0b010;
pub const MRQC_HASH_TCP_IPV4: u32 = 1 << 16;
pub const MRQC_HASH_IPV4: u32 = 1 << 17;
pub const MRQC_HASH_UDP_IPV4: u32 = 1 << 22;
/// RXCSUM: IP and TCP/UDP checksum offload; PCSD puts the RSS hash where
/// the packet checksum would be in the write-back (needed for RSS).
pub const RXCSUM_IPOFLD: u32 = 1 << 8;
pub const RXCSUM_TUOFLD: u32 = 1 << 9;
pub const RXCSUM_PCSD: u32 = 1 << 13;

// Statistics (clear on read).
pub const GPRC: u64 = 0x4074;
pub const GPTC: u64 = 0x4080;
pub const MPC: u64 = 0x4010;

pub const CTRL_LRST: u32 = 1 << 3;
pub const CTRL_SLU: u32 = 1 << 6;
pub const CTRL_RST: u32 = 1 << 26;
pub const STATUS_LU: u32 = 1 << 1;
/// STATUS bits 6..7: 00 10 Mb/s, 01 100 Mb/s, 1x 1000 Mb/s.
pub const STATUS_SPEED_SHIFT: u32 = 6;

pub const MDIC_REG_SHIFT: u32 = 16;
pub const MDIC_PHY_SHIFT: u32 = 21;
pub const MDIC_OP_WRITE: u32 = 1 << 26;
pub const MDIC_READY: u32 = 1 << 28;
pub const MDIC_ERROR: u32 = 1 << 30;
/// PHY control register: auto-negotiation enable, restart.
pub const PHY_CTRL: u32 = 0;
pub const PHY_CTRL_AN_ENABLE: u32 = 1 << 12;
pub const PHY_CTRL_AN_RESTART: u32 = 1 << 9;
pub const PHY_ADDRESS: u32 = 1;

pub const RCTL_EN: u32 = 1 << 1;
pub const RCTL_UPE: u32 = 1 << 3;
pub const RCTL_MPE: u32 = 1 << 4;
pub const RCTL_BAM: u32 = 1 << 15;
pub const RCTL_SECRC: u32 = 1 << 26;
/// SRRCTL: buffer size in 1 KiB units, advanced one-buffer descriptors.
pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 1 << 25;
pub const QUEUE_ENABLE: u32 = 1 << 25;
pub const TCTL_EN: u32 = 1 << 1;
pub const TCTL_PSP: u32 = 1 << 3;
pub const RAH_AV: u32 = 1 << 31;
