//! The life cycle of domains: the `Domain` record and the table of slots,
//! create, start, restart, kill, poison and reclaim.
//!
//! A domain is a named slot (1..MAX_SLOTS) with a private heap and a
//! generation; each start or restart is a new incarnation with its own
//! owner id. `Alive` → (crash or kill: [`poison`]) `Poisoned` → (every
//! executor has dropped its tasks) `Reclaiming` → `Dead` → ([`restart`])
//! `Alive` with the next generation.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use executor::{OwnerId, TaskId};
use spin::Mutex;

use super::error::DomainError;
use super::{MAX_SLOTS, entry, heap, loaded, names, parking};
use crate::catch::Fault;
use crate::{cpu, sched, time};

/// Tasks remembered per domain as suspended on it (see
/// [`Domain::add_waiter`]).
const WAITERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Alive = 0,
    Poisoned = 1,
    /// Its heap is being returned; becomes `Dead` when that is complete.
    Reclaiming = 2,
    Dead = 3,
}

impl State {
    fn from(raw: u8) -> State {
        match raw {
            0 => State::Alive,
            1 => State::Poisoned,
            2 => State::Reclaiming,
            _ => State::Dead,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Poisoned => "poisoned",
            State::Reclaiming => "reclaiming",
            State::Dead => "dead",
        }
    }
}

/// Where a domain's code comes from.
pub enum Source {
    /// An image in the signed boot archive, mapped into the domain's
    /// window for each incarnation (a restart maps it afresh).
    Archive(String),
    /// A program: an image a domain handed the kernel
    /// (`Kernel::spawn_program`, rv6 reading it from its file system),
    /// in an archive whose signature and digest the kernel checked on a
    /// copy it owns. Its name in that archive and its bytes. A program is
    /// granted nothing (no exports, devices or supervision).
    Program {
        image: String,
        bytes: alloc::sync::Arc<[u8]>,
    },
}

impl Source {
    /// The image's name.
    pub fn image(&self) -> &str {
        match self {
            Source::Archive(image) | Source::Program { image, .. } => image,
        }
    }
}

pub struct Domain {
    pub slot: usize,
    pub name: String,
    /// Its code; replaced when a dead domain is loaded again by name.
    pub(super) source: Mutex<Source>,
    generation: AtomicU32,
    state: AtomicU8,
    /// The entry gate: current incarnation, open or closed.
    pub(super) gate: cont::Gate,
    /// Held while a task of this domain is put on another core's executor
    /// (`Kernel::spawn_on`) and while the gate closes: a spawn either lands
    /// before the close (and the purge that follows it finds the task) or
    /// sees the gate closed and spawns nothing. (A spawn on the domain's
    /// own core needs none of this: that core's purge waits until the
    /// domain's code, which is spawning, has returned.)
    pub(super) spawn_lock: Mutex<()>,
    /// Executors that have not yet dropped this incarnation's tasks.
    pending_purges: AtomicU32,
    crashes: AtomicU32,
    /// The domain incarnation allowed to restart this one after a crash
    /// (0: none); see `supervision`.
    pub(super) supervisor: executor::AtomicOwnerId,
    /// Whether the last incarnation was killed rather than crashed (a
    /// supervisor restarts only crashed ones).
    pub(super) killed: AtomicBool,
    last_fault: Mutex<Option<String>>,
    /// Tasks suspended on this domain (woken when it dies), as TaskId+1.
    waiters: [AtomicU64; WAITERS],
    waiters_overflowed: AtomicBool,
}

static TABLE: [AtomicPtr<Domain>; MAX_SLOTS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_SLOTS];
/// Serialises create/kill/restart (not the entry path).
static MANAGER: Mutex<()> = Mutex::new(());

pub fn owner_id(slot: usize, generation: u32) -> OwnerId {
    OwnerId::new(slot, generation)
}

pub(super) fn slot_of(owner: OwnerId) -> usize {
    owner.slot()
}

pub fn get(slot: usize) -> Option<&'static Domain> {
    let ptr = TABLE.get(slot)?.load(Ordering::Acquire);
    // SAFETY: domain records are leaked on creation and never freed.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

pub fn all() -> impl Iterator<Item = &'static Domain> {
    (1..MAX_SLOTS).filter_map(get)
}

pub fn find(name: &str) -> Option<&'static Domain> {
    all().find(|d| d.name == name)
}

/// Whether `owner` is the alive incarnation of its domain (never the
/// kernel's 0: slot 0 holds no domain).
pub(super) fn is_alive_owner(owner: OwnerId) -> bool {
    get(slot_of(owner)).is_some_and(|d| d.owner() == owner && d.state() == State::Alive)
}

impl Domain {
    /// The name of the image it runs.
    pub fn image_name(&self) -> String {
        cpu::kernel_section(|| String::from(self.source.lock().image()))
    }

    pub fn state(&self) -> State {
        State::from(self.state.load(Ordering::Acquire))
    }

    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current incarnation's owner id.
    pub fn owner(&self) -> OwnerId {
        owner_id(self.slot, self.generation())
    }

    pub fn crashes(&self) -> u32 {
        self.crashes.load(Ordering::Relaxed)
    }

    pub fn last_fault(&self) -> Option<String> {
        cpu::kernel_section(|| self.last_fault.lock().clone())
    }

    /// `RRef` roots the current incarnation owns.
    pub fn rrefs(&self) -> usize {
        rrpc::registry::owned_by(self.owner()).0
    }

    /// (heap bytes in use, heap pages mapped).
    pub fn heap_usage(&self) -> (u64, u64) {
        heap::usage(self.slot)
    }

    /// Executors that have not yet dropped a poisoned incarnation's tasks
    /// (for reports on a reclaim that takes long).
    pub fn pending_purges(&self) -> u32 {
        self.pending_purges.load(Ordering::SeqCst)
    }

    /// Tasks of the current incarnation on every core.
    pub fn task_count(&self) -> usize {
        let owner = self.owner();
        crate::cpu::all()
            .filter_map(|c| sched::executor(c.index))
            .map(|e| e.task_count_of(owner))
            .sum()
    }

    /// Remembers a task suspended inside this domain, to wake it if the
    /// domain dies. Spurious wake-ups are harmless, so on overflow every
    /// task is woken instead.
    pub fn add_waiter(&self, task: TaskId) {
        let raw = task.to_u64() + 1;
        for slot in &self.waiters {
            let current = slot.load(Ordering::Relaxed);
            if current == raw {
                return;
            }
            if current == 0
                && slot
                    .compare_exchange(0, raw, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        self.waiters_overflowed.store(true, Ordering::Release);
    }

    fn wake_waiters(&self) {
        // Pairs with the fence in `ProxyRuntime::suspended` (the state
        // change that makes this death is stored before).
        core::sync::atomic::fence(Ordering::SeqCst);
        for slot in &self.waiters {
            let raw = slot.swap(0, Ordering::AcqRel);
            if raw != 0 {
                executor::wake_task(TaskId::from_u64(raw - 1));
            }
        }
        if self.waiters_overflowed.swap(false, Ordering::AcqRel) {
            for c in cpu::all() {
                if let Some(exec) = sched::executor(c.index) {
                    for task in exec.snapshot() {
                        executor::wake_task(task.id);
                    }
                }
            }
        }
    }
}

/// Creates and starts a domain from `source`; its initialisation runs
/// contained like any entry (a crash there leaves the domain poisoned,
/// then dead, not the kernel).
/// A dead domain of the same name is loaded again in place: its slot's
/// next generation runs `source`.
pub fn create_from(source: Source, name: &str) -> Result<&'static Domain, DomainError> {
    // A bad image is refused before anything is created for it.
    match &source {
        Source::Archive(image) => loaded::check(image)?,
        Source::Program { image, bytes } => loaded::check_bytes(image, bytes)?,
    }
    if let Some(existing) = find(name) {
        if existing.state() != State::Dead {
            return Err(DomainError::Exists {
                name: String::from(name),
                state: existing.state(),
            });
        }
        cpu::kernel_section(|| *existing.source.lock() = source);
        restart(existing)?;
        return Ok(existing);
    }
    let domain = cpu::kernel_section(|| {
        let _guard = MANAGER.lock();
        if let Some(existing) = find(name) {
            return Err(DomainError::Exists {
                name: String::from(name),
                state: existing.state(),
            });
        }
        let slot = (1..MAX_SLOTS)
            .find(|&s| get(s).is_none())
            .ok_or(DomainError::NoFreeSlot)?;
        let domain = alloc::boxed::Box::leak(alloc::boxed::Box::new(Domain {
            slot,
            name: String::from(name),
            source: Mutex::new(source),
            generation: AtomicU32::new(1),
            state: AtomicU8::new(State::Alive as u8),
            gate: cont::Gate::new(owner_id(slot, 1)),
            spawn_lock: Mutex::new(()),
            pending_purges: AtomicU32::new(0),
            crashes: AtomicU32::new(0),
            supervisor: executor::AtomicOwnerId::new(OwnerId::KERNEL),
            killed: AtomicBool::new(false),
            last_fault: Mutex::new(None),
            waiters: [const { AtomicU64::new(0) }; WAITERS],
            waiters_overflowed: AtomicBool::new(false),
        }));
        heap::create(slot, owner_id(slot, 1));
        TABLE[slot].store(domain, Ordering::Release);
        Ok::<_, DomainError>(&*domain)
    })?;
    start(domain)?;
    Ok(domain)
}

/// Maps the current incarnation's image and runs its entry function
/// inside it.
fn start(domain: &'static Domain) -> Result<(), DomainError> {
    let owner = domain.owner();
    let (image, bytes) = cpu::kernel_section(|| match &*domain.source.lock() {
        Source::Archive(image) => (image.clone(), None),
        Source::Program { image, bytes } => (image.clone(), Some(bytes.clone())),
    });
    let loaded = match &bytes {
        None => loaded::load(domain.slot, &image),
        Some(bytes) => loaded::load_bytes(domain.slot, &image, bytes),
    };
    drop(bytes);
    let entry = match loaded {
        Ok(entry) => entry,
        Err(e) => {
            // Nothing of it ran: tear the incarnation down at once.
            kill(domain, "image refused");
            return Err(e.into());
        }
    };
    match entry::enter(owner, || names::run_entry(owner, entry)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => {
            kill(domain, "initialisation failed");
            Err(DomainError::InitFailed {
                name: domain.name.clone(),
                why,
            })
        }
        Err(_) => Err(DomainError::InitCrashed {
            name: domain.name.clone(),
            fault: domain.last_fault().unwrap_or_default(),
        }),
    }
}

/// Marks the incarnation `owner` poisoned (once) and starts tearing it
/// down. Returns false if it was not the alive incarnation.
pub(super) fn poison(
    domain: &'static Domain,
    owner: OwnerId,
    fault: Option<&Fault>,
    why: &str,
) -> bool {
    // Under the spawn lock: see `Domain::spawn_lock`. Whoever holds it is
    // kernel code that neither faults nor waits, and holds it with the
    // watchdog held off, so no poison can come to wait for it on the
    // holder's own core.
    let closed = {
        let _spawning = domain.spawn_lock.lock();
        domain.gate.close(owner)
    };
    if !closed {
        return false;
    }
    // Before anyone is woken by the death: a supervisor must see why.
    domain.killed.store(fault.is_none(), Ordering::SeqCst);
    domain.state.store(State::Poisoned as u8, Ordering::SeqCst);
    cpu::kernel_section(|| {
        let message = match fault {
            Some(fault) => alloc::format!("{why}: {fault}"),
            None => String::from(why),
        };
        // A program its supervisor ended (it exited, or was killed) is
        // routine: not a warning.
        let program_end =
            fault.is_none() && matches!(&*domain.source.lock(), Source::Program { .. });
        if program_end {
            crate::debug!(
                "domain {} (gen {}): {message}",
                domain.name,
                domain.generation()
            );
        } else {
            crate::warn!(
                "domain {} (gen {}): {message}",
                domain.name,
                domain.generation()
            );
        }
        if fault.is_some() {
            crate::storm::on_crash(&domain.name, &message);
        }
        *domain.last_fault.lock() = Some(message);
    });
    if fault.is_some() {
        domain.crashes.fetch_add(1, Ordering::Relaxed);
    }
    let executors: Vec<_> = cpu::kernel_section(|| {
        cpu::all()
            .filter_map(|c| sched::executor(c.index))
            .collect()
    });
    domain
        .pending_purges
        .store(executors.len() as u32, Ordering::SeqCst);
    // As the kernel: a purge request may allocate (the executor's queue
    // grows by blocks), and a crash poisons its domain in the context of
    // whoever called it: an allocation there would land on the caller's
    // heap and vanish with the caller, under the executor's feet (seen as
    // a kernel page fault inside `SegQueue::push`).
    cpu::kernel_section(|| {
        for exec in executors {
            exec.purge_owner(owner);
        }
    });
    domain.wake_waiters();
    maybe_reclaim(domain);
    true
}

/// Executor hook: one executor has dropped the tasks of `owner`.
pub fn purge_done(owner: OwnerId) {
    if let Some(domain) = get(slot_of(owner))
        && domain.owner() == owner
        && domain.pending_purges.fetch_sub(1, Ordering::SeqCst) == 1
    {
        maybe_reclaim(domain);
    }
}

/// Poisoned and every executor done: reclaim, exactly once. Devices are
/// stopped at once; the calls the dead domain left pending in others are
/// dropped (see `parking::drop_orphans`); then its memory and code go.
fn maybe_reclaim(domain: &'static Domain) {
    // Every executor confirming the purge is also the grace period after
    // which no core is inside the closed incarnation: each confirms at the
    // top of its run loop, where it runs no domain code (see `cont::Gate`).
    if domain.pending_purges.load(Ordering::SeqCst) != 0 {
        return;
    }
    if domain
        .state
        .compare_exchange(
            State::Poisoned as u8,
            State::Reclaiming as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_err()
    {
        return;
    }
    // Devices first: no DMA may land in memory about to be reused.
    let devices = crate::pci::release(domain.owner());
    if devices > 0 {
        crate::debug!("domain {}: released {devices} devices", domain.name);
    }
    parking::drop_orphans(domain, finish_reclaim);
}

/// The rest of [`maybe_reclaim`], once the dead domain's pending calls are
/// dropped.
fn finish_reclaim(domain: &'static Domain) {
    parking::forget(domain.slot);
    names::forget_export(domain.slot);
    // Its RRefs first (their values may hold nested RRefs, nothing of its
    // private heap), then the heap.
    // SAFETY: the slot has no live incarnation (this one is poisoned and
    // past its grace period; restarts wait for `Dead`), and only its own
    // incarnations held what is listed under it.
    let (rrefs, _) = cpu::kernel_section(|| unsafe { rrpc::registry::reclaim(domain.owner()) });
    let pages = heap::reclaim(domain.slot);
    // Its code last: nothing of it can run any more.
    let image_pages = loaded::unload(domain.slot);
    if image_pages > 0 {
        crate::debug!("domain {}: unmapped {image_pages} image pages", domain.name);
    }
    crate::debug!("domain {}: reclaimed {rrefs} RRefs", domain.name);
    crate::debug!("domain {}: reclaimed {pages} heap pages", domain.name);
    // Only now: `Dead` promises the memory is back (tests and `restart`
    // rely on it).
    domain.state.store(State::Dead as u8, Ordering::SeqCst);
}

/// Stops a domain on request (no fault). Its callers get errors from now on.
pub fn kill(domain: &'static Domain, why: &str) -> bool {
    poison(domain, domain.owner(), None, why)
}

/// Starts the next incarnation of a dead domain. (A poisoned domain
/// becomes dead once every core has dropped its tasks, which needs the
/// executors to run: callers wait for `State::Dead` asynchronously, see
/// [`wait_dead`].)
pub fn restart(domain: &'static Domain) -> Result<(), DomainError> {
    let still_running = || DomainError::StillRunning {
        name: domain.name.clone(),
        state: domain.state(),
    };
    if domain.state() != State::Dead {
        return Err(still_running());
    }
    cpu::kernel_section(|| {
        let _guard = MANAGER.lock();
        // Checked again under the lock: two restarts racing (a supervisor
        // and the operator, say) both saw `Dead` above; only the first may
        // make the next incarnation (the second would find its heap slot
        // taken: found by the fault campaign as a kernel panic).
        if domain.state() != State::Dead {
            return Err(still_running());
        }
        domain.pending_purges.store(0, Ordering::SeqCst);
        domain.killed.store(false, Ordering::SeqCst);
        let generation = domain.generation.fetch_add(1, Ordering::SeqCst) + 1;
        heap::create(domain.slot, owner_id(domain.slot, generation));
        domain.state.store(State::Alive as u8, Ordering::SeqCst);
        domain.gate.open(owner_id(domain.slot, generation));
        Ok(())
    })?;
    start(domain)
}

/// Waits (asynchronously) until a poisoned domain is dead, up to `limit`.
pub async fn wait_dead(domain: &'static Domain, limit: core::time::Duration) -> bool {
    let deadline = time::now_ns() + limit.as_nanos() as u64;
    while domain.state() != State::Dead {
        if time::now_ns() >= deadline {
            return false;
        }
        executor::sleep(core::time::Duration::from_millis(1)).await;
    }
    true
}
