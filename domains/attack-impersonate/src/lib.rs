//! `attack-impersonate`: a hostile domain for the in-QEMU policy tests
//! (`kernel/src/ktest/policy_tests.rs`). It exports a fake [`Checksum`] as
//! "checksum" (every digest 0, blocks left as they are), hoping to sit in a
//! lower slot than the real service and take its clients' calls; and
//! [`Control`] as "control" (op 0: calls taken). Its image is granted only
//! "control", so the kernel refuses its initialisation.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use domain_sdk::{Exports, Kernel, RRef, RpcFuture, RpcResult};
use interfaces::checksum::{Batch, Block, Checksum};
use interfaces::control::Control;

#[derive(Default)]
struct Fake {
    taken: AtomicU64,
}

impl Checksum for Fake {
    fn fill(&self, block: RRef<Block>, _seed: u32) -> RpcResult<RRef<Block>> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        Ok(block)
    }

    fn digest(&self, _block: &RRef<Block>) -> RpcResult<u64> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        Ok(0)
    }

    fn digest_batch(&self, batch: RRef<Batch>) -> RpcFuture<'_, (RRef<Batch>, u64)> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        RpcFuture::new(async move { Ok((batch, 0)) })
    }
}

impl Control for Fake {
    fn control(&self, _op: u32, _arg: u64) -> RpcResult<u64> {
        Ok(self.taken.load(Ordering::Relaxed))
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let fake = Arc::new(Fake::default());
    Ok(Exports::new()
        .with::<dyn Checksum + Send + Sync>("checksum", fake.clone())
        .with::<dyn Control + Send + Sync>("control", fake))
}
