//! The greeter and its client as domains on the host test kit: the
//! client's task and its 20 ms timer run on a virtual clock, so two
//! seconds of its life take no time.

use core::time::Duration;
use domain_sdk::{lookup, testing};
use interfaces::control::Control;

#[test]
fn the_client_keeps_greeting_across_a_crash_of_the_greeter() {
    let kernel = testing::kernel();
    kernel
        .load("greeter", domain_greeter::init)
        .expect("load greeter");
    kernel
        .load("greeter-client", domain_greeter_client::init)
        .expect("load the client");
    let client = lookup::<dyn Control + Send + Sync>("greeter-client/control").expect("lookup");

    kernel.run_for(Duration::from_secs(1));
    let greetings = client.control(0, 0).expect("greetings");
    assert!(greetings >= 40, "{greetings} greetings in a second");

    kernel.crash("greeter").expect("crash");
    kernel.run_for(Duration::from_millis(100));
    assert!(client.control(1, 0).expect("failures") >= 1);
    assert!(
        kernel.logs("greeter-client")[0].starts_with("greet failed"),
        "the client logged the failure"
    );

    kernel.restart("greeter").expect("restart");
    kernel.run_for(Duration::from_secs(1));
    assert!(client.control(0, 0).expect("greetings") >= greetings + 40);
}
