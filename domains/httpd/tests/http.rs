//! The request handling of `httpd` on the host: statuses, bounds,
//! keep-alive, pipelining.

use domain_httpd::http::{MAX_BODY, MAX_HEAD, MAX_TARGET, Outcome, Site, content_type, handle};

fn answer(input: &[u8]) -> (usize, u16, String, bool) {
    match handle(input, &Site::builtin()) {
        Outcome::Respond {
            consumed,
            status,
            response,
            close,
        } => (
            consumed,
            status,
            String::from_utf8_lossy(&response).into_owned(),
            close,
        ),
        Outcome::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(input)),
    }
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
}

#[test]
fn get_serves_a_file_with_its_length_and_type() {
    let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let (consumed, status, response, close) = answer(request);
    assert_eq!((consumed, status, close), (request.len(), 200, false));
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&response, "Content-Length"), Some("20"));
    assert_eq!(
        header(&response, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(response.ends_with("\r\n\r\nhello from a domain\n"));
    // The directory's index, and a query string ignored.
    let (_, status, response, _) = answer(b"GET /?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(
        header(&response, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let (_, status, response, _) = answer(b"HEAD /bytes/1024 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(header(&response, "Content-Length"), Some("1024"));
    assert!(response.ends_with("\r\n\r\n"));
}

#[test]
fn errors_get_their_status() {
    let host = "Host: x\r\n";
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            format!("GET /nothing HTTP/1.1\r\n{host}\r\n").into_bytes(),
            404,
        ),
        (
            format!("POST /hello.txt HTTP/1.1\r\n{host}Content-Length: 2\r\n\r\nhi").into_bytes(),
            405,
        ),
        (format!("DELETE / HTTP/1.1\r\n{host}\r\n").into_bytes(), 405),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400), // HTTP/1.1 without Host
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
        (
            format!("GET nohost HTTP/1.1\r\n{host}\r\n").into_bytes(),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}Content-Length: zz\r\n\r\n").into_bytes(),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n").into_bytes(),
            400,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\n{host}Content-Length: {}\r\n\r\n",
                MAX_BODY + 1
            )
            .into_bytes(),
            413,
        ),
        (
            format!("GET /{} HTTP/1.1\r\n{host}\r\n", "a".repeat(MAX_TARGET + 1)).into_bytes(),
            414,
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}{}\r\n", "X-A: b\r\n".repeat(60)).into_bytes(),
            431,
        ),
    ];
    for (request, want) in cases {
        let (_, status, response, close) = answer(&request);
        assert_eq!(
            status,
            want,
            "{}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
        assert!(response.starts_with(&format!("HTTP/1.1 {want} ")));
        assert!(
            close || want == 404,
            "an error other than 404 closes the connection"
        );
        if want == 405 {
            assert_eq!(header(&response, "Allow"), Some("GET, HEAD"));
        }
    }
}

#[test]
fn oversized_input_is_refused_before_it_is_whole() {
    // A request line that never ends.
    let endless = vec![b'a'; MAX_TARGET + 100];
    let mut request = b"GET /".to_vec();
    request.extend_from_slice(&endless);
    assert_eq!(answer(&request).1, 414);
    // A head that never ends.
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while head.len() < MAX_HEAD {
        head.extend_from_slice(b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    // (fewer than the header limit would allow only if they were shorter)
    let (_, status, _, close) = answer(&head);
    assert_eq!((status, close), (431, true));
}

#[test]
fn partial_requests_wait_for_more() {
    let site = Site::builtin();
    for partial in [&b"GET /hello"[..], b"GET / HTTP/1.1\r\nHost: x\r\n", b""] {
        assert_eq!(handle(partial, &site), Outcome::Incomplete);
    }
    // A declared body not all there yet.
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345";
    assert_eq!(handle(head, &site), Outcome::Incomplete);
}

#[test]
fn pipelined_requests_are_answered_one_by_one_and_bodies_skipped() {
    let first = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_vec();
    let second = b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let third = b"GET /bytes/64 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    let mut input = [first.clone(), second.clone(), third.clone()].concat();
    let mut statuses = Vec::new();
    loop {
        let (consumed, status, _, close) = answer(&input);
        statuses.push((status, close));
        input.drain(..consumed);
        if close {
            break;
        }
    }
    assert_eq!(statuses, [(200, false), (200, false), (200, true)]);
    assert!(input.is_empty());
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let (_, _, response, close) = answer(b"GET / HTTP/1.0\r\n\r\n");
    assert!(close);
    assert_eq!(header(&response, "Connection"), Some("close"));
    let (_, _, _, close) = answer(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(!close);
    let (_, _, _, close) = answer(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(close);
}

#[test]
fn content_types_by_extension() {
    assert_eq!(content_type("/a/b.HTML"), "text/html; charset=utf-8");
    assert_eq!(content_type("/x.png"), "image/png");
    assert_eq!(content_type("/x.json"), "application/json");
    assert_eq!(content_type("/noextension"), "application/octet-stream");
}

#[test]
fn request_paths_map_into_the_root_and_never_out_of_it() {
    use domain_httpd::http::file_path;
    assert_eq!(
        file_path("/www", "/a/b.txt").as_deref(),
        Some("/www/a/b.txt")
    );
    assert_eq!(file_path("/www/", "/").as_deref(), Some("/www/index.html"));
    assert_eq!(
        file_path("/www", "/docs/").as_deref(),
        Some("/www/docs/index.html")
    );
    assert_eq!(file_path("/www", "//x//y").as_deref(), Some("/www/x/y"));
    assert_eq!(file_path("/", "/etc/motd").as_deref(), Some("/etc/motd"));
    for escape in [
        "/../etc/motd",
        "/a/../../x",
        "/./x",
        "/a/..",
        "/a\\..\\b",
        "/a\0b",
    ] {
        assert_eq!(file_path("/www", escape), None, "{escape:?}");
    }
    // Names that only look like dots are names.
    assert_eq!(file_path("/www", "/...").as_deref(), Some("/www/..."));
    assert_eq!(file_path("/www", "/..x").as_deref(), Some("/www/..x"));
}

#[test]
fn a_parsed_get_names_its_path_without_the_query() {
    use domain_httpd::http::{Parsed, parse};
    let input = b"HEAD /a/b.html?x=1#f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET";
    assert_eq!(
        parse(input),
        Parsed::Get {
            consumed: input.len() - 3,
            path: "/a/b.html",
            head: true,
            close: true
        }
    );
    assert!(matches!(
        parse(b"GET x HTTP/1.1\r\nHost: t\r\n\r\n"),
        Parsed::Refused(_)
    ));
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHo"), Parsed::Incomplete);
    let head = String::from_utf8(domain_httpd::http::response_head(
        200,
        "text/html",
        12345,
        false,
    ))
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&head, "Content-Length"), Some("12345"));
    assert!(head.ends_with("\r\n\r\n") && !head.contains("Connection"));
}
