#![forbid(unsafe_code)]
// Issue 10, item 1: a callee lent `&RRef` takes it for itself; when it
// dies, the block is freed while its owner still holds it.

fn attack(lent: &rrpc::RRef<[u8; 64]>) {
    lent.move_to(&rrpc::Transfer::here());
}

fn main() {
    let _ = attack;
}
