#![forbid(unsafe_code)]
// A domain opens another domain's exports through the name service to call
// its object directly (its code would run in the caller, on the caller's
// heap).

use domain_sdk::Kernel;
use interfaces::bdev::BDev;

fn attack(kernel: &dyn Kernel) {
    let _ = kernel.lookup("nvme/bdev", &mut |exports, name, _owner| {
        let _object = exports.get::<dyn BDev + Send + Sync>(name);
    });
}

fn main() {
    let _ = attack;
}
