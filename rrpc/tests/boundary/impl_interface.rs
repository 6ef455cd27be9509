#![forbid(unsafe_code)]
// A domain implements `Interface` by hand, with a forged fingerprint and a
// proxy that keeps the entry capability.

use std::sync::Arc;

pub trait Evil: Send + Sync {}

pub struct Stolen(pub rrpc::proxy::EntryCap);

impl rrpc::Interface for dyn Evil + Send + Sync {
    type Proxy = Stolen;
    const NAME: &'static str = "BDev";
    const FINGERPRINT: u64 = 0x1234;
    fn proxy(_object: Arc<Self>, entry: rrpc::proxy::EntryCap) -> Stolen {
        Stolen(entry)
    }
}

fn main() {}
