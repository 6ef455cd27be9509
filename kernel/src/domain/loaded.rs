//! Domain images from the boot archive.
//!
//! The Makefile packs every domain's image, a manifest of their sizes and
//! SHA-256 digests and the manifest's Ed25519 signature into one cpio
//! archive, which QEMU passes as the PVH boot module. At boot we keep a
//! reference to it and verify the manifest's signature with the public key
//! built into the kernel (`build.rs` embeds the trusted build's key).
//!
//! Loading an image (`load`): check its size and digest against the
//! signed manifest, check and plan the ELF (`loader::Plan`: see the checks
//! there), lay it out in a kernel buffer with its relocations applied for
//! the slot's window, copy that into fresh frames, then map
//! each page into the window with its segment's permissions: code
//! read+execute, read-only data and relocated vtables (RELRO) read-only,
//! data and bss read+write, nothing both writable and executable. Any
//! failure frees what was taken: a refused image leaves nothing behind.
//! Unloading (at reclaim) unmaps the window, shoots down every core's TLB
//! and frees the frames.

use alloc::string::String;

use super::ImageError;

use kcore::pvh::BootInfo;
use loader::{Catalog, Limits, LoadError, Perms, Plan};
use spin::{Mutex, Once};

use crate::mem::layout::{IMAGE_WINDOW_SIZE, IMAGE_WINDOWS};
use crate::mem::{PAGE_SIZE, frames, paging, phys_to_virt};

/// The public half of the build's signing key (all zeroes if the kernel
/// was built without one).
static PUBLIC_KEY: [u8; 32] = *include_bytes!(concat!(env!("OUT_DIR"), "/domain.pub"));

static ARCHIVE: Once<&'static [u8]> = Once::new();
static CATALOG: Once<Result<Catalog<'static>, LoadError>> = Once::new();
/// An archive pushed since boot (`make push`, see `crate::push`), which
/// replaces the boot archive for every later load. Archives are kept for
/// the kernel's lifetime (a `&'static Catalog` may be in use on another
/// core while the next one arrives), so their number is bounded.
static PUSHED: Mutex<Option<&'static Catalog<'static>>> = Mutex::new(None);
static PUSHES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
/// Most archives pushed in one boot (each stays on the kernel heap).
pub const MAX_PUSHES: usize = 16;

/// Remembers the boot archive: the boot module whose command line is
/// `domains`, else the first module.
pub fn init(boot: &BootInfo) {
    let module = boot
        .modules()
        .find(|m| m.cmdline == "domains")
        .or_else(|| boot.modules().next());
    let Some(module) = module else {
        crate::info!("domains: no boot archive (images can only be built in)");
        return;
    };
    // SAFETY: the module's frames are reserved at boot (never handed out)
    // and mapped by the direct map; nothing writes them.
    let bytes: &'static [u8] =
        unsafe { core::slice::from_raw_parts(phys_to_virt(module.paddr), module.size as usize) };
    ARCHIVE.call_once(|| bytes);
    match catalog() {
        Ok(catalog) => crate::info!(
            "domains: boot archive with {} signed images",
            catalog.names().count()
        ),
        Err(e) => crate::warn!("domains: boot archive refused: {e}"),
    }
}

/// The verified archive in use: the last one pushed, else the boot
/// archive.
pub fn catalog() -> Result<&'static Catalog<'static>, ImageError> {
    if let Some(pushed) = *PUSHED.lock() {
        return Ok(pushed);
    }
    let archive = *ARCHIVE.get().ok_or(ImageError::NoArchive)?;
    CATALOG
        .call_once(|| crate::cpu::kernel_section(|| Catalog::open(archive, &PUBLIC_KEY)))
        .as_ref()
        .map_err(|e| ImageError::Archive(e.clone()))
}

/// Checks `archive` as the boot archive is checked (its manifest's
/// signature with the kernel's key) and makes it the archive every later
/// `load` and `restart` uses; returns how many images it signs. Refused
/// (and the current archive kept) if it fails, or after [`MAX_PUSHES`].
pub fn replace_archive(archive: alloc::vec::Vec<u8>) -> Result<usize, String> {
    if PUSHES.load(core::sync::atomic::Ordering::Relaxed) >= MAX_PUSHES {
        return Err(alloc::format!(
            "{MAX_PUSHES} archives pushed since boot already (each stays in memory); reboot to push more"
        ));
    }
    crate::cpu::kernel_section(|| {
        // Checked before it is kept (a refused archive is freed).
        Catalog::open(&archive, &PUBLIC_KEY).map_err(|e| alloc::format!("{e}"))?;
        let bytes: &'static [u8] = alloc::boxed::Box::leak(archive.into_boxed_slice());
        let catalog = Catalog::open(bytes, &PUBLIC_KEY).map_err(|e| alloc::format!("{e}"))?;
        let images = catalog.names().count();
        let catalog: &'static Catalog<'static> =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(catalog));
        // Digests were checked against the previous manifest: forget them.
        VERIFIED.lock().clear();
        *PUSHED.lock() = Some(catalog);
        PUSHES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        Ok(images)
    })
}

/// Starts the boot archive's initial domains (its manifest's `start`
/// lines), in order; a failure is reported and the rest still start.
pub fn start_boot_domains() {
    let Ok(catalog) = catalog() else {
        return;
    };
    for (image, name) in catalog.starts() {
        match super::create_from(super::Source::Archive(String::from(image)), name) {
            Ok(d) => crate::info!("domains: started {name} ({image}) as domain {}", d.slot),
            Err(e) => crate::warn!("domains: could not start {name} ({image}): {e}"),
        }
    }
}

/// Checks image `name` without loading it: listed in the signed manifest,
/// digest matching, ELF acceptable.
pub fn check(name: &str) -> Result<(), ImageError> {
    crate::cpu::kernel_section(|| {
        let image = verified_image(name)?;
        let limits = Limits {
            max_span: IMAGE_WINDOW_SIZE,
            ..Limits::default()
        };
        Plan::new(image, &limits)
            .map(|_| ())
            .map_err(|error| refused(name, error))
    })
}

/// Whether the boot archive lists `name`.
pub fn has_image(name: &str) -> bool {
    catalog().is_ok_and(|c| c.names().any(|n| n == name))
}

/// Images whose digest has been checked: the archive is immutable (its
/// frames are reserved at boot and only the kernel's direct map reaches
/// them), so an image checked once stays checked. SHA-256 of an image is
/// a large part of a load under TCG.
static VERIFIED: Mutex<alloc::vec::Vec<(String, &'static [u8])>> =
    Mutex::new(alloc::vec::Vec::new());

/// Image `name`'s bytes, its size and digest checked against the signed
/// manifest (once).
/// `name`'s image refused for `error`.
fn refused(name: &str, error: loader::LoadError) -> ImageError {
    ImageError::Image {
        name: String::from(name),
        error,
    }
}

fn verified_image(name: &str) -> Result<&'static [u8], ImageError> {
    if let Some((_, bytes)) = VERIFIED.lock().iter().find(|(n, _)| n == name) {
        return Ok(bytes);
    }
    let image = catalog()?
        .image(name)
        .map_err(|error| refused(name, error))?;
    VERIFIED.lock().push((String::from(name), image));
    Ok(image)
}

/// A slot's mapped image: its frames, one per page of its span.
struct Loaded {
    base: u64,
    frames: alloc::vec::Vec<u64>,
}

static LOADED: [Mutex<Option<Loaded>>; super::MAX_SLOTS] =
    [const { Mutex::new(None) }; super::MAX_SLOTS];

fn flags(perms: Perms) -> u64 {
    let mut flags = paging::GLOBAL;
    if perms.write {
        flags |= paging::WRITABLE;
    }
    if !perms.execute {
        flags |= paging::NO_EXECUTE;
    }
    flags
}

/// Maps image `name` into `slot`'s window (see the module doc) and returns
/// its entry point.
pub fn load(slot: usize, name: &str) -> Result<domain_sdk::Entry, ImageError> {
    crate::cpu::kernel_section(|| load_locked(slot, name))
}

fn load_locked(slot: usize, name: &str) -> Result<domain_sdk::Entry, ImageError> {
    let image = verified_image(name)?;
    load_image(slot, name, image)
}

/// Maps program `name`'s image (`bytes`, verified by [`verify_program`])
/// into `slot`'s window and returns its entry point.
pub fn load_bytes(slot: usize, name: &str, bytes: &[u8]) -> Result<domain_sdk::Entry, ImageError> {
    crate::cpu::kernel_section(|| load_image(slot, name, bytes))
}

/// Checks a program's ELF without loading it.
pub fn check_bytes(name: &str, bytes: &[u8]) -> Result<(), ImageError> {
    crate::cpu::kernel_section(|| {
        let limits = Limits {
            max_span: IMAGE_WINDOW_SIZE,
            ..Limits::default()
        };
        Plan::new(bytes, &limits)
            .map(|_| ())
            .map_err(|error| refused(name, error))
    })
}

/// The largest program archive taken.
pub const MAX_PROGRAM: usize = 8 << 20;

/// Checks a program archive a domain handed over, on a copy the kernel
/// owns: the manifest's Ed25519 signature with the build's key (as for
/// the boot archive), then its one image's size and digest. Returns the
/// image's name and a copy of its bytes.
pub fn verify_program(archive: &[u8]) -> Result<(String, alloc::sync::Arc<[u8]>), String> {
    if archive.len() > MAX_PROGRAM {
        return Err(alloc::format!(
            "a program archive of {} bytes is larger than {MAX_PROGRAM}",
            archive.len()
        ));
    }
    crate::cpu::kernel_section(|| {
        // A copy first: the domain's memory could change under the checks.
        let copy = archive.to_vec();
        let catalog =
            Catalog::open(&copy, &PUBLIC_KEY).map_err(|e| alloc::format!("refused: {e}"))?;
        let mut names = catalog.names();
        let (Some(name), None) = (names.next(), names.next()) else {
            return Err(String::from(
                "refused: a program archive holds exactly one image",
            ));
        };
        let image = catalog
            .image(name)
            .map_err(|e| alloc::format!("refused: {e}"))?;
        Ok((String::from(name), alloc::sync::Arc::from(image)))
    })
}

fn load_image(slot: usize, name: &str, image: &[u8]) -> Result<domain_sdk::Entry, ImageError> {
    let mut loaded = LOADED[slot].lock();
    if loaded.is_some() {
        return Err(ImageError::SlotBusy(slot));
    }
    let limits = Limits {
        max_span: IMAGE_WINDOW_SIZE,
        ..Limits::default()
    };
    let plan = Plan::new(image, &limits).map_err(|error| refused(name, error))?;
    let pages = (plan.span / PAGE_SIZE) as usize;
    let base = IMAGE_WINDOWS.start + slot as u64 * IMAGE_WINDOW_SIZE;
    // Lay the image out (segments, zeroed bss and gaps, relocations) in a
    // buffer, then copy it page by page into single frames: no contiguous
    // allocation to search for.
    let mut buffer = alloc::vec![0u8; plan.span as usize];
    plan.load_into(image, &mut buffer, base)
        .map_err(|error| refused(name, error))?;
    let mut frames_taken: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(pages);
    let free_all = |taken: &[u64]| taken.iter().for_each(|&f| frames::free(f));
    for page in buffer.chunks_exact(PAGE_SIZE as usize) {
        let Some(frame) = frames::alloc() else {
            free_all(&frames_taken);
            return Err(ImageError::NoMemory {
                name: String::from(name),
                pages,
            });
        };
        // SAFETY: a fresh frame we own, reached through the direct map;
        // the page is fully overwritten.
        unsafe {
            core::ptr::copy_nonoverlapping(page.as_ptr(), phys_to_virt(frame), page.len());
        }
        frames_taken.push(frame);
    }
    drop(buffer);
    let mut mapped = alloc::vec::Vec::new();
    let result = paging::with_kernel(|pt| {
        for (offset, length, perms) in plan.pages() {
            for page in (offset..offset + length).step_by(PAGE_SIZE as usize) {
                let frame = frames_taken[(page / PAGE_SIZE) as usize];
                pt.map_4k(base + page, frame, flags(perms))?;
                mapped.push(base + page);
            }
        }
        Ok::<(), paging::MapError>(())
    });
    if let Err(e) = result {
        paging::with_kernel(|pt| {
            for &page in &mapped {
                pt.unmap_4k(page);
            }
        });
        crate::apic::flush_tlb_everywhere();
        free_all(&frames_taken);
        return Err(ImageError::MapFailed {
            name: String::from(name),
            error: e,
        });
    }
    *loaded = Some(Loaded {
        base,
        frames: frames_taken,
    });
    let entry = base + plan.entry;
    crate::debug!("domains: {name} mapped at {base:#x} ({pages} pages, entry {entry:#x})");
    // SAFETY: `entry` is the image's `domain_entry` (its ELF entry point,
    // checked to lie in an executable segment), compiled by the same
    // compiler against the same SDK, so it has exactly this signature.
    Ok(unsafe { core::mem::transmute::<usize, domain_sdk::Entry>(entry as usize) })
}

/// Unmaps `slot`'s image and frees its frames (nothing if it has none).
/// Only when no core can run its code any more (after the grace period).
/// Returns the pages freed.
pub fn unload(slot: usize) -> u64 {
    crate::cpu::kernel_section(|| {
        let Some(image) = LOADED[slot].lock().take() else {
            return 0;
        };
        paging::with_kernel(|pt| {
            for i in 0..image.frames.len() as u64 {
                pt.unmap_4k(image.base + i * PAGE_SIZE);
            }
        });
        crate::apic::flush_tlb_everywhere();
        for &frame in &image.frames {
            frames::free(frame);
        }
        image.frames.len() as u64
    })
}

/// Bytes of image mapped for `slot`.
pub fn image_bytes(slot: usize) -> u64 {
    LOADED[slot]
        .lock()
        .as_ref()
        .map_or(0, |image| image.frames.len() as u64 * PAGE_SIZE)
}
