//! The images' policy: the grants of the signed manifest (`export`,
//! `device`, `supervise` lines; see `kcore::manifest`), which the trusted
//! build writes from each domain crate's `[package.metadata.domain]`.
//!
//! It binds domains loaded from the boot archive: such a domain may only
//! publish the export names, claim the PCI functions and supervise the
//! images its image is granted. Every domain runs an archive image; only
//! the kernel itself (the console) is unrestricted.
//!
//! These checks run on behalf of the calling domain: each runs whole in a
//! kernel section (the kernel heap, the domain's source lock), and what
//! leaves it is plain data.

use alloc::string::String;

use domain_sdk::Exports;
use executor::OwnerId;
use kcore::manifest::Manifest;

use super::{Domain, Source, loaded};
use crate::cpu;

/// Whose rules bind incarnation `owner`: `None` if it is unrestricted (the
/// kernel), else its archive image's name (empty, so
/// granted nothing, if there is no such domain). Call in a kernel section.
fn restricted(owner: OwnerId) -> Option<String> {
    if owner == executor::OwnerId::KERNEL {
        return None;
    }
    let Some(domain) = super::get(super::slot_of(owner)) else {
        return Some(String::new());
    };
    match &*domain.source.lock() {
        Source::Archive(image) => Some(image.clone()),
        // A program is granted nothing: no manifest entry has this name.
        Source::Program { .. } => Some(String::new()),
    }
}

/// Whether `owner` passes `check` (given the manifest and its image); true
/// if it is unrestricted, false if there is no manifest (an archive image
/// cannot run without one, so that is only defensive).
fn allowed(owner: OwnerId, check: impl FnOnce(&Manifest<'_>, &str) -> bool) -> bool {
    cpu::kernel_section(|| match restricted(owner) {
        None => true,
        Some(image) => loaded::catalog().is_ok_and(|c| check(c.manifest(), &image)),
    })
}

/// Logs a refusal: `what` was refused to `owner` (`domain NAME (image
/// IMAGE): WHAT refused: not granted by the signed manifest`).
pub fn log_refusal(owner: OwnerId, what: core::fmt::Arguments<'_>) {
    cpu::kernel_section(|| {
        let name = super::get(super::slot_of(owner)).map_or("?", |d| d.name.as_str());
        let image = restricted(owner).unwrap_or_else(|| String::from("kernel"));
        crate::warn!(
            "domain {name} (image {image}): {what} refused: not granted by the signed manifest"
        );
    });
}

/// Whether `owner` may claim some PCI function of `class` (checked before
/// looking for the function).
pub fn may_claim_class(owner: OwnerId, class: (u8, u8, u8)) -> bool {
    allowed(owner, |m, image| m.may_claim_class(image, class))
}

/// Whether `owner` may claim a PCI function of `class` from `vendor`.
pub fn may_claim(owner: OwnerId, class: (u8, u8, u8), vendor: u16) -> bool {
    allowed(owner, |m, image| m.may_claim(image, class, vendor))
}

/// Whether `owner` may supervise (restart) `target`, by their images.
pub fn may_supervise(owner: OwnerId, target: &Domain) -> bool {
    allowed(owner, |m, image| {
        m.may_supervise(image, &target.image_name())
    })
}

/// The first name in `exports` that `owner`'s image is not granted, if
/// any (then its initialisation must fail).
pub fn refused_export(owner: OwnerId, exports: &Exports) -> Option<&str> {
    cpu::kernel_section(|| {
        let image = restricted(owner)?;
        let catalog = loaded::catalog().ok();
        exports
            .names()
            .find(|name| !catalog.is_some_and(|c| c.manifest().may_export(&image, name)))
    })
}
