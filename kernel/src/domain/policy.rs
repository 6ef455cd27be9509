//! The images' policy: the grants of the signed manifest (`export`,
//! `device`, `supervise` lines; see `kcore::manifest`), which the trusted
//! build writes from each domain crate's `[package.metadata.domain]`.
//!
//! It binds domains loaded from the boot archive: such a domain may only
//! publish the export names, claim the PCI functions and supervise the
//! images its image is granted. Domains of built-in images (linked into
//! the kernel, for tests) are trusted kernel code for now and unrestricted;
//! so is the kernel itself (the console).

use alloc::string::String;

use domain_sdk::Exports;
use executor::OwnerId;
use kcore::manifest::Manifest;

use super::{Domain, Source, loaded};
use crate::cpu;

/// The archive image `domain` runs; `None` for a built-in one.
fn archive_image(domain: &Domain) -> Option<String> {
    cpu::kernel_section(|| match &*domain.source.lock() {
        Source::Archive(image) => Some(image.clone()),
        Source::BuiltIn(_) => None,
    })
}

/// Whose rules bind incarnation `owner`: `None` if it is unrestricted (the
/// kernel, a built-in image), else its archive image's name.
fn restricted(owner: OwnerId) -> Option<String> {
    if owner == 0 {
        return None;
    }
    match super::get(super::slot_of(owner)) {
        Some(domain) => archive_image(domain),
        // No such domain: no rights (an empty name is granted nothing).
        None => Some(String::new()),
    }
}

/// `check` on the signed manifest; false if there is none (an archive
/// image cannot run without one, so this is only defensive).
fn granted(check: impl FnOnce(&Manifest<'_>) -> bool) -> bool {
    cpu::kernel_section(|| loaded::catalog().is_ok_and(|c| check(c.manifest())))
}

/// The image's name for messages (`built-in` if unrestricted).
pub fn image_of(owner: OwnerId) -> String {
    restricted(owner).unwrap_or_else(|| String::from("built-in"))
}

/// Whether `owner` may claim some PCI function of `class` (checked before
/// looking for the function).
pub fn may_claim_class(owner: OwnerId, class: (u8, u8, u8)) -> bool {
    match restricted(owner) {
        None => true,
        Some(image) => granted(|m| m.may_claim_class(&image, class)),
    }
}

/// Whether `owner` may claim a PCI function of `class` from `vendor`.
pub fn may_claim(owner: OwnerId, class: (u8, u8, u8), vendor: u16) -> bool {
    match restricted(owner) {
        None => true,
        Some(image) => granted(|m| m.may_claim(&image, class, vendor)),
    }
}

/// Whether `owner` may supervise (restart) `target`, by their images.
pub fn may_supervise(owner: OwnerId, target: &Domain) -> bool {
    match restricted(owner) {
        None => true,
        Some(image) => {
            let target = target.image_name();
            granted(|m| m.may_supervise(&image, &target))
        }
    }
}

/// Why `owner` may not publish `exports`: the first name its image is not
/// granted. `None` if it may publish them all.
pub fn refuse_exports(owner: OwnerId, exports: &Exports) -> Option<String> {
    let image = restricted(owner)?;
    cpu::kernel_section(|| {
        let catalog = loaded::catalog().ok();
        let name = exports
            .names()
            .find(|name| !catalog.is_some_and(|c| c.manifest().may_export(&image, name)))?;
        // The domain chose the name: clipped, control characters shown.
        Some(alloc::format!(
            "export '{}' is not granted to image '{image}' by the signed manifest",
            kcore::fmt::Clipped::new(name, 32)
        ))
    })
}
