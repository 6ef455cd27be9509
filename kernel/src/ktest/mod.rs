//! In-QEMU tests: functions registered in the kernel image, selected with
//! the kernel command-line option `test=all` or `test=NAME[,NAME...]`,
//! reported over serial, ending with `ktest: N passed, N failed` and an
//! `isa-debug-exit` status (see `power`).
//!
//! Each test runs under a continuation: a test that panics or faults fails
//! with the fault printed, and the runner goes on with the next test.
//! Async tests also have a time limit, so a hang fails the test instead of
//! the whole run.

mod attack_tests;
mod domain_tests;
mod faults;
mod image_tests;
mod memory;
mod nvme_tests;
mod policy_tests;
mod sched_tests;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::{catch, power, time};

pub type TestResult = Result<(), String>;
pub type BoxedTest = Pin<Box<dyn Future<Output = TestResult> + Send>>;

pub enum TestFn {
    Sync(fn() -> TestResult),
    Async(fn() -> BoxedTest),
}

pub struct KTest {
    pub name: &'static str,
    pub run: TestFn,
}

/// What a test returns when the machine lacks what it needs (an IOMMU,
/// say): reported as skipped, counted neither way.
pub fn skip(reason: &str) -> TestResult {
    Err(alloc::format!("{SKIPPED}{reason}"))
}

const SKIPPED: &str = "\u{0}skipped: ";

const TIME_LIMIT: Duration = Duration::from_secs(30);

fn all_tests() -> Vec<&'static KTest> {
    memory::TESTS
        .iter()
        .chain(faults::TESTS)
        .chain(sched_tests::TESTS)
        .chain(domain_tests::TESTS)
        .chain(image_tests::TESTS)
        .chain(nvme_tests::TESTS)
        .chain(policy_tests::TESTS)
        .chain(attack_tests::TESTS)
        .collect()
}

/// Polls the test's future inside a continuation per poll, with a deadline.
struct Guarded {
    inner: Option<BoxedTest>,
    deadline: u64,
    timer: Pin<Box<executor::Sleep>>,
}

impl Future for Guarded {
    type Output = TestResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TestResult> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err("polled after completion".into()));
        };
        match catch::catch(|| inner.as_mut().poll(cx)) {
            Ok(Poll::Ready(result)) => {
                this.inner = None;
                return Poll::Ready(result);
            }
            Ok(Poll::Pending) => {}
            Err(fault) => {
                // The test's state is abandoned, not dropped: it may be
                // inconsistent after the fault.
                core::mem::forget(this.inner.take());
                return Poll::Ready(Err(alloc::format!("{fault}")));
            }
        }
        if time::now_ns() >= this.deadline || this.timer.as_mut().poll(cx).is_ready() {
            core::mem::forget(this.inner.take());
            return Poll::Ready(Err(alloc::format!(
                "timed out after {} s",
                TIME_LIMIT.as_secs()
            )));
        }
        Poll::Pending
    }
}

pub async fn run(selection: String) {
    crate::arch::trap::set_test_handler(sched_tests::on_test_interrupt);
    let tests = all_tests();
    let mut selected: Vec<&KTest> = Vec::new();
    let mut failed = 0usize;
    if selection == "all" {
        selected = tests;
    } else {
        for name in selection.split(',').filter(|n| !n.is_empty()) {
            match tests.iter().find(|t| t.name == name) {
                Some(t) => selected.push(t),
                None => {
                    println!("ktest: {name} ... FAILED: no such test");
                    failed += 1;
                }
            }
        }
    }
    println!(
        "ktest: running {} tests on {} cpus",
        selected.len(),
        crate::cpu::count()
    );
    let mut passed = 0usize;
    for test in selected {
        let start = time::now_ns();
        let result = match test.run {
            TestFn::Sync(f) => {
                catch::catch(f).unwrap_or_else(|fault| Err(alloc::format!("{fault}")))
            }
            TestFn::Async(f) => {
                Guarded {
                    inner: Some(f()),
                    deadline: start + TIME_LIMIT.as_nanos() as u64,
                    timer: Box::pin(executor::sleep(TIME_LIMIT)),
                }
                .await
            }
        };
        let ms = (time::now_ns() - start) / 1_000_000;
        match result {
            Ok(()) => {
                passed += 1;
                println!("ktest: {} ... ok ({ms} ms)", test.name);
            }
            Err(message) if message.starts_with(SKIPPED) => {
                println!(
                    "ktest: {} ... skipped ({})",
                    test.name,
                    &message[SKIPPED.len()..]
                );
            }
            Err(message) => {
                failed += 1;
                println!("ktest: {} ... FAILED: {message}", test.name);
            }
        }
    }
    println!("ktest: {passed} passed, {failed} failed");
    power::finish(if failed == 0 {
        power::EXIT_TESTS_PASSED
    } else {
        power::EXIT_TESTS_FAILED
    })
}
