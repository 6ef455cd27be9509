//! Host tests over the system allocator. The registry is global, so each
//! test uses its own owner slots, and tests that read global counters hold
//! `SERIAL`.

extern crate std;

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::vec::Vec;

/// Hands over to `owner` (what a proxy does with a call's arguments).
fn to(owner: crate::Owner) -> crate::Transfer {
    // SAFETY: the tests move what they give.
    unsafe { crate::Transfer::new(owner) }
}

use crate::host_kit::{HEAP, owner, set_core};
use crate::registry;
use crate::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn as_owner(owner: Owner) {
    install_backend(&HEAP);
    crate::host_kit::set_current(owner);
}

/// The kernel's reclaim of a dead incarnation, as the tests use it.
fn reclaim(owner: Owner) -> (usize, usize) {
    // SAFETY: each test uses slots of its own and calls this only for an
    // owner whose objects it no longer uses (the "dead" domain's handles
    // are forgotten).
    unsafe { registry::reclaim(owner) }
}

/// The executor's batch, as the tests play it on a thread of their own.
fn enter_batch() {
    // SAFETY: paired with `leave_batch` on the same thread, which plays
    // one core and is the only one using its index.
    unsafe { registry::enter_batch() }
}

fn leave_batch() {
    // SAFETY: see `enter_batch`.
    unsafe { registry::leave_batch() }
}

/// A value whose drops are counted (and which carries a payload).
struct Tracked(&'static AtomicUsize, #[allow(dead_code)] u64);
// SAFETY: test-only: its reference is to a static, never to a heap.
unsafe impl Exchangeable for Tracked {
    const PLAIN: bool = true;
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn new_belongs_to_the_running_domain_and_drop_frees() {
    let a = owner(10, 1);
    as_owner(a);
    let r = RRef::new([7u8; 64]);
    assert_eq!(r.owner(), a);
    assert_eq!(r[63], 7);
    assert_eq!(registry::owned_by(a).0, 1);
    drop(r);
    assert_eq!(registry::owned_by(a).0, 0);
}

#[test]
fn moves_change_the_owner_list() {
    let (caller, callee) = (owner(11, 1), owner(12, 1));
    as_owner(caller);
    let mut r = RRef::new(5u64);
    r.move_to(&to(callee));
    assert_eq!(r.owner(), callee);
    assert_eq!(registry::owned_by(caller).0, 0);
    assert_eq!(registry::owned_by(callee).0, 1);
    *r += 1; // the holder uses it
    r.move_to(&to(caller));
    assert_eq!(registry::owned_by(callee).0, 0);
    assert_eq!(registry::owned_by(caller).0, 1);
    assert_eq!(r.into_inner(), 6);
    assert_eq!(registry::owned_by(caller).0, 0);
}

#[test]
fn reclaim_frees_exactly_the_dead_slots_objects_without_running_drop_code() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (dead, survivor, next_generation) = (owner(13, 1), owner(14, 1), owner(13, 2));
    as_owner(dead);
    let kept: Vec<RRef<Tracked>> = (0..10).map(|i| RRef::new(Tracked(&DROPS, i))).collect();
    // Given to another domain before the crash: not reclaimed with `dead`.
    let given = RRef::new(Tracked(&DROPS, 99));
    given.move_to(&to(survivor));
    // The dead domain's handles vanish with it: never dropped.
    core::mem::forget(kept);
    let (objects, bytes) = reclaim(dead);
    assert_eq!(objects, 10);
    assert!(bytes >= 10 * core::mem::size_of::<Tracked>());
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        0,
        "reclaim runs no drop code (it would be the dead domain's)"
    );
    assert_eq!(registry::owned_by(survivor).0, 1);
    assert_eq!(reclaim(dead), (0, 0), "reclaim is idempotent");
    // The slot's next incarnation starts with nothing.
    as_owner(next_generation);
    let newer = RRef::new(Tracked(&DROPS, 100));
    assert_eq!(newer.owner(), next_generation);
    assert_eq!(registry::owned_by(next_generation).0, 1);
    drop(given);
    drop(newer);
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
}

#[test]
fn reclaim_also_frees_what_older_incarnations_of_the_slot_left() {
    // Objects an older incarnation of the slot still owns (say, given to
    // it as it died) are freed with the next one: no incarnation of a slot
    // is alive while its slot is reclaimed.
    let (old, newer) = (owner(48, 1), owner(48, 2));
    as_owner(old);
    core::mem::forget(RRef::new([1u8; 32]));
    as_owner(newer);
    core::mem::forget(RRef::new([2u8; 32]));
    assert_eq!(reclaim(newer).0, 2);
    assert_eq!(registry::owned_by(old).0, 0);
}

#[test]
fn nested_rrefs_are_owned_like_their_root_and_move_with_it() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (a, b) = (owner(15, 1), owner(16, 1));
    as_owner(a);
    let child1 = RRef::new(Tracked(&DROPS, 1));
    let child2 = RRef::new(Tracked(&DROPS, 2));
    assert_eq!(registry::owned_by(a).0, 2);
    let root = RRef::new((child1, Some(child2)));
    assert_eq!(registry::owned_by(a).0, 3, "every object is listed");
    assert_eq!(root.0.owner(), a);
    root.move_to(&to(b));
    assert_eq!(registry::owned_by(a).0, 0);
    assert_eq!(registry::owned_by(b).0, 3, "the whole tree moved");
    assert_eq!(root.0.owner(), b);
    assert_eq!(root.1.as_ref().unwrap().owner(), b);
    // Reclaiming the owner frees the children too, each once.
    core::mem::forget(root);
    assert_eq!(reclaim(b).0, 3);
    assert_eq!(DROPS.load(Ordering::SeqCst), 0, "memory only, no drop code");
}

#[test]
fn swapping_rrefs_in_and_out_of_a_tree_keeps_ownership_whole() {
    // With `&mut` access a holder can take `RRef`s out of its trees and
    // put others in: whatever it does, everything it reaches is its own,
    // and a move takes the tree as it is then.
    let (a, b) = (owner(49, 1), owner(50, 1));
    as_owner(a);
    let mut root = RRef::new((RRef::new(1u64), RRef::new(2u64)));
    let outside = RRef::new(3u64);
    let taken = core::mem::replace(&mut root.0, outside);
    root.move_to(&to(b));
    assert_eq!(root.0.owner(), b, "the swapped-in one moved with the tree");
    assert_eq!(taken.owner(), a, "the swapped-out one stayed");
    assert_eq!(registry::owned_by(b).0, 3);
    assert_eq!(registry::owned_by(a).0, 1);
    // `b` dies holding the tree: all three objects go, `taken` stays.
    core::mem::forget(root);
    assert_eq!(reclaim(b).0, 3);
    assert_eq!(*taken, 1);
    drop(taken);
    assert_eq!(registry::owned_by(a).0, 0);
}

#[test]
fn a_forgotten_deque_of_items_is_reclaimed_once_each() {
    // Issue 10, item 8: items pushed into a deque and the deque forgotten
    // before a crash are each freed exactly once (the system allocator
    // aborts the test on a double free).
    let a = owner(51, 1);
    as_owner(a);
    let mut deque = RRef::new(RRefDeque::<[u8; 64], 8>::new());
    for i in 0..8u8 {
        deque.push_back(RRef::new([i; 64])).expect("room");
    }
    for item in deque.iter() {
        assert_eq!(item.owner(), a);
    }
    core::mem::forget(deque);
    assert_eq!(reclaim(a).0, 9);
    assert_eq!(reclaim(a).0, 0);
}

#[test]
fn deque_items_move_with_it_and_popped_ones_stay_with_the_holder() {
    let (driver, app) = (owner(17, 1), owner(18, 1));
    as_owner(app);
    let mut batch = RRef::new(RRefDeque::<[u8; 512], 4>::new());
    for i in 0..4u8 {
        batch.push_back(RRef::new([i; 512])).expect("room");
    }
    assert!(
        batch.push_back(RRef::new([9; 512])).is_err(),
        "a full ring refuses"
    );
    assert_eq!(registry::owned_by(app).0, 5, "the batch and its items");
    batch.move_to(&to(driver));
    assert_eq!(registry::owned_by(app).0, 0);
    assert_eq!(registry::owned_by(driver).0, 5);
    as_owner(driver);
    let first = batch.pop_front().expect("item");
    assert_eq!(first[0], 0);
    assert_eq!(first.owner(), driver, "a popped item belongs to the popper");
    assert_eq!(batch.len(), 3);
    drop(first);
    drop(batch);
    assert_eq!(registry::owned_by(driver).0, 0);
    assert_eq!(registry::owned_by(app).0, 0);
}

#[test]
fn lending_counts_borrows() {
    as_owner(owner(19, 1));
    let r = RRef::new(1u32);
    {
        let lent = r.lend();
        assert_eq!(lent.borrows(), 1);
        let again = r.lend();
        assert_eq!(again.borrows(), 2);
    }
    assert_eq!(r.borrows(), 0);
}

#[test]
fn concurrent_moves_keep_the_lists_consistent() {
    let _serial = SERIAL.lock().unwrap();
    let owners = [owner(20, 1), owner(21, 1), owner(22, 1), owner(23, 1)];
    as_owner(owners[0]);
    let objects: Vec<RRef<u64>> = (0..400).map(RRef::new).collect();
    let objects = std::sync::Arc::new(objects);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let objects = objects.clone();
            std::thread::spawn(move || {
                install_backend(&HEAP);
                for round in 0..200 {
                    for (i, object) in objects.iter().enumerate() {
                        if i % 4 == t {
                            object.move_to(&to(owners[(round + i) % 4]));
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let total: usize = owners.iter().map(|&o| registry::owned_by(o).0).sum();
    assert_eq!(total, 400);
    for object in objects.iter() {
        assert!(owners.contains(&object.owner()));
    }
    let objects = std::sync::Arc::try_unwrap(objects).unwrap();
    drop(objects);
    let total: usize = owners.iter().map(|&o| registry::owned_by(o).0).sum();
    assert_eq!(total, 0);
}

#[test]
fn array_slots_move_with_the_array() {
    let (a, b) = (owner(24, 1), owner(25, 1));
    as_owner(a);
    let mut array = RRef::new(RRefArray::<u64, 3>::new());
    assert!(array.set(0, RRef::new(10)).unwrap().is_none());
    assert!(
        array.set(7, RRef::new(11)).is_err(),
        "out of range gives the item back"
    );
    assert_eq!(registry::owned_by(a).0, 2, "the array and its item");
    array.move_to(&to(b));
    assert_eq!(registry::owned_by(b).0, 2);
    as_owner(b);
    let taken = array.take(0).expect("item");
    assert_eq!(*taken, 10);
    assert_eq!(taken.owner(), b);
    assert!(array.get(0).is_none());
    drop(taken);
    drop(array);
    assert_eq!(registry::owned_by(b).0, 0);
}

/// Requests queued on `core`'s shard (only meaningful while nobody drains).
fn queued(core: usize) -> usize {
    registry::queued_requests(core)
}

#[test]
fn batches_keep_local_work_local_and_queue_remote_work() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (a, b) = (owner(40, 1), owner(41, 1));
    let (home, remote) = (5, 6);
    let (to_remote, from_home) = std::sync::mpsc::channel::<Vec<RRef<Tracked>>>();
    let (done, wait_done) = std::sync::mpsc::channel::<()>();
    let home_thread = std::thread::spawn(move || {
        as_owner(a);
        set_core(home);
        enter_batch();
        let objects: Vec<_> = (0..100).map(|i| RRef::new(Tracked(&DROPS, i))).collect();
        // Local work inside the batch is applied at once.
        assert_eq!(queued(home), 0);
        to_remote.send(objects).unwrap();
        // Keep the batch (and the lock) until the other core is done.
        wait_done.recv().unwrap();
        assert_eq!(
            queued(home),
            100,
            "50 moves and 50 frees wait for the home core"
        );
        leave_batch();
    });
    let remote_thread = std::thread::spawn(move || {
        as_owner(b);
        set_core(remote);
        enter_batch();
        let mut objects = from_home.recv().unwrap();
        for object in &objects {
            object.move_to(&to(b));
        }
        let kept = objects.split_off(50);
        drop(objects); // values dropped here; memory freed by the home core
        assert_eq!(DROPS.load(Ordering::SeqCst), 50);
        leave_batch();
        done.send(()).unwrap();
        kept
    });
    let kept = remote_thread.join().unwrap();
    home_thread.join().unwrap();
    // Both shards are free now: a consistent view drains the queue.
    assert_eq!(registry::owned_by(a).0, 0);
    assert_eq!(registry::owned_by(b).0, 50);
    assert_eq!(queued(home), 0);
    for object in &kept {
        assert_eq!(object.owner(), b);
    }
    drop(kept);
    assert_eq!(registry::owned_by(b).0, 0);
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        100,
        "every value dropped once"
    );
}

#[test]
fn reclaim_applies_queued_requests_first() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (dead, survivor) = (owner(42, 1), owner(43, 1));
    let home = 7;
    let (to_main, objects) = std::sync::mpsc::channel::<Vec<RRef<Tracked>>>();
    let (release, wait_release) = std::sync::mpsc::channel::<()>();
    let home_thread = std::thread::spawn(move || {
        as_owner(dead);
        set_core(home);
        enter_batch();
        let made: Vec<_> = (0..10).map(|i| RRef::new(Tracked(&DROPS, i))).collect();
        to_main.send(made).unwrap();
        wait_release.recv().unwrap();
        leave_batch();
    });
    // This thread is core 0 (no batch): the home shard is busy, so its
    // moves are queued.
    let mut made = objects.recv().unwrap();
    let rescued = made.split_off(6);
    for object in &rescued {
        object.move_to(&to(survivor));
    }
    assert_eq!(queued(home), 4);
    core::mem::forget(made); // the dead domain's handles, never dropped
    release.send(()).unwrap();
    home_thread.join().unwrap();
    assert_eq!(reclaim(dead).0, 6, "the rescued four moved away");
    assert_eq!(DROPS.load(Ordering::SeqCst), 0, "reclaim runs no drop code");
    assert_eq!(registry::owned_by(survivor).0, 4);
    drop(rescued);
    assert_eq!(DROPS.load(Ordering::SeqCst), 4);
}

#[test]
fn a_crash_inside_drop_glue_does_not_drop_twice() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Exploding;
    // SAFETY: test-only: plain.
    unsafe impl Exchangeable for Exploding {
        const PLAIN: bool = true;
    }
    impl Drop for Exploding {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
            panic!("drop glue crashed");
        }
    }
    let a = owner(44, 1);
    as_owner(a);
    let object = RRef::new(Exploding);
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(object)));
    assert!(crashed.is_err());
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    // The domain is dead: the half-dropped object is still its own, and
    // reclaim frees its memory without running the drop glue again.
    assert_eq!(reclaim(a).0, 1);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
}

#[test]
fn work_inside_a_batch_is_exact_once_the_batch_ends() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let (a, b) = (owner(45, 1), owner(46, 1));
    // A thread of its own playing core 9, so no other test shares it.
    std::thread::spawn(move || {
        as_owner(a);
        set_core(9);
        enter_batch();
        let mut objects: Vec<_> = (0..200).map(|i| RRef::new(Tracked(&DROPS, i))).collect();
        for object in objects.iter().step_by(2) {
            object.move_to(&to(b)); // and back and forth: only the last counts
            object.move_to(&to(a));
            object.move_to(&to(b));
        }
        // Drop every third (some moved, some not; more than one flush's
        // worth, so some are freed mid-batch and some at its end).
        let mut index = 0;
        objects.retain(|_| {
            index += 1;
            index % 3 != 0
        });
        assert_eq!(DROPS.load(Ordering::SeqCst), 66);
        leave_batch();
        let moved = objects.iter().filter(|o| o.owner() == b).count();
        assert_eq!(registry::owned_by(b).0, moved);
        assert_eq!(registry::owned_by(a).0, objects.len() - moved);
        drop(objects);
        assert_eq!(registry::owned_by(a).0 + registry::owned_by(b).0, 0);
        assert_eq!(DROPS.load(Ordering::SeqCst), 200);
    })
    .join()
    .unwrap();
}

#[test]
fn deque_iter_mut_visits_in_order_across_the_wrap() {
    as_owner(owner(47, 1));
    let mut deque = RRefDeque::<u64, 4>::new();
    for i in 0..4 {
        let _ = deque.push_back(RRef::new(i));
    }
    drop(deque.pop_front());
    drop(deque.pop_front());
    let _ = deque.push_back(RRef::new(4));
    let _ = deque.push_back(RRef::new(5));
    for item in deque.iter_mut() {
        **item *= 10;
    }
    let values: Vec<u64> = deque.iter().map(|r| **r).collect();
    assert_eq!(values, [20, 30, 40, 50]);
}

#[test]
fn owned_bytes_follow_allocation_moves_and_frees_without_locks() {
    // What the kernel holds each domain's shared-heap quota to.
    let (a, b) = (owner(52, 1), owner(53, 1));
    as_owner(a);
    assert_eq!(registry::owned_bytes(a), 0);
    let one = RRef::new([0u8; 1000]);
    let per_object = registry::owned_bytes(a);
    assert!(per_object >= 1000, "header and value: {per_object}");
    let batch = RRef::new((RRef::new([0u8; 1000]), RRef::new([0u8; 1000])));
    assert!(registry::owned_bytes(a) >= 3 * per_object);
    batch.move_to(&to(b));
    assert_eq!(registry::owned_bytes(a), per_object, "the tree moved");
    assert!(registry::owned_bytes(b) >= 2 * per_object);
    drop(one);
    assert_eq!(registry::owned_bytes(a), 0);
    core::mem::forget(batch);
    reclaim(b);
    assert_eq!(registry::owned_bytes(b), 0);
}

/// A value with nested `RRef`s that notes whether its move ran inside a
/// critical section.
struct MoveProbe(&'static AtomicUsize);
// SAFETY: test-only; it holds no `RRef`, it only watches its own move.
unsafe impl Exchangeable for MoveProbe {
    const PLAIN: bool = false;
    fn move_roots(&self, _to: &Transfer) {
        self.0
            .store(crate::host_kit::critical_depth(), Ordering::SeqCst);
    }
}

/// A proxy moves a whole tree inside one critical section, so the kernel
/// never unwinds a domain half-way through a move (found by the fault
/// campaign: a watchdog stop between a root and its nested objects left a
/// nested page listed under the caller after the callee that held its
/// root died, leaked; the other way round, freed under a live root).
#[test]
fn a_proxy_moves_a_whole_tree_inside_one_critical_section() {
    static DEPTH: AtomicUsize = AtomicUsize::new(usize::MAX);
    as_owner(owner(61, 1));
    let probe = (MoveProbe(&DEPTH), 7u64);
    crate::proxy::receive(&crate::host_kit::cap(owner(62, 1)), &probe);
    assert!(
        DEPTH.load(Ordering::SeqCst) >= 1,
        "moved outside any critical section"
    );
    assert_eq!(crate::host_kit::critical_depth(), 0, "section left open");
}

/// A core about to start a batch lets a core waiting for its shard go
/// first: the batch's own core takes its lock back a few instructions after
/// each batch, and a core reclaiming a dead domain (which locks every
/// shard in turn) waited for one for minutes in a fault campaign.
#[test]
fn a_batch_waits_for_the_cores_waiting_for_its_shard() {
    const CORE: usize = 41; // a shard no other test's thread uses
    as_owner(owner(40, 1));
    registry::count_waiter(CORE, true);
    let started = std::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
    let flag = started.clone();
    let batch = std::thread::spawn(move || {
        as_owner(owner(40, 1));
        set_core(CORE);
        enter_batch();
        flag.store(true, Ordering::SeqCst);
        leave_batch();
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let early = started.load(Ordering::SeqCst) || registry::in_batch(CORE);
    registry::count_waiter(CORE, false);
    batch.join().unwrap();
    assert!(
        !early,
        "the batch took the shard while a core waited for it"
    );
    assert!(started.load(Ordering::SeqCst), "the batch never started");
}

/// The word-by-word read of a call's result gives back the same value,
/// whatever its size and alignment.
#[test]
fn a_result_read_by_words_is_the_value_written() {
    fn check<T: PartialEq + core::fmt::Debug + Clone>(value: T) {
        let copy = value.clone();
        // SAFETY: reads a live, initialised `T` once; `value` is forgotten.
        let read = unsafe { crate::proxy::read_by_words(&raw const value) };
        core::mem::forget(value);
        assert_eq!(read, copy);
    }
    check::<RpcResult<u64>>(Ok(0x1234_5678_9abc_def0));
    check::<RpcResult<u64>>(Err(RpcError::DomainCrashed));
    check::<(u64, u64, u64)>((1, 2, 3));
    check::<[u8; 24]>([7; 24]);
    check::<[u64; 9]>([9; 9]);
    check::<Option<u32>>(Some(5));
}

/// Moves made inside a critical section the proxy already holds (a call's
/// result received, a tree's nested objects) take the registry's short
/// path for objects homed on the running core while it holds its shard
/// for a batch, and the full path otherwise (another core's shard, or no
/// batch): both leave the lists exact once the batch ends.
#[test]
fn moves_inside_a_proxy_critical_section_keep_the_lists_exact() {
    let (a, b) = (owner(47, 1), owner(48, 1));
    std::thread::spawn(move || {
        crate::host_kit::install(a); // the runtime says who runs
        set_core(12);
        let here: Vec<_> = (0..80u64).map(|i| RRef::new((i, 0u64))).collect();
        set_core(13);
        let away: Vec<_> = (0..80u64).map(|i| RRef::new((i, 1u64))).collect();
        let tree = RRef::new(Some(RRef::new(3u64)));
        set_core(12);
        enter_batch();
        crate::host_kit::set_current(b);
        let cap = crate::host_kit::cap(b);
        // Received by `b` (the result of a call it made): home shard held
        // (more than a flush's worth), another core's shard, a tree.
        for object in &here {
            crate::proxy::receive(&cap, object);
        }
        for object in &away {
            crate::proxy::receive(&cap, object);
        }
        crate::proxy::receive(&cap, &tree);
        // And back to `a` for every other one, still in the batch.
        crate::host_kit::set_current(a);
        let cap = crate::host_kit::cap(a);
        for object in here.iter().step_by(2) {
            crate::proxy::receive(&cap, object);
        }
        leave_batch();
        assert!(here.iter().step_by(2).all(|o| o.owner() == a));
        assert!(here.iter().skip(1).step_by(2).all(|o| o.owner() == b));
        assert!(away.iter().all(|o| o.owner() == b));
        assert_eq!(registry::owned_by(a).0, 40);
        assert_eq!(registry::owned_by(b).0, 40 + 80 + 2);
        assert_eq!(crate::host_kit::critical_depth(), 0, "section left open");
        drop((here, away, tree));
        assert_eq!(registry::owned_by(a).0 + registry::owned_by(b).0, 0);
    })
    .join()
    .unwrap();
}

/// A callee learns who entered it from the runtime, however deep the
/// calls nest, and the caller is the running domain again afterwards.
#[test]
fn the_runtime_names_the_caller_of_each_entry() {
    let (a, b, c) = (owner(44, 1), owner(45, 1), owner(46, 1));
    std::thread::spawn(move || {
        crate::host_kit::install(a);
        assert_eq!(crate::proxy::caller(), Owner::KERNEL);
        let seen = crate::proxy::call(&crate::host_kit::cap(b), || {
            let in_b = (crate::proxy::current(), crate::proxy::caller());
            let in_c = crate::proxy::call(&crate::host_kit::cap(c), || {
                (crate::proxy::current(), crate::proxy::caller())
            });
            (in_b, in_c, crate::proxy::caller())
        });
        assert_eq!(seen, Ok(((b, a), Ok((c, b)), a)));
        assert_eq!(crate::proxy::caller(), Owner::KERNEL);
        assert!(crate::proxy::is_alive(b));
        crate::host_kit::RUNTIME.kill(b);
        assert!(!crate::proxy::is_alive(b));
    })
    .join()
    .unwrap();
}
