//! Local APIC and IOAPIC.
//!
//! The local APIC is driven through its memory-mapped registers (xAPIC),
//! or through MSRs when it is in x2APIC mode: firmware that leaves it
//! there (machines with more than 255 logical CPUs, and others) cannot be
//! taken back to xAPIC without disabling the APIC, so [`choose_mode`]
//! follows what it finds; the `x2apic` boot option switches x2APIC on
//! where the CPU has it (how QEMU tests that path). x2APIC ids are 32 bits.
//!
//! The legacy 8259 PICs are remapped out of the exception range and fully
//! masked; device interrupts go through the IOAPIC to the BSP, and cores
//! signal each other with fixed IPIs.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use crate::arch::trap::vectors;
use crate::mem::phys_to_virt;

static LAPIC_PHYS: AtomicU64 = AtomicU64::new(0xFEE0_0000);
static IOAPIC_PHYS: AtomicU64 = AtomicU64::new(0);
static IOAPIC_GSI_BASE: AtomicU64 = AtomicU64::new(0);

mod reg {
    pub const ID: u32 = 0x20;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xB0;
    pub const SVR: u32 = 0xF0;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_LINT0: u32 = 0x350;
    pub const LVT_LINT1: u32 = 0x360;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3E0;
}

const MASKED: u32 = 1 << 16;
const TIMER_PERIODIC: u32 = 1 << 17;

/// Whether the local APICs are in x2APIC mode (decided once, on the BSP).
static X2APIC: AtomicBool = AtomicBool::new(false);

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const APIC_X2_ENABLE: u64 = 1 << 10;
/// The x2APIC's MSRs: register `offset` of the xAPIC page is MSR
/// `X2APIC_MSR_BASE + offset / 16`; the ICR is one 64-bit MSR.
const X2APIC_MSR_BASE: u32 = 0x800;
const X2APIC_ICR: u32 = 0x830;

fn apic_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no
    // side effects.
    unsafe { Msr::new(IA32_APIC_BASE).read() }
}

/// Decides how the local APICs are driven, on the BSP before any other
/// APIC access: x2APIC if the firmware left this core's APIC in x2APIC
/// mode, or if `want` (the `x2apic` boot option) and the CPU supports it
/// (CPUID.1:ECX bit 21), in which case it is switched on. Returns whether
/// x2APIC is in use.
pub fn choose_mode(want: bool) -> bool {
    let base = apic_base();
    let mut x2 = base & APIC_X2_ENABLE != 0;
    if !x2 && want {
        // CPUID leaf 1 exists on every x86_64 CPU.
        let supported = core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0;
        if supported {
            // SAFETY: xAPIC to x2APIC is a permitted transition (both
            // enable bits set), done before any interrupt is routed.
            unsafe { Msr::new(IA32_APIC_BASE).write(base | APIC_GLOBAL_ENABLE | APIC_X2_ENABLE) };
            x2 = true;
        } else {
            crate::warn!("apic: x2apic asked for, but this CPU has no x2APIC");
        }
    }
    X2APIC.store(x2, Ordering::Relaxed);
    x2
}

/// Whether the local APICs are in x2APIC mode.
pub fn is_x2apic() -> bool {
    X2APIC.load(Ordering::Relaxed)
}

fn lapic_read(offset: u32) -> u32 {
    if is_x2apic() {
        // SAFETY: in x2APIC mode each 32-bit register of the xAPIC page
        // is this MSR; reading one has no side effects.
        return unsafe { Msr::new(X2APIC_MSR_BASE + offset / 16).read() } as u32;
    }
    let addr = phys_to_virt(LAPIC_PHYS.load(Ordering::Relaxed) + u64::from(offset)) as *const u32;
    // SAFETY: the local APIC page is mapped (uncached) through the physical
    // map, and `offset` is one of its 32-bit registers.
    unsafe { addr.read_volatile() }
}

fn lapic_write(offset: u32, value: u32) {
    if is_x2apic() {
        // SAFETY: as in `lapic_read`; every write here is one the xAPIC
        // path makes to the same register (EOI and ESR take 0).
        unsafe { Msr::new(X2APIC_MSR_BASE + offset / 16).write(u64::from(value)) };
        return;
    }
    let addr = phys_to_virt(LAPIC_PHYS.load(Ordering::Relaxed) + u64::from(offset)) as *mut u32;
    // SAFETY: as in `lapic_read`.
    unsafe { addr.write_volatile(value) }
}

pub fn set_addresses(lapic: u64, ioapic: Option<(u64, u32)>) {
    LAPIC_PHYS.store(lapic, Ordering::Relaxed);
    if let Some((address, gsi_base)) = ioapic {
        IOAPIC_PHYS.store(address, Ordering::Relaxed);
        IOAPIC_GSI_BASE.store(u64::from(gsi_base), Ordering::Relaxed);
    }
}

/// Remaps the 8259s to vectors 0x20..0x30 (away from exceptions) and masks
/// every line: we use the IOAPIC instead.
pub fn disable_legacy_pic() {
    // SAFETY: standard 8259 initialisation on the legacy ports, done once
    // on the BSP before interrupts are enabled.
    unsafe {
        let mut pics = pic8259::ChainedPics::new(0x20, 0x28);
        pics.initialize();
        pics.write_masks(0xFF, 0xFF);
    }
}

/// Enables this core's local APIC (in x2APIC mode if the BSP chose it,
/// switching this core over if its firmware did not).
pub fn init_local() {
    if is_x2apic() {
        let base = apic_base();
        if base & APIC_X2_ENABLE == 0 {
            // SAFETY: as in `choose_mode`: the BSP found x2APIC on this CPU
            // model, and no interrupt is routed to this core yet.
            unsafe { Msr::new(IA32_APIC_BASE).write(base | APIC_GLOBAL_ENABLE | APIC_X2_ENABLE) };
        }
    }
    lapic_write(reg::TPR, 0);
    lapic_write(reg::LVT_LINT0, MASKED);
    lapic_write(reg::LVT_LINT1, MASKED);
    lapic_write(reg::LVT_ERROR, MASKED);
    lapic_write(reg::ESR, 0);
    lapic_write(reg::SVR, 0x100 | u32::from(vectors::SPURIOUS)); // enable
    eoi();
}

pub fn id() -> u32 {
    if is_x2apic() {
        // The whole register is the (32-bit) x2APIC id.
        lapic_read(reg::ID)
    } else {
        lapic_read(reg::ID) >> 24
    }
}

pub fn eoi() {
    lapic_write(reg::EOI, 0);
}

/// Starts the timer counting down from its maximum with divider 16; used
/// for calibration (see `time`).
pub fn timer_start_calibration() {
    lapic_write(reg::TIMER_DIVIDE, 0x3);
    lapic_write(reg::LVT_TIMER, MASKED);
    lapic_write(reg::TIMER_INITIAL, u32::MAX);
}

pub fn timer_current() -> u32 {
    lapic_read(reg::TIMER_CURRENT)
}

/// Periodic timer interrupt every `count` ticks of the divided (/16) bus clock.
pub fn timer_start_periodic(count: u32) {
    lapic_write(reg::TIMER_DIVIDE, 0x3);
    lapic_write(reg::LVT_TIMER, u32::from(vectors::TIMER) | TIMER_PERIODIC);
    lapic_write(reg::TIMER_INITIAL, count.max(1));
}

fn wait_icr_idle() {
    let mut spins = 0u32;
    while lapic_read(reg::ICR_LOW) & (1 << 12) != 0 && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
}

fn send_icr(apic_id: u32, low: u32) {
    if is_x2apic() {
        // One write of the 64-bit ICR, the destination in its upper half;
        // x2APIC has no delivery-status bit to wait for.
        // SAFETY: the x2APIC ICR MSR; `low` is a valid command (vector and
        // delivery mode) as for the xAPIC.
        unsafe { Msr::new(X2APIC_ICR).write((u64::from(apic_id) << 32) | u64::from(low)) };
        return;
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        wait_icr_idle();
        lapic_write(reg::ICR_HIGH, apic_id << 24);
        lapic_write(reg::ICR_LOW, low);
        wait_icr_idle();
    });
}

/// Sends a fixed interrupt `vector` to the core with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    send_icr(apic_id, u32::from(vector));
}

pub fn send_init(apic_id: u32) {
    send_icr(apic_id, 0x4500); // INIT, level assert
}

pub fn send_startup(apic_id: u32, page: u8) {
    send_icr(apic_id, 0x4600 | u32::from(page)); // STARTUP, vector = page number
}

/// NMIs every other online core (they halt). Used on fatal errors.
pub fn stop_other_cpus() {
    let me = crate::cpu::current().index;
    for cpu in crate::cpu::all() {
        if cpu.index != me {
            // NMI delivery mode: reaches a core even with interrupts off.
            send_icr(cpu.apic_id, 0x4400);
        }
    }
}

fn ioapic_write(index: u32, value: u32) {
    let base = phys_to_virt(IOAPIC_PHYS.load(Ordering::Relaxed));
    // SAFETY: IOREGSEL at +0 and IOWIN at +0x10 of the IOAPIC's MMIO page,
    // mapped uncached through the physical map. Callers hold no other
    // IOAPIC access concurrently (routing happens during boot on the BSP).
    unsafe {
        (base as *mut u32).write_volatile(index);
        (base.add(0x10) as *mut u32).write_volatile(value);
    }
}

fn ioapic_read(index: u32) -> u32 {
    let base = phys_to_virt(IOAPIC_PHYS.load(Ordering::Relaxed));
    // SAFETY: as in `ioapic_write`.
    unsafe {
        (base as *mut u32).write_volatile(index);
        (base.add(0x10) as *const u32).read_volatile()
    }
}

/// Masks every IOAPIC input.
pub fn ioapic_init() -> u32 {
    if IOAPIC_PHYS.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    let entries = ((ioapic_read(1) >> 16) & 0xFF) + 1;
    for i in 0..entries {
        ioapic_write(0x10 + 2 * i, MASKED);
        ioapic_write(0x11 + 2 * i, 0);
    }
    entries
}

/// Routes GSI `gsi` to vector `IRQ_BASE + gsi` on the core `apic_id`.
pub fn ioapic_route(gsi: u32, apic_id: u32, active_low: bool, level: bool) -> bool {
    let base = IOAPIC_GSI_BASE.load(Ordering::Relaxed) as u32;
    if IOAPIC_PHYS.load(Ordering::Relaxed) == 0
        || gsi < base
        || gsi >= u32::from(vectors::IRQ_COUNT)
    {
        return false;
    }
    let pin = gsi - base;
    let mut low = u32::from(vectors::IRQ_BASE) + gsi;
    if active_low {
        low |= 1 << 13;
    }
    if level {
        low |= 1 << 15;
    }
    ioapic_write(0x11 + 2 * pin, apic_id << 24);
    ioapic_write(0x10 + 2 * pin, low);
    true
}

static SHOOTDOWN: spin::Mutex<()> = spin::Mutex::new(());
static SHOOTDOWN_ACKS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Handler of `vectors::TLB_FLUSH`: drops this core's non-global
/// translations and acknowledges.
pub fn on_tlb_flush() {
    let (frame, flags) = x86_64::registers::control::Cr3::read();
    // SAFETY: reloading the same CR3 only flushes non-global TLB entries.
    unsafe { x86_64::registers::control::Cr3::write(frame, flags) };
    SHOOTDOWN_ACKS.fetch_add(1, Ordering::AcqRel);
}

/// Flushes non-global translations on every online core and waits until
/// all have done it. Call with interrupts enabled (a core waiting here with
/// interrupts off could not answer another core's shootdown).
pub fn flush_tlb_everywhere() {
    let _one_at_a_time = SHOOTDOWN.lock();
    let me = crate::cpu::current().index;
    SHOOTDOWN_ACKS.store(0, Ordering::Release);
    let mut expected = 0;
    for cpu in crate::cpu::all() {
        if cpu.index != me && cpu.online.load(Ordering::Acquire) {
            send_ipi(cpu.apic_id, vectors::TLB_FLUSH);
            expected += 1;
        }
    }
    let (frame, flags) = x86_64::registers::control::Cr3::read();
    // SAFETY: as in `on_tlb_flush`.
    unsafe { x86_64::registers::control::Cr3::write(frame, flags) };
    while SHOOTDOWN_ACKS.load(Ordering::Acquire) < expected {
        core::hint::spin_loop();
    }
}
