//! The key-value store's index: an open-addressing hash table (FNV-1a,
//! linear probing, tombstones for deletions, grown at 3/4 full), as the
//! RedLeaf paper's key-value store uses, holding memcached items (flags,
//! expiry, CAS unique) within a byte budget.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// One item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Boxed slices, not `Vec`s: no capacity word, so that a slot fits in
    /// a cache line (see `Slot`).
    pub key: Box<[u8]>,
    pub value: Box<[u8]>,
    pub flags: u32,
    /// When it expires, in the store's clock (nanoseconds); 0: never.
    pub expires_ns: u64,
    pub cas: u64,
}

impl Item {
    fn size(&self) -> usize {
        self.key.len() + self.value.len() + 48
    }

    fn live(&self, now_ns: u64) -> bool {
        self.expires_ns == 0 || now_ns < self.expires_ns
    }
}

/// One slot of the table: one cache line, aligned to one, so a probe that
/// ends at its first slot reads one line. (With `Vec`s in `Item` a slot
/// was 72 bytes: most straddled two lines. The C baseline's are 64 bytes
/// at 16 past a line boundary: each straddles two.)
#[derive(Clone)]
#[repr(align(64))]
enum Slot {
    Empty,
    /// Deleted: a probe goes on past it.
    Tombstone,
    Full(Item),
}

const _: () = assert!(core::mem::size_of::<Slot>() == 64);

/// The table.
pub struct Store {
    slots: Vec<Slot>,
    /// Full slots.
    items: usize,
    /// Full and tombstone slots (what the load factor counts).
    used: usize,
    bytes: usize,
    /// Most bytes of items held (keys, values, overhead).
    pub limit: usize,
    next_cas: u64,
    pub evictions_refused: u64,
}

/// An item that `incr` or `decr` cannot count with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotANumber;

/// Why a store was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The byte budget is spent.
    OutOfMemory,
}

impl Store {
    /// An empty store holding at most `limit` bytes.
    pub fn new(limit: usize) -> Store {
        Store {
            slots: vec![Slot::Empty; 64],
            items: 0,
            used: 0,
            bytes: 0,
            limit,
            next_cas: 1,
            evictions_refused: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot holding `key`, or where it would go (the first tombstone
    /// seen, else the empty slot that ends the probe).
    fn find(&self, key: &[u8]) -> (usize, bool) {
        let mask = self.slots.len() - 1;
        let mut index = fnv1a(key) as usize & mask;
        let mut first_free = None;
        loop {
            match &self.slots[index] {
                Slot::Empty => return (first_free.unwrap_or(index), false),
                Slot::Tombstone => {
                    first_free.get_or_insert(index);
                }
                Slot::Full(item) if *item.key == *key => return (index, true),
                Slot::Full(_) => {}
            }
            index = (index + 1) & mask;
        }
    }

    fn grow_if_needed(&mut self) {
        // At most 3/4 used (tombstones count: they lengthen probes).
        if (self.used + 1) * 4 <= self.slots.len() * 3 {
            return;
        }
        let size = if self.items * 2 >= self.slots.len() {
            self.slots.len() * 2
        } else {
            // Mostly tombstones: the same size, rebuilt.
            self.slots.len()
        };
        let old = core::mem::replace(&mut self.slots, vec![Slot::Empty; size]);
        self.used = 0;
        for slot in old {
            if let Slot::Full(item) = slot {
                let (index, _) = self.find(&item.key);
                self.slots[index] = Slot::Full(item);
                self.used += 1;
            }
        }
    }

    /// The live item of `key` (an expired one is removed).
    pub fn get(&mut self, key: &[u8], now_ns: u64) -> Option<&Item> {
        let (index, found) = self.find(key);
        if !found {
            return None;
        }
        let live = matches!(&self.slots[index], Slot::Full(item) if item.live(now_ns));
        if !live {
            self.remove_at(index);
            return None;
        }
        match &self.slots[index] {
            Slot::Full(item) => Some(item),
            _ => None,
        }
    }

    /// The live item of `key`, to change in place (its size must not
    /// change, or the caller fixes the byte count through `set`).
    fn get_mut(&mut self, key: &[u8], now_ns: u64) -> Option<&mut Item> {
        self.get(key, now_ns)?;
        let (index, _) = self.find(key);
        match &mut self.slots[index] {
            Slot::Full(item) => Some(item),
            _ => None,
        }
    }

    fn remove_at(&mut self, index: usize) {
        if let Slot::Full(item) = core::mem::replace(&mut self.slots[index], Slot::Tombstone) {
            self.bytes -= item.size();
            self.items -= 1;
        }
    }

    /// Stores `key` (replacing what was there) with a new CAS unique;
    /// returns it.
    pub fn set(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        flags: u32,
        expires_ns: u64,
    ) -> Result<u64, Full> {
        let cas = self.next_cas;
        let value = value.into_boxed_slice();
        let (index, found) = self.find(key);
        if found && let Slot::Full(item) = &mut self.slots[index] {
            // A replacement keeps the item's key (equal to `key`): one
            // allocation fewer than a new item.
            let (old, new) = (item.size(), key.len() + value.len() + 48);
            if self.bytes - old + new > self.limit {
                self.evictions_refused += 1;
                return Err(Full::OutOfMemory);
            }
            item.value = value;
            item.flags = flags;
            item.expires_ns = expires_ns;
            item.cas = cas;
            self.bytes = self.bytes - old + new;
            self.next_cas += 1;
            return Ok(cas);
        }
        let item = Item {
            key: key.into(),
            value,
            flags,
            expires_ns,
            cas,
        };
        if self.bytes + item.size() > self.limit {
            self.evictions_refused += 1;
            return Err(Full::OutOfMemory);
        }
        self.next_cas += 1;
        self.grow_if_needed();
        let (index, _) = self.find(key);
        if matches!(self.slots[index], Slot::Empty) {
            self.used += 1;
        }
        self.bytes += item.size();
        self.items += 1;
        self.slots[index] = Slot::Full(item);
        Ok(cas)
    }

    /// Removes `key`; whether it was there (and live).
    pub fn delete(&mut self, key: &[u8], now_ns: u64) -> bool {
        if self.get(key, now_ns).is_none() {
            return false;
        }
        let (index, _) = self.find(key);
        self.remove_at(index);
        true
    }

    /// Appends (or prepends) to a live item's value; false if none.
    pub fn concat(
        &mut self,
        key: &[u8],
        data: &[u8],
        prepend: bool,
        now_ns: u64,
    ) -> Result<bool, Full> {
        let Some(item) = self.get(key, now_ns) else {
            return Ok(false);
        };
        let mut value = Vec::with_capacity(item.value.len() + data.len());
        if prepend {
            value.extend_from_slice(data);
            value.extend_from_slice(&item.value);
        } else {
            value.extend_from_slice(&item.value);
            value.extend_from_slice(data);
        }
        let (flags, expires) = (item.flags, item.expires_ns);
        self.set(key, value, flags, expires).map(|_| true)
    }

    /// Adds `delta` to (or subtracts it from, not below 0) a live item
    /// holding a decimal number: `Ok(Some(new))`, `Ok(None)` if there is
    /// no such item, `Err(NotANumber)` if it is not a number.
    pub fn incr(
        &mut self,
        key: &[u8],
        delta: u64,
        decrement: bool,
        now_ns: u64,
    ) -> Result<Option<u64>, NotANumber> {
        let cas = self.next_cas;
        let Some(item) = self.get_mut(key, now_ns) else {
            return Ok(None);
        };
        let current: u64 = core::str::from_utf8(&item.value)
            .ok()
            .map(str::trim_end)
            .and_then(|t| t.parse().ok())
            .ok_or(NotANumber)?;
        let new = if decrement {
            current.saturating_sub(delta)
        } else {
            current.wrapping_add(delta)
        };
        let digits = alloc::format!("{new}").into_bytes();
        let before = item.value.len();
        item.value = digits.into_boxed_slice();
        item.cas = cas;
        let after = item.value.len();
        self.bytes = self.bytes + after - before;
        self.next_cas += 1;
        Ok(Some(new))
    }

    /// Gives a live item a new expiry; whether there was one.
    pub fn touch(&mut self, key: &[u8], expires_ns: u64, now_ns: u64) -> bool {
        match self.get_mut(key, now_ns) {
            Some(item) => {
                item.expires_ns = expires_ns;
                true
            }
            None => false,
        }
    }

    /// Removes every item.
    pub fn flush(&mut self) {
        self.slots = vec![Slot::Empty; 64];
        self.items = 0;
        self.used = 0;
        self.bytes = 0;
    }
}

impl Store {
    /// Makes every item expire by `deadline_ns` (`flush_all` with a
    /// delay).
    pub fn flush_at(&mut self, deadline_ns: u64) {
        for slot in &mut self.slots {
            if let Slot::Full(item) = slot
                && (item.expires_ns == 0 || item.expires_ns > deadline_ns)
            {
                item.expires_ns = deadline_ns;
            }
        }
    }
}
