//! Any bytes as physical memory holding firmware tables, with the RSDP at
//! address 0: `kcore::acpi::Acpi::parse` (RSDP, RSDT/XSDT, MADT, FADT,
//! MCFG, DMAR, the DSDT's `\_S5_`) must refuse or answer, never panic or
//! overflow, whatever the tables claim about lengths and pointers.

use kcore::SliceMemory;
use kcore::acpi::Acpi;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let memory = SliceMemory::new(0, data);
        core::hint::black_box(Acpi::parse(&memory, 0).is_ok());
    });
}
