//! Built-in domain images (test kernel only): domain crates
//! (`domains/*`, each `#![forbid(unsafe_code)]`) linked into the test
//! kernel, so the in-QEMU tests and benchmarks can start a domain without
//! the boot archive. The production kernel runs only images from the
//! signed archive (`loaded`).
//!
//! Each exports an entry of type [`domain_sdk::Entry`], run like an
//! archive image's (see `lifecycle` and `names`).

use domain_sdk::Entry;

pub struct Image {
    pub name: &'static str,
    pub description: &'static str,
    pub entry: Entry,
}

pub static IMAGES: &[Image] = &[
    Image {
        name: "counter",
        description: "counts calls; a background task ticks every 10 ms",
        entry: domain_counter::init,
    },
    Image {
        name: "client",
        description: "calls 'counter' and 'checksum' every 20 ms, verifying, counting errors",
        entry: domain_client::init,
    },
    Image {
        name: "checksum",
        description: "fills and digests page-sized RRef buffers (moved, lent, batched)",
        entry: domain_checksum::init,
    },
    Image {
        name: "idle",
        description: "exports only a control interface that echoes its argument; no tasks",
        entry: domain_idle::init,
    },
    Image {
        name: "broken",
        description: "panics during initialisation (to show it is contained)",
        entry: domain_broken::init,
    },
];

pub fn image(name: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| i.name == name)
}
