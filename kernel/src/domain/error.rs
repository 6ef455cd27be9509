//! Why a domain could not be created, started or restarted: typed, so that
//! callers (the console, the tests, supervisors) match on what happened and
//! print it with `Display`.

use alloc::string::String;
use core::fmt;

use loader::LoadError;

use super::State;

/// Why an archive image could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The boot loader passed no archive.
    NoArchive,
    /// The archive itself was refused (signature, manifest, format).
    Archive(LoadError),
    /// Image `name` was refused (not listed, digest, ELF checks).
    Image { name: String, error: LoadError },
    /// The slot still has an image mapped (its previous incarnation's).
    SlotBusy(usize),
    /// No frames for the image's pages.
    NoMemory { name: String, pages: usize },
    /// Mapping the image's pages failed.
    MapFailed {
        name: String,
        error: crate::mem::paging::MapError,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NoArchive => write!(f, "no boot archive"),
            ImageError::Archive(e) => write!(f, "{e}"),
            ImageError::Image { name, error } => write!(f, "{name}: {error}"),
            ImageError::SlotBusy(slot) => write!(f, "slot {slot} still has an image mapped"),
            ImageError::NoMemory { name, pages } => {
                write!(f, "{name}: no memory for {pages} pages")
            }
            ImageError::MapFailed { name, error } => write!(f, "{name}: mapping failed: {error}"),
        }
    }
}

/// Why a domain's entry did not hand back its exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitError {
    /// The entry returned this error (copied to the kernel's heap).
    Entry(String),
    /// It exported a name its image is not granted (clipped to 32 bytes).
    ExportNotGranted(String),
}

/// Why [`create_from`](super::create_from) or [`restart`](super::restart)
/// failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// The image was refused before anything of the domain existed.
    Image(ImageError),
    /// A domain of that name exists and is not dead.
    Exists { name: String, state: State },
    /// Every domain slot is taken.
    NoFreeSlot,
    /// It is alive, or still being reclaimed (restart waits for `Dead`).
    StillRunning { name: String, state: State },
    /// Its entry returned an error, or exported what it may not; the
    /// incarnation was torn down.
    InitFailed { name: String, why: InitError },
    /// It crashed during initialisation (the fault, as recorded).
    InitCrashed { name: String, fault: String },
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Image(e) => write!(f, "{e}"),
            DomainError::Exists { name, state } => write!(
                f,
                "a domain named '{name}' exists ({}; 'kill' it first)",
                state.name()
            ),
            DomainError::NoFreeSlot => write!(f, "no free domain slot"),
            DomainError::StillRunning { name, state } => {
                write!(f, "{name} is still {}", state.name())
            }
            DomainError::InitFailed { name, why } => match why {
                InitError::Entry(e) => write!(f, "{name}: initialisation failed: {e}"),
                InitError::ExportNotGranted(export) => write!(
                    f,
                    "{name}: initialisation failed: export '{export}' is not granted to its image by the signed manifest"
                ),
            },
            DomainError::InitCrashed { name, fault } => {
                write!(f, "{name}: domain crashed during initialisation: {fault}")
            }
        }
    }
}

impl From<ImageError> for DomainError {
    fn from(error: ImageError) -> DomainError {
        DomainError::Image(error)
    }
}

/// For callers that report errors as text (the tests' helpers).
impl From<DomainError> for String {
    fn from(error: DomainError) -> String {
        alloc::format!("{error}")
    }
}

/// As above.
impl From<ImageError> for String {
    fn from(error: ImageError) -> String {
        alloc::format!("{error}")
    }
}
