//! The kernel services a domain sees: the SDK's [`Kernel`] handle (spawn,
//! lookup, log, time, timers, memory, device claims, supervision), the one
//! object every domain is given, with the limits it enforces.

use domain_sdk::{Exports, Kernel, Owner, RpcResult, SpawnError, Task};

use super::lifecycle::{find, get, is_alive_owner, slot_of};
use super::{entry, names, policy, supervision};

/// Kernel services for domains (the SDK's [`Kernel`]): one object for
/// all of them; every call acts for the domain running on the calling core.
pub struct Services;

pub static SERVICES: Services = Services;

impl Kernel for Services {
    fn spawn(&self, task: Task) -> Result<(), SpawnError> {
        let owner = crate::cpu::current_owner();
        if owner == executor::OwnerId::KERNEL || !is_alive_owner(owner) {
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

    fn spawn_on(&self, core: usize, task: Task) -> Result<(), SpawnError> {
        let owner = crate::cpu::current_owner();
        if owner == executor::OwnerId::KERNEL || !is_alive_owner(owner) {
            return Err(SpawnError::NotInDomain);
        }
        let Some(domain) = get(slot_of(owner)) else {
            return Err(SpawnError::NotInDomain);
        };
        let exec = crate::sched::executor(core).ok_or(SpawnError::NoSuchCore)?;
        // Every allocation first, in the domain's heap (as `spawn`'s), and
        // then the task goes on `core`'s executor under the domain's spawn
        // lock, checking the gate: a purge of the domain on `core` can have
        // happened already (that core is not running the domain now), and
        // a task spawned after it would outlive the domain's memory. See
        // `Domain::spawn_lock`. Held off the watchdog meanwhile (a critical
        // section: allocations would still be the domain's, but none is
        // made), so nothing poisons this core's domain while it holds the
        // lock.
        let prepared = executor::Prepared::new(task);
        crate::cpu::enter_critical();
        let spawned = {
            let _spawning = domain.spawn_lock.lock();
            if domain.gate.is_alive_as(owner) {
                exec.spawn_prepared_within(owner, prepared, MAX_TASKS)
                    .map(|handle| handle.detach())
            } else {
                Err((executor::SpawnError::Full, prepared))
            }
        };
        crate::cpu::leave_critical();
        spawned.map_err(|(e, prepared)| {
            // Not spawned: dropped here, in the domain, where it was made.
            drop(prepared);
            match e {
                executor::SpawnError::Quota => SpawnError::Quota,
                _ if !domain.gate.is_alive_as(owner) => SpawnError::NotInDomain,
                _ => SpawnError::Full,
            }
        })
    }

    fn lookup(&self, name: &str, visit: &mut dyn FnMut(&Exports, &str, Owner)) -> RpcResult<()> {
        names::lookup(name, visit)
    }

    fn log(&self, message: &str) {
        self.log_at(domain_sdk::LogLevel::Info, message)
    }

    fn log_at(&self, level: domain_sdk::LogLevel, message: &str) {
        let owner = crate::cpu::current_owner();
        let slot = slot_of(owner);
        let name = get(slot).map_or("?", |d| d.name.as_str());
        // The console is shared and printed with interrupts off: a line of
        // at most `MAX_LOG` bytes, control characters shown as '?'.
        let level =
            crate::serial::Level::from_u8(level as u8).unwrap_or(crate::serial::Level::Info);
        super::logs::record(slot, name, level, message);
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
        entry::proxy_runtime()
    }

    fn claim_device(
        &self,
        class: (u8, u8, u8),
        index: usize,
    ) -> Result<alloc::boxed::Box<dyn domain_sdk::Device>, domain_sdk::DeviceError> {
        let owner = crate::cpu::current_owner();
        if owner == executor::OwnerId::KERNEL {
            return Err(domain_sdk::DeviceError::NoDevice);
        }
        // The signed manifest says which image may drive which device:
        // the class first, then (the function found) its vendor.
        let (c, s, p) = class;
        if !policy::may_claim_class(owner, class) {
            policy::log_refusal(
                owner,
                format_args!("claim of PCI class {c:02x}:{s:02x}:{p:02x}"),
            );
            return Err(domain_sdk::DeviceError::NotPermitted);
        }
        let claimed = crate::pci::claim(class, index, owner, &|vendor| {
            policy::may_claim(owner, class, vendor)
        })
        .map_err(|e| match e {
            crate::pci::ClaimError::NotPermitted(vendor) => {
                policy::log_refusal(
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

    fn boot_option(&self, key: &str, into: &mut [u8]) -> Option<usize> {
        let boot = crate::BOOT.get()?;
        let args = kcore::cmdline::CmdLine::parse(&boot.cmdline).ok()?;
        let value = args.get(key)?.as_bytes();
        into.get_mut(..value.len())?.copy_from_slice(value);
        Some(value.len())
    }

    fn supervise(&self, name: &str) -> Result<(), domain_sdk::RestartError> {
        let domain = find(name).ok_or(domain_sdk::RestartError::NoSuchDomain)?;
        supervision::supervise(domain, crate::cpu::current_owner())
    }

    fn restart_domain(&self, name: &str) -> Result<(), domain_sdk::RestartError> {
        let domain = find(name).ok_or(domain_sdk::RestartError::NoSuchDomain)?;
        supervision::restart_by(domain, crate::cpu::current_owner())
    }

    fn spawn_program(&self, archive: &[u8], name: &str) -> Result<Owner, alloc::string::String> {
        let caller = crate::cpu::current_owner();
        if caller == executor::OwnerId::KERNEL || !is_alive_owner(caller) {
            return Err("only a running domain may spawn a program".into());
        }
        names::check_name(name)?;
        if supervision::live_supervised_by(caller) >= MAX_PROGRAMS {
            return Err(alloc::format!(
                "this domain already runs {MAX_PROGRAMS} programs (kill one first)"
            ));
        }
        let (image, bytes) = super::loaded::verify_program(archive)?;
        let domain = super::create_from(super::Source::Program { image, bytes }, name)
            .map_err(|e| alloc::format!("{e}"))?;
        supervision::adopt(domain, caller);
        Ok(domain.owner())
    }

    fn console_write(&self, text: &[u8]) -> bool {
        crate::console::tty_write(crate::cpu::current_owner(), text)
    }

    fn kill_domain(&self, name: &str) -> Result<(), domain_sdk::RestartError> {
        let domain = find(name).ok_or(domain_sdk::RestartError::NoSuchDomain)?;
        supervision::kill_by(domain, crate::cpu::current_owner())
    }
}

/// Most tasks one domain may have on one core (a quarter of the core's
/// slots: a domain that spawns without end is refused, and the others, the
/// kernel included, still find free slots).
pub const MAX_TASKS: usize = crate::sched::TASKS_PER_CPU / 4;

/// Most live programs one domain may have spawned (so that no domain can
/// take every domain slot).
pub const MAX_PROGRAMS: usize = 64;

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
