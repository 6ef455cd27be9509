//! Timer wheel tests against a simple model.

extern crate std;

use alloc::vec::Vec;

use crate::wheel::TimerWheel;

const MS: u64 = 1_000_000;

fn fired_until(wheel: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
    let mut out = Vec::new();
    wheel.advance(now, |p| out.push(p));
    out
}

#[test]
fn fires_in_deadline_order_never_early() {
    let mut wheel = TimerWheel::new(MS, 0);
    for (i, d) in [30u64, 5, 70, 1, 5].iter().enumerate() {
        wheel.insert(d * MS, i as u32);
    }
    assert_eq!(fired_until(&mut wheel, 4 * MS), std::vec![3]);
    let mut at5 = fired_until(&mut wheel, 5 * MS);
    at5.sort();
    assert_eq!(at5, std::vec![1, 4]);
    assert!(fired_until(&mut wheel, 29 * MS).is_empty());
    assert_eq!(fired_until(&mut wheel, 69 * MS), std::vec![0]);
    assert_eq!(fired_until(&mut wheel, 70 * MS), std::vec![2]);
    assert!(wheel.is_empty());
}

#[test]
fn cancel_removes_and_stale_keys_do_nothing() {
    let mut wheel = TimerWheel::new(MS, 0);
    let a = wheel.insert(10 * MS, 1);
    let b = wheel.insert(10 * MS, 2);
    assert_eq!(wheel.cancel(a), Some(1));
    assert_eq!(wheel.cancel(a), None);
    assert_eq!(fired_until(&mut wheel, 10 * MS), std::vec![2]);
    assert_eq!(wheel.cancel(b), None, "fired timers cannot be cancelled");
    let c = wheel.insert(20 * MS, 3);
    assert_eq!(
        wheel.cancel(a),
        None,
        "a stale key must not cancel a reused entry"
    );
    assert_eq!(wheel.cancel(c), Some(3));
}

/// Deadlines across every level and the overflow list, checked against a
/// sorted model while time advances in uneven steps.
#[test]
fn cascades_across_levels_like_a_sorted_model() {
    let mut wheel = TimerWheel::new(MS, 0);
    let mut model: Vec<(u64, u32)> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..3000u32 {
        let scale = [64u64, 4096, 262_144, 16_777_216, 40_000_000][i as usize % 5];
        let d = (next() % scale + 1) * MS;
        wheel.insert(d, i);
        model.push((d, i));
    }
    let mut now = 0;
    let end = 40_000_001 * MS;
    let mut fired = 0;
    while now < end {
        now += (next() % 5_000_000 + 1) * MS;
        let got = fired_until(&mut wheel, now);
        for p in &got {
            let (d, _) = model.iter().find(|(_, q)| q == p).unwrap();
            assert!(
                *d <= now,
                "timer {p} fired at {now} before its deadline {d}"
            );
        }
        fired += got.len();
        let due = model.iter().filter(|(d, _)| *d <= now).count();
        assert_eq!(fired, due, "at {now}: fired {fired}, due {due}");
    }
    assert!(wheel.is_empty());
}

#[test]
fn next_deadline_is_a_lower_bound() {
    let mut wheel = TimerWheel::new(MS, 0);
    assert_eq!(wheel.next_deadline(), None);
    wheel.insert(100 * MS, 1);
    wheel.insert(7_000 * MS, 2);
    let bound = wheel.next_deadline().unwrap();
    assert!(bound <= 100 * MS && bound > 0);
    fired_until(&mut wheel, 100 * MS);
    let bound = wheel.next_deadline().unwrap();
    assert!(bound <= 7_000 * MS && bound > 100 * MS);
}

#[test]
fn advancing_an_empty_wheel_jumps() {
    let mut wheel: TimerWheel<u32> = TimerWheel::new(MS, 0);
    // Ten years of milliseconds: must not be walked tick by tick.
    let later = 10 * 365 * 24 * 3600 * 1000 * MS;
    wheel.advance(later, |_| {});
    wheel.insert(later + 5 * MS, 1);
    assert!(fired_until(&mut wheel, later + 4 * MS).is_empty());
    assert_eq!(fired_until(&mut wheel, later + 5 * MS), std::vec![1]);
}

/// With only far (overflow-list) timers, `next_deadline` is still a lower
/// bound (it used to be up to one top-level slot, 262 s, late).
#[test]
fn next_deadline_is_a_lower_bound_for_overflow_entries() {
    let mut wheel: TimerWheel<u32> = TimerWheel::new(MS, 0);
    wheel.advance(((1 << 18) - 1) * MS, |_| {});
    let deadline = (1u64 << 24) * MS;
    wheel.insert(deadline, 1);
    let bound = wheel.next_deadline().unwrap();
    assert!(
        bound <= deadline,
        "next_deadline {bound} is after the only deadline {deadline}"
    );
    assert!(bound > ((1 << 18) - 1) * MS);
}

#[test]
fn retain_removes_only_what_it_rejects() {
    let mut wheel = TimerWheel::new(MS, 0);
    for i in 0..200u32 {
        wheel.insert(u64::from(i % 50 + 1) * MS * 100, i);
    }
    assert_eq!(wheel.retain(|&p| p % 3 != 0), 67);
    assert_eq!(wheel.len(), 133);
    let mut fired = fired_until(&mut wheel, 10_000 * MS);
    fired.sort_unstable();
    let expected: Vec<u32> = (0..200).filter(|p| p % 3 != 0).collect();
    assert_eq!(fired, expected, "the rest still fire, once each");
    assert!(wheel.is_empty());
}

/// A wheel made with room for N timers holds N at once without allocating
/// (so an executor's memory does not creep with its record of pending
/// timers: the fault campaign's exact account of the kernel heap).
#[test]
fn a_reserved_wheel_holds_its_capacity_without_growing() {
    let mut wheel: TimerWheel<u32> = TimerWheel::with_capacity(MS, 0, 256);
    let reserved = wheel.capacity();
    assert!(reserved >= 256);
    let keys: Vec<_> = (0..256)
        .map(|i| wheel.insert(MS * (1 + i as u64), i))
        .collect();
    assert_eq!(wheel.capacity(), reserved);
    for key in keys {
        assert!(wheel.cancel(key).is_some());
    }
    assert_eq!(wheel.capacity(), reserved);
}
