//! `checksum`: exports [`Checksum`] as "checksum": fills and digests
//! page-sized `RRef` buffers that callers move in (and get back), lend, or
//! pass as a batch, never copying them; and [`Control`] as "control"
//! (`call checksum OP`: 0 = blocks filled, 1 = blocks digested).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use domain_sdk::{Exports, Kernel, RRef, RpcFuture, RpcResult, yield_now};
use interfaces::checksum::{self, Batch, Block, Checksum};
use interfaces::control::{Control, HELP, Text};

#[derive(Default)]
struct Service {
    filled: AtomicU64,
    digested: AtomicU64,
}

impl Checksum for Service {
    fn fill(&self, mut block: RRef<Block>, seed: u32) -> RpcResult<RRef<Block>> {
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = checksum::pattern(seed, i);
        }
        self.filled.fetch_add(1, Ordering::Relaxed);
        Ok(block)
    }

    fn digest(&self, block: &RRef<Block>) -> RpcResult<u64> {
        self.digested.fetch_add(1, Ordering::Relaxed);
        Ok(checksum::digest(&block[..]))
    }

    fn digest_batch(&self, mut batch: RRef<Batch>) -> RpcFuture<'_, (RRef<Batch>, u64)> {
        RpcFuture::new(async move {
            let mut combined = 0;
            for _ in 0..batch.len() {
                let block = batch.pop_front().expect("counted");
                combined = checksum::combine(combined, checksum::digest(&block[..]));
                self.digested.fetch_add(1, Ordering::Relaxed);
                // The batch keeps its order: the block goes to the back.
                batch
                    .push_back(block)
                    .unwrap_or_else(|_| unreachable!("room was just made"));
                // Let other tasks run between blocks (a long batch is
                // polled, and so entered, several times).
                yield_now().await;
            }
            Ok((batch, combined))
        })
    }
}

impl Control for Service {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {
        Ok(match op {
            0 => self.filled.load(Ordering::Relaxed),
            1 => self.digested.load(Ordering::Relaxed),
            _ => arg,
        })
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer("0: blocks filled\n1: blocks digested\nany other OP: echoes ARG"),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let service = Arc::new(Service::default());
    Ok(Exports::new()
        .with::<dyn Checksum + Send + Sync>("checksum", service.clone())
        .with::<dyn Control + Send + Sync>("control", service))
}
