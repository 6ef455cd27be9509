#![forbid(unsafe_code)]
// A domain tries to get hold of the critical section a proxied call's
// argument moves run in (forgetting it would leave its core in a kernel
// section for good): neither the token nor the "moved" handle can be made
// outside rrpc, and the move itself needs them.

fn main() {
    let flag = core::cell::Cell::new(false);
    let moved = rrpc::proxy::Moved::new(&flag);
    moved.receive_all(false, |critical| core::mem::forget(critical));
    let fake = rrpc::proxy::InCritical(todo!());
    core::mem::forget(fake);
}
