//! Who owns a task, a shared-heap object or a call: a domain *slot* and the
//! *generation* of the domain in it.
//!
//! The executor counts tasks and timers per owner, `rrpc` records the owner
//! of every `RRef` and of every call, and the kernel hands out one owner per
//! domain it creates. All three use this one type so that nobody decodes the
//! packed form by hand. A slot is reused when its domain dies; the
//! generation tells the old occupant from the new one, so an object or task
//! tagged with a dead domain's owner can never be mistaken for its
//! successor's.
//!
//! Packed as `slot << 16 | generation` (16 bits each; the generation wraps)
//! into a `u32`, which is what headers on the shared heap store. Slot 0 is
//! the kernel's.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// A domain slot and the generation of the domain in it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct OwnerId(u32);

impl OwnerId {
    /// The kernel (slot 0, generation 0).
    pub const KERNEL: OwnerId = OwnerId(0);

    /// The largest slot number an owner id can name.
    pub const MAX_SLOT: usize = 0xFFFF;

    /// The owner for generation `generation` of slot `slot`. The generation
    /// is kept modulo 2^16; `slot` must not exceed [`OwnerId::MAX_SLOT`]
    /// (larger slots are truncated, and a debug build panics).
    pub const fn new(slot: usize, generation: u32) -> OwnerId {
        debug_assert!(slot <= Self::MAX_SLOT);
        OwnerId(((slot as u32 & 0xFFFF) << 16) | (generation & 0xFFFF))
    }

    /// The slot.
    pub const fn slot(self) -> usize {
        (self.0 >> 16) as usize
    }

    /// The generation (modulo 2^16).
    pub const fn generation(self) -> u32 {
        self.0 & 0xFFFF
    }

    /// The packed form, for a header or an atomic.
    pub const fn to_bits(self) -> u32 {
        self.0
    }

    /// The owner a packed form names (every `u32` names one).
    pub const fn from_bits(bits: u32) -> OwnerId {
        OwnerId(bits)
    }

    /// Whether this is the kernel's slot.
    pub const fn is_kernel(self) -> bool {
        self.slot() == 0
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({}.{})", self.slot(), self.generation())
    }
}

/// `slot.generation`, as the console prints owners.
impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot(), self.generation())
    }
}

/// An [`OwnerId`] that can be shared and changed between threads (what
/// task slots and object headers hold).
#[derive(Default)]
#[repr(transparent)]
pub struct AtomicOwnerId(AtomicU32);

impl AtomicOwnerId {
    /// An atomic holding `owner`.
    pub const fn new(owner: OwnerId) -> AtomicOwnerId {
        AtomicOwnerId(AtomicU32::new(owner.0))
    }

    /// The owner now.
    pub fn load(&self, order: Ordering) -> OwnerId {
        OwnerId(self.0.load(order))
    }

    /// Replace the owner.
    pub fn store(&self, owner: OwnerId, order: Ordering) {
        self.0.store(owner.0, order);
    }

    /// Replace the owner with `new` if it is `current`; the owner found.
    pub fn compare_exchange(
        &self,
        current: OwnerId,
        new: OwnerId,
        success: Ordering,
        failure: Ordering,
    ) -> Result<OwnerId, OwnerId> {
        self.0
            .compare_exchange(current.0, new.0, success, failure)
            .map(OwnerId)
            .map_err(OwnerId)
    }
}

impl fmt::Debug for AtomicOwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.load(Ordering::Relaxed), f)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::OwnerId;
    use std::format;

    #[test]
    fn slot_and_generation_round_trip() {
        let owner = OwnerId::new(513, 7);
        assert_eq!((owner.slot(), owner.generation()), (513, 7));
        assert_eq!(OwnerId::from_bits(owner.to_bits()), owner);
        assert_eq!(owner.to_bits(), 513 << 16 | 7);
    }

    #[test]
    fn generation_wraps_and_stays_out_of_the_slot() {
        let owner = OwnerId::new(3, 0x1_0002);
        assert_eq!((owner.slot(), owner.generation()), (3, 2));
        assert_ne!(OwnerId::new(3, 1), OwnerId::new(3, 2));
        assert_ne!(OwnerId::new(3, 1), OwnerId::new(4, 1));
    }

    #[test]
    fn the_atomic_form_holds_an_owner() {
        use super::AtomicOwnerId;
        use core::sync::atomic::Ordering::SeqCst;
        let cell = AtomicOwnerId::new(OwnerId::new(1, 1));
        cell.store(OwnerId::new(2, 3), SeqCst);
        assert_eq!(cell.load(SeqCst), OwnerId::new(2, 3));
        let seen = cell.compare_exchange(OwnerId::new(9, 9), OwnerId::KERNEL, SeqCst, SeqCst);
        assert_eq!(seen, Err(OwnerId::new(2, 3)));
        assert!(
            cell.compare_exchange(OwnerId::new(2, 3), OwnerId::KERNEL, SeqCst, SeqCst)
                .is_ok()
        );
        assert_eq!(cell.load(SeqCst), OwnerId::KERNEL);
    }

    #[test]
    fn kernel_is_slot_zero_and_prints_readably() {
        assert!(OwnerId::KERNEL.is_kernel());
        assert!(!OwnerId::new(1, 0).is_kernel());
        assert_eq!(format!("{}", OwnerId::new(2, 5)), "2.5");
        assert_eq!(format!("{:?}", OwnerId::new(2, 5)), "OwnerId(2.5)");
    }
}
