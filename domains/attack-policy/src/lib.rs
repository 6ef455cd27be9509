//! `attack-policy`: a hostile domain for the in-QEMU policy tests
//! (`kernel/src/ktest/policy_tests.rs`). Domains take no arguments, so it
//! exports [`Control`] as "control" and each op is one attempt at a right
//! its image is not granted:
//!
//! - op 1: claim the first NVMe controller (class 01:08:02; its image is
//!   granted that class only for vendor ffff, which QEMU's is not);
//! - op 2: claim the first host bridge (class 06:00:00, not granted);
//! - op 3: `supervise` the domain named by ARG's table below (0: "nvme");
//! - op 4: `restart_domain` it.
//!
//! Each returns 0 if the attempt succeeded (the hole), 1 if it was refused
//! as not permitted, and 2 + the error's number for any other refusal.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;

use domain_sdk::{DeviceError, Exports, Kernel, RestartError, RpcResult, claim_device, kernel};
use interfaces::control::Control;

/// Domains op 3 and 4 aim at, by ARG.
const TARGETS: [&str; 2] = ["nvme", "nvme-shadow"];

struct Attack;

fn device(result: Result<alloc::boxed::Box<dyn domain_sdk::Device>, DeviceError>) -> u64 {
    match result {
        Ok(_) => 0,
        Err(DeviceError::NotPermitted) => 1,
        Err(e) => 2 + e as u64,
    }
}

fn restart(result: Result<(), RestartError>) -> u64 {
    match result {
        Ok(()) => 0,
        Err(RestartError::NotPermitted) => 1,
        Err(e) => 2 + e as u64,
    }
}

impl Control for Attack {
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {
        let target = TARGETS[(arg as usize).min(TARGETS.len() - 1)];
        Ok(match op {
            1 => device(claim_device((0x01, 0x08, 0x02), 0)),
            2 => device(claim_device((0x06, 0x00, 0x00), 0)),
            3 => restart(kernel().supervise(target)),
            4 => restart(kernel().restart_domain(target)),
            _ => u64::MAX,
        })
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", Arc::new(Attack)))
}
