#![forbid(unsafe_code)]
// Issue 10, item 7: the registry backend every image is handed
// (`Kernel::rrpc_registry`) must not let a domain hold off the watchdog,
// unbalance the kernel's section count, or allocate untracked memory.

fn attack(registry: &'static dyn rrpc::registry::Remote) {
    registry.enter_critical();
    registry.leave_critical();
    let _ = registry.alloc(core::alloc::Layout::new::<[u8; 4096]>());
}

fn main() {
    let _ = attack;
}
