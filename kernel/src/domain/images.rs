//! Built-in domain images: domain crates (`domains/*`, each
//! `#![forbid(unsafe_code)]`) linked into the kernel image until domains
//! are built and loaded as separate images.
//!
//! Each exports an entry of type [`domain_sdk::Entry`]; the kernel runs it
//! inside the new domain and keeps the returned [`Exports`] (objects
//! implementing `#[interface]` traits, under names), which live in the
//! domain's heap: they are only used inside entries (through proxies) and
//! are forgotten, never dropped, when the domain dies. This table is also
//! the name service: [`Kernel::lookup`] finds an export by name. Domains
//! reach the kernel through a per-slot [`domain_sdk::Kernel`] handle.

use alloc::string::String;
use alloc::sync::Arc;

use domain_sdk::{Entry, Exports, Kernel, Owner, RpcError, RpcResult, SpawnError, Task};
use executor::OwnerId;
use interfaces::control::Control;
use spin::Mutex;

use super::{Domain, EntryError, State};

#[cfg(feature = "ktest")]
pub struct Image {
    pub name: &'static str,
    pub description: &'static str,
    pub entry: Entry,
}

#[cfg(feature = "ktest")]
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

#[cfg(feature = "ktest")]
pub fn image(name: &str) -> Option<&'static Image> {
    IMAGES.iter().find(|i| i.name == name)
}

/// Exported objects, by domain slot (see the module doc).
static EXPORTS: [Mutex<Option<Exports>>; super::MAX_SLOTS] =
    [const { Mutex::new(None) }; super::MAX_SLOTS];

/// Kernel services for domains (the SDK's [`Kernel`]): one object for
/// all of them; every call acts for the domain running on the calling core.
pub struct Services;

pub static SERVICES: Services = Services;

impl Kernel for Services {
    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        let owner = crate::cpu::current_owner();
        let alive = super::get((owner >> 16) as usize)
            .is_some_and(|d| d.owner() == owner && d.state() == State::Alive);
        if owner == 0 || !alive {
            // Only a domain's own running code may spawn as that domain.
            return Err(SpawnError::NotInDomain);
        }
        crate::sched::this_executor()
            .spawn_within(owner, task, MAX_TASKS)
            .map(|h| h.detach())
            .map_err(|e| match e {
                executor::SpawnError::Quota => SpawnError::Quota,
                _ => SpawnError::Full,
            })
    }

    fn lookup(&self, name: &str, visit: &mut dyn FnMut(&Exports, &str, Owner)) -> RpcResult<()> {
        lookup(name, visit)
    }

    fn log(&self, message: &str) {
        let owner = crate::cpu::current_owner();
        let name = super::get((owner >> 16) as usize).map_or("?", |d| d.name.as_str());
        // The console is shared and printed with interrupts off: a line of
        // at most `MAX_LOG` bytes, control characters shown as '?'.
        crate::info!("[{name}] {}", kcore::fmt::Clipped::new(message, MAX_LOG));
    }

    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn sleep_until(&self, deadline_ns: u64) -> domain_sdk::Timer {
        // Allocated on the running domain's heap; polled and dropped by its
        // task (the timer wheel itself is the executor's).
        alloc::boxed::Box::pin(DomainTimer(executor::sleep_until(deadline_ns)))
    }

    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // The global allocator sends it to the running domain's heap.
        // SAFETY: `GlobalAlloc::alloc`'s contract is the caller's (the
        // image's global allocator forwards its own arguments).
        unsafe { alloc::alloc::alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: as above; the global allocator frees by address.
        unsafe { alloc::alloc::dealloc(pointer, layout) }
    }

    fn crash(&self, message: &core::fmt::Arguments<'_>) -> ! {
        // A panic while a domain is current crashes that domain only.
        panic!("{message}")
    }

    fn rrpc_registry(&self) -> &'static dyn rrpc::registry::Remote {
        &rrpc::registry::LOCAL
    }

    fn rrpc_runtime(&self) -> &'static dyn rrpc::proxy::Runtime {
        crate::shared_heap::proxy_runtime()
    }

    fn claim_device(
        &self,
        class: (u8, u8, u8),
        index: usize,
    ) -> Result<alloc::boxed::Box<dyn domain_sdk::Device>, domain_sdk::DeviceError> {
        let owner = crate::cpu::current_owner();
        if owner == 0 {
            return Err(domain_sdk::DeviceError::NoDevice);
        }
        // The signed manifest says which image may drive which device:
        // the class first, then (the function found) its vendor.
        let (c, s, p) = class;
        if !super::policy::may_claim_class(owner, class) {
            super::policy::log_refusal(
                owner,
                format_args!("claim of PCI class {c:02x}:{s:02x}:{p:02x}"),
            );
            return Err(domain_sdk::DeviceError::NotPermitted);
        }
        let claimed = crate::pci::claim(class, index, owner, &|vendor| {
            super::policy::may_claim(owner, class, vendor)
        })
        .map_err(|e| match e {
            crate::pci::ClaimError::NotPermitted(vendor) => {
                super::policy::log_refusal(
                    owner,
                    format_args!("claim of PCI {c:02x}:{s:02x}:{p:02x} vendor {vendor:04x}"),
                );
                domain_sdk::DeviceError::NotPermitted
            }
            crate::pci::ClaimError::Device(e) => e,
        })?;
        Ok(alloc::boxed::Box::new(claimed))
    }

    fn core(&self) -> (usize, usize) {
        (crate::cpu::current().index, crate::cpu::count())
    }

    fn supervise(&self, name: &str) -> Result<(), domain_sdk::RestartError> {
        let domain = super::find(name).ok_or(domain_sdk::RestartError::NoSuchDomain)?;
        super::supervise(domain, crate::cpu::current_owner())
    }

    fn restart_domain(&self, name: &str) -> Result<(), domain_sdk::RestartError> {
        let domain = super::find(name).ok_or(domain_sdk::RestartError::NoSuchDomain)?;
        super::restart_by(domain, crate::cpu::current_owner())
    }
}

/// Most tasks one domain may have on one core (a quarter of the core's
/// slots: a domain that spawns without end is refused, and the others, the
/// kernel included, still find free slots).
pub const MAX_TASKS: usize = crate::sched::TASKS_PER_CPU / 4;

/// Longest line a domain may log, in bytes.
pub const MAX_LOG: usize = 512;

/// A timer handed to a domain. The executor's timer wheel keeps the waker
/// it is polled with; a domain could poll it with a waker of its own making,
/// whose code and data die with the domain while the wheel still holds it.
/// So the wheel only ever gets executor wakers: a foreign waker is replaced
/// by the waker of the task being polled (which re-polls whatever waits).
struct DomainTimer(executor::Sleep);

impl core::future::Future for DomainTimer {
    type Output = ();

    fn poll(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<()> {
        let sleep = core::pin::Pin::new(&mut self.0);
        if executor::task_id_of(cx.waker()).is_some() {
            return sleep.poll(cx);
        }
        match executor::current_task() {
            Some(task) => {
                let waker = executor::task_waker(task);
                sleep.poll(&mut core::task::Context::from_waker(&waker))
            }
            // Polled outside any task: nothing safe to wake later.
            None => core::task::Poll::Ready(()),
        }
    }
}

/// The name service behind [`Kernel::lookup`]: `name` is `EXPORT` (the
/// first alive domain, by slot, exporting it) or `DOMAIN/EXPORT`. `visit`
/// sees the exports of that incarnation. It is the caller's code (a
/// domain's, through `Kernel::lookup`), so it runs as the caller, outside
/// the kernel section that finds the exports and without their lock: if it
/// panics or runs away, that is the caller's crash, not the kernel's. The
/// exports cannot go away meanwhile: reclaim waits for a grace period that
/// this core, inside a task or the console, has not passed.
pub fn lookup(name: &str, visit: &mut dyn FnMut(&Exports, &str, Owner)) -> RpcResult<()> {
    let (domain_name, export) = match name.split_once('/') {
        Some((domain, export)) => (Some(domain), export),
        None => (None, name),
    };
    if let Some(domain_name) = domain_name
        && super::find(domain_name).is_none()
    {
        return Err(RpcError::NoSuchDomain);
    }
    let found = crate::cpu::kernel_section(|| {
        for domain in super::all() {
            if domain_name.is_some_and(|n| n != domain.name.as_str())
                || domain.state() != State::Alive
            {
                continue;
            }
            let exports = EXPORTS[domain.slot].lock();
            if let Some(exports) = exports.as_ref()
                && exports.contains(export)
            {
                return Some((exports as *const Exports, domain.owner()));
            }
        }
        None
    });
    let Some((exports, owner)) = found else {
        return Err(if domain_name.is_some() {
            RpcError::DomainNotAlive
        } else {
            RpcError::NoSuchInterface
        });
    };
    // SAFETY: an alive incarnation's exports stay in place until it is
    // reclaimed (or restarted, which needs it reclaimed first), and reclaim
    // waits for every core to pass the top of its executor loop, which this
    // core does not do before `visit` returns.
    visit(unsafe { &*exports }, export, owner);
    Ok(())
}

/// Runs a domain's entry function (inside the domain) and keeps what it
/// exports.
///
/// A domain of an archive image may only publish the export names the
/// signed manifest grants its image (see `policy`): otherwise its
/// initialisation fails, naming the export, before anything of it is
/// published (so an unqualified lookup only ever finds a legitimate
/// exporter).
pub fn run_entry(owner: OwnerId, entry: Entry) -> Result<(), String> {
    let slot = (owner >> 16) as usize;
    let exports = entry(&SERVICES)?;
    if let Some(name) = super::policy::refused_export(owner, &exports) {
        // The domain chose the name: clipped, control characters shown.
        let name = kcore::fmt::Clipped::new(name, 32);
        super::policy::log_refusal(owner, format_args!("export '{name}'"));
        // On the domain's heap, like the errors its entry returns.
        let why =
            alloc::format!("export '{name}' is not granted to its image by the signed manifest");
        // Forgotten like any export: it lives in the domain's heap.
        core::mem::forget(exports);
        return Err(why);
    }
    let previous = crate::cpu::kernel_section(|| EXPORTS[slot].lock().replace(exports));
    // A previous incarnation's exports belong to its (reclaimed) heap.
    core::mem::forget(previous);
    Ok(())
}

/// Forgets a dead incarnation's exports (their memory went with the heap).
pub fn forget_export(slot: usize) {
    core::mem::forget(EXPORTS[slot].lock().take());
}

/// The names `domain` exports (for `domains`).
/// The domain chose the names: at most 8 are shown, each clipped to 32
/// bytes with control characters shown as '?'.
pub fn export_names(domain: &Domain) -> String {
    const SHOWN: usize = 8;
    crate::cpu::kernel_section(|| {
        let exports = EXPORTS[domain.slot].lock();
        let mut line = String::new();
        if let Some(exports) = exports.as_ref() {
            let _ = kcore::fmt::write_names(&mut line, exports.names(), SHOWN, 32);
        }
        line
    })
}

/// The capability to enter `owner`, for the kernel's own proxies (the
/// kernel is trusted to put it only into the proxy of an object `owner`
/// exported).
#[cfg(feature = "ktest")]
pub fn entry_cap(owner: Owner) -> rrpc::proxy::EntryCap {
    // SAFETY: see above; every caller wraps an object of `owner` with it.
    unsafe { rrpc::proxy::EntryCap::new(owner) }
}

/// A proxy for interface `I` exported as `name` (see [`lookup`]): what
/// `domain_sdk::lookup` gives domains, for the kernel's own use.
pub fn proxy<I: ?Sized + rrpc::Interface>(name: &str) -> RpcResult<I::Proxy> {
    let mut proxy = None;
    lookup(name, &mut |exports, export, owner| {
        // SAFETY: the object goes straight into its generated proxy, with
        // the capability to enter the incarnation that exported it.
        proxy = unsafe { exports.get::<I>(export) }.map(|object| {
            // SAFETY: the capability goes into the proxy of an object
            // `owner` exported, and nowhere else.
            let entry = unsafe { rrpc::proxy::EntryCap::new(owner) };
            I::proxy(Arc::clone(object), entry)
        });
    })?;
    proxy.ok_or(RpcError::NoSuchInterface)
}

/// Calls `domain`'s "control" export (what `call NAME OP [ARG]` does)
/// through its generated proxy: a contained domain entry. An error the
/// domain's method itself returned comes back as `Refused`.
pub fn call(domain: &'static Domain, op: u32, arg: u64) -> Result<u64, EntryError> {
    let name = alloc::format!("{}/control", domain.name);
    let control = proxy::<dyn Control + Send + Sync>(&name).map_err(|e| match e {
        RpcError::NoSuchDomain => EntryError::NoSuchDomain,
        RpcError::NoSuchInterface => EntryError::Refused(e),
        _ => EntryError::NotAlive,
    })?;
    control.control(op, arg).map_err(|e| match e {
        RpcError::DomainCrashed => EntryError::Crashed,
        RpcError::DomainNotAlive => EntryError::NotAlive,
        other => EntryError::Refused(other),
    })
}
