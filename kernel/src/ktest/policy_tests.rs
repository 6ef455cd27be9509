//! The signed manifest's policy, enforced for archive images (issue 10,
//! items 3, 11 and 12), against the attack domains `attack-policy` and
//! `attack-impersonate` (each `forbid(unsafe_code)`, granted nothing they
//! attempt): a device claim outside the image's grants is refused while the
//! NVMe driver still claims its controller; a domain not granted
//! supervision of `nvme` cannot take it before the shadow, which still
//! supervises and restarts the driver; a domain exporting "checksum"
//! without the grant fails to start, and an unqualified lookup finds the
//! real service (two instances of the real image may both export it).

use alloc::boxed::Box;
use alloc::string::String;
use core::time::Duration;

use interfaces::bdev::BDev;
use interfaces::checksum::{self, Block, Checksum};
use rrpc::RRef;

use super::nvme_tests::start_driver;
use super::{BoxedTest, KTest, TestFn, TestResult};
use crate::blk::check_blocks;
use crate::domain::{self, Source, State, loaded};

pub static TESTS: &[KTest] = &[
    KTest {
        name: "policy_device_claims_need_the_manifests_grant",
        run: TestFn::Async(device_claims),
    },
    KTest {
        name: "policy_only_the_granted_shadow_supervises_nvme",
        run: TestFn::Async(supervision),
    },
    KTest {
        name: "policy_an_impersonator_cannot_publish_an_ungranted_export",
        run: TestFn::Async(impersonation),
    },
];

/// `attack-policy`'s answers (see its crate doc).
const SUCCEEDED: u64 = 0;
const NOT_PERMITTED: u64 = 1;

fn load(image: &str, name: &str) -> Result<&'static domain::Domain, domain::DomainError> {
    loaded::catalog()?;
    domain::create_from(Source::Archive(String::from(image)), name)
}

async fn kill_all(domains: &[&'static domain::Domain]) -> TestResult {
    for &d in domains {
        if d.state() == State::Alive {
            domain::kill(d, "test");
        }
    }
    for &d in domains {
        ensure!(
            domain::wait_dead(d, Duration::from_secs(5)).await,
            "{} still {}",
            d.name,
            d.state().name()
        );
    }
    Ok(())
}

/// One attempt by the attacker (its control op), as a domain entry.
fn attempt(attacker: &'static domain::Domain, op: u32, arg: u64) -> Result<u64, String> {
    domain::call(attacker, op, arg).map_err(|e| alloc::format!("attacker op {op}: {e}"))
}

fn device_claims() -> BoxedTest {
    Box::pin(async {
        let (shared_before, _) = crate::shared_heap::usage();
        let attacker = load("attack-policy", "t-attack-dev")?;
        let mut driver = None;
        let result = async {
            // Its image is granted 01:08:02 of vendor ffff only: QEMU's
            // NVMe controller (vendor 1b36) is refused on its vendor, a
            // host bridge on its class.
            let nvme = attempt(attacker, 1, 0)?;
            let bridge = attempt(attacker, 2, 0)?;
            ensure!(
                nvme == NOT_PERMITTED,
                "claiming the NVMe controller gave {nvme} (0: claimed)"
            );
            ensure!(
                bridge == NOT_PERMITTED,
                "claiming a host bridge gave {bridge} (0: claimed)"
            );
            // The driver, granted the class, claims it and does I/O.
            let (d, bdev, _) = start_driver("t-pol-nvme").await?;
            driver = Some(d);
            check_blocks(&bdev, 8)
                .await
                .map_err(|e| alloc::format!("I/O through the driver: {e}"))?;
            // Refused as not permitted, not as busy, while the driver
            // holds it.
            let again = attempt(attacker, 1, 0)?;
            ensure!(again == NOT_PERMITTED, "second claim gave {again}");
            Ok(())
        }
        .await;
        // Whatever happened, nothing of the test may hold the device.
        kill_all(&[attacker]).await?;
        if let Some(d) = driver {
            kill_all(&[d]).await?;
        }
        result?;
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap {shared_before} -> {shared_after} B"
        );
        Ok(())
    })
}

fn supervision() -> BoxedTest {
    Box::pin(async {
        let (shared_before, _) = crate::shared_heap::usage();
        // The shadow supervises the domain named "nvme".
        let (driver, _, _) = start_driver("nvme").await?;
        let attacker = load("attack-policy", "t-attack-sup")?;
        let pre_empt = attempt(attacker, 3, 0)?;
        let restart = attempt(attacker, 4, 0)?;
        let shadow = load("nvme-shadow", "nvme-shadow")?;
        let result = async {
            ensure!(
                pre_empt == NOT_PERMITTED,
                "supervise(\"nvme\") by the attacker gave {pre_empt} (0: it supervises)"
            );
            ensure!(
                restart != SUCCEEDED,
                "restart_domain(\"nvme\") by the attacker succeeded"
            );
            let supervisor = domain::supervisor_name(driver);
            ensure!(
                supervisor.as_deref() == Some("nvme-shadow"),
                "nvme is supervised by {supervisor:?}, not the shadow"
            );
            // The shadow, granted supervision, restarts a crashed driver:
            // I/O through it works across the crash.
            let bdev = domain::proxy::<dyn BDev + Send + Sync>("nvme-shadow/bdev")
                .map_err(|e| alloc::format!("lookup: {e}"))?;
            check_blocks(&bdev, 8)
                .await
                .map_err(|e| alloc::format!("before the crash: {e}"))?;
            let crash = domain::enter(driver.owner(), || {
                crate::inject::trigger(crate::inject::Kind::Panic)
            });
            ensure!(crash.is_err(), "the driver did not crash");
            check_blocks(&bdev, 8)
                .await
                .map_err(|e| alloc::format!("after the crash: {e}"))?;
            let restarts = domain::call(shadow, 0, 0).map_err(|e| alloc::format!("shadow: {e}"))?;
            ensure!(restarts >= 1, "the shadow never restarted the driver");
            ensure!(driver.state() == State::Alive, "the driver is not back");
            Ok(())
        }
        .await;
        kill_all(&[attacker, shadow, driver]).await?;
        result?;
        let (shared_after, _) = crate::shared_heap::usage();
        ensure!(
            shared_after == shared_before,
            "shared heap {shared_before} -> {shared_after} B"
        );
        Ok(())
    })
}

/// The owner of the domain an unqualified lookup of "checksum" finds.
fn checksum_exporter() -> Option<executor::OwnerId> {
    let mut found = None;
    let _ = domain::lookup("checksum", &mut |_, _, owner| found = Some(owner));
    found
}

fn impersonation() -> BoxedTest {
    Box::pin(async {
        // Earlier tests may leave a checksum domain alive; then
        // an unqualified lookup finds that one, and the test checks the
        // impersonator is not found instead of the new service.
        let earlier = checksum_exporter();
        // The impersonator first, so that it would sit in the lower slot.
        let refused = load("attack-impersonate", "t-impostor");
        let impostor = domain::find("t-impostor").ok_or("no impostor domain record")?;
        let real = load("checksum", "t-checksum")?;
        let twin = load("checksum", "t-checksum-2");
        let result = async {
            match &refused {
                Ok(_) => return Err("the impersonator started".into()),
                Err(e) => ensure!(
                    matches!(e, domain::DomainError::InitFailed {
                        why: domain::InitError::ExportNotGranted(export), ..
                    } if export == "checksum"),
                    "refused, but not for its export: {e}"
                ),
            }
            ensure!(
                domain::wait_dead(impostor, Duration::from_secs(5)).await,
                "impostor still {}",
                impostor.state().name()
            );
            ensure!(impostor.slot < real.slot, "slots not as planned");
            // Two instances of the granted image may both export it.
            let twin = twin.as_ref().map_err(|e| alloc::format!("twin: {e}"))?;
            ensure!(twin.state() == State::Alive, "twin not alive");
            // The name service finds the real service (or the one that
            // was there before), never the impersonator, and it answers.
            let found = checksum_exporter();
            let expected_owner = earlier.unwrap_or(real.owner());
            ensure!(
                found == Some(expected_owner) && found != Some(impostor.owner()),
                "\"checksum\" is exported by {found:?}, not {expected_owner} (impostor {})",
                impostor.owner()
            );
            let mut block: RRef<Block> = RRef::new([0u8; 4096]);
            for (i, byte) in block.iter_mut().enumerate() {
                *byte = checksum::pattern(7, i);
            }
            let expected = checksum::digest(&block[..]);
            for name in ["checksum", "t-checksum/checksum", "t-checksum-2/checksum"] {
                let service = domain::proxy::<dyn Checksum + Send + Sync>(name)
                    .map_err(|e| alloc::format!("lookup {name}: {e}"))?;
                let digest = service
                    .digest(&block)
                    .map_err(|e| alloc::format!("{name}: digest: {e}"))?;
                ensure!(
                    digest == expected,
                    "{name}: digest {digest:#x}, expected {expected:#x}"
                );
            }
            Ok(())
        }
        .await;
        let mut alive = alloc::vec![real];
        if let Ok(twin) = twin {
            alive.push(twin);
        }
        if refused.is_ok() {
            alive.push(impostor);
        }
        kill_all(&alive).await?;
        result
    })
}
