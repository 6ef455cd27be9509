use super::*;
use std::collections::BTreeSet;
use std::vec;
use std::vec::Vec;

const MIB: u64 = 1 << 20;
const TOP_FRAME: u64 = u64::MAX - 0xfff;

fn storage(base: u64, limit: u64) -> Vec<u64> {
    vec![0xdead_beef; FrameAllocator::storage_words(base, limit)]
}

#[test]
fn construction_checks_storage_and_range() {
    let mut s = storage(0, 64 * MIB);
    assert_eq!(s.len(), 2 * 16384 / 64);
    let short = s.len() - 1;
    let err = FrameAllocator::new(&mut s[..short], 0, 64 * MIB).unwrap_err();
    assert_eq!(
        err,
        FrameError::StorageTooSmall {
            needed: short + 1,
            given: short
        }
    );
    assert_eq!(
        FrameAllocator::new(&mut s, 2 * MIB, MIB).unwrap_err(),
        FrameError::InvalidRange {
            start: 2 * MIB,
            end: MIB
        }
    );
    let a = FrameAllocator::new(&mut s, 0, 64 * MIB).unwrap();
    assert_eq!((a.free_count(), a.total_count()), (0, 0));
    // An empty range needs no storage at all.
    let mut none: [u64; 0] = [];
    let mut a = FrameAllocator::new(&mut none, 0x1800, 0x1fff).unwrap();
    assert_eq!(a.add_free_region(0, u64::MAX), Ok(0));
    assert_eq!(a.alloc(), None);
}

#[test]
fn exhaustion_then_reuse() {
    let mut s = storage(MIB, 2 * MIB);
    let mut a = FrameAllocator::new(&mut s, MIB, 2 * MIB).unwrap();
    assert_eq!(a.add_free_region(0, 4 * MIB), Ok(256));
    let mut seen = BTreeSet::new();
    while let Some(f) = a.alloc() {
        assert!(f % PAGE_SIZE == 0 && (MIB..2 * MIB).contains(&f));
        assert!(seen.insert(f), "frame {f:#x} handed out twice");
    }
    assert_eq!((seen.len(), a.free_count(), a.total_count()), (256, 0, 256));
    assert_eq!(a.alloc_contiguous(1, 1), None);
    a.free(MIB + 0x5000).unwrap();
    assert_eq!(a.alloc(), Some(MIB + 0x5000));
    // The hint wraps around to find frames below it.
    a.free(MIB).unwrap();
    assert_eq!(a.alloc(), Some(MIB));
}

#[test]
fn bad_frees_are_errors() {
    let mut s = storage(0, 16 * MIB);
    let mut a = FrameAllocator::new(&mut s, 0, 16 * MIB).unwrap();
    a.add_free_region(MIB, 8 * MIB).unwrap();
    let f = a.alloc().unwrap();
    assert_eq!(a.free(f + 8), Err(FrameError::Misaligned(f + 8)));
    a.free(f).unwrap();
    assert_eq!(a.free(f), Err(FrameError::DoubleFree(f)));
    assert_eq!(a.free(16 * MIB), Err(FrameError::OutOfRange(16 * MIB)));
    assert_eq!(a.free(TOP_FRAME), Err(FrameError::OutOfRange(TOP_FRAME)));
    assert_eq!(a.free(0x1000), Err(FrameError::NotManaged(0x1000)));
    assert_eq!(a.free(9 * MIB), Err(FrameError::NotManaged(9 * MIB)));
    assert_eq!(a.free_count(), a.total_count());

    let mut s = storage(MIB, 2 * MIB);
    let mut a = FrameAllocator::new(&mut s, MIB, 2 * MIB).unwrap();
    assert_eq!(a.free(0), Err(FrameError::OutOfRange(0)));
}

#[test]
fn reserved_ranges_are_never_handed_out() {
    let mut s = storage(0, 16 * MIB);
    let mut a = FrameAllocator::new(&mut s, 0, 16 * MIB).unwrap();
    a.add_free_region(0, 16 * MIB).unwrap();
    assert_eq!(a.reserve(0, MIB), Ok(256));
    // Unaligned: both frames it touches go.
    assert_eq!(a.reserve(0x20_0800, 0x20_1001), Ok(2));
    assert_eq!(a.reserve(0x20_0800, 0x20_1001), Ok(0));
    assert_eq!(a.reserve(15 * MIB, u64::MAX), Ok(256));
    assert_eq!(
        a.reserve(5, 4),
        Err(FrameError::InvalidRange { start: 5, end: 4 })
    );
    assert_eq!(a.total_count(), 4096 - 256 - 2 - 256);
    let reserved = |f: u64| f < MIB || (0x20_0000..0x20_2000).contains(&f) || f >= 15 * MIB;
    let mut n = 0;
    while let Some(f) = a.alloc() {
        assert!(!reserved(f), "reserved frame {f:#x} handed out");
        n += 1;
    }
    assert_eq!(n, a.total_count());
    // Re-adding does not resurrect allocated frames as free.
    assert_eq!(a.add_free_region(MIB, 2 * MIB), Ok(0));
    assert_eq!(a.free_count(), 0);
    // ... but does bring reserved ones back.
    assert_eq!(a.add_free_region(0x20_0000, 0x20_2000), Ok(2));
    assert_eq!(a.free_count(), 2);
}

#[test]
fn reserving_an_allocated_frame_withdraws_it() {
    let mut s = storage(0, MIB);
    let mut a = FrameAllocator::new(&mut s, 0, MIB).unwrap();
    a.add_free_region(0, MIB).unwrap();
    let f = a.alloc().unwrap();
    assert_eq!(a.reserve(f, f + PAGE_SIZE), Ok(1));
    assert_eq!((a.free_count(), a.total_count()), (255, 255));
    assert_eq!(a.free(f), Err(FrameError::NotManaged(f)));
}

#[test]
fn regions_are_rounded_inward_and_clamped() {
    let mut s = storage(0x3000, 0x10_0000);
    let mut a = FrameAllocator::new(&mut s, 0x2800, 0x10_0800).unwrap();
    assert_eq!(a.add_free_region(0x1, 0x5fff), Ok(2)); // 0x3000 and 0x4000
    assert_eq!(a.add_free_region(0x8001, 0x9000), Ok(0));
    assert_eq!(a.add_free_region(0xf_f000, u64::MAX), Ok(1));
    assert_eq!(
        a.add_free_region(9, 8),
        Err(FrameError::InvalidRange { start: 9, end: 8 })
    );
    let mut got: Vec<u64> = core::iter::from_fn(|| a.alloc()).collect();
    got.sort();
    assert_eq!(got, [0x3000, 0x4000, 0xf_f000]);
}

#[test]
fn contiguous_runs_respect_alignment() {
    // The base is deliberately not aligned to the requested alignment.
    let mut s = storage(0x3000, 4 * MIB);
    let mut a = FrameAllocator::new(&mut s, 0x3000, 4 * MIB).unwrap();
    a.add_free_region(0, 4 * MIB).unwrap();
    let run = a.alloc_contiguous(8, 16).unwrap();
    assert_eq!(run % (16 * PAGE_SIZE), 0);
    assert_eq!(run, 0x10000);
    let big = a.alloc_contiguous(256, 256).unwrap();
    assert_eq!(big, MIB);
    assert_eq!(a.free_count(), a.total_count() - 8 - 256);
    for k in 0..8 {
        assert_eq!(a.free(run + k * PAGE_SIZE), Ok(()));
    }
    assert_eq!(a.alloc_contiguous(0, 1), None);
    assert_eq!(a.alloc_contiguous(1, 0), None);
    assert_eq!(a.alloc_contiguous(1, 3), None);
    assert_eq!(a.alloc_contiguous(usize::MAX, 1), None);
    assert_eq!(a.alloc_contiguous(1024, 1), None);
    assert_eq!(a.alloc_contiguous(1, 1 << 40), None);
}

#[test]
fn contiguous_finds_the_only_hole_that_fits() {
    let mut s = storage(0, MIB);
    let mut a = FrameAllocator::new(&mut s, 0, MIB).unwrap();
    a.add_free_region(0, MIB).unwrap();
    let all: Vec<u64> = core::iter::from_fn(|| a.alloc()).collect();
    assert_eq!(all.len(), 256);
    // Free every other frame, plus one run of five at frame 200.
    for &f in all.iter().step_by(2) {
        a.free(f).unwrap();
    }
    for f in [201u64, 203] {
        a.free(f * PAGE_SIZE).unwrap();
    }
    assert_eq!(a.alloc_contiguous(6, 1), None);
    assert_eq!(a.alloc_contiguous(5, 1), Some(200 * PAGE_SIZE));
    assert_eq!(a.alloc_contiguous(2, 1), None);
    assert_eq!(a.alloc_contiguous(1, 4), Some(0));
}

#[test]
fn free_contiguous_is_all_or_nothing() {
    let mut s = storage(0, MIB);
    let mut a = FrameAllocator::new(&mut s, 0, MIB).unwrap();
    a.add_free_region(0, MIB).unwrap();
    let run = a.alloc_contiguous(4, 4).unwrap();
    a.free(run + 2 * PAGE_SIZE).unwrap();
    let before = a.free_count();
    assert_eq!(
        a.free_contiguous(run, 4),
        Err(FrameError::DoubleFree(run + 2 * PAGE_SIZE))
    );
    assert_eq!(a.free_count(), before);
    assert_eq!(a.free_contiguous(run, 2), Ok(()));
    assert_eq!(a.free_contiguous(run + 3 * PAGE_SIZE, 1), Ok(()));
    assert_eq!(a.free_count(), a.total_count());
    assert_eq!(a.free_contiguous(run, 0), Ok(()));
    assert_eq!(
        a.free_contiguous(TOP_FRAME, 3),
        Err(FrameError::OutOfRange(TOP_FRAME))
    );
}

#[test]
fn errors_display() {
    let errors = [
        FrameError::StorageTooSmall {
            needed: 2,
            given: 1,
        },
        FrameError::InvalidRange { start: 2, end: 1 },
        FrameError::Misaligned(1),
        FrameError::OutOfRange(1),
        FrameError::NotManaged(1),
        FrameError::DoubleFree(0x5000),
    ];
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        FrameError::DoubleFree(0x5000).to_string(),
        "frame 0x5000 freed twice"
    );
}

/// Random operations against a simple model: a set of free frames.
#[test]
fn randomised_against_a_model() {
    let mut seed = 0x0123_4567_89ab_cdefu64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (base, limit) = (0x10_0000u64, 0x50_0000u64);
    let mut s = storage(base, limit);
    let mut a = FrameAllocator::new(&mut s, base, limit).unwrap();
    let mut free = BTreeSet::new();
    let mut used = BTreeSet::new();
    // Usable: two regions with a reserved hole.
    a.add_free_region(0x10_0000, 0x30_0000).unwrap();
    a.add_free_region(0x38_0000, 0x60_0000).unwrap();
    a.reserve(0x20_0000, 0x20_8000).unwrap();
    for f in (base..limit).step_by(PAGE_SIZE as usize) {
        let usable = !(0x30_0000..0x38_0000).contains(&f) && !(0x20_0000..0x20_8000).contains(&f);
        if usable {
            free.insert(f);
        }
    }
    for step in 0..20_000 {
        match rand(10) {
            0..=3 => match a.alloc() {
                Some(f) => {
                    assert!(free.remove(&f), "step {step}: {f:#x} was not free");
                    used.insert(f);
                }
                None => assert!(free.is_empty()),
            },
            4 => {
                let (count, align) = (1 + rand(12) as usize, 1usize << rand(5));
                if let Some(f) = a.alloc_contiguous(count, align) {
                    assert_eq!(f % (align as u64 * PAGE_SIZE), 0);
                    for k in 0..count as u64 {
                        assert!(
                            free.remove(&(f + k * PAGE_SIZE)),
                            "step {step}: run overlaps"
                        );
                        used.insert(f + k * PAGE_SIZE);
                    }
                }
            }
            5..=8 if !used.is_empty() => {
                let pick = *used.iter().nth(rand(used.len() as u64) as usize).unwrap();
                a.free(pick).unwrap();
                used.remove(&pick);
                free.insert(pick);
            }
            _ => {
                let f = (base - 0x2000 + rand(limit - base + 0x4000)) & !0xfff;
                let expect = if f < base || f >= limit {
                    Err(FrameError::OutOfRange(f))
                } else if free.contains(&f) {
                    Err(FrameError::DoubleFree(f))
                } else if used.contains(&f) {
                    Ok(())
                } else {
                    Err(FrameError::NotManaged(f))
                };
                assert_eq!(a.free(f), expect, "step {step}: free({f:#x})");
                if used.remove(&f) {
                    free.insert(f);
                }
            }
        }
        assert_eq!(a.free_count(), free.len());
        assert_eq!(a.total_count(), free.len() + used.len());
    }
}
