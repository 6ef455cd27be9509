//! A hierarchical timer wheel: four levels of 64 slots over ticks of a
//! fixed granularity, plus an overflow list for deadlines beyond
//! 64^4 ticks. Entries live in a slab and sit on intrusive doubly linked
//! lists, so insert and cancel are O(1); advancing moves entries down a
//! level when their slot comes round ("cascading").
//!
//! Invariants: an entry on level `L` has a tick whose `(tick >> 6L)`
//! differs from the current tick's by 1..63, so its slot is cascaded (or,
//! on level 0, fired) before its tick passes; an entry never fires before
//! its deadline, because its tick is the deadline rounded *up*.

use alloc::vec::Vec;

const LEVELS: usize = 4;
const SLOTS: usize = 64;
const BITS: u32 = 6;
const NIL: u32 = u32::MAX;
const OVERFLOW: usize = LEVELS * SLOTS;
const LISTS: usize = OVERFLOW + 1;

/// Handle to a pending timer, for [`TimerWheel::cancel`]. Stale keys are
/// detected by generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

struct Entry<T> {
    tick: u64,
    payload: Option<T>,
    prev: u32,
    next: u32,
    list: usize,
    generation: u32,
}

pub struct TimerWheel<T> {
    granularity_ns: u64,
    current: u64,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    heads: [u32; LISTS],
    occupied: [u64; LEVELS],
    len: usize,
}

impl<T> TimerWheel<T> {
    /// A wheel whose ticks are `granularity_ns` long, starting at `now_ns`.
    pub fn new(granularity_ns: u64, now_ns: u64) -> TimerWheel<T> {
        TimerWheel::with_capacity(granularity_ns, now_ns, 0)
    }

    /// [`new`](Self::new) with room for `timers` timers before the wheel
    /// allocates again (an executor's wheel starts with room for what its
    /// core usually holds, so that its memory does not creep up with the
    /// highest number of timers ever pending at once).
    pub fn with_capacity(granularity_ns: u64, now_ns: u64, timers: usize) -> TimerWheel<T> {
        let granularity_ns = granularity_ns.max(1);
        TimerWheel {
            granularity_ns,
            current: now_ns / granularity_ns,
            entries: Vec::with_capacity(timers),
            free: Vec::with_capacity(timers),
            heads: [NIL; LISTS],
            occupied: [0; LEVELS],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Timers it holds room for without allocating.
    pub fn capacity(&self) -> usize {
        self.entries.capacity().min(self.free.capacity())
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `payload` for `deadline_ns` (never delivered earlier).
    pub fn insert(&mut self, deadline_ns: u64, payload: T) -> TimerKey {
        let tick = deadline_ns
            .div_ceil(self.granularity_ns)
            .max(self.current + 1);
        let index = match self.free.pop() {
            Some(index) => {
                let entry = &mut self.entries[index as usize];
                entry.tick = tick;
                entry.payload = Some(payload);
                index
            }
            None => {
                self.entries.push(Entry {
                    tick,
                    payload: Some(payload),
                    prev: NIL,
                    next: NIL,
                    list: 0,
                    generation: 0,
                });
                (self.entries.len() - 1) as u32
            }
        };
        self.place(index);
        self.len += 1;
        TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Removes a pending timer and returns its payload; `None` if it has
    /// already fired or been cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.generation != key.generation || entry.payload.is_none() {
            return None;
        }
        self.unlink(key.index);
        self.len -= 1;
        self.release(key.index)
    }

    /// Removes every entry whose payload `keep` rejects; returns how many.
    /// O(entries): for sweeping out timers nobody waits for any more.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let mut removed = 0;
        for index in 0..self.entries.len() as u32 {
            let drop_it = self.entries[index as usize]
                .payload
                .as_ref()
                .is_some_and(|payload| !keep(payload));
            if drop_it {
                self.unlink(index);
                self.len -= 1;
                self.release(index);
                removed += 1;
            }
        }
        removed
    }

    /// Lower bound on the earliest pending deadline, in nanoseconds.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        for level in 0..LEVELS {
            let bits = self.occupied[level];
            if bits == 0 {
                continue;
            }
            let position = ((self.current >> (BITS * level as u32)) & (SLOTS as u64 - 1)) as u32;
            // Distance (1..=64) to the next occupied slot after ours.
            let rotated = bits.rotate_right((position + 1) % 64);
            let distance = u64::from(rotated.trailing_zeros()) + 1;
            let base = (self.current >> (BITS * level as u32)) + distance;
            let tick = if level == 0 {
                base
            } else {
                base << (BITS * level as u32)
            };
            return Some(tick.saturating_mul(self.granularity_ns));
        }
        // Only the overflow list: its entries sit at least 64 top-level
        // slots past the current one (see `list_for`), so the start of that
        // slot is a lower bound. (`current + 64^4` is not: it can be up to
        // one top-level slot, 262 s at 1 ms ticks, too late.)
        let top = BITS * (LEVELS as u32 - 1);
        let far = ((self.current >> top) + SLOTS as u64) << top;
        Some(far.saturating_mul(self.granularity_ns))
    }

    /// Advances time to `now_ns`, handing every due payload to `fire`.
    pub fn advance(&mut self, now_ns: u64, mut fire: impl FnMut(T)) {
        let target = now_ns / self.granularity_ns;
        while self.current < target {
            if self.len == 0 {
                self.current = target;
                break;
            }
            self.current += 1;
            self.cascade();
            let slot = (self.current & (SLOTS as u64 - 1)) as usize;
            while self.heads[slot] != NIL {
                let index = self.heads[slot];
                self.unlink(index);
                self.len -= 1;
                if let Some(payload) = self.release(index) {
                    fire(payload);
                }
            }
        }
    }

    /// Moves the entries of every level whose slot boundary `current` has
    /// just crossed down to where they now belong (highest level first).
    fn cascade(&mut self) {
        let mut top = 0;
        for level in 1..=LEVELS {
            if self.current & ((1u64 << (BITS * level as u32)) - 1) == 0 {
                top = level;
            } else {
                break;
            }
        }
        if top == LEVELS {
            self.replace_list(OVERFLOW);
        }
        for level in (1..top.min(LEVELS - 1) + 1).rev() {
            let slot = ((self.current >> (BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
            self.replace_list(level * SLOTS + slot);
        }
    }

    fn replace_list(&mut self, list: usize) {
        let mut index = self.heads[list];
        self.heads[list] = NIL;
        if list < OVERFLOW {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        while index != NIL {
            let next = self.entries[index as usize].next;
            self.place(index);
            index = next;
        }
    }

    fn list_for(&self, tick: u64) -> usize {
        if tick <= self.current {
            return (self.current & (SLOTS as u64 - 1)) as usize;
        }
        for level in 0..LEVELS {
            let shift = BITS * level as u32;
            if (tick >> shift) - (self.current >> shift) < SLOTS as u64 {
                return level * SLOTS + ((tick >> shift) & (SLOTS as u64 - 1)) as usize;
            }
        }
        OVERFLOW
    }

    fn place(&mut self, index: u32) {
        let list = self.list_for(self.entries[index as usize].tick);
        let head = self.heads[list];
        {
            let entry = &mut self.entries[index as usize];
            entry.list = list;
            entry.prev = NIL;
            entry.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[list] = index;
        if list < OVERFLOW {
            self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
        }
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, list) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.list)
        };
        if prev == NIL {
            self.heads[list] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if self.heads[list] == NIL && list < OVERFLOW {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }

    fn release(&mut self, index: u32) -> Option<T> {
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.prev = NIL;
        entry.next = NIL;
        let payload = entry.payload.take();
        self.free.push(index);
        payload
    }
}
