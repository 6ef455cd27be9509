use rrpc::Exchangeable;

#[derive(Exchangeable)]
pub struct Message<'a> {
    pub id: u64,
    pub boxed: Box<u64>,
    pub name: String,
    pub slot: &'a mut u64,
    pub raw: *const u8,
}

#[derive(Exchangeable)]
pub enum Event {
    Empty,
    Named { name: String },
}

pub struct Plain(pub u64);

#[derive(Exchangeable)]
pub struct Wrapper {
    pub inner: Plain,
}

fn main() {}
