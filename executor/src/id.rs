//! Task ids: (executor, slot, generation) packed in one word.

use core::fmt;

/// Identifies one incarnation of a task slot. Copyable, and the whole of a
/// waker's state.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(u64);

impl TaskId {
    pub(crate) const SLOT_BITS: u32 = 24;
    pub(crate) const MAX_SLOTS: usize = 1 << Self::SLOT_BITS;

    pub(crate) fn new(executor: usize, slot: usize, generation: u32) -> TaskId {
        debug_assert!(executor < crate::MAX_EXECUTORS && slot < Self::MAX_SLOTS);
        TaskId(((executor as u64) << 56) | ((slot as u64) << 32) | u64::from(generation))
    }

    pub fn executor(self) -> usize {
        (self.0 >> 56) as usize
    }

    pub fn slot(self) -> usize {
        ((self.0 >> 32) & ((1 << Self::SLOT_BITS) - 1)) as usize
    }

    pub fn generation(self) -> u32 {
        self.0 as u32
    }

    pub fn to_u64(self) -> u64 {
        self.0
    }

    pub fn from_u64(raw: u64) -> TaskId {
        TaskId(raw)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}#{}",
            self.executor(),
            self.slot(),
            self.generation()
        )
    }
}
