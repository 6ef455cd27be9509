//! The key-value store on the host: the hash table, and memcached's text
//! protocol command by command, over TCP-style streams and UDP frames.

use domain_kvstore::protocol::{MAX_VALUE, Outcome, Server};
use domain_kvstore::store::Store;

const S: u64 = 1_000_000_000;

/// Runs every whole command of `input` and concatenates the replies.
fn run(server: &mut Server, input: &[u8], now: u64) -> String {
    let mut input = input.to_vec();
    let mut out = Vec::new();
    loop {
        match server.execute(&input, now) {
            Outcome::Incomplete => break,
            Outcome::Reply {
                consumed,
                reply,
                close,
                ..
            } => {
                out.extend_from_slice(&reply);
                input.drain(..consumed);
                if close {
                    out.extend_from_slice(b"<closed>");
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn server() -> Server {
    Server::new(64 << 20, 0)
}

#[test]
fn the_table_grows_deletes_and_keeps_every_key() {
    let mut store = Store::new(1 << 30);
    for i in 0..20_000u32 {
        store
            .set(&i.to_le_bytes(), i.to_be_bytes().to_vec(), i, 0)
            .unwrap();
    }
    assert_eq!(store.len(), 20_000);
    assert!(store.len() * 4 <= store.capacity() * 3, "at most 3/4 full");
    for i in (0..20_000u32).step_by(2) {
        assert!(store.delete(&i.to_le_bytes(), 0));
    }
    // Deleted ones leave tombstones that probes pass over.
    for i in 0..20_000u32 {
        let item = store.get(&i.to_le_bytes(), 0);
        if i % 2 == 0 {
            assert!(item.is_none());
        } else {
            assert_eq!(*item.unwrap().value, i.to_be_bytes());
        }
    }
    // Reusing the slots: tombstones do not make the table grow for ever.
    let capacity = store.capacity();
    for round in 0..10u32 {
        for i in 0..5000u32 {
            let key = (100_000 + round * 5000 + i).to_le_bytes();
            store.set(&key, vec![1], 0, 0).unwrap();
            assert!(store.delete(&key, 0));
        }
    }
    assert!(
        store.capacity() <= capacity * 2,
        "{} from {capacity}",
        store.capacity()
    );
    assert_eq!(store.len(), 10_000);
}

#[test]
fn the_byte_budget_refuses_what_does_not_fit() {
    let mut store = Store::new(1000);
    assert!(store.set(b"a", vec![0; 500], 0, 0).is_ok());
    assert!(store.set(b"b", vec![0; 500], 0, 0).is_err());
    // Replacing frees the old value's bytes first.
    assert!(store.set(b"a", vec![0; 900], 0, 0).is_ok());
    assert!(store.bytes() <= 1000);
}

/// A replacement (which keeps the item's key) refused by the budget
/// leaves the old item as it was; one that fits changes the value, flags,
/// expiry and CAS unique, and the byte count by exactly the values'
/// difference.
#[test]
fn a_refused_replacement_changes_nothing() {
    let mut store = Store::new(1000);
    let cas = store.set(b"key", vec![1; 400], 7, 0).unwrap();
    let bytes = store.bytes();
    assert!(store.set(b"key", vec![2; 1000], 8, 0).is_err());
    let item = store.get(b"key", 1).unwrap().clone();
    assert_eq!(
        (&*item.key, &*item.value, item.flags, item.cas),
        (&b"key"[..], &[1u8; 400][..], 7, cas)
    );
    assert_eq!(store.bytes(), bytes);
    assert_eq!(store.evictions_refused, 1);
    let next = store.set(b"key", vec![3; 100], 9, 5_000).unwrap();
    assert!(next > cas);
    let item = store.get(b"key", 1).unwrap();
    assert_eq!(
        (&*item.value, item.flags, item.expires_ns),
        (&[3u8; 100][..], 9, 5_000)
    );
    assert_eq!(store.bytes(), bytes - 300);
    assert_eq!(store.len(), 1);
}

#[test]
fn storage_commands_and_their_answers() {
    let mut s = server();
    assert_eq!(run(&mut s, b"set k 5 0 3\r\nabc\r\n", 0), "STORED\r\n");
    assert_eq!(
        run(&mut s, b"get k\r\n", 0),
        "VALUE k 5 3\r\nabc\r\nEND\r\n"
    );
    assert_eq!(run(&mut s, b"add k 0 0 1\r\nx\r\n", 0), "NOT_STORED\r\n");
    assert_eq!(run(&mut s, b"add n 0 0 1\r\nx\r\n", 0), "STORED\r\n");
    assert_eq!(
        run(&mut s, b"replace nope 0 0 1\r\nx\r\n", 0),
        "NOT_STORED\r\n"
    );
    assert_eq!(run(&mut s, b"replace n 7 0 2\r\nyz\r\n", 0), "STORED\r\n");
    assert_eq!(run(&mut s, b"append k 0 0 2\r\nde\r\n", 0), "STORED\r\n");
    assert_eq!(run(&mut s, b"prepend k 0 0 2\r\n__\r\n", 0), "STORED\r\n");
    assert_eq!(
        run(&mut s, b"append none 0 0 1\r\nx\r\n", 0),
        "NOT_STORED\r\n"
    );
    // Several keys at once; flags kept by append.
    assert_eq!(
        run(&mut s, b"get k n missing\r\n", 0),
        "VALUE k 5 7\r\n__abcde\r\nVALUE n 7 2\r\nyz\r\nEND\r\n"
    );
    // An empty value.
    assert_eq!(
        run(&mut s, b"set e 0 0 0\r\n\r\nget e\r\n", 0),
        "STORED\r\nVALUE e 0 0\r\n\r\nEND\r\n"
    );
}

#[test]
fn cas_stores_only_over_the_version_it_names() {
    let mut s = server();
    run(&mut s, b"set k 0 0 1\r\na\r\n", 0);
    let gets = run(&mut s, b"gets k\r\n", 0);
    let unique: u64 = gets
        .split("\r\n")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        run(
            &mut s,
            format!("cas k 0 0 1 {}\r\nb\r\n", unique + 1).as_bytes(),
            0
        ),
        "EXISTS\r\n"
    );
    assert_eq!(
        run(
            &mut s,
            format!("cas k 0 0 1 {unique}\r\nb\r\n").as_bytes(),
            0
        ),
        "STORED\r\n"
    );
    assert_eq!(
        run(
            &mut s,
            format!("cas k 0 0 1 {unique}\r\nc\r\n").as_bytes(),
            0
        ),
        "EXISTS\r\n"
    );
    assert_eq!(
        run(&mut s, b"cas nope 0 0 1 1\r\nc\r\n", 0),
        "NOT_FOUND\r\n"
    );
    assert_eq!(run(&mut s, b"get k\r\n", 0), "VALUE k 0 1\r\nb\r\nEND\r\n");
}

#[test]
fn delete_incr_decr_touch_and_noreply() {
    let mut s = server();
    run(&mut s, b"set n 0 0 2\r\n10\r\n", 0);
    assert_eq!(run(&mut s, b"incr n 5\r\n", 0), "15\r\n");
    assert_eq!(run(&mut s, b"decr n 100\r\n", 0), "0\r\n", "not below zero");
    assert_eq!(
        run(&mut s, b"incr n 18446744073709551615\r\nincr n 2\r\n", 0),
        "18446744073709551615\r\n1\r\n",
        "wraps at 64 bits"
    );
    assert_eq!(run(&mut s, b"incr nope 1\r\n", 0), "NOT_FOUND\r\n");
    run(&mut s, b"set t 0 0 2\r\nhi\r\n", 0);
    assert_eq!(
        run(&mut s, b"incr t 1\r\n", 0),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    assert_eq!(
        run(&mut s, b"incr n x\r\n", 0),
        "CLIENT_ERROR invalid numeric delta argument\r\n"
    );
    assert_eq!(
        run(&mut s, b"touch t 10\r\ntouch nope 10\r\n", 0),
        "TOUCHED\r\nNOT_FOUND\r\n"
    );
    assert_eq!(
        run(&mut s, b"delete t\r\ndelete t\r\n", 0),
        "DELETED\r\nNOT_FOUND\r\n"
    );
    // noreply: silence, but done.
    assert_eq!(
        run(
            &mut s,
            b"set q 0 0 1 noreply\r\nz\r\nincr n 1 noreply\r\ndelete n noreply\r\nget q n\r\n",
            0
        ),
        "VALUE q 0 1\r\nz\r\nEND\r\n"
    );
}

#[test]
fn items_expire() {
    let mut s = server();
    run(
        &mut s,
        b"set a 0 10 1\r\nx\r\nset b 0 0 1\r\ny\r\nset c 0 -1 1\r\nz\r\n",
        0,
    );
    assert_eq!(
        run(&mut s, b"get a b c\r\n", 5 * S),
        "VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n"
    );
    assert_eq!(
        run(&mut s, b"get a b\r\n", 11 * S),
        "VALUE b 0 1\r\ny\r\nEND\r\n"
    );
    // touch moves the expiry.
    run(&mut s, b"set d 0 10 1\r\nw\r\n", 11 * S);
    run(&mut s, b"touch d 100\r\n", 12 * S);
    assert!(run(&mut s, b"get d\r\n", 30 * S).starts_with("VALUE d"));
    // flush_all with a delay, then without.
    assert_eq!(run(&mut s, b"flush_all 5\r\n", 30 * S), "OK\r\n");
    assert!(run(&mut s, b"get b\r\n", 31 * S).starts_with("VALUE b"));
    assert_eq!(run(&mut s, b"get b\r\n", 36 * S), "END\r\n");
    run(&mut s, b"set e 0 0 1\r\nv\r\n", 40 * S);
    assert_eq!(
        run(&mut s, b"flush_all\r\nget e\r\n", 40 * S),
        "OK\r\nEND\r\n"
    );
}

#[test]
fn errors_and_bounds() {
    let mut s = server();
    assert_eq!(run(&mut s, b"bogus\r\n", 0), "ERROR\r\n");
    assert_eq!(run(&mut s, b"\r\n", 0), "ERROR\r\n");
    assert_eq!(
        run(&mut s, b"set k 0 0\r\n", 0),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(
        run(&mut s, b"set k x 0 1\r\na\r\n", 0).lines().next(),
        Some("CLIENT_ERROR bad command line format")
    );
    let long_key = "k".repeat(251);
    assert_eq!(
        run(&mut s, format!("get {long_key}\r\n").as_bytes(), 0),
        "ERROR\r\n"
    );
    // A data block that is not the length announced: refused, closed.
    assert_eq!(
        run(&mut s, b"set k 0 0 2\r\nabcd\r\n", 0),
        "CLIENT_ERROR bad data chunk\r\n<closed>"
    );
    // A line that never ends.
    assert_eq!(
        run(&mut s, &[b'x'; 3000], 0),
        "CLIENT_ERROR line too long\r\n<closed>"
    );
    // Too large a value: refused, and its data skipped (here only part
    // of it has arrived: the rest is to be skipped as it comes).
    let line = format!("set big 0 0 {}\r\n", MAX_VALUE + 1);
    let mut input = line.clone().into_bytes();
    input.extend_from_slice(&[b'v'; 100]);
    match s.execute(&input, 0) {
        Outcome::Reply {
            consumed,
            skip,
            reply,
            close,
        } => {
            assert_eq!(reply, b"SERVER_ERROR object too large for cache\r\n");
            assert_eq!(consumed, input.len());
            assert_eq!(skip, MAX_VALUE + 1 + 2 - 100);
            assert!(!close);
        }
        other => panic!("{other:?}"),
    }
    // A value of exactly the limit is fine.
    let mut input = format!("set max 0 0 {MAX_VALUE}\r\n").into_bytes();
    input.extend(std::iter::repeat_n(b'm', MAX_VALUE));
    input.extend_from_slice(b"\r\n");
    assert_eq!(run(&mut s, &input, 0), "STORED\r\n");
    // Partial commands wait.
    assert_eq!(s.execute(b"get k", 0), Outcome::Incomplete);
    assert_eq!(s.execute(b"set k 0 0 5\r\nab", 0), Outcome::Incomplete);
}

#[test]
fn version_verbosity_stats_and_quit() {
    let mut s = server();
    assert!(run(&mut s, b"version\r\n", 0).starts_with("VERSION "));
    // What memccapable checks of a 1.6 server: version ignores its
    // arguments, verbosity with noreply is silent, stats takes none.
    assert!(run(&mut s, b"version foo bar\r\n", 0).starts_with("VERSION "));
    assert_eq!(run(&mut s, b"stats noreply\r\n", 0), "ERROR\r\n");
    assert_eq!(
        run(
            &mut s,
            b"verbosity\r\nverbosity noreply\r\nverbosity a b c\r\n",
            0
        ),
        "ERROR\r\nERROR\r\n"
    );
    assert_eq!(
        run(&mut s, b"verbosity 1\r\nverbosity 1 noreply\r\n", 0),
        "OK\r\n"
    );
    run(&mut s, b"set k 0 0 1\r\na\r\nget k nope\r\n", 0);
    let stats = run(&mut s, b"stats\r\n", 3 * S);
    for line in [
        "STAT curr_items 1",
        "STAT cmd_get 2",
        "STAT get_hits 1",
        "STAT get_misses 1",
        "STAT uptime 3",
    ] {
        assert!(stats.contains(line), "{line} in {stats}");
    }
    assert!(stats.ends_with("END\r\n"));
    assert_eq!(run(&mut s, b"quit\r\nget k\r\n", 0), "<closed>");
}

fn frame(id: u16, body: &[u8]) -> Vec<u8> {
    let mut d = id.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    d.extend_from_slice(body);
    d
}

#[test]
fn udp_frames_carry_the_request_id_and_split_long_replies() {
    let mut s = server();
    let replies = s.datagram(&frame(0x1234, b"set k 0 0 5\r\nhello\r\n"), 0);
    assert_eq!(replies.len(), 1);
    assert_eq!(&replies[0][..8], &[0x12, 0x34, 0, 0, 0, 1, 0, 0]);
    assert_eq!(&replies[0][8..], b"STORED\r\n");
    // A 4,000-byte value comes back in three datagrams, numbered.
    let mut body = b"set big 0 0 4000\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'b', 4000));
    body.extend_from_slice(b"\r\n");
    s.datagram(&frame(1, &body), 0);
    let replies = s.datagram(&frame(7, b"get big\r\n"), 0);
    assert_eq!(replies.len(), 3);
    let mut whole = Vec::new();
    for (seq, d) in replies.iter().enumerate() {
        assert_eq!(&d[..6], &[0, 7, 0, seq as u8, 0, 3]);
        assert!(d.len() <= 8 + 1400);
        whole.extend_from_slice(&d[8..]);
    }
    assert!(whole.starts_with(b"VALUE big 0 4000\r\nbbbb"));
    assert!(whole.ends_with(b"\r\nEND\r\n"));
    // Dropped: too short, or a request in several datagrams.
    assert!(s.datagram(b"short", 0).is_empty());
    let mut multi = frame(2, b"get k\r\n");
    multi[5] = 2;
    assert!(s.datagram(&multi, 0).is_empty());
}
