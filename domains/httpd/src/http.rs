//! HTTP/1.1 requests to responses, apart from the sockets: what the
//! domain's connection tasks run on the bytes they read, and what the host
//! tests drive directly. Parsing is httparse's; this module bounds every
//! buffer, picks the status, and builds the response.
//!
//! A request is answered once it is complete (its head, and its body if
//! it declares one: the body is skipped, since GET and HEAD take none).
//! Several requests in one read (pipelining) are answered in order, one
//! [`handle`] call each. What cannot be answered gets its status and the
//! connection is closed: 400 (malformed), 404, 405 (a method other than
//! GET and HEAD), 413 (a body over [`MAX_BODY`]), 414 (a target over
//! [`MAX_TARGET`]), 431 (a head over [`MAX_HEAD`] or more than
//! [`MAX_HEADERS`] headers), 505 (not HTTP/1.x).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Most bytes of a request's head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most bytes of a request target.
pub const MAX_TARGET: usize = 4096;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 48;
/// Most bytes of a request body (read and skipped).
pub const MAX_BODY: usize = 64 * 1024;
/// What a connection may have to hold at once.
pub const MAX_REQUEST: usize = MAX_HEAD + MAX_BODY;

/// Files served from memory: path to (content type, bytes).
pub struct Site {
    files: BTreeMap<String, (&'static str, Vec<u8>)>,
}

/// The content type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

impl Site {
    pub fn new() -> Site {
        Site {
            files: BTreeMap::new(),
        }
    }

    /// The in-memory site the domain serves: a page, a text file, and
    /// bodies of fixed sizes for benchmarks (`/bytes/64`, `/bytes/1024`,
    /// `/bytes/16384`, `/bytes/65536`).
    pub fn builtin() -> Site {
        let mut site = Site::new();
        site.add(
            "/index.html",
            b"<!doctype html>\n<title>redleaf httpd</title>\n<p>Served by an async domain over \
              smoltcp sockets.</p>\n"
                .to_vec(),
        );
        site.add("/hello.txt", b"hello from a domain\n".to_vec());
        for size in [64usize, 1024, 16384, 65536] {
            let body = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            site.add(&alloc::format!("/bytes/{size}"), body);
        }
        site
    }

    pub fn add(&mut self, path: &str, bytes: Vec<u8>) {
        self.files
            .insert(String::from(path), (content_type(path), bytes));
    }

    fn get(&self, path: &str) -> Option<&(&'static str, Vec<u8>)> {
        let path = if path.ends_with('/') {
            alloc::format!("{path}index.html")
        } else {
            String::from(path)
        };
        self.files.get(&path)
    }
}

impl Default for Site {
    fn default() -> Site {
        Site::new()
    }
}

/// What to do with the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a whole request yet: read more.
    Incomplete,
    /// Send `response`, drop the first `consumed` bytes of the input, and
    /// close the connection after it if `close`.
    Respond {
        consumed: usize,
        status: u16,
        response: Vec<u8>,
        close: bool,
    },
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A whole response: status line, headers, and the body unless `head`.
pub fn response(status: u16, content_type: &str, body: &[u8], head: bool, close: bool) -> Vec<u8> {
    let mut out = response_head(status, content_type, body.len() as u64, close);
    if !head {
        out.extend_from_slice(body);
    }
    out
}

/// An error response that ends the connection, after `consumed` bytes.
fn fail(status: u16, consumed: usize) -> Outcome {
    status_only(status, consumed, false, true)
}

/// The first request in `input`, parsed and checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole request yet: read more.
    Incomplete,
    /// Not to be served: send this (an error status) and close.
    Refused(Outcome),
    /// A GET or HEAD of `path` (the target without query or fragment),
    /// taking `consumed` bytes of the input.
    Get {
        consumed: usize,
        path: &'a str,
        head: bool,
        close: bool,
    },
}

/// The response to the first request in `input`, from `site`.
pub fn handle(input: &[u8], site: &Site) -> Outcome {
    match parse(input) {
        Parsed::Incomplete => Outcome::Incomplete,
        Parsed::Refused(outcome) => outcome,
        Parsed::Get {
            consumed,
            path,
            head,
            close,
        } => match site.get(path) {
            Some((content_type, bytes)) => Outcome::Respond {
                consumed,
                status: 200,
                response: response(200, content_type, bytes, head, close),
                close,
            },
            None => status_only(404, consumed, head, close),
        },
    }
}

/// A response of `status` with a one-line text body (its reason).
pub fn status_only(status: u16, consumed: usize, head: bool, close: bool) -> Outcome {
    let body = alloc::format!("{status} {}\n", reason(status));
    Outcome::Respond {
        consumed,
        status,
        response: response(
            status,
            "text/plain; charset=utf-8",
            body.as_bytes(),
            head,
            close,
        ),
        close,
    }
}

/// The status line and headers of a response whose body of `length`
/// bytes follows separately (streamed from a file).
pub fn response_head(status: u16, content_type: &str, length: u64, close: bool) -> Vec<u8> {
    let mut out = alloc::format!(
        "HTTP/1.1 {status} {}\r\nServer: redleaf-httpd\r\nContent-Length: {length}\r\nContent-Type: {content_type}\r\n",
        reason(status),
    )
    .into_bytes();
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Where `path` (a request's, starting with '/') is under the directory
/// `root` of a file system: `None` for a path that names a parent or
/// the same directory (`..`, `.`) or holds a NUL or a backslash, which
/// are never served. A path ending in '/' asks for its `index.html`.
pub fn file_path(root: &str, path: &str) -> Option<String> {
    let mut out = String::from(root.trim_end_matches('/'));
    let mut last_empty = false;
    for segment in path.split('/').skip(1) {
        if segment == ".." || segment == "." || segment.contains(['\0', '\\']) {
            return None;
        }
        last_empty = segment.is_empty();
        if !last_empty {
            out.push('/');
            out.push_str(segment);
        }
    }
    if last_empty {
        out.push_str("/index.html");
    }
    Some(out)
}

/// Parses the first request in `input` and checks it is one to serve.
pub fn parse(input: &[u8]) -> Parsed<'_> {
    let fail = |status, consumed| Parsed::Refused(fail(status, consumed));
    // A request line longer than any allowed target: 414 before the rest.
    let line_end = input.windows(2).position(|w| w == b"\r\n");
    let line_limit = MAX_TARGET + 64;
    match line_end {
        Some(end) if end > line_limit => return fail(414, input.len()),
        None if input.len() > line_limit => return fail(414, input.len()),
        _ => {}
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if input.len() >= MAX_HEAD {
                return fail(431, input.len());
            }
            return Parsed::Incomplete;
        }
        Err(httparse::Error::Version) => return fail(505, input.len()),
        Err(httparse::Error::TooManyHeaders) => return fail(431, input.len()),
        Err(_) => return fail(400, input.len()),
    };
    if head_len > MAX_HEAD {
        return fail(431, input.len());
    }
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return fail(400, input.len());
    };
    if target.len() > MAX_TARGET {
        return fail(414, input.len());
    }
    // The body, if one is declared: it must arrive whole (and is skipped).
    let mut body = 0usize;
    let mut has_host = false;
    let mut connection_close = minor == 0;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let Some(len) = core::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            else {
                return fail(400, input.len());
            };
            if len > MAX_BODY {
                return fail(413, input.len());
            }
            body = len;
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // A chunked body on a GET: not something to skip blindly.
            return fail(400, input.len());
        } else if header.name.eq_ignore_ascii_case("host") {
            has_host = true;
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = core::str::from_utf8(header.value).unwrap_or("");
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    connection_close = false;
                }
            }
        }
    }
    let consumed = head_len + body;
    if input.len() < consumed {
        return Parsed::Incomplete;
    }
    if minor == 1 && !has_host {
        return fail(400, consumed);
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return fail(405, consumed),
    };
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return fail(400, consumed);
    }
    Parsed::Get {
        consumed,
        path,
        head,
        close: connection_close,
    }
}

/// What a connection that sent no whole request in time is told.
pub fn timed_out() -> Vec<u8> {
    let body = b"408 Request Timeout\n";
    response(408, "text/plain; charset=utf-8", body, false, true)
}
