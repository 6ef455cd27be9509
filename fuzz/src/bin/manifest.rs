//! Any bytes as a signed archive's manifest: `kcore::manifest::Manifest::parse`
//! must refuse or give a manifest whose every query answers (no panic, no
//! overflow), and every listed image is found by name.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(manifest) = kcore::manifest::Manifest::parse(data) {
            for image in manifest.images() {
                assert!(manifest.find(image.name).is_some(), "{} listed, not found", image.name);
                core::hint::black_box((image.size, image.sha256));
                for right in manifest.rights_of(image.name) {
                    core::hint::black_box(right);
                }
                let _ = manifest.may_export(image.name, "x");
                let _ = manifest.may_claim(image.name, (1, 8, 2), 0x1b36);
                let _ = manifest.may_supervise(image.name, image.name);
            }
            for start in manifest.starts() {
                core::hint::black_box((start.image, start.domain));
            }
            for grant in manifest.grants() {
                core::hint::black_box(grant.image);
            }
        }
    });
}
