//! `idle`: exports only [`Control`] as "control", echoing ARG for every OP;
//! no tasks. The smallest domain there is (tests and benchmarks use it).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;

use domain_sdk::{Exports, Kernel, RRef, RpcResult};
use interfaces::control::{Control, HELP, Text};

struct Echo;

impl Control for Echo {
    fn control(&self, _op: u32, arg: u64) -> RpcResult<u64> {
        Ok(arg)
    }

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {
        match op {
            HELP => Text::answer("any OP: echoes ARG"),
            _ => Ok(None),
        }
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", Arc::new(Echo)))
}
