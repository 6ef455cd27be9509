//! The name service: what each domain exports, found by name.
//!
//! A domain's entry function returns its [`Exports`] (objects implementing
//! `#[interface]` traits, under names); the kernel keeps them per slot.
//! They live in the domain's heap: they are only used inside entries
//! (through proxies) and are forgotten, never dropped, when the domain
//! dies. [`lookup`] (what `domain_sdk::Kernel::lookup` answers) finds an
//! export by name; [`proxy`] and [`call`] do the same for the kernel's own
//! use.

use alloc::string::String;
use alloc::sync::Arc;

use domain_sdk::{Entry, Exports, Owner, RpcError, RpcResult};
use executor::OwnerId;
use interfaces::control::Control;
use spin::Mutex;

use super::entry::EntryError;
use super::error::InitError;
use super::lifecycle::{Domain, State, all, find, slot_of};
use super::policy;
use super::services::SERVICES;
use crate::cpu;

/// Exported objects, by domain slot (see the module doc).
static EXPORTS: [Mutex<Option<Exports>>; super::MAX_SLOTS] =
    [const { Mutex::new(None) }; super::MAX_SLOTS];
/// The name service behind [`domain_sdk::Kernel::lookup`]: `name` is `EXPORT` (the
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
        && find(domain_name).is_none()
    {
        return Err(RpcError::NoSuchDomain);
    }
    let found = cpu::kernel_section(|| {
        for domain in all() {
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
pub fn run_entry(owner: OwnerId, entry: Entry) -> Result<(), InitError> {
    let slot = slot_of(owner);
    let exports = match entry(&SERVICES) {
        Ok(exports) => exports,
        // The message is on the domain's heap, which goes with it: copied
        // to the kernel's (the original is freed on the domain's).
        Err(why) => {
            return Err(InitError::Entry(cpu::kernel_section(|| {
                String::from(why.as_str())
            })));
        }
    };
    if let Some(name) = policy::refused_export(owner, &exports) {
        // The domain chose the name: clipped, control characters shown.
        let name = kcore::fmt::Clipped::new(name, 32);
        policy::log_refusal(owner, format_args!("export '{name}'"));
        // On the kernel's heap: the domain's goes with it.
        let export = cpu::kernel_section(|| alloc::format!("{name}"));
        // Forgotten like any export: it lives in the domain's heap.
        core::mem::forget(exports);
        return Err(InitError::ExportNotGranted(export));
    }
    let previous = cpu::kernel_section(|| EXPORTS[slot].lock().replace(exports));
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
    cpu::kernel_section(|| {
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
            // SAFETY: `owner` exported `object` (see above).
            let cap = unsafe { rrpc::proxy::EntryCap::new(owner) };
            I::proxy(Arc::clone(object), cap)
        });
    })?;
    proxy.ok_or(RpcError::NoSuchInterface)
}

/// Calls `domain`'s "control" export (what `call NAME OP [ARG]` does)
/// through its generated proxy: a contained domain entry. An error the
/// domain's method itself returned comes back as `Refused`.
pub fn call(domain: &'static Domain, op: u32, arg: u64) -> Result<u64, EntryError> {
    control_of(domain)?.control(op, arg).map_err(entry_error)
}

/// [`call`]'s text form: what the domain's `Control::control_text`
/// answers (`None`: that operation answers with a number).
pub fn call_text(
    domain: &'static Domain,
    op: u32,
    arg: u64,
) -> Result<Option<alloc::string::String>, EntryError> {
    let text = control_of(domain)?
        .control_text(op, arg)
        .map_err(entry_error)?;
    // The text moved to the kernel with the result; copied out, it is
    // freed here.
    Ok(text.map(|text| alloc::string::String::from(text.as_str())))
}

fn control_of(domain: &'static Domain) -> Result<interfaces::control::ControlProxy, EntryError> {
    let name = alloc::format!("{}/control", domain.name);
    proxy::<dyn Control + Send + Sync>(&name).map_err(|e| match e {
        RpcError::NoSuchDomain => EntryError::NoSuchDomain,
        RpcError::NoSuchInterface => EntryError::Refused(e),
        _ => EntryError::NotAlive,
    })
}

fn entry_error(e: RpcError) -> EntryError {
    match e {
        RpcError::DomainCrashed => EntryError::Crashed,
        RpcError::DomainNotAlive => EntryError::NotAlive,
        other => EntryError::Refused(other),
    }
}

/// Whether `name` may name a domain: 1 to 32 of `[A-Za-z0-9_-]` (the
/// console's `load` and `Kernel::spawn_program` both ask).
pub fn check_name(name: &str) -> Result<(), alloc::string::String> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(alloc::format!(
            "bad domain name '{name}' (1-32 of [A-Za-z0-9_-])"
        ));
    }
    Ok(())
}
