//! Any bytes as a domain ELF image: `loader::Plan::new` must refuse or give
//! a plan that loads within its own span (same check as the nightly-only
//! cargo-fuzz target in kernel/loader/fuzz, on stable AFL++).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(plan) = loader::Plan::new(data, &loader::Limits::default()) {
            let _ = plan.pages();
            let mut memory = vec![0u8; plan.span as usize];
            plan.load_into(data, &mut memory, 0xFFFF_D000_0000_0000)
                .expect("a checked plan loads");
        }
    });
}
