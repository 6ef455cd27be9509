#![forbid(unsafe_code)]
// A domain holding the kernel's runtime (`Kernel::rrpc_runtime`) tries to
// run code of its own as another domain.

fn attack(runtime: &dyn rrpc::proxy::Runtime) {
    let _ = runtime.enter(rrpc::Owner::new(1, 1), &mut || panic!("as the victim"));
}

fn main() {
    let _ = attack;
}
