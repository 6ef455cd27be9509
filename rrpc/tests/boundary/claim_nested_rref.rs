#![forbid(unsafe_code)]
// Issue 10, items 1 and 8: a callee lent a batch claims its items (then
// they were freed twice: through the batch and as the claimer's own).

fn attack(lent: &rrpc::RRef<rrpc::RRefDeque<[u8; 64], 4>>) {
    for item in lent.iter() {
        item.claim();
    }
}

fn main() {
    let _ = attack;
}
