//! A small host-native micro-benchmark harness.
//!
//! Every benchmark is a pair: the thing measured and its baseline, timed in
//! the same process run with the TSC (`rdtsc` fenced by `lfence`), each as
//! the median of repeated samples of many iterations. The report gives both
//! medians, their difference and their ratio, as a table and as JSON.
//! Nothing here asserts a timing: the numbers are for `docs/benchmarks.md`.

pub mod apps;
pub mod experiments;
pub mod harness;
pub mod hashtable;
pub mod percpu;
pub mod suites;

pub use harness::{Measurement, Report, Settings};
