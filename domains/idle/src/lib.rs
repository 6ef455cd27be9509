//! `idle`: exports a service that echoes its argument; no tasks.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;

use domain_sdk::{Kernel, Service};

struct Echo;

impl Service for Echo {
    fn call(&self, _op: u32, arg: u64) -> u64 {
        arg
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Box<dyn Service>, String> {
    Ok(Box::new(Echo))
}
