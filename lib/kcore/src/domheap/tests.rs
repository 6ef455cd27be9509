extern crate std;

use alloc::vec::Vec;
use std::collections::BTreeMap;

use super::*;

const BASE: u64 = 0x1_0000_0000;

/// Records mapped pages; refuses beyond `budget` pages.
struct FakePages {
    mapped: Vec<(u64, usize)>,
    budget: usize,
}

impl FakePages {
    fn new(budget: usize) -> FakePages {
        FakePages {
            mapped: Vec::new(),
            budget,
        }
    }
    fn total(&self) -> usize {
        self.mapped.iter().map(|m| m.1).sum()
    }
}

impl PageSource for FakePages {
    fn map(&mut self, at: u64, pages: usize) -> bool {
        if self.total() + pages > self.budget {
            return false;
        }
        if let Some(&(last, n)) = self.mapped.last() {
            assert_eq!(
                at,
                last + n as u64 * PAGE_SIZE,
                "heap must grow contiguously"
            );
        }
        self.mapped.push((at, pages));
        true
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn classes_satisfy_size_and_alignment() {
    for size in 1..=2048 {
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048] {
            if let Some(class) = class_for(size, align) {
                assert!(CLASSES[class] >= size);
                assert!(
                    class_alignment(CLASSES[class]) >= align,
                    "size {size} align {align}"
                );
            }
        }
    }
    assert_eq!(class_for(64, 8).map(|c| CLASSES[c]), Some(64));
    assert_eq!(class_for(40, 8).map(|c| CLASSES[c]), Some(48));
    assert_eq!(class_for(40, 32).map(|c| CLASSES[c]), Some(64));
    assert_eq!(class_for(2049, 8), None);
    assert_eq!(class_for(16, 4096), None);
}

/// 200k random operations against a model: no overlap, alignment honoured,
/// everything inside the mapped range, stats exact, every free accepted.
#[test]
fn random_operations_match_a_model() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 32));
    let mut pages = FakePages::new(usize::MAX);
    let mut live: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for step in 0..200_000 {
        if live.is_empty() || rng.next() % 100 < 55 {
            let size = match rng.next() % 10 {
                0 => (rng.next() % 20_000) as usize + 1,
                1..=3 => (rng.next() % 2048) as usize + 1,
                _ => (rng.next() % 128) as usize + 1,
            };
            let align = 1usize << (rng.next() % 13);
            let address = heap.alloc(size, align, &mut pages).expect("allocation");
            assert_eq!(
                address % align as u64,
                0,
                "step {step}: {address:#x} not aligned to {align}"
            );
            let (start, end) = heap.mapped_range();
            assert!(
                address >= start && address + size as u64 <= end,
                "outside the mapped range"
            );
            if let Some((&prev, &(prev_size, _))) = live.range(..=address).next_back() {
                assert!(
                    prev + prev_size as u64 <= address,
                    "step {step}: overlaps {prev:#x}"
                );
            }
            if let Some((&next, _)) = live.range(address..).next() {
                assert!(
                    address + size as u64 <= next,
                    "step {step}: overlaps {next:#x}"
                );
            }
            live.insert(address, (size, align));
        } else {
            let index = (rng.next() % live.len() as u64) as usize;
            let (&address, &(size, align)) = live.iter().nth(index).unwrap();
            heap.free(address, size, align)
                .unwrap_or_else(|e| panic!("step {step}: {e}"));
            live.remove(&address);
        }
        assert_eq!(heap.stats().live_allocations, live.len());
    }
    for (&address, &(size, align)) in &live {
        heap.free(address, size, align).unwrap();
    }
    assert_eq!(heap.stats().bytes_in_use, 0);
    assert_eq!(heap.stats().live_allocations, 0);
    assert_eq!(heap.stats().mapped_pages, pages.total());
}

#[test]
fn bad_frees_are_errors_and_change_nothing() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 32));
    let mut pages = FakePages::new(usize::MAX);
    let a = heap.alloc(64, 8, &mut pages).unwrap();
    let big = heap.alloc(10_000, 8, &mut pages).unwrap();
    let before = heap.stats();
    assert_eq!(
        heap.free(BASE - 8, 64, 8),
        Err(HeapError::Foreign(BASE - 8))
    );
    assert_eq!(heap.free(a + 8, 64, 8), Err(HeapError::NotAllocated(a + 8)));
    assert_eq!(heap.free(a, 2000, 8), Err(HeapError::WrongSize(a)));
    assert_eq!(heap.free(big, 64, 8), Err(HeapError::WrongSize(big)));
    assert_eq!(heap.free(big, 20_000, 8), Err(HeapError::WrongSize(big)));
    assert_eq!(
        heap.free(big + 4096, 10_000, 8),
        Err(HeapError::NotAllocated(big + 4096))
    );
    assert_eq!(heap.stats(), before);
    heap.free(a, 64, 8).unwrap();
    assert_eq!(
        heap.free(a, 64, 8),
        Err(HeapError::NotAllocated(a)),
        "double free"
    );
    heap.free(big, 10_000, 8).unwrap();
    assert_eq!(
        heap.free(big, 10_000, 8),
        Err(HeapError::NotAllocated(big)),
        "double free of a large object"
    );
    assert_eq!(heap.stats().live_allocations, 0);
}

#[test]
fn exhaustion_returns_none_and_the_heap_stays_usable() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 32));
    let mut pages = FakePages::new(8);
    let mut got = Vec::new();
    while let Some(a) = heap.alloc(1000, 8, &mut pages) {
        got.push(a);
    }
    assert!(!got.is_empty());
    assert!(heap.alloc(100_000, 8, &mut pages).is_none());
    heap.free(got.pop().unwrap(), 1000, 8).unwrap();
    assert!(
        heap.alloc(1000, 8, &mut pages).is_some(),
        "freed object is reused"
    );
    // The window limit bounds growth as well.
    let mut small = DomainHeap::new(BASE, BASE + 4 * PAGE_SIZE);
    let mut unlimited = FakePages::new(usize::MAX);
    assert!(
        small
            .alloc(5 * PAGE_SIZE as usize, 8, &mut unlimited)
            .is_none()
    );
    assert!(
        small
            .alloc(4 * PAGE_SIZE as usize, 8, &mut unlimited)
            .is_some()
    );
}

#[test]
fn steady_state_does_not_grow() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 32));
    let mut pages = FakePages::new(usize::MAX);
    for _ in 0..3 {
        let objects: Vec<u64> = (0..1000)
            .map(|i| heap.alloc(16 + i % 3000, 8, &mut pages).unwrap())
            .collect();
        for (i, a) in objects.into_iter().enumerate() {
            heap.free(a, 16 + i % 3000, 8).unwrap();
        }
    }
    let mapped = heap.stats().mapped_pages;
    for _ in 0..20 {
        let objects: Vec<u64> = (0..1000)
            .map(|i| heap.alloc(16 + i % 3000, 8, &mut pages).unwrap())
            .collect();
        for (i, a) in objects.into_iter().enumerate() {
            heap.free(a, 16 + i % 3000, 8).unwrap();
        }
    }
    assert_eq!(
        heap.stats().mapped_pages,
        mapped,
        "a steady alloc/free cycle kept growing the heap"
    );
}

#[test]
fn large_aligned_allocations() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 32));
    let mut pages = FakePages::new(usize::MAX);
    let a = heap.alloc(100, 8, &mut pages).unwrap();
    let b = heap.alloc(8192, 65536, &mut pages).unwrap();
    assert_eq!(b % 65536, 0);
    heap.free(b, 8192, 65536).unwrap();
    let c = heap.alloc(4096, 4096, &mut pages).unwrap();
    assert!(c < b + 8192, "the gap before the aligned run is reused");
    heap.free(a, 100, 8).unwrap();
    heap.free(c, 4096, 4096).unwrap();
}

#[test]
fn reciprocal_division_is_exact() {
    for (class, &size) in CLASSES.iter().enumerate() {
        for offset in 0..(4 * PAGE_SIZE) {
            assert_eq!(
                (offset * RECIPROCAL[class]) >> 32,
                offset / size as u64,
                "class {size}, offset {offset}"
            );
        }
    }
}

#[test]
fn core_cache_round_trips_and_drains_back() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 32));
    let mut pages = FakePages::new(usize::MAX);
    let mut cache = CoreCache::new();
    cache.drain(7, |_, _, _, _| panic!("empty cache released something"));
    let a = heap.alloc(64, 8, &mut pages).unwrap();
    assert!(cache.free(7, a, 64, 8), "room in the cache");
    assert!(
        !cache.free(8, a + 64, 64, 8),
        "another owner's object must not enter"
    );
    assert_eq!(cache.alloc(8, 64, 8), None, "another owner gets nothing");
    assert_eq!(cache.alloc(7, 49, 8), Some(a), "same class (64) comes back");
    assert_eq!(cache.alloc(7, 64, 8), None);
    // Fill one class beyond its depth: the rest goes to the heap.
    let objects: Vec<u64> = (0..DEPTH + 5)
        .map(|_| heap.alloc(64, 8, &mut pages).unwrap())
        .collect();
    let kept = objects.iter().filter(|&&o| cache.free(7, o, 64, 8)).count();
    assert_eq!(kept, DEPTH);
    for &o in &objects[DEPTH..] {
        heap.free(o, 64, 8).unwrap();
    }
    heap.free(a, 64, 8).unwrap();
    let mut released = Vec::new();
    cache.drain(9, |owner, address, size, align| {
        assert_eq!(owner, 7);
        released.push(address);
        heap.free(address, size, align).unwrap();
    });
    assert_eq!(released.len(), DEPTH);
    assert!(cache.is_empty());
    assert_eq!(cache.owner(), 9);
    assert_eq!(heap.stats().live_allocations, 0, "every object went back");
}

#[test]
fn core_caches_keep_several_owners_apart() {
    let mut caches = CoreCaches::new();
    let alive = |_: u32| true;
    // A caller and a callee allocating in turn both stay cached.
    assert!(caches.free(7, 0x1000, 64, 8, alive));
    assert!(caches.free(8, 0x2000, 64, 8, alive));
    assert_eq!(caches.alloc(7, 64, 8), Some(0x1000));
    assert_eq!(caches.alloc(8, 64, 8), Some(0x2000));
    assert_eq!(caches.alloc(7, 64, 8), None, "each owner gets its own");
    assert_eq!(caches.alloc(0, 64, 8), None, "the kernel is never cached");
    assert!(!caches.free(0, 0x3000, 64, 8, alive));
}

#[test]
fn core_caches_never_evict_a_live_owners_objects() {
    let mut caches = CoreCaches::new();
    let alive = |_: u32| true;
    for owner in 1..=WAYS as u32 {
        assert!(caches.free(owner, u64::from(owner) * 0x1000, 64, 8, alive));
    }
    assert!(
        !caches.free(99, 0x9000, 64, 8, alive),
        "every way is a live owner's with objects: straight to the heap"
    );
    for owner in 1..=WAYS as u32 {
        assert_eq!(caches.len_of(owner), 1, "owner {owner} kept its object");
    }
    // Once one of them is empty, its way can be taken over.
    assert_eq!(caches.alloc(2, 64, 8), Some(0x2000));
    assert!(caches.free(99, 0x9000, 64, 8, alive));
    assert_eq!(caches.alloc(99, 64, 8), Some(0x9000));
    assert!(!caches.owners().contains(&2));
}

#[test]
fn core_caches_drop_a_dead_owners_objects_when_taking_its_way() {
    let mut caches = CoreCaches::new();
    for owner in 1..=WAYS as u32 {
        assert!(caches.free(owner, u64::from(owner) * 0x1000, 64, 8, |_| true));
    }
    // Owner 3 died: its way is taken, and its object is not handed to the
    // new owner (it belonged to a heap that is gone).
    assert!(caches.free(42, 0x42000, 64, 8, |o| o != 3));
    assert_eq!(caches.len_of(3), 0);
    assert_eq!(caches.alloc(42, 64, 8), Some(0x42000));
    assert_eq!(caches.alloc(42, 64, 8), None, "nothing of owner 3's");
}

/// Records each growth step (one `map` call) as a page range.
#[derive(Default)]
struct StepRecorder {
    steps: Vec<(u64, u64)>,
}

impl PageSource for StepRecorder {
    fn map(&mut self, at: u64, pages: usize) -> bool {
        self.steps.push((at, at + pages as u64 * PAGE_SIZE));
        true
    }
}

impl StepRecorder {
    fn within_one_step(&self, address: u64, size: usize) -> bool {
        self.steps
            .iter()
            .any(|&(start, end)| start <= address && address + size as u64 <= end)
    }
}

#[test]
fn contiguous_heap_never_merges_runs_across_growth_steps() {
    const BASE: u64 = 0x4000_0000;
    let mut source = StepRecorder::default();
    let mut heap = DomainHeap::new_contiguous(BASE, BASE + (1 << 30));
    let size = 4 * PAGE_SIZE as usize;
    let a = heap.alloc(size, 4096, &mut source).unwrap();
    let b = heap.alloc(size, 4096, &mut source).unwrap();
    assert_eq!(b, a + size as u64, "two steps, adjacent in the window");
    heap.free(a, size, 4096).unwrap();
    heap.free(b, size, 4096).unwrap();
    let c = heap.alloc(2 * size, 4096, &mut source).unwrap();
    assert!(
        source.within_one_step(c, 2 * size),
        "{c:#x} spans two steps"
    );
    // Each step's own pages are still reused.
    assert_eq!(heap.alloc(size, 4096, &mut source), Some(a));
    assert_eq!(heap.alloc(size, 4096, &mut source), Some(b));

    // A heap that may merge does: the two runs become one.
    let mut source = StepRecorder::default();
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 30));
    let a = heap.alloc(size, 4096, &mut source).unwrap();
    let b = heap.alloc(size, 4096, &mut source).unwrap();
    heap.free(a, size, 4096).unwrap();
    heap.free(b, size, 4096).unwrap();
    assert_eq!(heap.alloc(2 * size, 4096, &mut source), Some(a));
}

#[test]
fn contiguous_heap_keeps_every_object_in_one_step_under_random_load() {
    const BASE: u64 = 0x8000_0000;
    let mut source = StepRecorder::default();
    let mut heap = DomainHeap::new_contiguous(BASE, BASE + (1 << 34));
    let mut live: Vec<(u64, usize, usize)> = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.len() > 40 || (x.is_multiple_of(3) && !live.is_empty()) {
            let (address, size, align) = live.swap_remove((x >> 8) as usize % live.len());
            heap.free(address, size, align).unwrap();
            continue;
        }
        // Mostly large objects (1..24 pages, some page-aligned beyond a
        // page), some small ones (slabs are steps' pages too).
        let (size, align) = match x % 5 {
            0 => (((x >> 16) % 2048 + 1) as usize, 8),
            1 => (((x >> 16) % 24 + 1) as usize * 4096, 16384),
            _ => (((x >> 16) % (24 * 4096) + 2049) as usize, 4096),
        };
        let address = heap.alloc(size, align, &mut source).unwrap();
        assert!(
            source.within_one_step(address, size),
            "{size} bytes at {address:#x} span a step boundary"
        );
        assert_eq!(address % align as u64, 0);
        live.push((address, size, align));
    }
}

/// The bookkeeping the heap reports grows with the pages it maps (what the
/// kernel's fault campaign subtracts as the pool's, not a leak) and stays
/// when they are freed (kept for reuse).
#[test]
fn bookkeeping_grows_with_the_pool_and_is_kept() {
    let mut heap = DomainHeap::new(BASE, BASE + (1 << 30));
    let mut pages = FakePages::new(1 << 16);
    let empty = heap.bookkeeping_bytes();
    let size = 256 * PAGE_SIZE as usize;
    let address = heap.alloc(size, 8, &mut pages).expect("room for 256 pages");
    let grown = heap.bookkeeping_bytes();
    assert!(
        grown >= empty + 256 * core::mem::size_of::<Page>(),
        "{empty} -> {grown} B for 256 pages"
    );
    heap.free(address, size, 8).expect("free");
    assert!(heap.bookkeeping_bytes() >= grown, "the bookkeeping shrank");
}
