//! The hashtable experiment of the RedLeaf paper (OSDI 2020, section 6):
//! the same open-addressing table (linear probing, FNV-1a of the 8-byte
//! key, 8-byte keys and values, key 0 free) in C (`bench/c/hashtable.c`,
//! built with the system's `cc -O2`), in idiomatic Rust (safe indexing,
//! `Option` slots) and in C-style Rust (one array of pairs, unchecked
//! indexing, as the C), filled to 75 % at sizes from 2^12 to 2^26 slots,
//! then timed on lookups of keys that are all present.

use std::hint::black_box;

/// 64-bit FNV-1a of the key's 8 bytes (little endian), as the C does.
#[inline(always)]
pub fn fnv1a(key: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..8 {
        hash ^= (key >> (8 * i)) & 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Idiomatic Rust: safe code, a slot is `Option<(key, value)>`.
pub struct Idiomatic {
    slots: Vec<Option<(u64, u64)>>,
    mask: usize,
}

impl Idiomatic {
    pub fn new(slots: usize) -> Idiomatic {
        Idiomatic {
            slots: vec![None; slots],
            mask: slots - 1,
        }
    }

    pub fn insert(&mut self, key: u64, value: u64) {
        let mut i = fnv1a(key) as usize & self.mask;
        loop {
            match self.slots[i] {
                Some((k, _)) if k != key => i = (i + 1) & self.mask,
                _ => {
                    self.slots[i] = Some((key, value));
                    return;
                }
            }
        }
    }

    pub fn get(&self, key: u64) -> Option<u64> {
        let mut i = fnv1a(key) as usize & self.mask;
        loop {
            match self.slots[i] {
                Some((k, v)) if k == key => return Some(v),
                Some(_) => i = (i + 1) & self.mask,
                None => return None,
            }
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    value: u64,
}

/// C-style Rust: the C's layout and loop, indexing unchecked.
pub struct CStyle {
    entries: Vec<Entry>,
    mask: u64,
}

impl CStyle {
    pub fn new(slots: usize) -> CStyle {
        CStyle {
            entries: vec![Entry { key: 0, value: 0 }; slots],
            mask: slots as u64 - 1,
        }
    }

    pub fn insert(&mut self, key: u64, value: u64) {
        let mut i = fnv1a(key) & self.mask;
        // SAFETY: `i` is masked to below the length (a power of two).
        unsafe {
            while self.entries.get_unchecked(i as usize).key != 0
                && self.entries.get_unchecked(i as usize).key != key
            {
                i = (i + 1) & self.mask;
            }
            *self.entries.get_unchecked_mut(i as usize) = Entry { key, value };
        }
    }

    #[inline(always)]
    pub fn get(&self, key: u64) -> u64 {
        let mut i = fnv1a(key) & self.mask;
        loop {
            // SAFETY: as in `insert`.
            let entry = unsafe { self.entries.get_unchecked(i as usize) };
            if entry.key == key {
                return entry.value;
            }
            if entry.key == 0 {
                return 0;
            }
            i = (i + 1) & self.mask;
        }
    }
}

#[repr(C)]
struct CTable {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn c_table_new(slots: u64) -> *mut CTable;
    fn c_table_free(table: *mut CTable);
    fn c_table_insert(table: *mut CTable, key: u64, value: u64);
    fn c_table_lookups(table: *const CTable, keys: *const u64, n: u64) -> u64;
}

/// The C table, owned.
pub struct C(*mut CTable);

impl C {
    pub fn new(slots: usize) -> C {
        // SAFETY: the C allocates and returns null only on failure.
        let table = unsafe { c_table_new(slots as u64) };
        assert!(!table.is_null(), "the C table could not be allocated");
        C(table)
    }

    pub fn insert(&mut self, key: u64, value: u64) {
        // SAFETY: a live table.
        unsafe { c_table_insert(self.0, key, value) }
    }

    pub fn lookups(&self, keys: &[u64]) -> u64 {
        // SAFETY: a live table; `keys` is valid for its length.
        unsafe { c_table_lookups(self.0, keys.as_ptr(), keys.len() as u64) }
    }
}

impl Drop for C {
    fn drop(&mut self) {
        // SAFETY: allocated by `c_table_new`, freed once.
        unsafe { c_table_free(self.0) }
    }
}

/// Keys 1.. in a scrambled order (xorshift over a counter; never 0).
pub fn keys(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & !0xffff_ffff) | (i as u64 + 1)
        })
        .collect()
}

fn ticks() -> u64 {
    // SAFETY: see `harness::tsc`.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}

/// One size's result: ticks per lookup (medians over the runs) and the
/// lookups' checksum (the same for all three, or something is wrong).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub log2_slots: u32,
    pub c: f64,
    pub idiomatic: f64,
    pub c_style: f64,
    pub checksum: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Fills each table to 75 % of `1 << log2_slots` slots and times
/// `lookups` lookups of present keys, `runs` times in alternating order.
pub fn measure(log2_slots: u32, lookups: usize, runs: usize) -> Row {
    let slots = 1usize << log2_slots;
    let n = slots / 4 * 3;
    let all = keys(n, 0x9e37_79b9_7f4a_7c15 ^ u64::from(log2_slots));
    let mut c = C::new(slots);
    let mut idiomatic = Idiomatic::new(slots);
    let mut c_style = CStyle::new(slots);
    for (i, &k) in all.iter().enumerate() {
        c.insert(k, i as u64);
        idiomatic.insert(k, i as u64);
        c_style.insert(k, i as u64);
    }
    // Lookups in an order unrelated to insertion (cache misses at large
    // sizes, as in the paper).
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ u64::from(log2_slots);
    let probe: Vec<u64> = (0..lookups)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            all[(x % n as u64) as usize]
        })
        .collect();
    let (mut tc, mut ti, mut ts) = (Vec::new(), Vec::new(), Vec::new());
    let mut sums = [0u64; 3];
    for run in 0..runs {
        let order: [usize; 3] = if run % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for v in order {
            let start = ticks();
            let sum = match v {
                0 => c.lookups(black_box(&probe)),
                1 => black_box(&probe)
                    .iter()
                    .map(|&k| idiomatic.get(k).unwrap_or(0))
                    .fold(0u64, u64::wrapping_add),
                _ => black_box(&probe)
                    .iter()
                    .map(|&k| c_style.get(k))
                    .fold(0u64, u64::wrapping_add),
            };
            let per = (ticks() - start) as f64 / lookups as f64;
            sums[v] = black_box(sum);
            match v {
                0 => tc.push(per),
                1 => ti.push(per),
                _ => ts.push(per),
            }
        }
    }
    assert!(
        sums[0] == sums[1] && sums[1] == sums[2],
        "the three tables disagree: {sums:?}"
    );
    Row {
        log2_slots,
        c: median(tc),
        idiomatic: median(ti),
        c_style: median(ts),
        checksum: sums[0],
    }
}
