//! The Maglev table and flow cache on the host: the paper's worked
//! example, balance, disruption, flows kept across changes, parsing.

use domain_maglev::table::{DEFAULT_SIZE, Error, Flow, FlowCache, Table, flow_of, is_prime};

const B0: u64 = 0;
const B1: u64 = 1;
const B2: u64 = 2;

fn slots(table: &Table) -> Vec<u64> {
    table
        .slots()
        .map(|s| s.expect("every slot taken"))
        .collect()
}

#[test]
fn the_papers_worked_example() {
    // Table size 7; B0 offset 3 skip 4, B1 offset 0 skip 2, B2 offset 3
    // skip 1 (Eisenbud et al., NSDI 2016, table 1 and figure 3).
    let mut table = Table::new(7).unwrap();
    table.add_with(B0, 3, 4).unwrap();
    table.add_with(B1, 0, 2).unwrap();
    table.add_with(B2, 3, 1).unwrap();
    assert_eq!(slots(&table), [B1, B0, B1, B0, B2, B2, B0]);
    // B1 removed.
    table.remove(B1).unwrap();
    assert_eq!(slots(&table), [B0, B0, B0, B0, B2, B2, B2]);
}

#[test]
fn table_sizes_must_be_prime_and_any_prime_will_do() {
    for bad in [0, 1, 4, 65_536, 100] {
        assert!(matches!(Table::new(bad), Err(Error::NotPrime)), "{bad}");
    }
    for size in [3, 7, 251, 4099, DEFAULT_SIZE] {
        let mut table = Table::new(size).unwrap();
        table.add(10).unwrap();
        table.add(11).unwrap();
        assert!(table.slots().all(|s| s.is_some()), "{size}");
    }
    assert!(is_prime(65_537) && !is_prime(65_535));
    let mut table = Table::new(3).unwrap();
    for id in 0..3 {
        table.add(id).unwrap();
    }
    assert_eq!(
        table.add(3),
        Err(Error::TooMany),
        "more backends than slots"
    );
    assert_eq!(table.add(0), Err(Error::Duplicate));
    assert_eq!(table.remove(42), Err(Error::NoSuchBackend));
}

#[test]
fn a_hundred_backends_share_the_table_evenly() {
    let mut table = Table::new(DEFAULT_SIZE).unwrap();
    for id in 0..100 {
        table.add(0x0200_0000_0000 + id).unwrap();
    }
    let mut counts = std::collections::HashMap::new();
    for slot in table.slots() {
        *counts.entry(slot.unwrap()).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 100);
    let mean = DEFAULT_SIZE as f64 / 100.0;
    let largest = *counts.values().max().unwrap() as f64;
    println!(
        "largest share {largest} slots, mean {mean:.2}: {:.4}",
        largest / mean
    );
    assert!(
        largest / mean <= 1.01,
        "largest over mean {}",
        largest / mean
    );
}

#[test]
fn removing_one_backend_of_a_hundred_moves_few_other_slots() {
    let mut table = Table::new(DEFAULT_SIZE).unwrap();
    for id in 0..100 {
        table.add(id).unwrap();
    }
    let before = slots(&table);
    table.remove(37).unwrap();
    let after = slots(&table);
    let theirs = before.iter().filter(|&&b| b == 37).count();
    let moved = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b != 37 && b != a)
        .count();
    let disruption = moved as f64 / (DEFAULT_SIZE - theirs) as f64;
    // Measured and reported: the slots that had to move (the removed
    // backend's) and the others that moved too.
    println!(
        "removing 1 of 100 backends: {theirs} of its slots reassigned, {moved} of the other {} moved too ({:.2} %)",
        DEFAULT_SIZE - theirs,
        disruption * 100.0
    );
    assert!(after.iter().all(|&b| b != 37));
    assert!(
        disruption < 0.05,
        "{:.2} % of the other slots moved",
        disruption * 100.0
    );
}

fn flow(n: u32) -> Flow {
    Flow {
        src: (0x0a00_0000 + n).to_be_bytes(),
        dst: [10, 0, 9, 1],
        src_port: 1024 + (n % 60_000) as u16,
        dst_port: 80,
        protocol: 6,
    }
}

#[test]
fn flows_keep_their_backend_when_the_table_changes() {
    let mut table = Table::new(DEFAULT_SIZE).unwrap();
    for id in 0..10 {
        table.add(id).unwrap();
    }
    let mut cache = FlowCache::new(4096);
    let first: Vec<u64> = (0..1000)
        .map(|n| cache.backend(&table, &flow(n)).unwrap())
        .collect();
    // A backend joins: the table moves slots to it, the flows stay.
    table.add(99).unwrap();
    let moved_in_table = (0..1000)
        .filter(|&n| table.lookup(flow(n).hash()) != Some(first[n as usize]))
        .count();
    assert!(moved_in_table > 0, "the new backend took some slots");
    for n in 0..1000 {
        assert_eq!(cache.backend(&table, &flow(n)), Some(first[n as usize]));
    }
    assert_eq!(cache.hits, 1000);
    // A backend leaves: only its flows move, to what the table says.
    table.remove(3).unwrap();
    let second: Vec<u64> = (0..1000)
        .map(|n| cache.backend(&table, &flow(n)).unwrap())
        .collect();
    for n in 0..1000 {
        if first[n as usize] == 3 {
            assert_eq!(Some(second[n as usize]), table.lookup(flow(n).hash()));
        } else {
            assert_eq!(second[n as usize], first[n as usize]);
        }
    }
    // Asked again at the same generation (no search this time), and
    // after the removed backend comes back: every flow stays put.
    for pass in 0..2 {
        for n in 0..1000 {
            assert_eq!(
                cache.backend(&table, &flow(n)),
                Some(second[n as usize]),
                "pass {pass}"
            );
        }
        if pass == 0 {
            table.add(3).unwrap();
        }
    }
    // New flows follow the table.
    assert_eq!(
        cache.backend(&table, &flow(5000)),
        table.lookup(flow(5000).hash())
    );
}

#[test]
fn a_full_cache_evicts_and_still_answers() {
    let mut table = Table::new(251).unwrap();
    table.add(1).unwrap();
    table.add(2).unwrap();
    let mut cache = FlowCache::new(16);
    for n in 0..1000 {
        assert!(cache.backend(&table, &flow(n)).is_some());
    }
    assert!(cache.evictions > 0);
    let empty = Table::new(7).unwrap();
    assert_eq!(
        FlowCache::new(16).backend(&empty, &flow(1)),
        None,
        "no backend at all"
    );
}

fn frame(protocol: u8, fragment: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[14 + 6..14 + 8].copy_from_slice(&fragment.to_be_bytes());
    f[14 + 9] = protocol;
    f[14 + 12..14 + 16].copy_from_slice(&[192, 168, 1, 2]);
    f[14 + 16..14 + 20].copy_from_slice(&[10, 0, 9, 1]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f
}

#[test]
fn only_whole_ipv4_tcp_and_udp_frames_have_a_flow() {
    assert_eq!(
        flow_of(&frame(6, 0)),
        Some(Flow {
            src: [192, 168, 1, 2],
            dst: [10, 0, 9, 1],
            src_port: 40000,
            dst_port: 80,
            protocol: 6
        })
    );
    assert!(
        flow_of(&frame(17, 0x4000)).is_some(),
        "don't-fragment is fine"
    );
    assert_eq!(flow_of(&frame(1, 0)), None, "ICMP");
    assert_eq!(flow_of(&frame(6, 5)), None, "a later fragment");
    assert_eq!(flow_of(&frame(6, 0)[..30]), None, "truncated");
    let mut arp = frame(6, 0);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(flow_of(&arp), None);
    let mut options = frame(6, 0);
    options[14] = 0x4f; // 60-byte header: the ports lie beyond the frame
    assert_eq!(flow_of(&options), None);
}

#[test]
fn adding_backends_at_once_builds_the_same_table_as_one_by_one() {
    let ids: Vec<u64> = (0..100).map(|i| 0x0200_0000_0100 + i).collect();
    let mut one_by_one = Table::new(DEFAULT_SIZE).unwrap();
    for &id in &ids {
        one_by_one.add(id).unwrap();
    }
    let mut at_once = Table::new(DEFAULT_SIZE).unwrap();
    at_once.add_all(&ids).unwrap();
    assert_eq!(slots(&at_once), slots(&one_by_one));
    // A duplicate (in the list or already there) adds nothing.
    assert_eq!(at_once.add_all(&[7, 7]), Err(Error::Duplicate));
    assert_eq!(at_once.add_all(&[8, ids[0]]), Err(Error::Duplicate));
    assert_eq!(at_once.backends().len(), 100);
    let mut small = Table::new(7).unwrap();
    assert_eq!(
        small.add_all(&[1, 2, 3, 4, 5, 6, 7, 8]),
        Err(Error::TooMany)
    );
    assert!(small.backends().is_empty());
}

#[test]
fn a_batch_is_steered_as_its_frames_are_one_by_one() {
    use domain_maglev::{STEER_BATCH, steer_batch, steer_frame};
    let mut table = Table::new(DEFAULT_SIZE).unwrap();
    let ids: Vec<u64> = (0..50).map(|b| 0x0200_0000_0100 + b).collect();
    table.add_all(&ids).unwrap();
    let mac = [2, 0, 0, 0, 0, 0xfe];
    // A batch of TCP and UDP frames of 40 flows, with a fragment, an ICMP
    // frame and a runt among them (not forwarded), and more frames than a
    // batch takes.
    let mut frames: Vec<Vec<u8>> = (0..STEER_BATCH as u32 + 5)
        .map(|i| {
            let mut f = frame(if i % 3 == 0 { 6 } else { 17 }, 0);
            f[26..30].copy_from_slice(&(0x0a00_0000 | (i % 40)).to_be_bytes());
            f
        })
        .collect();
    frames[4] = frame(17, 8); // a later fragment: no ports
    frames[9] = frame(1, 0); // ICMP
    frames[13].truncate(20); // shorter than the headers
    let mut one_by_one = frames.clone();
    let (mut cache, mut cache_one) = (FlowCache::new(1 << 10), FlowCache::new(1 << 10));
    let mut batched = vec![None; frames.len()];
    let taken = steer_batch(
        &mut cache,
        &table,
        frames.iter_mut().map(|f| f.as_mut_slice()),
        mac,
        |i, backend| batched[i] = Some(backend),
    );
    assert_eq!(taken, STEER_BATCH);
    for (i, f) in one_by_one.iter_mut().enumerate().take(STEER_BATCH) {
        let backend = steer_frame(&mut cache_one, &table, f, mac);
        assert_eq!(batched[i], Some(backend), "frame {i}");
        assert_eq!(
            backend.is_none(),
            [4, 9, 13].contains(&i),
            "frame {i}: forwarded unless it has no flow"
        );
    }
    assert!(
        batched[STEER_BATCH..].iter().all(Option::is_none),
        "beyond a batch: untouched"
    );
    assert_eq!(
        frames[..STEER_BATCH],
        one_by_one[..STEER_BATCH],
        "the same rewrites"
    );
    assert_eq!(frames[STEER_BATCH..], one_by_one[STEER_BATCH..]);
    assert_eq!(
        (cache.hits, cache.misses),
        (cache_one.hits, cache_one.misses)
    );
}
