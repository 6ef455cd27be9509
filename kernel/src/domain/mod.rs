//! The domain manager: domains, their incarnations, entry, crash and
//! reclaim.
//!
//! A domain is a named slot (1..MAX_SLOTS) with a private heap and a
//! generation. Each *incarnation* (a start or restart) is identified by an
//! owner id `slot << 16 | generation & 0xFFFF`: tasks, heap allocations and
//! entries carry it, so nothing of an old incarnation can be confused with
//! the new one after a restart.
//!
//! Life cycle: `Alive` → (crash or kill) `Poisoned` → (no core inside, every
//! executor has dropped its tasks) `Dead`, when its heap is reclaimed
//! wholesale → (restart) `Alive` with the next generation.
//!
//! Every execution of domain code goes through [`enter`]: a call, each poll
//! of one of its tasks, the drop of one of its tasks. `enter` checks the
//! incarnation is alive, makes it the core's current owner (so allocations
//! go to its heap) and runs the code under a continuation with a watchdog
//! budget. A panic, CPU exception or overrun there poisons the incarnation:
//! later entries fail at once, tasks suspended on it are woken, its tasks
//! are purged from every executor without being polled or dropped, and its
//! heap is reclaimed once every executor has confirmed the purge. Each
//! confirms at the top of its run loop, where its core runs no domain code,
//! so this is also a grace period after which no core is inside the dead
//! incarnation (entries need no shared counter: see `cont::Gate`).

pub mod heap;
pub mod images;
pub mod loaded;
pub mod policy;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use executor::{OwnerId, TaskId};
use spin::Mutex;

use crate::catch::{self, Fault};
use crate::{cpu, sched, time};

pub use heap::MAX_SLOTS;

/// Default watchdog budget for one domain entry.
pub const DEFAULT_BUDGET_NS: u64 = 100_000_000;
static BUDGET_NS: AtomicU64 = AtomicU64::new(DEFAULT_BUDGET_NS);
/// The same budget in timer ticks (0 until `set_budget_ns` runs, once the
/// timer is calibrated).
static BUDGET_TICKS: AtomicU64 = AtomicU64::new(0);

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

/// Why an entry into a domain did not return a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// The domain crashed during this entry (it is now poisoned).
    Crashed,
    /// The incarnation was already poisoned or dead, or restarted since.
    NotAlive,
    NoSuchDomain,
    /// The domain answered with an error of its own (or exports no
    /// control interface).
    Refused(rrpc::RpcError),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Crashed => write!(f, "domain crashed"),
            EntryError::NotAlive => write!(f, "domain is not alive"),
            EntryError::NoSuchDomain => write!(f, "no such domain"),
            EntryError::Refused(e) => write!(f, "the domain answered: {e}"),
        }
    }
}

impl From<EntryError> for rrpc::RpcError {
    fn from(error: EntryError) -> rrpc::RpcError {
        match error {
            EntryError::Crashed => rrpc::RpcError::DomainCrashed,
            EntryError::NotAlive => rrpc::RpcError::DomainNotAlive,
            EntryError::NoSuchDomain => rrpc::RpcError::NoSuchDomain,
            EntryError::Refused(e) => e,
        }
    }
}

/// Where a domain's code comes from.
pub enum Source {
    /// Linked into the kernel image.
    #[cfg(feature = "ktest")]
    BuiltIn(&'static images::Image),
    /// An image in the signed boot archive, mapped into the domain's
    /// window for each incarnation (a restart maps it afresh).
    Archive(String),
}

pub struct Domain {
    pub slot: usize,
    pub name: String,
    /// Its code; replaced when a dead domain is loaded again by name.
    source: Mutex<Source>,
    generation: AtomicU32,
    state: AtomicU8,
    /// The entry gate: current incarnation, open or closed.
    gate: cont::Gate,
    /// Executors that have not yet dropped this incarnation's tasks.
    pending_purges: AtomicU32,
    crashes: AtomicU32,
    /// The domain incarnation allowed to restart this one after a crash
    /// (0: none); see [`supervise`].
    supervisor: AtomicU32,
    /// Whether the last incarnation was killed rather than crashed (a
    /// supervisor restarts only crashed ones).
    killed: AtomicBool,
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
    ((slot as u32) << 16) | (generation & 0xFFFF)
}

fn slot_of(owner: OwnerId) -> usize {
    (owner >> 16) as usize
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

impl Domain {
    /// The name of the image it runs.
    pub fn image_name(&self) -> String {
        cpu::kernel_section(|| match &*self.source.lock() {
            #[cfg(feature = "ktest")]
            Source::BuiltIn(image) => String::from(image.name),
            Source::Archive(name) => name.clone(),
        })
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

/// Creates a domain from a built-in image and runs its initialisation
/// (contained like any entry). A crash during initialisation leaves the
/// domain poisoned (then dead), not the kernel.
#[cfg(feature = "ktest")]
pub fn create(image: &'static images::Image, name: &str) -> Result<&'static Domain, String> {
    create_from(Source::BuiltIn(image), name)
}

/// Creates and starts a domain from `source` (see [`create`]).
/// A dead domain of the same name is loaded again in place: its slot's
/// next generation runs `source`.
pub fn create_from(source: Source, name: &str) -> Result<&'static Domain, String> {
    // A bad image is refused before anything is created for it.
    #[cfg_attr(not(feature = "ktest"), allow(irrefutable_let_patterns))]
    if let Source::Archive(image) = &source {
        loaded::check(image)?;
    }
    if let Some(existing) = find(name) {
        if existing.state() != State::Dead {
            return Err(alloc::format!(
                "a domain named '{name}' exists ({}; 'kill' it first)",
                existing.state().name()
            ));
        }
        cpu::kernel_section(|| *existing.source.lock() = source);
        restart(existing)?;
        return Ok(existing);
    }
    let domain = cpu::kernel_section(|| {
        let _guard = MANAGER.lock();
        if find(name).is_some() {
            return Err(alloc::format!("a domain named '{name}' exists"));
        }
        let slot = (1..MAX_SLOTS)
            .find(|&s| get(s).is_none())
            .ok_or("no free domain slot")?;
        let domain = alloc::boxed::Box::leak(alloc::boxed::Box::new(Domain {
            slot,
            name: String::from(name),
            source: Mutex::new(source),
            generation: AtomicU32::new(1),
            state: AtomicU8::new(State::Alive as u8),
            gate: cont::Gate::new(owner_id(slot, 1)),
            pending_purges: AtomicU32::new(0),
            crashes: AtomicU32::new(0),
            supervisor: AtomicU32::new(0),
            killed: AtomicBool::new(false),
            last_fault: Mutex::new(None),
            waiters: [const { AtomicU64::new(0) }; WAITERS],
            waiters_overflowed: AtomicBool::new(false),
        }));
        heap::create(slot, owner_id(slot, 1));
        TABLE[slot].store(domain, Ordering::Release);
        Ok::<_, String>(&*domain)
    })?;
    start(domain)?;
    Ok(domain)
}

fn start(domain: &'static Domain) -> Result<(), String> {
    let owner = domain.owner();
    let source = cpu::kernel_section(|| match &*domain.source.lock() {
        #[cfg(feature = "ktest")]
        Source::BuiltIn(image) => Ok(image.entry),
        Source::Archive(image) => Err(image.clone()),
    });
    let entry = match source {
        Ok(entry) => entry,
        Err(image) => match loaded::load(domain.slot, &image) {
            Ok(entry) => entry,
            Err(e) => {
                // Nothing of it ran: tear the incarnation down at once.
                kill(domain, "image refused");
                return Err(e);
            }
        },
    };
    match enter(owner, || images::run_entry(owner, entry)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            kill(domain, "initialisation failed");
            Err(alloc::format!(
                "{}: initialisation failed: {e}",
                domain.name
            ))
        }
        Err(e) => Err(alloc::format!(
            "{}: {e} during initialisation: {}",
            domain.name,
            domain.last_fault().unwrap_or_default()
        )),
    }
}

/// Runs `f` as domain incarnation `owner` (see the module doc). The fast
/// path is `cont::Gate::enter`, the same code the host benchmarks time.
#[inline]
pub fn enter<R>(owner: OwnerId, f: impl FnOnce() -> R) -> Result<R, EntryError> {
    if owner == 0 {
        return Ok(f());
    }
    let domain = get(slot_of(owner)).ok_or(EntryError::NoSuchDomain)?;
    let budget = BUDGET_TICKS.load(Ordering::Relaxed);
    let deadline = if budget == 0 {
        0
    } else {
        cpu::current().ticks.load(Ordering::Relaxed) + budget
    };
    match domain
        .gate
        .enter::<Fault, R>(&catch::ThisCore, owner, deadline, f)
    {
        Ok(value) => Ok(value),
        Err(cont::Refused::NotAlive) => Err(EntryError::NotAlive),
        Err(cont::Refused::Failed(fault)) => {
            poison(domain, owner, Some(&fault), "crashed");
            Err(EntryError::Crashed)
        }
    }
}

/// [`enter`] for a type-erased [`cont::RawCall`] (what generated proxies
/// use through `rrpc::proxy::Runtime::enter_raw`).
///
/// # Safety
/// As for `cont::guarded_raw`.
#[inline]
pub unsafe fn enter_raw(owner: OwnerId, call: *mut cont::RawCall) -> Result<(), EntryError> {
    if owner == 0 {
        // SAFETY: forwarded; the kernel needs no entry.
        unsafe { ((*call).run)(call) };
        return Ok(());
    }
    let domain = get(slot_of(owner)).ok_or(EntryError::NoSuchDomain)?;
    let budget = BUDGET_TICKS.load(Ordering::Relaxed);
    let deadline = if budget == 0 {
        0
    } else {
        cpu::current().ticks.load(Ordering::Relaxed) + budget
    };
    // SAFETY: forwarded.
    match unsafe {
        domain
            .gate
            .enter_raw::<Fault>(&catch::ThisCore, owner, deadline, call)
    } {
        Ok(()) => Ok(()),
        Err(cont::Refused::NotAlive) => Err(EntryError::NotAlive),
        Err(cont::Refused::Failed(fault)) => {
            poison(domain, owner, Some(&fault), "crashed");
            Err(EntryError::Crashed)
        }
    }
}

/// Marks the incarnation `owner` poisoned (once) and starts tearing it
/// down. Returns false if it was not the alive incarnation.
fn poison(domain: &'static Domain, owner: OwnerId, fault: Option<&Fault>, why: &str) -> bool {
    if !domain.gate.close(owner) {
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
        crate::warn!(
            "domain {} (gen {}): {message}",
            domain.name,
            domain.generation()
        );
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

/// Pending proxied calls per caller slot (see `rrpc::proxy::Runtime::park`).
static PARKED: [Mutex<Vec<rrpc::proxy::Parked>>; MAX_SLOTS] =
    [const { Mutex::new(Vec::new()) }; MAX_SLOTS];
/// Whether a slot's current incarnation was told it has too many.
static PARKED_FULL_WARNED: [AtomicBool; MAX_SLOTS] = [const { AtomicBool::new(false) }; MAX_SLOTS];

/// Pending calls registered per domain at most: the registrations are
/// kernel memory, and a domain must not be able to exhaust it (256 domains
/// at the limit take 2 MiB). Past it a call goes unregistered (if its
/// caller then dies, the callee's future is left as it is) and the first
/// refusal is logged.
pub const MAX_PARKED: usize = 256;

/// Registers a pending proxied call of `parked.caller` (a domain); false if
/// it already has [`MAX_PARKED`].
pub fn park(parked: rrpc::proxy::Parked) -> bool {
    let Some(list) = PARKED.get(slot_of(parked.caller)) else {
        return false;
    };
    let accepted = cpu::kernel_section(|| {
        let mut list = list.lock();
        let room = list.len() < MAX_PARKED;
        if room {
            list.push(parked);
        }
        room
    });
    let slot = slot_of(parked.caller);
    if !accepted
        && !PARKED_FULL_WARNED[slot].swap(true, Ordering::Relaxed)
        && let Some(domain) = get(slot)
    {
        crate::warn!(
            "domain {}: more than {MAX_PARKED} calls pending at once; the rest are not dropped in their callees if it dies",
            domain.name
        );
    }
    accepted
}

/// Ends a registration made by [`park`].
pub fn unpark(caller: OwnerId, cell: *mut ()) {
    if let Some(list) = PARKED.get(slot_of(caller)) {
        cpu::kernel_section(|| {
            let mut list = list.lock();
            if let Some(at) = list
                .iter()
                .position(|p| p.caller == caller && p.cell == cell)
            {
                list.swap_remove(at);
            }
        });
    }
}

/// Pending proxied calls `domain`'s current incarnation has registered.
#[cfg(feature = "ktest")]
pub fn parked_calls(domain: &Domain) -> usize {
    let owner = domain.owner();
    cpu::kernel_section(|| {
        PARKED[domain.slot]
            .lock()
            .iter()
            .filter(|p| p.caller == owner)
            .count()
    })
}

/// The next call the dead incarnation `owner` left pending in another
/// domain (registrations of older incarnations of the slot are stale and
/// skipped: they were handled when those died).
fn next_orphan(slot: usize, owner: OwnerId) -> Option<rrpc::proxy::Parked> {
    cpu::kernel_section(|| {
        let mut list = PARKED[slot].lock();
        while let Some(parked) = list.pop() {
            if parked.caller == owner {
                return Some(parked);
            }
        }
        None
    })
}

/// Drops one call the dead caller left pending: its callee's future,
/// which may hold a device queue, a lock or memory, is dropped inside the
/// callee (an entry: refused if the callee is dead too, contained if it
/// crashes), on the callee's share of the core.
fn drop_orphan(orphan: rrpc::proxy::Parked) {
    let start = time::now_ns();
    // SAFETY: `park`'s contract: the caller is dead and purged, and the
    // cell (on the callee's heap) has not been unregistered, so the drop
    // function may run on it inside the callee. What the callee's future
    // may read of the caller's (lent `RRef`s, kept alive while lent, and
    // the copies of their handles in the caller's heap) is still there:
    // the caller's `RRef`s and heap are reclaimed only after this.
    let dropped = enter(orphan.callee, || unsafe { (orphan.drop)(orphan.cell) });
    crate::share::charge(orphan.callee, start, time::now_ns());
    if let Err(e) = dropped {
        crate::debug!("orphaned call into {:#x} not dropped: {e}", orphan.callee);
    }
}

/// Poisoned and every executor done: reclaim, exactly once. Devices are
/// stopped at once; the calls the dead domain left pending in others are
/// dropped by a kernel task that yields between them (each may take up to
/// the watchdog's budget, and there may be `MAX_PARKED`: done inline, they
/// would hold this core for seconds); then its memory and code go.
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
    let (slot, owner) = (domain.slot, domain.owner());
    PARKED_FULL_WARNED[slot].store(false, Ordering::Relaxed);
    let has_orphans = cpu::kernel_section(|| !PARKED[slot].lock().is_empty());
    if has_orphans {
        let exec = sched::this_executor();
        // Leave the kernel room: if the core's table is (nearly) full,
        // do it here (the orphans wait in `PARKED`, so nothing is lost
        // if the spawn fails).
        // (The task is the kernel's memory, whoever runs this.)
        if exec.task_count() + 16 < exec.capacity()
            && cpu::kernel_section(|| {
                sched::spawn(async move {
                    while let Some(orphan) = next_orphan(slot, owner) {
                        drop_orphan(orphan);
                        executor::yield_now().await;
                    }
                    finish_reclaim(domain);
                })
                .map(|h| h.detach())
                .is_ok()
            })
        {
            return;
        }
        while let Some(orphan) = next_orphan(slot, owner) {
            drop_orphan(orphan);
        }
    }
    finish_reclaim(domain);
}

/// The rest of [`maybe_reclaim`], once the dead domain's pending calls are
/// dropped.
fn finish_reclaim(domain: &'static Domain) {
    cpu::kernel_section(|| PARKED[domain.slot].lock().clear());
    images::forget_export(domain.slot);
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
pub fn restart(domain: &'static Domain) -> Result<(), String> {
    if domain.state() != State::Dead {
        return Err(alloc::format!(
            "{} is still {}",
            domain.name,
            domain.state().name()
        ));
    }
    cpu::kernel_section(|| {
        let _guard = MANAGER.lock();
        domain.pending_purges.store(0, Ordering::SeqCst);
        domain.killed.store(false, Ordering::SeqCst);
        let generation = domain.generation.fetch_add(1, Ordering::SeqCst) + 1;
        heap::create(domain.slot, owner_id(domain.slot, generation));
        domain.state.store(State::Alive as u8, Ordering::SeqCst);
        domain.gate.open(owner_id(domain.slot, generation));
    });
    start(domain)
}

/// Whether `owner` is the alive incarnation of its domain.
fn is_alive_owner(owner: OwnerId) -> bool {
    get(slot_of(owner)).is_some_and(|d| d.owner() == owner && d.state() == State::Alive)
}

/// Makes domain incarnation `by` the supervisor of `domain`: the one that
/// may restart it after a crash ([`restart_by`]). Refused for the kernel
/// (it restarts anything from the console), for the domain itself, and
/// while another live incarnation supervises it; a dead supervisor's claim
/// lapses, so a restarted shadow claims its driver again. And refused
/// unless the signed manifest lets `by`'s image supervise `domain`'s
/// (`policy`): no other domain can take the right before the shadow does.
pub fn supervise(domain: &'static Domain, by: OwnerId) -> Result<(), domain_sdk::RestartError> {
    use domain_sdk::RestartError;
    if by == 0 || slot_of(by) == domain.slot {
        return Err(RestartError::IsCaller);
    }
    if !policy::may_supervise(by, domain) {
        policy::log_refusal(by, format_args!("supervising {}", domain.name));
        return Err(RestartError::NotPermitted);
    }
    let mut current = domain.supervisor.load(Ordering::SeqCst);
    loop {
        if current == by {
            return Ok(());
        }
        if current != 0 && is_alive_owner(current) {
            return Err(RestartError::Supervised);
        }
        match domain
            .supervisor
            .compare_exchange(current, by, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => return Ok(()),
            Err(now) => current = now,
        }
    }
}

/// [`restart`] on behalf of domain incarnation `by`: only its supervisor,
/// and only if the last incarnation crashed (one the operator killed stays
/// dead).
pub fn restart_by(domain: &'static Domain, by: OwnerId) -> Result<(), domain_sdk::RestartError> {
    use domain_sdk::RestartError;
    if by == 0 || domain.supervisor.load(Ordering::SeqCst) != by {
        return Err(RestartError::NotSupervisor);
    }
    // The image may have changed since `supervise` (a dead domain loaded
    // again from another image): the grant must still hold.
    if !policy::may_supervise(by, domain) {
        return Err(RestartError::NotPermitted);
    }
    if domain.state() != State::Dead {
        return Err(RestartError::StillRunning);
    }
    if domain.killed.load(Ordering::SeqCst) {
        return Err(RestartError::Killed);
    }
    restart(domain).map_err(|e| {
        crate::warn!(
            "domain {}: restart by its supervisor failed: {e}",
            domain.name
        );
        RestartError::Failed
    })
}

/// The supervisor's name, if a live domain supervises `domain`.
pub fn supervisor_name(domain: &Domain) -> Option<String> {
    let owner = domain.supervisor.load(Ordering::SeqCst);
    (owner != 0 && is_alive_owner(owner))
        .then(|| get(slot_of(owner)).map(|d| d.name.clone()))
        .flatten()
}

/// Sets the watchdog budget. Call after the TSC is calibrated.
pub fn set_budget_ns(ns: u64) {
    BUDGET_NS.store(ns, Ordering::Relaxed);
    // +1: the next tick may come at once, so n+1 ticks last at least n
    // tick periods.
    BUDGET_TICKS.store(time::ns_to_ticks(ns) + 1, Ordering::Relaxed);
}

pub fn budget_ns() -> u64 {
    BUDGET_NS.load(Ordering::Relaxed)
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
