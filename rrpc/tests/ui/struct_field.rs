use rrpc::Exchangeable;

#[derive(Exchangeable)]
pub struct Message {
    pub id: u64,
    pub body: Vec<u8>,
}

fn main() {}
