//! `echo` on the host test kernel: it loads and waits for the TCP/IP
//! domain without failing (the echo path itself runs in QEMU, driven from
//! the host: tools/qemu-test.py's TCP/IP sessions).

use domain_sdk::{lookup, testing};
use interfaces::control::{Control, HELP};

#[test]
fn without_a_stack_it_waits_and_answers_its_counters() {
    let kernel = testing::kernel();
    kernel.load("echo-test", domain_echo::init).expect("load");
    kernel.run_for(std::time::Duration::from_millis(300));
    let control = lookup::<dyn Control + Send + Sync>("echo-test/control").expect("lookup");
    assert_eq!(control.control(0, 0), Ok(0));
    assert_eq!(control.control(3, 0), Ok(0), "no server started and failed");
    let help = control.control_text(HELP, 0).unwrap().unwrap();
    assert!(help.as_str().contains("echo on TCP and UDP port 7"));
}
