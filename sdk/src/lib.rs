//! The domain SDK: everything a domain crate depends on besides
//! `interfaces`.
//!
//! A domain is a crate with `#![no_std]` and `#![forbid(unsafe_code)]`
//! exporting one entry function of type [`Entry`]. The kernel calls it,
//! inside the new domain (its heap, under its continuation), with a handle
//! to kernel services; the domain returns its [`Exports`]: objects
//! implementing `#[interface]` traits, under names. Other domains find them
//! with [`lookup`] and call them through generated proxies. Allocation
//! needs nothing special: while the domain's code runs, `alloc` allocates
//! from its private heap. Timers ([`sleep`], [`interval`]), tasks
//! ([`spawn`]) and logging ([`log`]) go through the kernel's services.
//!
//! The same domain crate runs linked into the kernel or loaded from its
//! own image: its binary target (`src/main.rs`) is one line,
//! [`image!`]`(crate::init)`, which adds the entry symbol, an allocator
//! for the private heap and a panic handler that crashes only the domain.
//!
//! Trusted: it may use `unsafe` (the image glue and the type-erased
//! exports do, each block explained); what it must never do is hand a
//! domain a way to reach another domain's memory other than through a
//! contained call.
//!
//! ```ignore
//! #![no_std]
//! #![forbid(unsafe_code)]
//! extern crate alloc;
//! use alloc::{string::String, sync::Arc};
//! use domain_sdk::{Exports, Kernel, RpcResult};
//! use interfaces::control::Control;
//!
//! struct Echo;
//! impl Control for Echo {
//!     fn control(&self, _op: u32, arg: u64) -> RpcResult<u64> { Ok(arg) }
//! }
//!
//! pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
//!     Ok(Exports::new().with::<dyn Control + Send + Sync>("control", Arc::new(Echo)))
//! }
//! ```

#![no_std]
// The SDK is trusted: `unsafe` is allowed only in the modules that say
// so (the image glue and the type-erased exports), each block explained.
#![deny(unsafe_code)]

extern crate alloc;

/// For the `image!` macro in `no_std` domain crates.
#[doc(hidden)]
pub extern crate alloc as alloc_reexport;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::future::Future;
use core::pin::Pin;

pub use rrpc::{Interface, Owner, RRef, RRefArray, RRefDeque, RpcError, RpcFuture, RpcResult};
/// A spin lock for state shared between a domain's tasks (never held
/// across an `.await`).
pub use spin::Mutex;
/// A value set once (say, by a start-up task) and read by everyone after.
pub use spin::Once;

mod time;
pub use time::{Interval, interval, now_ns, sleep, sleep_until, yield_now};

/// Who called the method running now: the incarnation of the domain whose
/// code made the call (the kernel, `Owner::KERNEL`, for a task of this
/// domain's own or a console call). The kernel takes it from the entry it
/// made, so a service may rely on it to keep each client's resources
/// apart (see `netstack`'s sockets). In an `async` method, read it while
/// the method runs: each poll is an entry by the same caller.
pub fn caller() -> Owner {
    rrpc::proxy::caller()
}

/// Whether `owner` is still the live incarnation of its domain: false once
/// it crashed, was killed or restarted (a service closes what a client
/// that is gone left open).
pub fn is_alive(owner: Owner) -> bool {
    rrpc::proxy::is_alive(owner)
}

#[doc(hidden)]
pub mod image;

#[cfg(all(feature = "testing", target_os = "none"))]
compile_error!("domain-sdk's `testing` feature is for host tests only (a dev-dependency)");
#[cfg(feature = "testing")]
#[allow(unsafe_code)] // the kit implements `Kernel`'s two unsafe methods
pub mod testing;

/// A task a domain spawns: owned by the domain, removed (never polled or
/// dropped again) if the domain crashes.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A timer future the kernel made (see [`Kernel::sleep_until`]).
pub type Timer = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a spawn failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// The core's executor has no free task slot.
    Full,
    /// Only a domain's own running code may spawn its tasks.
    NotInDomain,
    /// The domain has as many tasks on this core as one domain may have
    /// (so that no domain can take every slot from the others).
    Quota,
    /// No such core (`spawn_on`).
    NoSuchCore,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SpawnError::Full => "the core's executor has no free task slot",
            SpawnError::NotInDomain => "only a domain's own running code may spawn its tasks",
            SpawnError::Quota => "the domain's task quota on this core is used up",
            SpawnError::NoSuchCore => "no such core",
        })
    }
}

/// What [`Kernel::lookup`] shows an export to, by name: a host test that
/// implements [`Kernel`] inside a vetted crate's tree (whose sources may
/// not spell an `FnMut` taking references; see `tools/vet`) names the
/// type through this.
pub type LookupVisitor<'a> = dyn FnMut(&Exports, &str, Owner) + 'a;

/// Kernel services, as seen by domains. The same object serves domains
/// linked into the kernel and domains loaded from their own images: every
/// call acts for the domain running on the calling core.
pub trait Kernel: Send + Sync {
    /// Spawns a task owned by the running domain on the current core.
    fn spawn(&self, task: Task) -> Result<(), SpawnError>;
    /// Spawns a task owned by the running domain on core `core` (0 to
    /// [`core`]`().1 - 1`): to poll a device queue from that core's
    /// executor, say. (By default, where no cores are told apart: as
    /// [`spawn`](Self::spawn).)
    fn spawn_on(&self, core: usize, task: Task) -> Result<(), SpawnError> {
        let _ = core;
        self.spawn(task)
    }
    /// The name service: finds the alive domain exporting `name` (either
    /// `EXPORT`, the first domain exporting it, or `DOMAIN/EXPORT`) and
    /// shows its object and incarnation to `visit`. Use [`lookup`], which
    /// turns this into a typed proxy.
    fn lookup(&self, name: &str, visit: &mut dyn FnMut(&Exports, &str, Owner)) -> RpcResult<()>;
    /// Writes a line to the kernel log, prefixed with the domain's name.
    fn log(&self, message: &str);
    /// [`log`](Self::log) at `level` (default: as `log`, whatever the level).
    fn log_at(&self, level: LogLevel, message: &str) {
        let _ = level;
        self.log(message)
    }
    /// Nanoseconds since boot on the kernel's clock.
    fn now_ns(&self) -> u64;
    /// A future that completes at or after `deadline_ns` ([`now_ns`]).
    fn sleep_until(&self, deadline_ns: u64) -> Timer;
    /// Allocates on the running domain's private heap (null if it is full:
    /// the caller crashes, contained). What a separately built image's
    /// global allocator calls.
    ///
    /// # Safety
    /// As for `GlobalAlloc::alloc` (`layout` has a non-zero size).
    #[allow(unsafe_code)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8;
    /// Frees what [`alloc`](Self::alloc) returned.
    ///
    /// # Safety
    /// As for `GlobalAlloc::dealloc`: `pointer` came from `alloc` with
    /// `layout` and is not used again. (A free goes to whichever heap holds
    /// the address, so this must not be safe: a domain could free another
    /// domain's memory.)
    #[allow(unsafe_code)]
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout);
    /// Crashes the running domain with `message` (its panic handler).
    fn crash(&self, message: &core::fmt::Arguments<'_>) -> !;
    /// The kernel's RRef registry and shared heap, for an image's own
    /// copy of `rrpc` to forward to.
    fn rrpc_registry(&self) -> &'static dyn rrpc::registry::Remote;
    /// The kernel's domain-entry runtime, for an image's generated proxies.
    fn rrpc_runtime(&self) -> &'static dyn rrpc::proxy::Runtime;
    /// Claims the `index`th PCI function of class `class` (base class,
    /// subclass, programming interface) for the running domain: the only
    /// way a driver reaches hardware. Fails if there is none, another
    /// live domain holds it, or the signed manifest does not grant the
    /// domain's image that class (and the function's vendor):
    /// [`DeviceError::NotPermitted`].
    fn claim_device(
        &self,
        class: (u8, u8, u8),
        index: usize,
    ) -> Result<Box<dyn Device>, DeviceError>;
    /// Makes the running domain the supervisor of domain `name`: the one
    /// domain allowed to restart it after it crashes (what a shadow does
    /// for the domain it stands in front of). Fails if `name` does not
    /// exist, is the caller, already has a live supervisor, or the signed
    /// manifest does not let the caller's image supervise `name`'s image
    /// ([`RestartError::NotPermitted`]).
    fn supervise(&self, name: &str) -> Result<(), RestartError>;
    /// Starts the next incarnation of the dead domain `name`. Only its
    /// supervisor may, and only after a crash: a domain the operator killed
    /// stays dead (the console's `restart` brings it back). Fails with
    /// [`RestartError::StillRunning`] while a crashed domain is still being
    /// reclaimed (retry).
    fn restart_domain(&self, name: &str) -> Result<(), RestartError>;
    /// The calling core's index and the number of cores (drivers keep
    /// per-core queues).
    fn core(&self) -> (usize, usize);
    /// Copies the value of `key=VALUE` on the kernel command line into
    /// `into` and returns its length, if given and if it fits (the command
    /// line is not secret: any domain may read it). Use [`boot_option`].
    /// (A buffer the caller owns: memory the kernel allocated must not be
    /// freed by a domain.)
    fn boot_option(&self, key: &str, into: &mut [u8]) -> Option<usize> {
        let _ = (key, into);
        None
    }
    /// Starts a new domain `name` running the one image of `archive`, a
    /// signed archive (as `tools/pack` makes; rv6 reads them from its
    /// file system): the kernel checks the signature with the build's key
    /// and the image's digest on a copy it owns, and the ELF as for any
    /// image. The caller becomes the new domain's supervisor (it may
    /// [`kill_domain`](Self::kill_domain) it), and the new domain is
    /// granted nothing (no exports, devices or supervision). Returns its
    /// incarnation, or why it was refused.
    fn spawn_program(&self, archive: &[u8], name: &str) -> Result<Owner, String> {
        let _ = (archive, name);
        Err(String::from("this kernel cannot spawn programs"))
    }
    /// Kills domain `name`, which the caller supervises (a program it
    /// spawned): it is torn down as a crash would, and stays dead.
    fn kill_domain(&self, name: &str) -> Result<(), RestartError> {
        let _ = name;
        Err(RestartError::NotSupervisor)
    }
    /// Writes `text` on the console, while the console is handed to the
    /// calling domain (rv6's process domain, after the monitor's `rv6`):
    /// false, and nothing written, otherwise. Control characters other
    /// than newline and tab are shown as `?`.
    fn console_write(&self, text: &[u8]) -> bool {
        let _ = text;
        false
    }
}

/// The value of `key=VALUE` on the kernel command line (up to 256 bytes),
/// if given. `netstack` takes its address from `net=`.
pub fn boot_option(key: &str) -> Option<String> {
    let mut buffer = [0u8; 256];
    let len = kernel().boot_option(key, &mut buffer)?;
    core::str::from_utf8(buffer.get(..len)?)
        .ok()
        .map(String::from)
}

/// Why [`Kernel::supervise`] or [`Kernel::restart_domain`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RestartError {
    /// No domain has that name.
    NoSuchDomain,
    /// A domain cannot supervise itself.
    IsCaller,
    /// Another live domain supervises it.
    Supervised,
    /// The caller is not its supervisor.
    NotSupervisor,
    /// It was killed, not crashed: only the console restarts it.
    Killed,
    /// It is alive, or still being reclaimed after its death.
    StillRunning,
    /// The restart itself failed (its entry crashed or returned an error).
    Failed,
    /// The signed manifest does not let the caller's image supervise the
    /// domain's image.
    NotPermitted,
}

impl core::fmt::Display for RestartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RestartError::NoSuchDomain => "no such domain",
            RestartError::IsCaller => "a domain cannot supervise itself",
            RestartError::Supervised => "another live domain supervises it",
            RestartError::NotSupervisor => "only its supervisor may restart it",
            RestartError::Killed => "it was killed, not crashed: only the console restarts it",
            RestartError::StillRunning => "it is alive or still being reclaimed",
            RestartError::Failed => "its new incarnation failed to start",
            RestartError::NotPermitted => {
                "the manifest does not let this domain's image supervise that domain's image"
            }
        })
    }
}

/// The calling core's index and the number of cores.
pub fn core() -> (usize, usize) {
    kernel().core()
}

/// A PCI function a driver domain has claimed: bounds-checked access to its
/// memory-mapped registers and its configuration space. A driver never
/// sees a raw pointer. When the domain dies, the kernel turns the device's
/// bus mastering off (no DMA into reclaimed memory) and the claim lapses.
pub trait Device: Send + Sync {
    /// Vendor and device id.
    fn id(&self) -> (u16, u16);
    /// Size of memory BAR `bar` (0 if it is not a memory BAR).
    fn bar_size(&self, bar: usize) -> u64;
    /// Reads the 32-bit register at `offset` of memory BAR `bar`.
    fn read32(&self, bar: usize, offset: u64) -> Result<u32, DeviceError>;
    /// Writes the 32-bit register at `offset` of memory BAR `bar`.
    fn write32(&self, bar: usize, offset: u64, value: u32) -> Result<(), DeviceError>;
    /// Reads the 64-bit register at `offset` of memory BAR `bar`.
    fn read64(&self, bar: usize, offset: u64) -> Result<u64, DeviceError>;
    /// Writes the 64-bit register at `offset` of memory BAR `bar`.
    fn write64(&self, bar: usize, offset: u64, value: u64) -> Result<(), DeviceError>;
    /// Reads the 8-bit register at `offset` of memory BAR `bar` (devices
    /// such as virtio's configuration structures have byte and 16-bit
    /// fields that must be accessed at their own width). Default: refused.
    fn read8(&self, bar: usize, offset: u64) -> Result<u8, DeviceError> {
        let _ = (bar, offset);
        Err(DeviceError::OutOfBounds)
    }
    /// Writes the 8-bit register at `offset` of memory BAR `bar`.
    fn write8(&self, bar: usize, offset: u64, value: u8) -> Result<(), DeviceError> {
        let _ = (bar, offset, value);
        Err(DeviceError::OutOfBounds)
    }
    /// Reads the 16-bit register at `offset` of memory BAR `bar`.
    fn read16(&self, bar: usize, offset: u64) -> Result<u16, DeviceError> {
        let _ = (bar, offset);
        Err(DeviceError::OutOfBounds)
    }
    /// Writes the 16-bit register at `offset` of memory BAR `bar`.
    fn write16(&self, bar: usize, offset: u64, value: u16) -> Result<(), DeviceError> {
        let _ = (bar, offset, value);
        Err(DeviceError::OutOfBounds)
    }
    /// Reads the configuration-space register at `offset`.
    fn config_read32(&self, offset: u16) -> Result<u32, DeviceError>;
    /// Turns memory decoding and bus mastering (DMA) on or off.
    fn set_bus_master(&self, on: bool);
}

/// Why a device access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    /// No such device (of that class and index).
    NoDevice,
    /// Another live domain holds it.
    Busy,
    /// The access falls outside the BAR or the configuration space, or is
    /// misaligned.
    OutOfBounds,
    /// The claim lapsed (the domain that made it is dead).
    Revoked,
    /// The signed manifest does not grant the running domain's image this
    /// device (its class, or its vendor).
    NotPermitted,
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DeviceError::NoDevice => "no such device",
            DeviceError::Busy => "the device is claimed by another domain",
            DeviceError::OutOfBounds => "register access out of bounds or misaligned",
            DeviceError::Revoked => "the device claim was revoked",
            DeviceError::NotPermitted => {
                "the manifest does not grant this domain's image that device"
            }
        })
    }
}

/// Claims a PCI function for the running domain (see [`Kernel::claim_device`]).
pub fn claim_device(class: (u8, u8, u8), index: usize) -> Result<Box<dyn Device>, DeviceError> {
    kernel().claim_device(class, index)
}

static KERNEL: spin::Once<&'static dyn Kernel> = spin::Once::new();

/// Installs the kernel's services for the SDK's free functions ([`sleep`],
/// [`lookup`], ...). The kernel does it once for the domains linked into
/// it; an image's entry (see [`image!`]) does it for its own copy of the
/// SDK. Later calls are ignored.
pub fn install(kernel: &'static dyn Kernel) {
    KERNEL.call_once(|| kernel);
}

/// The kernel's services.
///
/// # Panics
/// Before [`install`] (the kernel and image entries install it before any
/// domain code runs).
pub fn kernel() -> &'static dyn Kernel {
    *KERNEL
        .get()
        .expect("domain SDK used before the kernel installed it")
}

/// Spawns a task owned by the running domain on the current core.
pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Result<(), SpawnError> {
    kernel().spawn(Box::pin(task))
}

/// Spawns a task of the running domain on core `core` (see
/// [`Kernel::spawn_on`]; [`core`]`()` says how many there are).
pub fn spawn_on(
    core: usize,
    task: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SpawnError> {
    kernel().spawn_on(core, Box::pin(task))
}

/// Writes a line to the kernel log at level `Info`, prefixed with the
/// domain's name (see [`log_at`]).
pub fn log(message: &str) {
    kernel().log(message)
}

/// Writes a line to the kernel log at `level`. The console shows it if
/// the domain's level lets it through (`log NAME LEVEL` at the console; the
/// kernel's level by default), and the domain's recent lines are kept for
/// `log show NAME`.
pub fn log_at(level: LogLevel, message: &str) {
    kernel().log_at(level, message)
}

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// What a domain exports: named objects implementing `#[interface]`
/// traits. They live in the domain's heap and are only ever called
/// through proxies (domain entries).
///
/// Exports cross between separately compiled images, so an object's type
/// is identified by its interface's fingerprint (`Interface::FINGERPRINT`,
/// a hash of the trait's definition computed by the IDL compiler), not by
/// `TypeId`, which differs between builds.
#[derive(Default)]
pub struct Exports {
    entries: Vec<Export>,
}

struct Export {
    name: String,
    fingerprint: u64,
    /// A leaked `Box<Arc<I>>` for the interface of `fingerprint`. Never
    /// freed: exports live as long as their incarnation, whose heap is
    /// reclaimed wholesale.
    object: *const (),
}

// SAFETY: `object` is an `Arc<I>` with `I: Interface`, which is
// `Send + Sync`.
#[allow(unsafe_code)]
unsafe impl Send for Exports {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Exports {}

impl Exports {
    pub fn new() -> Exports {
        Exports::default()
    }

    /// Adds `object` as interface `I` under `name` (replacing an export of
    /// the same name).
    pub fn with<I: ?Sized + Interface>(mut self, name: &str, object: Arc<I>) -> Exports {
        self.entries.retain(|e| e.name != name);
        self.entries.push(Export {
            name: String::from(name),
            fingerprint: I::FINGERPRINT,
            object: Box::into_raw(Box::new(object)) as *const (),
        });
        self
    }

    /// The object exported as `name`, if it is an `I`.
    ///
    /// # Safety
    /// The object belongs to the exporting domain: its methods must run only
    /// inside that domain (its allocations on its heap, its crashes its
    /// own), so the object may only be wrapped in `I`'s generated proxy
    /// (`Interface::proxy`), never called or kept directly. The name service
    /// hands out `Exports` to every domain's lookups; only trusted code
    /// ([`lookup`], the kernel) may open them.
    #[allow(unsafe_code)]
    pub unsafe fn get<I: ?Sized + Interface>(&self, name: &str) -> Option<&Arc<I>> {
        let export = self.entries.iter().find(|e| e.name == name)?;
        // SAFETY: the fingerprint identifies the interface the pointer was
        // made from in `with` (only the IDL compiler implements `Interface`:
        // same trait definition, same compiler, so the same
        // `Arc<dyn Trait>` layout), and the box is never freed.
        (export.fingerprint == I::FINGERPRINT)
            .then(|| unsafe { &*(export.object as *const Arc<I>) })
    }

    /// Whether something is exported as `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// The exported names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }
}

/// Starts domain `name` from the signed program archive `archive` (see
/// [`Kernel::spawn_program`]).
pub fn spawn_program(archive: &[u8], name: &str) -> Result<Owner, String> {
    kernel().spawn_program(archive, name)
}

/// Kills domain `name`, a program the caller spawned (see
/// [`Kernel::kill_domain`]).
pub fn kill_domain(name: &str) -> Result<(), RestartError> {
    kernel().kill_domain(name)
}

/// Writes `text` on the console if it is handed to this domain (see
/// [`Kernel::console_write`]).
pub fn console_write(text: &[u8]) -> bool {
    kernel().console_write(text)
}

/// Finds interface `I` exported as `name` (`EXPORT` or `DOMAIN/EXPORT`)
/// and returns its proxy: calls through it enter the exporting domain.
/// The proxy is bound to that incarnation: once it dies, calls fail, and a
/// new lookup finds its restarted successor.
///
/// ```ignore
/// let counter = domain_sdk::lookup::<dyn Counter + Send + Sync>("counter")?;
/// let n = counter.increment()?;
/// ```
#[allow(unsafe_code)]
pub fn lookup<I: ?Sized + Interface>(name: &str) -> RpcResult<I::Proxy> {
    let mut proxy = None;
    kernel().lookup(name, &mut |exports, export, owner| {
        // SAFETY: the object goes straight into its generated proxy, with
        // the capability to enter the incarnation that exported it.
        proxy = unsafe { exports.get::<I>(export) }
            .map(|object| I::proxy(object.clone(), unsafe { rrpc::proxy::EntryCap::new(owner) }));
    })?;
    proxy.ok_or(RpcError::NoSuchInterface)
}

/// The entry point every domain exports.
pub type Entry = fn(&'static dyn Kernel) -> Result<Exports, String>;
