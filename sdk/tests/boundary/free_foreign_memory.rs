#![forbid(unsafe_code)]
// A domain frees memory that is not its own through the kernel's allocator
// services (a free goes to whichever heap holds the address).

use core::alloc::Layout;
use domain_sdk::Kernel;

fn attack(kernel: &dyn Kernel, victim: *mut u8) {
    kernel.dealloc(victim, Layout::new::<u64>());
}

fn main() {
    let _ = attack;
}
