//! Domains loaded from the signed boot archive (separately built images):
//! load, call, kill, load again; two instances of one image; a panic in an
//! image's entry; memory back afterwards. Needs the archive (`make test`
//! passes it to every boot); without one each test says so and fails.

use alloc::boxed::Box;
use alloc::string::String;
use core::time::Duration;

use super::{BoxedTest, KTest, TestFn, TestResult};
use crate::domain::{self, Source, State, loaded};
use crate::mem;
use interfaces::control::Control;
use interfaces::counter::Counter;

pub static TESTS: &[KTest] = &[
    KTest {
        name: "image_load_call_kill_100_cycles_returns_memory",
        run: TestFn::Async(load_kill_cycles),
    },
    KTest {
        name: "image_two_instances_are_independent",
        run: TestFn::Async(two_instances),
    },
    KTest {
        name: "image_entry_panic_is_contained",
        run: TestFn::Async(entry_panic),
    },
];

fn archive_ready() -> TestResult {
    loaded::catalog()
        .map(|_| ())
        .map_err(|e| alloc::format!("boot archive: {e}"))
}

fn load(image: &str, name: &str) -> Result<&'static domain::Domain, domain::DomainError> {
    domain::create_from(Source::Archive(String::from(image)), name)
}

async fn dead(d: &'static domain::Domain) -> TestResult {
    ensure!(
        domain::wait_dead(d, Duration::from_secs(5)).await,
        "{} still {} after 5 s",
        d.name,
        d.state().name()
    );
    Ok(())
}

/// One cycle: load `idle` from the archive, call it through the name
/// service's proxy, kill it, wait until it is reclaimed.
async fn cycle(round: u32) -> TestResult {
    let d = load("idle", "img-cycle").map_err(|e| alloc::format!("round {round}: {e}"))?;
    ensure!(
        loaded::image_bytes(d.slot) > 0,
        "round {round}: no image mapped"
    );
    let control = domain::proxy::<dyn Control + Send + Sync>("img-cycle/control")
        .map_err(|e| alloc::format!("round {round}: lookup: {e}"))?;
    ensure!(
        control.control(2, u64::from(round)) == Ok(u64::from(round)),
        "round {round}: the call failed"
    );
    drop(control);
    domain::kill(d, "test");
    dead(d).await?;
    ensure!(
        loaded::image_bytes(d.slot) == 0,
        "round {round}: image still mapped after reclaim"
    );
    Ok(())
}

fn load_kill_cycles() -> BoxedTest {
    Box::pin(async {
        archive_ready()?;
        // Warm up (first-use allocations: the name, page tables of the
        // image window, shared structures).
        cycle(0).await?;
        let frames_before = mem::frames::free_count();
        let heap_before = mem::heap::usage().0;
        for round in 1..=100 {
            cycle(round).await?;
        }
        let frames_after = mem::frames::free_count();
        let heap_after = mem::heap::usage().0;
        crate::println!(
            "    100 load/call/kill cycles: free frames {frames_before} -> {frames_after}, kernel heap {heap_before} -> {heap_after} B"
        );
        ensure!(
            frames_after == frames_before,
            "frames: {frames_before} -> {frames_after}"
        );
        ensure!(
            heap_after == heap_before,
            "kernel heap: {heap_before} -> {heap_after} B"
        );
        Ok(())
    })
}

fn two_instances() -> BoxedTest {
    Box::pin(async {
        archive_ready()?;
        let a = load("counter", "img-count-a")?;
        let b = load("counter", "img-count-b")?;
        ensure!(a.slot != b.slot, "one slot for two domains");
        let pa = domain::proxy::<dyn Counter + Send + Sync>("img-count-a/counter")
            .map_err(|e| alloc::format!("lookup a: {e}"))?;
        let pb = domain::proxy::<dyn Counter + Send + Sync>("img-count-b/counter")
            .map_err(|e| alloc::format!("lookup b: {e}"))?;
        ensure!(pa.increment() == Ok(1), "a: first call");
        ensure!(pa.increment() == Ok(2), "a: second call");
        ensure!(pb.increment() == Ok(1), "b shares a's statics or heap");
        // The async method, through an image's own copy of the SDK timers.
        let ticks = pb
            .wait_ticks(2)
            .await
            .map_err(|e| alloc::format!("b wait_ticks: {e}"))?;
        ensure!(ticks >= 2, "b ticked {ticks} times");
        // Killing one leaves the other.
        domain::kill(a, "test");
        dead(a).await?;
        ensure!(pa.increment().is_err(), "a answers after its death");
        ensure!(pb.increment() == Ok(2), "b died with a");
        drop((pa, pb));
        domain::kill(b, "test");
        dead(b).await
    })
}

fn entry_panic() -> BoxedTest {
    Box::pin(async {
        archive_ready()?;
        let frames_before = mem::frames::free_count();
        let result = load("broken", "img-broken");
        let Err(error) = result else {
            return Err("the broken image initialised".into());
        };
        ensure!(
            matches!(&error, domain::DomainError::InitCrashed { fault, .. } if fault.contains("index out of bounds")),
            "error: {error}"
        );
        let d = domain::find("img-broken").ok_or("no domain record")?;
        dead(d).await?;
        ensure!(d.state() == State::Dead, "state {}", d.state().name());
        ensure!(loaded::image_bytes(d.slot) == 0, "image still mapped");
        let frames_after = mem::frames::free_count();
        // The first use of the window may keep page-table pages.
        ensure!(
            frames_after + 4 >= frames_before,
            "frames: {frames_before} -> {frames_after}"
        );
        // Loading again by name reuses the dead domain (and fails again).
        ensure!(
            load("broken", "img-broken").is_err(),
            "second load initialised"
        );
        dead(d).await
    })
}
