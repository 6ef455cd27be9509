#![forbid(unsafe_code)]
// Issue 10, item 7: a domain must not hold off the watchdog, unbalance the
// kernel's section count, or allocate untracked memory through the registry
// backend every image is handed (`Kernel::rrpc_registry`); nor free another
// domain's objects or let go of its core's registry shard in the middle of a
// batch. Sections are entered inline through the per-core words
// (`rrpc::percpu`), by a guard only `rrpc` can make; the words' setters
// exist only in host builds with the test kit (never in a kernel image).

fn attack(registry: &'static dyn rrpc::registry::Remote) {
    let section = rrpc::percpu::Section::enter();
    core::mem::forget(section);
    let _ = registry.alloc(core::alloc::Layout::new::<[u8; 4096]>());
    rrpc::registry::reclaim(rrpc::Owner::new(1, 1));
    rrpc::registry::leave_batch();
}

fn main() {
    let _ = attack;
}
