//! Any bytes as physical memory holding a PVH start info at address 0
//! (with its memory map and command line): `kcore::pvh::BootInfo::parse`
//! must refuse or answer, never panic or overflow.

use kcore::SliceMemory;
use kcore::pvh::BootInfo;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let memory = SliceMemory::new(0, data);
        core::hint::black_box(BootInfo::parse(&memory, 0).is_ok());
    });
}
