//! The applications' benchmark pairs compute the same thing: the runs
//! panic when C and Rust disagree, and the HTTP parsers agree on what is
//! malformed or incomplete as well as on whole requests.

use bench::apps;

#[test]
fn maglev_c_and_rust_choose_the_same_backends() {
    for flows in [1, 50, 70_000] {
        let row = apps::maglev(flows, 4096, 2);
        assert!(row.checksum > 0, "frames were forwarded");
    }
}

#[test]
fn the_key_value_cores_agree() {
    for (key, value) in [(8, 8), (16, 64), (64, 1024), (3, 1)] {
        let rows = apps::kv(2000, key, value, 2);
        assert_eq!(rows[0].checksum, 2000, "every insert stored");
        assert_eq!(rows[2].checksum, 2000, "every replace stored");
    }
}

#[test]
fn the_http_parsers_agree_on_good_bad_and_partial_requests() {
    let mut cases: Vec<Vec<u8>> = apps::http_requests().into_iter().map(|(_, r)| r).collect();
    let whole = cases.clone();
    // Every prefix of each request is incomplete to both.
    for request in &whole {
        for cut in 0..request.len() {
            cases.push(request[..cut].to_vec());
        }
    }
    for bad in [
        &b"GET  / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo\x01st: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\rX\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET /\xc3\xa9 HTTP/1.0\r\nA:\r\nB: \t v \t\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
    ] {
        cases.push(bad.to_vec());
    }
    let mut too_many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..33 {
        too_many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    too_many.extend_from_slice(b"\r\n");
    cases.push(too_many);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    for case in &cases {
        assert_eq!(
            apps::c_parse_sum(case),
            apps::httparse_sum(case, &mut headers),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
    // And the whole requests parse (not both failing alike).
    for request in &whole {
        assert!(apps::c_parse_sum(request) < 1_000_000);
    }
}
