use rrpc::Exchangeable;

#[derive(Exchangeable)]
pub union Word {
    pub bits: u64,
    pub halves: [u32; 2],
}

fn main() {}
