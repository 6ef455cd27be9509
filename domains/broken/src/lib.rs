//! `broken`: panics during its initialisation (an out-of-bounds index), to
//! show that a crash there is contained like any other.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use domain_sdk::{Exports, Kernel};

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let table: Vec<u32> = alloc::vec![1, 2, 3];
    let index = core::hint::black_box(7);
    Err(alloc::format!("unreachable: {}", table[index]))
}
