//! The 82599's registers this driver uses (datasheet, section 8.2.3), as
//! offsets into BAR 0, and their bits.

pub const CTRL: u64 = 0x00000;
pub const EEC: u64 = 0x10010;
pub const EIMC: u64 = 0x00888;
pub const RDRXCTL: u64 = 0x02F00;
pub const RXCTRL: u64 = 0x03000;
pub const FCTRL: u64 = 0x05080;
pub const HLREG0: u64 = 0x04240;
pub const AUTOC: u64 = 0x042A0;
pub const LINKS: u64 = 0x042A4;
pub const RAL0: u64 = 0x0A200;
pub const RAH0: u64 = 0x0A204;
pub const DMATXCTL: u64 = 0x04A80;
pub const RTTDCS: u64 = 0x04900;

// Queue 0's rings (queue n: + 0x40 * n for the first 64).
pub const RDBAL: u64 = 0x01000;
pub const RDBAH: u64 = 0x01004;
pub const RDLEN: u64 = 0x01008;
pub const RDH: u64 = 0x01010;
pub const SRRCTL: u64 = 0x01014;
pub const RDT: u64 = 0x01018;
pub const RXDCTL: u64 = 0x01028;
pub const TDBAL: u64 = 0x06000;
pub const TDBAH: u64 = 0x06004;
pub const TDLEN: u64 = 0x06008;
pub const TDH: u64 = 0x06010;
pub const TDT: u64 = 0x06018;
pub const TXDCTL: u64 = 0x06028;

/// Queue `n`'s register `reg` (given as queue 0's; `n` below 64).
pub const fn queue(reg: u64, n: usize) -> u64 {
    reg + 0x40 * n as u64
}

// Receive-side scaling (section 7.1.2.8).
pub const MRQC: u64 = 0x0EC80;
/// Redirection table: 32 registers of four one-byte entries (four bits
/// used), entry (hash mod 128) naming the queue.
pub const RETA: u64 = 0x0EB00;
/// The hash key: ten registers.
pub const RSSRK: u64 = 0x0EB80;
pub const RXCSUM: u64 = 0x05000;
/// MRQC.MRQE 0001b: RSS only; hash TCP/IPv4, IPv4 and UDP/IPv4.
pub const MRQC_RSS: u32 = 0b0001;
pub const MRQC_HASH_TCP_IPV4: u32 = 1 << 16;
pub const MRQC_HASH_IPV4: u32 = 1 << 17;
pub const MRQC_HASH_UDP_IPV4: u32 = 1 << 22;
/// RXCSUM.PCSD: the RSS hash in the write-back instead of a checksum.
pub const RXCSUM_PCSD: u32 = 1 << 13;

// Statistics (clear on read).
pub const GPRC: u64 = 0x04074;
pub const GPTC: u64 = 0x04080;

pub const CTRL_LRST: u32 = 1 << 3;
pub const CTRL_RST: u32 = 1 << 26;
pub const EIMC_ALL: u32 = 0x7FFF_FFFF;
pub const EEC_AUTO_RD: u32 = 1 << 9;
pub const RDRXCTL_CRCSTRIP: u32 = 1 << 1;
pub const RDRXCTL_DMAIDONE: u32 = 1 << 3;
pub const RXCTRL_RXEN: u32 = 1 << 0;
pub const FCTRL_MPE: u32 = 1 << 8;
pub const FCTRL_UPE: u32 = 1 << 9;
pub const FCTRL_BAM: u32 = 1 << 10;
pub const HLREG0_TXCRCEN: u32 = 1 << 0;
pub const HLREG0_RXCRCSTRP: u32 = 1 << 1;
pub const HLREG0_TXPADEN: u32 = 1 << 10;
pub const AUTOC_RESTART_AN: u32 = 1 << 12;
pub const LINKS_UP: u32 = 1 << 30;
pub const LINKS_SPEED_SHIFT: u32 = 28;
pub const RAH_AV: u32 = 1 << 31;
pub const DMATXCTL_TE: u32 = 1 << 0;
pub const RTTDCS_ARBDIS: u32 = 1 << 6;
pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 1 << 25;
pub const SRRCTL_DROP_EN: u32 = 1 << 28;
pub const QUEUE_ENABLE: u32 = 1 << 25;
