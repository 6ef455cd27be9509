//! What the firmware tells us about the machine (ACPI), and the interrupt
//! routing built from it.

use alloc::vec::Vec;

use kcore::acpi::Acpi;
use kcore::pvh::BootInfo;

use crate::arch::trap;
use crate::{apic, mem, power, serial};

pub struct Platform {
    pub lapic_address: u64,
    /// (address, first GSI) of the IOAPIC, if there is one.
    pub ioapic: Option<(u64, u32)>,
    /// APIC ids of the enabled processors (BSP included).
    pub cpu_apic_ids: Vec<u32>,
    /// GSI and polarity/trigger of the console UART's IRQ (ISA IRQ 4,
    /// COM1's, unless the SPCR names another).
    pub com1: (u32, bool, bool),
    /// The console UART's I/O port (COM1's 0x3f8 unless the SPCR names
    /// another).
    pub console_port: u16,
    /// The same for ISA IRQ 3 (COM2, where `make push` sends archives).
    pub com2: (u32, bool, bool),
    /// PCI ECAM windows: (physical base, first bus, last bus).
    pub ecam: Vec<(u64, u8, u8)>,
    /// DMA-remapping (IOMMU) units, if the firmware describes any.
    pub dmar: Vec<kcore::acpi::DmarUnit>,
    /// The ACPI PM timer (FADT): its I/O port and whether it counts 32
    /// bits (else 24). What the TSC is calibrated against when present.
    pub pm_timer: Option<(u16, bool)>,
}

pub fn discover(boot: &BootInfo, highest: u64) -> Platform {
    let mut platform = Platform {
        lapic_address: 0xFEE0_0000,
        ioapic: None,
        cpu_apic_ids: Vec::new(),
        com1: (4, false, false),
        com2: (3, false, false),
        ecam: Vec::new(),
        dmar: Vec::new(),
        pm_timer: None,
        console_port: 0x3F8,
    };
    let phys = mem::KernelPhys {
        limit: highest.max(4 << 30),
    };
    let Some(rsdp) = boot.rsdp() else {
        crate::warn!("acpi: the boot loader gave no RSDP; assuming one cpu and no IOAPIC");
        return platform;
    };
    let acpi = match Acpi::parse(&phys, rsdp) {
        Ok(acpi) => acpi,
        Err(e) => {
            crate::warn!("acpi: {e}; assuming one cpu and no IOAPIC");
            return platform;
        }
    };
    match acpi.madt() {
        Ok(madt) => {
            platform.lapic_address = madt.local_apic_address();
            platform.cpu_apic_ids = madt.enabled_apic_ids().collect();
            platform.ioapic = madt
                .ioapics()
                .next()
                .map(|io| (u64::from(io.address), io.gsi_base));
            if let Some(iso) = madt.overrides().find(|o| o.bus == 0 && o.source_irq == 4) {
                platform.com1 = (iso.gsi, iso.active_low(), iso.level_triggered());
            }
            if let Some(iso) = madt.overrides().find(|o| o.bus == 0 && o.source_irq == 3) {
                platform.com2 = (iso.gsi, iso.active_low(), iso.level_triggered());
            }
        }
        Err(e) => crate::warn!("acpi: no usable MADT ({e}); assuming one cpu and no IOAPIC"),
    }
    match acpi.mcfg() {
        Ok(mcfg) => {
            platform.ecam = mcfg
                .entries()
                .iter()
                .filter(|e| e.segment == 0)
                .map(|e| (e.base_address, e.start_bus, e.end_bus))
                .collect();
        }
        Err(e) => crate::warn!("acpi: no MCFG ({e}); no PCI devices"),
    }
    match acpi.dmar() {
        Ok(dmar) => platform.dmar = dmar.units().to_vec(),
        Err(e) => crate::info!("acpi: no DMAR ({e}): no IOMMU; device DMA is not confined"),
    }
    // The firmware's serial console (what a BMC's serial-over-LAN shows):
    // the console moves there if it is another 16550 on an I/O port.
    if let Ok(spcr) = acpi.spcr()
        && let Some(port) = spcr.io_port_16550()
        && port != serial::port()
    {
        let irq = spcr.pc_at_irq().unwrap_or(4);
        crate::info!("serial: the console moves to port {port:#x}, IRQ {irq} (ACPI SPCR)");
        serial::move_to(port);
        crate::info!("serial: console on port {port:#x} (ACPI SPCR)");
        platform.console_port = port;
        platform.com1 = (u32::from(irq), false, false);
        if let Ok(madt) = acpi.madt()
            && let Some(iso) = madt.overrides().find(|o| o.bus == 0 && o.source_irq == irq)
        {
            platform.com1 = (iso.gsi, iso.active_low(), iso.level_triggered());
        }
    }
    if let Ok(fadt) = acpi.fadt() {
        // TMR_VAL_EXT (flag bit 8): a 32-bit counter.
        platform.pm_timer = u16::try_from(fadt.pm_tmr_blk)
            .ok()
            .filter(|&port| port != 0 && fadt.pm_tmr_len >= 4)
            .map(|port| (port, fadt.flags & (1 << 8) != 0));
    }
    match acpi.poweroff() {
        Ok(off) => power::set_acpi_poweroff(off),
        Err(e) => {
            crate::warn!("acpi: no S5 power-off ({e}); shutdown will use the debug-exit port")
        }
    }
    platform
}

fn com1_interrupt() {
    if serial::drain_rx_fifo() {
        crate::console::INPUT.wake();
    }
}

/// Masks every IOAPIC input, then routes COM1 to the BSP.
pub fn route_interrupts(platform: &Platform) {
    if apic::ioapic_init() == 0 {
        crate::warn!("no IOAPIC: console input is polled");
        return;
    }
    let (gsi, active_low, level) = platform.com1;
    trap::set_irq_handler(gsi as u8, com1_interrupt);
    if apic::ioapic_route(gsi, crate::cpu::current().apic_id, active_low, level) {
        serial::enable_input_interrupts();
    }
    // `make push` uses COM2; not when the console is there.
    if platform.console_port != 0x2F8 && crate::push::init() {
        let (gsi, active_low, level) = platform.com2;
        trap::set_irq_handler(gsi as u8, crate::push::irq);
        if apic::ioapic_route(gsi, crate::cpu::current().apic_id, active_low, level) {
            crate::push::enable_interrupts();
        }
    }
}
