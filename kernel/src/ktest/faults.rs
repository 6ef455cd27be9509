//! Faults in a test context are caught and reported with the right details.

use core::arch::asm;

use super::{KTest, TestFn, TestResult};
use crate::catch::{FaultKind, catch, catch_with_budget};
use crate::mem::stacks;

pub static TESTS: &[KTest] = &[
    KTest {
        name: "fault_a_tick_before_the_registers_are_saved_resumes_nothing",
        run: TestFn::Sync(tick_before_registers_saved),
    },
    KTest {
        name: "fault_an_armed_fault_fires_only_in_its_incarnations_own_frame",
        run: TestFn::Sync(armed_fault_needs_its_own_frame),
    },
    KTest {
        name: "fault_page_fault_reported",
        run: TestFn::Sync(page_fault_reported),
    },
    KTest {
        name: "fault_divide_error_reported",
        run: TestFn::Sync(divide_error_reported),
    },
    KTest {
        name: "fault_invalid_opcode_reported",
        run: TestFn::Sync(invalid_opcode_reported),
    },
    KTest {
        name: "fault_general_protection_reported",
        run: TestFn::Sync(general_protection_reported),
    },
    KTest {
        name: "fault_panic_caught_with_message",
        run: TestFn::Sync(panic_caught),
    },
    KTest {
        name: "fault_stack_overflow_hits_guard",
        run: TestFn::Sync(stack_overflow_hits_guard),
    },
    KTest {
        name: "fault_an_interrupt_at_the_bottom_of_a_stack_runs_on_its_own",
        run: TestFn::Sync(interrupt_at_the_bottom_of_a_stack),
    },
    KTest {
        name: "fault_nested_catch_returns_to_innermost",
        run: TestFn::Sync(nested_catch),
    },
    KTest {
        name: "fault_catch_restores_interrupt_flag",
        run: TestFn::Sync(catch_restores_interrupt_flag),
    },
    KTest {
        name: "fault_watchdog_stops_runaway_loop",
        run: TestFn::Sync(watchdog_stops_runaway_loop),
    },
    KTest {
        name: "fault_the_watchdog_charges_only_the_code_of_the_entry_itself",
        run: TestFn::Sync(watchdog_charges_own_code_only),
    },
];

use crate::inject::{call_on_stack, hardware_divide, read_u64, recurse, write_u64};

fn page_fault_reported() -> TestResult {
    const UNMAPPED: u64 = 0x0000_0000_0000_1000; // page 1: never mapped
    let fault = catch(|| read_u64(UNMAPPED))
        .err()
        .ok_or("read of page 1 did not fault")?;
    ensure!(
        fault.kind == FaultKind::Exception(14),
        "expected page fault, got {fault}"
    );
    ensure!(
        fault.address == UNMAPPED,
        "fault address {:#x}, expected {UNMAPPED:#x}",
        fault.address
    );
    ensure!(
        fault.error_code & 0b11 == 0,
        "read of a non-present page: error code {:#x}",
        fault.error_code
    );
    let fault = catch(|| write_u64(UNMAPPED + 8, 1))
        .err()
        .ok_or("write did not fault")?;
    ensure!(
        fault.error_code & 0b10 != 0,
        "write bit missing in error code {:#x}",
        fault.error_code
    );
    ensure!(
        fault.address == UNMAPPED + 8,
        "write fault address {:#x}",
        fault.address
    );
    // Write to the kernel's read-only data: a protection fault (present bit set).
    static READ_ONLY: u64 = 7;
    let address = &READ_ONLY as *const u64 as u64;
    let fault = catch(|| write_u64(address, 1))
        .err()
        .ok_or("write to .rodata did not fault")?;
    ensure!(
        fault.error_code & 0b11 == 0b11,
        "protection fault error code {:#x}",
        fault.error_code
    );
    ensure!(READ_ONLY == 7, "read-only data changed");
    Ok(())
}

fn divide_error_reported() -> TestResult {
    ensure!(hardware_divide(10, 3) == 3, "division itself is broken");
    let fault = catch(|| hardware_divide(1, core::hint::black_box(0)))
        .err()
        .ok_or("divide by zero did not fault")?;
    ensure!(
        fault.kind == FaultKind::Exception(0),
        "expected divide error, got {fault}"
    );
    let start = hardware_divide as *const () as u64;
    ensure!(
        (start..start + 64).contains(&fault.rip),
        "rip {:#x} not in hardware_divide at {start:#x}",
        fault.rip
    );
    Ok(())
}

fn invalid_opcode_reported() -> TestResult {
    // SAFETY: `ud2` raises #UD, caught by the continuation.
    let fault = catch(|| unsafe { asm!("ud2", options(nostack, nomem)) })
        .err()
        .ok_or("ud2 did not fault")?;
    ensure!(
        fault.kind == FaultKind::Exception(6),
        "expected invalid opcode, got {fault}"
    );
    Ok(())
}

fn general_protection_reported() -> TestResult {
    let fault = catch(|| read_u64(0x8000_0000_0000_0000))
        .err()
        .ok_or("non-canonical read did not fault")?;
    ensure!(
        fault.kind == FaultKind::Exception(13),
        "expected general protection, got {fault}"
    );
    Ok(())
}

fn panic_caught() -> TestResult {
    let value = core::hint::black_box(41);
    let fault = catch(|| {
        if value == 41 {
            panic!("deliberate panic {}", value + 1);
        }
    })
    .err()
    .ok_or("panic not caught")?;
    ensure!(
        fault.kind == FaultKind::Panic,
        "expected panic, got {fault}"
    );
    ensure!(
        fault.message().starts_with("deliberate panic 42"),
        "message was '{}'",
        fault.message()
    );
    Ok(())
}

extern "C" fn overflow() {
    core::hint::black_box(recurse(0));
}

fn stack_overflow_hits_guard() -> TestResult {
    let stack = stacks::alloc(16 * 1024).ok_or("no memory for a test stack")?;
    let (guard, top) = (stack.guard_page(), stack.top);
    // SAFETY: the stack is mapped and unused; `overflow` never returns, and
    // the fault it causes is caught by the continuation, which resumes on
    // our own stack.
    let result = catch(|| unsafe { call_on_stack(top, overflow) });
    stacks::free(stack);
    let fault = result.err().ok_or("unbounded recursion returned")?;
    ensure!(
        fault.kind == FaultKind::Exception(14),
        "expected page fault, got {fault}"
    );
    ensure!(fault.stack_overflow, "guard hit not recognised: {fault}");
    ensure!(
        (guard..guard + 4096).contains(&fault.address),
        "fault at {:#x}, guard page at {guard:#x}",
        fault.address
    );
    Ok(())
}

extern "C" fn interrupt_at_the_bottom() {
    // SAFETY: the `TEST` vector's handler (registered by the test runner)
    // only counts; the interrupt frame must not land on this stack.
    unsafe { core::arch::asm!("int {v}", v = const crate::arch::trap::vectors::TEST) };
}

/// An interrupt arriving while the running code has all but exhausted its
/// stack runs on its own stack: before, its frame overflowed into the
/// guard page during delivery (taken for the running domain's crash, and
/// a hardware interrupt so lost was never acknowledged: that core's timer
/// went deaf, seen as a hang once in a thousand injected overflows).
fn interrupt_at_the_bottom_of_a_stack() -> TestResult {
    let stack = stacks::alloc(16 * 1024).ok_or("no memory for a test stack")?;
    // 64 bytes above the guard page: room for the call, not for a frame.
    let top = stack.guard_page() + 4096 + 64;
    let before = super::sched_tests::test_interrupts();
    // SAFETY: the stack is mapped and unused; the function returns.
    let result = catch(|| unsafe { call_on_stack(top, interrupt_at_the_bottom) });
    stacks::free(stack);
    result.map_err(|fault| alloc::format!("the interrupt faulted: {fault}"))?;
    ensure!(
        super::sched_tests::test_interrupts() == before + 1,
        "the handler did not run"
    );
    Ok(())
}

fn nested_catch() -> TestResult {
    let outer = catch(|| {
        let inner = catch(|| hardware_divide(1, core::hint::black_box(0)));
        ensure!(
            matches!(inner, Err(f) if f.kind == FaultKind::Exception(0)),
            "inner catch missed the fault"
        );
        // The outer continuation is still live after the inner one fired.
        let second = catch(|| read_u64(0x1000));
        ensure!(
            matches!(second, Err(f) if f.kind == FaultKind::Exception(14)),
            "second inner catch missed"
        );
        Ok::<u32, alloc::string::String>(7)
    });
    match outer {
        Ok(Ok(7)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(other)) => Err(alloc::format!("outer returned {other}")),
        Err(fault) => Err(alloc::format!("outer continuation fired: {fault}")),
    }
}

fn catch_restores_interrupt_flag() -> TestResult {
    use x86_64::instructions::interrupts;
    let before = interrupts::are_enabled();
    let _ = catch(|| {
        interrupts::disable();
        read_u64(0x1000)
    });
    ensure!(
        interrupts::are_enabled() == before,
        "interrupt flag not restored by the continuation"
    );
    Ok(())
}

fn watchdog_stops_runaway_loop() -> TestResult {
    use x86_64::instructions::interrupts;
    let was_enabled = interrupts::are_enabled();
    interrupts::enable(); // the watchdog lives in the timer interrupt
    let start = crate::time::now_ns();
    // +1: the next tick may come at once.
    let result = catch_with_budget(crate::time::ns_to_ticks(50_000_000) + 1, || {
        let mut spins = 0u64;
        loop {
            spins = core::hint::black_box(spins + 1);
        }
    });
    let elapsed = crate::time::now_ns() - start;
    if !was_enabled {
        interrupts::disable();
    }
    let Err(fault) = result;
    ensure!(
        fault.kind == FaultKind::Watchdog,
        "expected watchdog, got {fault}"
    );
    // The deadline is counted in APIC timer ticks, the elapsed time in TSC
    // time; the two are calibrated separately (against the PIT) and can
    // differ by a fraction of a percent, hence the margin.
    ensure!(
        elapsed >= 45_000_000,
        "stopped after {elapsed} ns, well before its 50 ms deadline"
    );
    // A closure that finishes in time is not disturbed by its deadline.
    let value = catch_with_budget(crate::time::ns_to_ticks(1_000_000_000), || 6 * 7);
    ensure!(
        matches!(value, Ok(42)),
        "in-time closure did not return its value"
    );
    Ok(())
}

/// The fault campaign's tick hook fires an armed fault only when both the
/// current owner and the innermost continuation's owner are the armed
/// incarnation: just before an entry pushes its frame (or just after it
/// pops it) the owner is already (still) the callee while a failure would
/// resume the caller's frame (seen in a campaign as a fault armed for the
/// NVMe driver crashing its shadow).
fn armed_fault_needs_its_own_frame() -> TestResult {
    use crate::arch::idt::TrapFrame;
    use executor::OwnerId;
    // Slots no domain can have: no real tick fires this.
    let callee = OwnerId::new(0xFFF0, 3);
    let caller = OwnerId::new(0xFFF1, 1);
    let fresh = || {
        // SAFETY: a plain-integer struct; all zeroes is a valid value.
        let mut frame: TrapFrame = unsafe { core::mem::zeroed() };
        frame.rip = 0x1234;
        frame
    };
    let _armed = crate::storm::arm_for_test(callee, crate::inject::Kind::Panic);
    let mut frame = fresh();
    crate::storm::on_tick(&mut frame, callee, caller);
    ensure!(frame.rip == 0x1234, "fired inside the caller's frame");
    crate::storm::on_tick(&mut frame, caller, caller);
    ensure!(frame.rip == 0x1234, "fired for another incarnation");
    crate::storm::on_tick(&mut frame, callee, callee);
    ensure!(
        frame.rip == crate::inject::fault_trampoline as extern "C" fn() as usize as u64,
        "did not fire inside the callee's own frame"
    );
    Ok(())
}

/// A timer tick that lands after an entry linked its continuation but
/// before `cont::call` saved the registers into it must not resume it: the
/// block is still zeroed. (A mid-code campaign caught a core that had
/// resumed such a frame spinning in faults at stack pointer 0 with
/// interrupts off, while the other cores waited for it in a TLB
/// shootdown.)
fn tick_before_registers_saved() -> TestResult {
    use crate::arch::idt::TrapFrame;
    use core::sync::atomic::AtomicU64;
    let cpu = crate::cpu::current();
    let frame = crate::catch::Continuation {
        regs: cont::Registers::new(),
        prev: cpu.catch_top.get(),
        budget: AtomicU64::new(1),
        owner: cpu.current_owner.get(),
        payload: core::mem::MaybeUninit::uninit(),
    };
    // SAFETY: a plain-integer struct; all zeroes is a valid value.
    let mut trap: TrapFrame = unsafe { core::mem::zeroed() };
    trap.rip = 0x1234;
    // Interrupts off: a real tick must not find this frame linked.
    let rip = x86_64::instructions::interrupts::without_interrupts(|| {
        let top = cpu.catch_top.replace(&raw const frame as *mut ());
        let depth = cpu.irq_depth.replace(1);
        crate::catch::check_budget(&mut trap);
        cpu.irq_depth.set(depth);
        cpu.catch_top.set(top);
        trap.rip
    });
    ensure!(
        rip == 0x1234,
        "the watchdog redirected the tick into a continuation whose registers were never saved"
    );
    Ok(())
}

/// The watchdog charges an entry only for ticks that land in its own
/// code: time in a kernel service it called, or in an entry it made (which
/// is charged to that entry's own budget), is not the entry's. Here an
/// entry with a 20 ms budget waits 60 ms in a kernel service and 60 ms in
/// a nested entry, then runs 10 ms of its own: it must finish. (With a
/// deadline in time, it was stopped: the NVMe shadow was, when restarting
/// its driver took long under load.)
fn watchdog_charges_own_code_only() -> TestResult {
    use x86_64::instructions::interrupts;
    let was_enabled = interrupts::are_enabled();
    interrupts::enable(); // the watchdog lives in the timer interrupt
    let spin = |ns: u64| {
        let end = crate::time::now_ns() + ns;
        while crate::time::now_ns() < end {
            core::hint::spin_loop();
        }
    };
    let result = catch_with_budget(crate::time::ns_to_ticks(20_000_000) + 1, || {
        crate::cpu::kernel_section(|| spin(60_000_000));
        let nested = catch_with_budget(0, || spin(60_000_000));
        spin(10_000_000);
        nested.is_ok()
    });
    // A runaway nested entry is still stopped by its own budget.
    let runaway = catch_with_budget(crate::time::ns_to_ticks(100_000_000) + 1, || {
        catch_with_budget(crate::time::ns_to_ticks(10_000_000) + 1, || {
            loop {
                core::hint::spin_loop();
            }
        })
        .is_err()
    });
    if !was_enabled {
        interrupts::disable();
    }
    ensure!(
        matches!(result, Ok(true)),
        "an entry was charged for time it spent waiting: {:?}",
        result.map_err(|f| alloc::format!("{f}"))
    );
    ensure!(
        matches!(runaway, Ok(true)),
        "the nested runaway was not stopped by its own budget, or its stop was charged to the outer entry"
    );
    Ok(())
}
