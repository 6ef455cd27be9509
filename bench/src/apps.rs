//! The applications' cores against C, host-native (issue 17's baselines):
//!
//! - **Maglev**: per packet, the 5-tuple parsed from the frame, the flow
//!   cache and table consulted, the MACs rewritten, in batches of 32:
//!   `domain_maglev::Balancer::steer_frame` (the domain's own code)
//!   against `bench/c/maglev.c`, the same algorithm in C.
//! - **Key-value core**: get and set on `domain_kvstore::store::Store`
//!   (the domain's own table) against `bench/c/kvcore.c`.
//! - **HTTP request parsing**: httparse, which `httpd` uses, against
//!   `bench/c/httpparse.c`, a parser written for the benchmark.
//!
//! Each pair runs on the same input in the same process, in alternating
//! order, and must agree on a checksum of what it computed (else the run
//! panics: a faster wrong answer is no result). Figures are TSC ticks per
//! operation, the median over the runs.

use std::hint::black_box;

use domain_kvstore::store::Store;
use domain_maglev::Balancer;
use domain_maglev::table::DEFAULT_SIZE;

fn ticks() -> u64 {
    // SAFETY: `lfence` and `rdtsc` have no memory effects; x86_64 has both.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One figure: C's ticks per operation and ours.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: &'static str,
    pub case: String,
    pub c: f64,
    pub rust: f64,
    pub checksum: u64,
}

impl Row {
    /// C's ticks over ours: above 1.0 ours is faster.
    pub fn ratio(&self) -> f64 {
        self.c / self.rust
    }
}

#[repr(C)]
struct CMaglev {
    _private: [u8; 0],
}

#[repr(C)]
struct CKv {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn mg_new(size: u64, cache_capacity: u64) -> *mut CMaglev;
    fn mg_free(m: *mut CMaglev);
    fn mg_add(m: *mut CMaglev, id: u64) -> i32;
    fn mg_steer_all(
        m: *mut CMaglev,
        frames: *mut u8,
        n: u64,
        stride: u64,
        len: u64,
        mac: *const u8,
    ) -> u64;
    fn kv_new(limit: usize) -> *mut CKv;
    fn kv_free(kv: *mut CKv);
    fn kv_sets(
        kv: *mut CKv,
        keys: *const u8,
        key_len: usize,
        n: u64,
        value: *mut u8,
        value_len: usize,
    ) -> u64;
    fn kv_gets(kv: *mut CKv, keys: *const u8, key_len: usize, n: u64, now_ns: u64) -> u64;
    fn kv_len(kv: *const CKv) -> usize;
    fn hp_parse_all(bufs: *const *const u8, lens: *const usize, n: u64, rounds: u64) -> u64;
}

/// Frame length of the Maglev trace (Ethernet, IPv4, UDP, 22 bytes of
/// payload: a minimum-size frame without its FCS is 60).
pub const FRAME: usize = 64;
/// Backends in the Maglev table.
pub const BACKENDS: u64 = 100;
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// `packets` frames, each of a flow drawn at random from `flows`.
pub fn maglev_trace(flows: usize, packets: usize, seed: u64) -> Vec<u8> {
    let mut frames = vec![0u8; packets * FRAME];
    let mut x = seed | 1;
    for frame in frames.chunks_exact_mut(FRAME) {
        let f = (xorshift(&mut x) % flows as u64) as u32;
        frame[0..6].copy_from_slice(&OUR_MAC);
        frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&50u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&(0x0a00_0000 | (f >> 12)).to_be_bytes());
        ip[16..20].copy_from_slice(&[10, 0, 9, 1]);
        let udp = &mut frame[34..42];
        udp[0..2].copy_from_slice(&(1024 + (f & 0xfff) as u16).to_be_bytes());
        udp[2..4].copy_from_slice(&80u16.to_be_bytes());
        udp[4..6].copy_from_slice(&30u16.to_be_bytes());
    }
    frames
}

/// Ticks per packet for the domain's `Balancer` and the C, `packets`
/// packets over `flows` flows, 100 backends in a 65,537-slot table.
pub fn maglev(flows: usize, packets: usize, runs: usize) -> Row {
    let mut frames = maglev_trace(flows, packets, 0x5851_f42d_4c95_7f2d ^ flows as u64);
    let mut ours = Balancer::new(DEFAULT_SIZE).expect("a prime size");
    // SAFETY: the C allocates; null only on failure.
    let c = unsafe { mg_new(DEFAULT_SIZE as u64, domain_maglev::CACHE_FLOWS as u64) };
    assert!(!c.is_null(), "the C balancer could not be allocated");
    for b in 0..BACKENDS {
        let mac = 0x0200_0000_0100 + b;
        ours.table.add(mac).expect("room");
        // SAFETY: a live balancer.
        assert_eq!(unsafe { mg_add(c, mac) }, 0);
    }
    let (mut tc, mut tr, mut sums) = (Vec::new(), Vec::new(), [0u64; 2]);
    for run in 0..runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for v in order {
            let start = ticks();
            let sum = if v == 0 {
                // SAFETY: `frames` holds `packets` frames of FRAME bytes;
                // the C writes only within each frame's first 12 bytes.
                unsafe {
                    mg_steer_all(
                        c,
                        frames.as_mut_ptr(),
                        packets as u64,
                        FRAME as u64,
                        FRAME as u64,
                        OUR_MAC.as_ptr(),
                    )
                }
            } else {
                let mut sum = 0u64;
                for batch in black_box(&mut frames).chunks_mut(32 * FRAME) {
                    domain_maglev::steer_batch(
                        &mut ours.cache,
                        &ours.table,
                        batch.chunks_exact_mut(FRAME),
                        OUR_MAC,
                        |_, backend| {
                            if let Some(backend) = backend {
                                sum = sum.wrapping_add(backend);
                            }
                        },
                    );
                }
                sum
            };
            let per = (ticks() - start) as f64 / packets as f64;
            sums[v] = black_box(sum);
            if v == 0 { &mut tc } else { &mut tr }.push(per);
        }
    }
    // SAFETY: allocated by `mg_new`, freed once.
    unsafe { mg_free(c) };
    assert_eq!(
        sums[0], sums[1],
        "Maglev: C and Rust chose different backends"
    );
    Row {
        benchmark: "maglev",
        case: format!("{flows} flows"),
        c: median(tc),
        rust: median(tr),
        checksum: sums[0],
    }
}

/// `n` distinct keys of `len` bytes, back to back.
fn kv_keys(n: usize, len: usize, seed: u64) -> Vec<u8> {
    let mut keys = vec![0u8; n * len];
    let mut x = seed | 1;
    for (i, key) in keys.chunks_exact_mut(len).enumerate() {
        for (j, b) in key.iter_mut().enumerate() {
            *b = (b'a' + (xorshift(&mut x) % 26) as u8) ^ (j as u8 & 0x20);
        }
        // Distinct: the index, in the key's first bytes.
        let id = (i as u64).to_le_bytes();
        let room = len.min(8);
        key[..room].copy_from_slice(&id[..room]);
    }
    keys
}

/// The same keys in a scrambled order.
fn shuffled(keys: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let n = keys.len() / len;
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        order.swap(i, (xorshift(&mut x) % (i as u64 + 1)) as usize);
    }
    order
        .iter()
        .flat_map(|&i| keys[i * len..(i + 1) * len].iter().copied())
        .collect()
}

/// The key-value core: for each run, a fresh store filled with `n`
/// items (keys of `key_len`, values of `value_len` bytes), then `n` gets
/// and `n` replacing sets in a scrambled order. Three rows: insert, get,
/// replace (ticks per operation).
pub fn kv(n: usize, key_len: usize, value_len: usize, runs: usize) -> [Row; 3] {
    assert!(
        key_len >= 3 || n <= 1 << (8 * key_len),
        "keys must be distinct"
    );
    let keys = kv_keys(n, key_len, 0x9e37_79b9 ^ (key_len * 131 + value_len) as u64);
    let probe = shuffled(&keys, key_len, 0x2545_f491 ^ n as u64);
    let mut value = vec![b'v'; value_len];
    let mut t = [
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
        [Vec::new(), Vec::new()],
    ];
    let mut sums = [[0u64; 2]; 3];
    for run in 0..runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for v in order {
            let mut timed = [0f64; 3];
            let mut got = [0u64; 3];
            if v == 0 {
                // SAFETY: the C allocates; null only on failure.
                let c = unsafe { kv_new(usize::MAX / 2) };
                assert!(!c.is_null());
                for (phase, input) in [&keys, &probe, &probe].into_iter().enumerate() {
                    let start = ticks();
                    // SAFETY: a live store; `input` holds `n` keys of
                    // `key_len` bytes; `value` is `value_len` bytes.
                    got[phase] = unsafe {
                        if phase == 1 {
                            kv_gets(c, input.as_ptr(), key_len, n as u64, 1)
                        } else {
                            kv_sets(
                                c,
                                input.as_ptr(),
                                key_len,
                                n as u64,
                                value.as_mut_ptr(),
                                value_len,
                            )
                        }
                    };
                    timed[phase] = (ticks() - start) as f64 / n as f64;
                }
                // SAFETY: a live store.
                assert_eq!(unsafe { kv_len(c) }, n);
                // SAFETY: allocated by `kv_new`, freed once.
                unsafe { kv_free(c) };
            } else {
                let mut store = Store::new(usize::MAX / 2);
                for (phase, input) in [&keys, &probe, &probe].into_iter().enumerate() {
                    let start = ticks();
                    let mut sum = 0u64;
                    for (i, key) in black_box(input).chunks_exact(key_len).enumerate() {
                        if phase == 1 {
                            if let Some(item) = store.get(key, 1) {
                                sum += item.value.len() as u64 + u64::from(item.value[0]);
                            }
                        } else {
                            value[0] = i as u8;
                            sum += store.set(key, value.to_vec(), 0, 0).is_ok() as u64;
                        }
                    }
                    got[phase] = black_box(sum);
                    timed[phase] = (ticks() - start) as f64 / n as f64;
                }
                assert_eq!(store.len(), n);
            }
            for phase in 0..3 {
                t[phase][v].push(timed[phase]);
                sums[phase][v] = got[phase];
            }
        }
    }
    let case =
        |what: &str| format!("{what}, {key_len}-byte keys, {value_len}-byte values, {n} items");
    let names = ["set (insert)", "get", "set (replace)"];
    core::array::from_fn(|phase| {
        assert_eq!(
            sums[phase][0], sums[phase][1],
            "key-value core: C and Rust disagree on {}",
            names[phase]
        );
        Row {
            benchmark: "kv",
            case: case(names[phase]),
            c: median(t[phase][0].clone()),
            rust: median(t[phase][1].clone()),
            checksum: sums[phase][0],
        }
    })
}

/// Requests as clients send them: wrk's, curl's and a browser's.
pub fn http_requests() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "wrk",
            b"GET /bytes/1024 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec(),
        ),
        (
            "curl",
            b"GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\n\
              Accept: */*\r\n\r\n"
                .to_vec(),
        ),
        (
            "browser",
            b"GET /index.html?lang=en&theme=dark HTTP/1.1\r\nHost: www.example.org\r\n\
              Connection: keep-alive\r\nCache-Control: max-age=0\r\n\
              sec-ch-ua: \"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\"\r\n\
              sec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: \"Linux\"\r\nUpgrade-Insecure-Requests: 1\r\n\
              User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
              Chrome/120.0.0.0 Safari/537.36\r\n\
              Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
              */*;q=0.8\r\nSec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\n\
              Sec-Fetch-Dest: document\r\nAccept-Encoding: gzip, deflate, br\r\n\
              Accept-Language: en-US,en;q=0.9\r\nCookie: session=8f14e45fceea167a5a36dedd4bea2543\r\n\r\n"
                .to_vec(),
        ),
    ]
}

/// httparse on one request, with the checksum the C computes.
pub fn httparse_sum<'b>(request: &'b [u8], headers: &mut [httparse::Header<'b>]) -> u64 {
    let mut parsed = httparse::Request::new(headers);
    match parsed.parse(request) {
        Ok(httparse::Status::Complete(taken)) => {
            let mut sum = taken as u64
                + parsed.method.map_or(0, str::len) as u64
                + parsed.path.map_or(0, str::len) as u64
                + parsed.headers.len() as u64;
            for h in parsed.headers.iter() {
                sum += (h.name.len() + h.value.len()) as u64;
            }
            sum
        }
        _ => 1_000_000,
    }
}

/// The C parser on one request, its checksum.
pub fn c_parse_sum(request: &[u8]) -> u64 {
    let ptr = request.as_ptr();
    let len = request.len();
    // SAFETY: one buffer of `len` bytes, read only.
    unsafe { hp_parse_all(&ptr, &len, 1, 1) }
}

/// Ticks per request parsed, each kind of request `rounds` times a run.
pub fn http(runs: usize, rounds: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, request) in http_requests() {
        let (mut tc, mut tr, mut sums) = (Vec::new(), Vec::new(), [0u64; 2]);
        let ptr = request.as_ptr();
        let len = request.len();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        for run in 0..runs {
            let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
            for v in order {
                let start = ticks();
                let sum = if v == 0 {
                    // SAFETY: one buffer of `len` bytes, read only.
                    unsafe { hp_parse_all(black_box(&ptr), &len, 1, rounds as u64) }
                } else {
                    let mut sum = 0u64;
                    for _ in 0..rounds {
                        sum += httparse_sum(black_box(&request), &mut headers);
                    }
                    sum
                };
                let per = (ticks() - start) as f64 / rounds as f64;
                sums[v] = black_box(sum);
                if v == 0 { &mut tc } else { &mut tr }.push(per);
            }
        }
        assert_eq!(
            sums[0], sums[1],
            "HTTP parsing: C and httparse disagree on {name}"
        );
        rows.push(Row {
            benchmark: "http-parse",
            case: format!("{name} request, {len} bytes"),
            c: median(tc),
            rust: median(tr),
            checksum: sums[0],
        });
    }
    rows
}
