//! The host test kit (`domain_sdk::testing`) itself: what a domain's own
//! tests rely on. Runs when the `testing` feature is on (`cargo test -p
//! domain-sdk --features testing`, and in `cargo test --workspace`, where
//! the domains' dev-dependencies turn it on).
#![cfg(feature = "testing")]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use domain_sdk::{Exports, Kernel, RpcError, RpcResult, log, lookup, sleep, spawn, testing};
use interfaces::control::Control;

/// Counts its ticks: a task sleeping 10 ms per tick; `control(0)` reads
/// them, `control(1)` panics (a crash inside a call), `control(2)` makes
/// the ticking task panic at its next tick.
#[derive(Default)]
struct Ticker {
    ticks: AtomicU64,
    poison: AtomicU64,
}

impl Control for Ticker {
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {
        match op {
            0 => Ok(self.ticks.load(Ordering::Relaxed)),
            1 => panic!("asked to crash"),
            _ => {
                self.poison.store(1, Ordering::Relaxed);
                Ok(0)
            }
        }
    }
}

fn ticker(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    let state = Arc::new(Ticker::default());
    let task_state = state.clone();
    spawn(async move {
        loop {
            sleep(Duration::from_millis(10)).await;
            assert_eq!(task_state.poison.load(Ordering::Relaxed), 0, "poisoned");
            task_state.ticks.fetch_add(1, Ordering::Relaxed);
        }
    })
    .map_err(|e| alloc::format!("spawn: {e}"))?;
    log("ticking");
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", state))
}

fn refuses(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    Err("no configuration".into())
}

fn panics(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    panic!("at start")
}

#[test]
fn timers_run_on_a_virtual_clock_that_moves_only_when_asked() {
    let kernel = testing::kernel();
    kernel.load("kit-clock", ticker).unwrap();
    let ticker = lookup::<dyn Control + Send + Sync>("kit-clock/control").unwrap();
    let start = kernel.now_ns();
    assert_eq!(ticker.control(0, 0), Ok(0));
    kernel.run_for(Duration::from_secs(1));
    assert_eq!(
        ticker.control(0, 0),
        Ok(100),
        "one tick per 10 ms of virtual time"
    );
    assert_eq!(kernel.now_ns() - start, 1_000_000_000);
    assert_eq!(kernel.logs("kit-clock"), ["ticking"]);
}

#[test]
fn a_panic_in_a_call_or_in_a_task_crashes_only_that_domain() {
    let kernel = testing::kernel();
    kernel.load("kit-call", ticker).unwrap();
    kernel.load("kit-task", ticker).unwrap();
    let call = lookup::<dyn Control + Send + Sync>("kit-call/control").unwrap();
    let task = lookup::<dyn Control + Send + Sync>("kit-task/control").unwrap();
    assert_eq!(call.control(1, 0), Err(RpcError::DomainCrashed));
    assert_eq!(call.control(0, 0), Err(RpcError::DomainNotAlive));
    assert!(!kernel.is_alive("kit-call"));

    assert_eq!(task.control(2, 0), Ok(0));
    kernel.run_for(Duration::from_millis(50));
    assert!(!kernel.is_alive("kit-task"), "its task panicked");
    assert_eq!(task.control(0, 0), Err(RpcError::DomainNotAlive));

    kernel.restart("kit-task").unwrap();
    let task = lookup::<dyn Control + Send + Sync>("kit-task/control").unwrap();
    kernel.run_for(Duration::from_millis(100));
    assert_eq!(
        task.control(0, 0),
        Ok(10),
        "a fresh incarnation, ticking from 0"
    );
}

#[test]
fn loads_that_fail_and_lookups_that_find_nothing_say_why() {
    let kernel = testing::kernel();
    assert_eq!(
        kernel.load("kit-refuses", refuses),
        Err("'kit-refuses' failed to start: no configuration".into())
    );
    assert_eq!(
        kernel.load("kit-panics", panics),
        Err("'kit-panics' crashed during initialisation".into())
    );
    assert!(!kernel.is_alive("kit-panics"));
    kernel.load("kit-twice", ticker).unwrap();
    assert!(
        kernel
            .load("kit-twice", ticker)
            .unwrap_err()
            .contains("alive already")
    );
    assert_eq!(
        lookup::<dyn Control + Send + Sync>("kit-nobody/control").err(),
        Some(RpcError::NoSuchDomain)
    );
    assert_eq!(
        lookup::<dyn Control + Send + Sync>("no-such-export").err(),
        Some(RpcError::NoSuchInterface)
    );
    kernel.crash("kit-twice").unwrap();
    assert_eq!(
        lookup::<dyn Control + Send + Sync>("kit-twice/control").err(),
        Some(RpcError::DomainNotAlive)
    );
    assert!(kernel.crash("kit-twice").is_err(), "already dead");
    assert_eq!(spawn(async {}), Err(domain_sdk::SpawnError::NotInDomain));
}

#[test]
fn block_on_gives_up_at_its_limit() {
    let kernel = testing::kernel();
    let slow = kernel.block_on(sleep(Duration::from_secs(10)), Duration::from_secs(1));
    assert_eq!(slow, None);
    let fast = kernel.block_on(sleep(Duration::from_millis(5)), Duration::from_secs(1));
    assert_eq!(fast, Some(()));
}
