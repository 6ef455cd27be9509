//! Any bytes as an ELF image: `Plan::new` must refuse or give a plan that
//! loads within its own span.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = loader::Plan::new(data, &loader::Limits::default()) {
        let mut memory = vec![0u8; plan.span as usize];
        plan.load_into(data, &mut memory, 0xFFFF_D000_0000_0000)
            .expect("a checked plan loads");
    }
});
