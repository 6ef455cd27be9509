#![forbid(unsafe_code)]
// Issue 10, item 7: the registry backend every image is handed
// (`Kernel::rrpc_registry`) must not let a domain hold off the watchdog,
// unbalance the kernel's section count, or allocate untracked memory;
// nor free another domain's objects or let go of its core's registry shard
// in the middle of a batch.

fn attack(registry: &'static dyn rrpc::registry::Remote) {
    registry.enter_critical();
    registry.leave_critical();
    let _ = registry.alloc(core::alloc::Layout::new::<[u8; 4096]>());
    rrpc::registry::reclaim(rrpc::Owner::new(1, 1));
    rrpc::registry::leave_batch();
}

fn main() {
    let _ = attack;
}
