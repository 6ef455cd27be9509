//! The trusted kernel.
//!
//! What it is for: booting the machine (PVH), owning memory (frames, page
//! tables, heap, guarded stacks), interrupts, the local APIC timer and
//! IPIs, bringing up every core with its own async executor, the serial
//! console and its monitor shell; the domain manager, loader and crash
//! containment (built on [`catch`]), the shared heap and the IOMMU. The
//! in-QEMU tests and benchmarks are compiled only into the test kernel
//! (the `ktest` feature, `build/kernel-test.elf`): the production kernel
//! holds none of their code.
//!
//! What it must never do: crash because a domain or a user did something
//! wrong (bad console input gets a message; a fault under a continuation is
//! contained), or hang silently (a kernel panic or fault prints what it
//! knows and makes QEMU exit with a failure status).
//!
//! Principles: every `unsafe` block states the invariant it relies on;
//! logic that can run on the host lives in `kcore` and `executor` where it
//! is unit-tested; hardware access sits in small modules named after the
//! device.

#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

extern crate alloc;

/// Fails the enclosing function (returning `Result<_, String>`) with a
/// message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($fmt)*));
        }
    };
}

#[macro_use]
mod serial;
mod apic;
mod arch;
mod blk;
mod boot;
mod catch;
mod console;
mod cpu;
mod domain;
mod fatal;
mod inject;
mod iommu;
#[cfg(feature = "ktest")]
mod kbench;
#[cfg(feature = "ktest")]
mod ktest;
mod mem;
mod pci;
mod platform;
mod power;
mod push;
mod sched;
mod share;
mod shared_heap;
mod smp;
mod storm;
mod time;

use core::arch::naked_asm;

use kcore::pvh::BootInfo;
use spin::Once;

/// What the kernel was told at boot, kept for the console and tests.
pub struct BootConfig {
    pub cmdline: alloc::string::String,
    pub usable_bytes: u64,
    pub heap_bytes: u64,
    pub cpus_found: usize,
}

pub static BOOT: Once<BootConfig> = Once::new();

/// Entered from `boot.rs` on the boot stack, boot page tables active.
#[unsafe(no_mangle)]
pub extern "C" fn kmain_bsp(start_info: u64, loader: u64) -> ! {
    cpu::init_bsp();
    serial::init();
    println!();
    let multiboot2 = loader == 1;
    let protocol = if multiboot2 {
        "multiboot2 information"
    } else {
        "PVH start info"
    };
    info!("kernel: booting ({protocol} at {start_info:#x})");

    let boot_phys = mem::KernelPhys { limit: 4 << 30 };
    let parsed = if multiboot2 {
        BootInfo::parse_multiboot2(&boot_phys, start_info)
    } else {
        BootInfo::parse(&boot_phys, start_info)
    };
    let boot = match parsed {
        Ok(boot) => boot,
        Err(e) => panic!("invalid {protocol}: {e}"),
    };
    let summary = mem::init::init(&boot);
    // The heap exists; move off the unguarded boot stack.
    let stack = mem::stacks::alloc(smp::CPU_STACK_SIZE).expect("no memory for the BSP stack");
    let boot = alloc::boxed::Box::leak(alloc::boxed::Box::new(boot));
    let summary = alloc::boxed::Box::leak(alloc::boxed::Box::new(summary));
    // SAFETY: the new stack is mapped and unused; `continue_boot` never
    // returns, so nothing refers to the old stack's frames afterwards.
    unsafe {
        switch_stack(
            stack.top,
            continue_boot,
            boot as *mut BootInfo as u64,
            summary as *mut _ as u64,
        )
    }
}

/// Switches to the stack at `top` and calls `f(a, b)`; never returns.
#[unsafe(naked)]
unsafe extern "C" fn switch_stack(top: u64, f: extern "C" fn(u64, u64) -> !, a: u64, b: u64) -> ! {
    naked_asm!(
        "mov rsp, rdi",
        "xor ebp, ebp",
        "mov rdi, rdx",
        "mov rax, rsi",
        "mov rsi, rcx",
        "call rax",
        "ud2"
    )
}

extern "C" fn continue_boot(boot: u64, summary: u64) -> ! {
    // SAFETY: `kmain_bsp` passes pointers to leaked (static) values.
    let (boot, summary) = unsafe {
        (
            &*(boot as *const BootInfo),
            &*(summary as *const mem::init::MemorySummary),
        )
    };
    arch::gdt::init_this_cpu();
    arch::idt::load();

    let cmdline = alloc::string::String::from(boot.cmdline());
    let args = match kcore::cmdline::CmdLine::parse(&cmdline) {
        Ok(args) => args,
        Err(e) => {
            warn!("kernel: ignoring malformed command line ({e})");
            kcore::cmdline::CmdLine::parse("").expect("empty command line parses")
        }
    };
    if let Some(level) = args.get("log") {
        match serial::Level::parse(level) {
            Some(level) => serial::set_level(level),
            None => warn!("kernel: unknown log level '{level}' (error|warn|info|debug|trace)"),
        }
    }
    info!(
        "memory: {} usable, highest address {:#x}, heap {}",
        kcore::fmt::Bytes(summary.usable_bytes),
        summary.highest_address,
        kcore::fmt::Bytes(summary.heap_bytes)
    );

    shared_heap::init();
    domain::loaded::init(boot);
    let platform = platform::discover(boot, summary.highest_address);
    pci::init(&platform.ecam, summary.highest_address);
    // Before any driver runs: no device DMA except into the shared heap.
    iommu::init(&platform.dmar);
    apic::disable_legacy_pic();
    apic::set_addresses(platform.lapic_address, platform.ioapic);
    if apic::choose_mode(args.has("x2apic")) {
        info!("apic: x2APIC mode");
    }
    apic::init_local();
    cpu::set_bsp_apic_id(apic::id());
    // `calibrate=pit` measures against the PIT even with a PM timer (how
    // the tests keep that path exercised).
    let pm_timer = platform
        .pm_timer
        .filter(|_| args.get("calibrate") != Some("pit"));
    time::calibrate(pm_timer);
    info!(
        "time: TSC {} MHz, APIC timer {} kHz (against the {})",
        time::tsc_hz() / 1_000_000,
        time::apic_timer_hz() / 1000,
        time::CALIBRATED_BY.get().copied().unwrap_or("?")
    );
    let hz = match args.get("hz").map(kcore::cmdline::parse_u64) {
        None => 1000,
        Some(Ok(hz)) if (10..=10_000).contains(&hz) => hz,
        Some(_) => {
            warn!("kernel: hz must be 10..10000; using 1000");
            1000
        }
    };
    time::start_tick(hz);
    platform::route_interrupts(&platform);

    sched::init_this_cpu();
    // `cpus=N`: bring up at most N cpus (the BSP included), for machines
    // with more cores than a run wants.
    let max_cpus = match args.get("cpus").map(kcore::cmdline::parse_u64) {
        None => cpu::MAX_CPUS,
        Some(Ok(n)) if (1..=cpu::MAX_CPUS as u64).contains(&n) => n as usize,
        Some(_) => {
            warn!(
                "kernel: cpus= takes 1..{}; starting them all",
                cpu::MAX_CPUS
            );
            cpu::MAX_CPUS
        }
    };
    let started = smp::start_aps(&platform.cpu_apic_ids, max_cpus);
    info!(
        "smp: {} of {} cpus online",
        started + 1,
        platform.cpu_apic_ids.len().max(1)
    );
    BOOT.call_once(|| BootConfig {
        cmdline: cmdline.clone(),
        usable_bytes: summary.usable_bytes,
        heap_bytes: summary.heap_bytes,
        cpus_found: platform.cpu_apic_ids.len(),
    });

    // Deliberate kernel-context failures, so tests can check the fatal
    // path: it must print what happened and exit QEMU with a failure
    // status, never hang.
    match args.get("fail") {
        None => {}
        Some("panic") => panic!("deliberate kernel panic (fail=panic)"),
        Some("pagefault") => {
            // SAFETY: deliberately reads unmapped page 1 with no continuation
            // active: the kernel must report a fatal page fault.
            let value = unsafe { core::ptr::read_volatile(0x1008 as *const u64) };
            info!("unreachable: read {value}");
        }
        Some(other) => warn!("kernel: unknown fail={other} (panic|pagefault)"),
    }

    domain::set_budget_ns(domain::DEFAULT_BUDGET_NS);
    // Default heap quota per domain: a quarter of usable memory, so one
    // runaway domain cannot starve the kernel or the others.
    let default_quota = (summary.usable_bytes / 4).max(4 << 20);
    domain::heap::set_quota(default_quota);
    if let Some(quota) = args.get("domain_heap") {
        match kcore::cmdline::parse_size(quota) {
            Ok(bytes) if bytes >= 1 << 20 => domain::heap::set_quota(bytes),
            _ => warn!(
                "kernel: domain_heap= takes a size of at least 1M (e.g. 64M); keeping {}",
                kcore::fmt::Bytes(default_quota)
            ),
        }
    }
    if let Some(budget) = args.get("watchdog") {
        match kcore::cmdline::parse_duration_ms(budget) {
            Ok(ms) if (1..=60_000).contains(&ms) => domain::set_budget_ns(ms * 1_000_000),
            _ => warn!(
                "kernel: watchdog= takes 1ms..60s (e.g. 100ms); keeping {} ms",
                domain::budget_ns() / 1_000_000
            ),
        }
    }

    #[cfg(feature = "ktest")]
    if args.has("bench") {
        let selection = alloc::string::String::from(args.get("bench").unwrap_or("all"));
        sched::spawn(kbench::run(selection))
            .expect("spawn benchmarks")
            .detach();
        sched::run()
    }

    match args.get("test") {
        #[cfg(feature = "ktest")]
        Some(selection) => {
            let selection = alloc::string::String::from(selection);
            sched::spawn(ktest::run(selection))
                .expect("spawn test runner")
                .detach();
        }
        #[cfg(not(feature = "ktest"))]
        Some(_) => {
            println!(
                "kernel: this kernel has no in-QEMU tests or benchmarks: they are in the test kernel (build/kernel-test.elf, made by make test and make bench)"
            );
            power::exit_qemu(power::EXIT_TESTS_FAILED)
        }
        None if args.has("bench") => {
            println!("kernel: this kernel has no benchmarks: see build/kernel-test.elf");
            power::exit_qemu(power::EXIT_TESTS_FAILED)
        }
        None => {
            // The initial domain graph (the signed manifest's `start`
            // lines), then the console.
            sched::spawn(async { domain::loaded::start_boot_domains() })
                .expect("spawn boot domains")
                .detach();
            sched::spawn(console::shell())
                .expect("spawn console")
                .detach();
            // Archives pushed over COM2 (`make push`), if there is one.
            sched::spawn(push::receiver())
                .expect("spawn push receiver")
                .detach()
        }
    }
    sched::run()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Inside a continuation (a test, later a domain) the panic is contained.
    catch::resume_from_panic(info);
    fatal::report_panic(info)
}
