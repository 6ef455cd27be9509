//! Any bytes as physical memory holding a multiboot2 boot information at
//! address 0 (its tags: command line, modules, memory map, RSDP copies):
//! `kcore::pvh::BootInfo::parse_multiboot2` must refuse or answer, never
//! panic, overflow or loop.

use kcore::SliceMemory;
use kcore::pvh::BootInfo;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let memory = SliceMemory::new(0, data);
        core::hint::black_box(BootInfo::parse_multiboot2(&memory, 0).is_ok());
    });
}
