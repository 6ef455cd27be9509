#![forbid(unsafe_code)]
// A domain gives an RRef to another domain while keeping it: when that
// domain dies, the RRef is freed under the giver's feet.

fn attack(buffer: &rrpc::RRef<[u8; 64]>) {
    buffer.move_to(&rrpc::Transfer::new(rrpc::Owner::new(1, 1)));
}

fn main() {
    let _ = attack;
}
