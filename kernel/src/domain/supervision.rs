//! Supervision: which domain may restart which after a crash (a shadow
//! restarting its driver, for instance), as the signed manifest allows.

use alloc::string::String;
use core::sync::atomic::Ordering;

use domain_sdk::RestartError;
use executor::OwnerId;

use super::lifecycle::{Domain, State, get, is_alive_owner, restart, slot_of};
use super::policy;

/// Makes domain incarnation `by` the supervisor of `domain`: the one that
/// may restart it after a crash ([`restart_by`]). Refused for the kernel
/// (it restarts anything from the console), for the domain itself, and
/// while another live incarnation supervises it; a dead supervisor's claim
/// lapses, so a restarted shadow claims its driver again. And refused
/// unless the signed manifest lets `by`'s image supervise `domain`'s
/// (`policy`): no other domain can take the right before the shadow does.
pub fn supervise(domain: &'static Domain, by: OwnerId) -> Result<(), RestartError> {
    if by == executor::OwnerId::KERNEL || slot_of(by) == domain.slot {
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
        if current != executor::OwnerId::KERNEL && is_alive_owner(current) {
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
pub fn restart_by(domain: &'static Domain, by: OwnerId) -> Result<(), RestartError> {
    // A supervisor that has just been killed may still be running on
    // another core until the grace period ends: it restarts nothing more.
    if by == executor::OwnerId::KERNEL
        || domain.supervisor.load(Ordering::SeqCst) != by
        || !is_alive_owner(by)
    {
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

/// Makes `by` the supervisor of `domain`, a program it has just spawned
/// (no grant needed: the program is granted nothing, and `by` made it).
pub fn adopt(domain: &'static Domain, by: OwnerId) {
    domain.supervisor.store(by, Ordering::SeqCst);
}

/// How many live domains `by` supervises.
pub fn live_supervised_by(by: OwnerId) -> usize {
    (1..super::MAX_SLOTS)
        .filter_map(super::lifecycle::get)
        .filter(|d| d.state() != State::Dead && d.supervisor.load(Ordering::SeqCst) == by)
        .count()
}

/// Kills `domain` on behalf of `by`, its live supervisor: torn down as
/// after a crash, and marked killed, so it stays dead.
pub fn kill_by(domain: &'static Domain, by: OwnerId) -> Result<(), RestartError> {
    if by == executor::OwnerId::KERNEL
        || domain.supervisor.load(Ordering::SeqCst) != by
        || !is_alive_owner(by)
    {
        return Err(RestartError::NotSupervisor);
    }
    domain.killed.store(true, Ordering::SeqCst);
    super::lifecycle::kill(domain, "killed by its supervisor");
    Ok(())
}

/// The supervisor's name, if a live domain supervises `domain`.
pub fn supervisor_name(domain: &Domain) -> Option<String> {
    let owner = domain.supervisor.load(Ordering::SeqCst);
    (owner != executor::OwnerId::KERNEL && is_alive_owner(owner))
        .then(|| get(slot_of(owner)).map(|d| d.name.clone()))
        .flatten()
}
