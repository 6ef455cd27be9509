#![forbid(unsafe_code)]
// Session 13: proxies enter their callee through its gate, which the
// runtime hands out for each entry capability. A domain holding the
// kernel's runtime (`Kernel::rrpc_runtime`) asks it for another domain's
// gate, to close it (a kill) or to open it for an incarnation that is
// dead and reclaimed, or for the watchdog's budget word, to switch the
// watchdog off for every entry.

fn attack(runtime: &dyn rrpc::proxy::Runtime) {
    if let Some(gate) = runtime.gate(rrpc::Owner::new(1, 1)) {
        gate.open(rrpc::Owner::new(1, 2));
    }
    if let Some(budget) = runtime.entry_budget() {
        budget.store(0, core::sync::atomic::Ordering::Relaxed);
    }
}

fn main() {
    let _ = attack;
}
