//! memcached's text protocol over the [`Store`]: one command at a time
//! from the bytes a connection has read ([`Server::execute`]), and UDP
//! datagrams with their 8-byte frame header ([`Server::datagram`]).
//!
//! Commands: get, gets, set, add, replace, append, prepend, cas, delete,
//! incr, decr, touch, flush_all, version, verbosity, stats, quit. Keys are
//! at most 250 bytes without spaces or control characters; values at
//! most [`MAX_VALUE`] (a larger one is refused and its data skipped). An
//! expiry of up to 30 days is relative, in seconds; a larger one is an
//! absolute time, which this system, having no wall clock, counts in
//! seconds since boot; a negative one has already passed.

use alloc::vec::Vec;

use crate::store::Store;

/// Most bytes of a value.
pub const MAX_VALUE: usize = 1 << 20;
/// Most bytes of a key.
pub const MAX_KEY: usize = 250;
/// Most bytes of a command line.
pub const MAX_LINE: usize = 2048;
/// Bytes of response payload per UDP datagram (after the 8-byte header).
pub const UDP_CHUNK: usize = 1400;
/// The server's version string.
pub const VERSION: &str = "1.6.0-redleaf";

const THIRTY_DAYS: i64 = 60 * 60 * 24 * 30;
const NS: u64 = 1_000_000_000;

/// What to do with the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a whole command yet: read more.
    Incomplete,
    /// Send `reply` (possibly empty: `noreply`), drop `consumed` bytes of
    /// the input and then `skip` more bytes yet to arrive (a value too
    /// large to store), and close the connection after it if `close`.
    Reply {
        consumed: usize,
        skip: usize,
        reply: Vec<u8>,
        close: bool,
    },
}

/// Counters `stats` reports.
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub cmd_get: u64,
    pub cmd_set: u64,
    pub cmd_touch: u64,
    pub get_hits: u64,
    pub get_misses: u64,
    pub total_items: u64,
    pub connections: u64,
    pub curr_connections: u64,
}

pub struct Server {
    pub store: Store,
    pub stats: Stats,
    started_ns: u64,
}

fn reply(consumed: usize, text: &[u8]) -> Outcome {
    Outcome::Reply {
        consumed,
        skip: 0,
        reply: text.to_vec(),
        close: false,
    }
}

fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && key.iter().all(|&b| b > b' ' && b != 0x7f)
}

fn number<T: core::str::FromStr>(word: &[u8]) -> Option<T> {
    core::str::from_utf8(word).ok()?.parse().ok()
}

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";

impl Server {
    /// A server over a store of `limit` bytes, its clock starting at
    /// `now_ns`.
    pub fn new(limit: usize, now_ns: u64) -> Server {
        Server {
            store: Store::new(limit),
            stats: Stats::default(),
            started_ns: now_ns,
        }
    }

    /// An expiry given in a command, as a time in the store's clock (0:
    /// never).
    fn expiry(&self, exptime: i64, now_ns: u64) -> u64 {
        match exptime {
            0 => 0,
            t if t < 0 => now_ns.max(1),
            t if t <= THIRTY_DAYS => now_ns + t as u64 * NS,
            // Absolute: seconds since boot here (no wall clock).
            t => (self.started_ns + t as u64 * NS).max(1),
        }
    }

    /// Runs the first command of `input`.
    pub fn execute(&mut self, input: &[u8], now_ns: u64) -> Outcome {
        let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
            if input.len() > MAX_LINE {
                return Outcome::Reply {
                    consumed: input.len(),
                    skip: 0,
                    reply: b"CLIENT_ERROR line too long\r\n".to_vec(),
                    close: true,
                };
            }
            return Outcome::Incomplete;
        };
        if end > MAX_LINE {
            return Outcome::Reply {
                consumed: input.len(),
                skip: 0,
                reply: b"CLIENT_ERROR line too long\r\n".to_vec(),
                close: true,
            };
        }
        let line = &input[..end];
        let consumed = end + 2;
        let words: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let Some((&command, args)) = words.split_first() else {
            return reply(consumed, b"ERROR\r\n");
        };
        match command {
            b"get" | b"gets" => self.get(consumed, args, command == b"gets", now_ns),
            b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                self.store_command(input, consumed, command, args, now_ns)
            }
            b"delete" => {
                let (noreply, args) = noreply(args);
                let ok = match args {
                    [key] => valid_key(key),
                    // The old form with a time of 0.
                    [key, b"0"] => valid_key(key),
                    _ => false,
                };
                if !ok {
                    return reply(consumed, BAD_FORMAT);
                }
                let text: &[u8] = if self.store.delete(args[0], now_ns) {
                    b"DELETED\r\n"
                } else {
                    b"NOT_FOUND\r\n"
                };
                reply(consumed, if noreply { b"" } else { text })
            }
            b"incr" | b"decr" => {
                let (noreply, args) = noreply(args);
                let [key, delta] = args else {
                    return reply(consumed, BAD_FORMAT);
                };
                if !valid_key(key) {
                    return reply(consumed, BAD_FORMAT);
                }
                let Some(delta) = number::<u64>(delta) else {
                    return reply(consumed, b"CLIENT_ERROR invalid numeric delta argument\r\n");
                };
                let text = match self.store.incr(key, delta, command == b"decr", now_ns) {
                    Ok(Some(value)) => alloc::format!("{value}\r\n").into_bytes(),
                    Ok(None) => b"NOT_FOUND\r\n".to_vec(),
                    Err(_) => {
                        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n".to_vec()
                    }
                };
                reply(consumed, if noreply { b"" } else { &text })
            }
            b"touch" => {
                let (noreply, args) = noreply(args);
                let [key, exptime] = args else {
                    return reply(consumed, BAD_FORMAT);
                };
                let (true, Some(exptime)) = (valid_key(key), number::<i64>(exptime)) else {
                    return reply(consumed, BAD_FORMAT);
                };
                self.stats.cmd_touch += 1;
                let expires = self.expiry(exptime, now_ns);
                let text: &[u8] = if self.store.touch(key, expires, now_ns) {
                    b"TOUCHED\r\n"
                } else {
                    b"NOT_FOUND\r\n"
                };
                reply(consumed, if noreply { b"" } else { text })
            }
            b"flush_all" => {
                let (noreply, args) = noreply(args);
                match args {
                    [] => self.store.flush(),
                    [delay] => match number::<i64>(delay) {
                        Some(d) if d <= 0 => self.store.flush(),
                        Some(d) => {
                            let at = self.expiry(d, now_ns);
                            self.store.flush_at(at);
                        }
                        None => return reply(consumed, BAD_FORMAT),
                    },
                    _ => return reply(consumed, BAD_FORMAT),
                }
                reply(consumed, if noreply { b"" } else { b"OK\r\n" })
            }
            // As memcached 1.6: arguments are ignored (memccapable checks
            // this of a server reporting 1.6).
            b"version" => reply(consumed, alloc::format!("VERSION {VERSION}\r\n").as_bytes()),
            b"verbosity" => {
                // As memcached 1.6: with noreply, silence, whatever else.
                let (noreply, args) = noreply(args);
                if noreply {
                    return reply(consumed, b"");
                }
                if args.len() != 1 || number::<u32>(args[0]).is_none() {
                    return reply(consumed, b"ERROR\r\n");
                }
                reply(consumed, b"OK\r\n")
            }
            b"stats" => {
                if !args.is_empty() {
                    // No sub-statistics (slabs, items, ...) here.
                    return reply(consumed, b"ERROR\r\n");
                }
                reply(consumed, &self.stats_text(now_ns))
            }
            b"quit" => Outcome::Reply {
                consumed,
                skip: 0,
                reply: Vec::new(),
                close: true,
            },
            _ => reply(consumed, b"ERROR\r\n"),
        }
    }

    fn get(&mut self, consumed: usize, keys: &[&[u8]], cas: bool, now_ns: u64) -> Outcome {
        if keys.is_empty() || !keys.iter().all(|k| valid_key(k)) {
            return reply(consumed, b"ERROR\r\n");
        }
        let mut out = Vec::new();
        for key in keys {
            self.stats.cmd_get += 1;
            match self.store.get(key, now_ns) {
                Some(item) => {
                    self.stats.get_hits += 1;
                    out.extend_from_slice(b"VALUE ");
                    out.extend_from_slice(key);
                    if cas {
                        out.extend_from_slice(
                            alloc::format!(" {} {} {}\r\n", item.flags, item.value.len(), item.cas)
                                .as_bytes(),
                        );
                    } else {
                        out.extend_from_slice(
                            alloc::format!(" {} {}\r\n", item.flags, item.value.len()).as_bytes(),
                        );
                    }
                    out.extend_from_slice(&item.value);
                    out.extend_from_slice(b"\r\n");
                }
                None => self.stats.get_misses += 1,
            }
        }
        out.extend_from_slice(b"END\r\n");
        Outcome::Reply {
            consumed,
            skip: 0,
            reply: out,
            close: false,
        }
    }

    fn store_command(
        &mut self,
        input: &[u8],
        line_end: usize,
        command: &[u8],
        args: &[&[u8]],
        now_ns: u64,
    ) -> Outcome {
        let (noreply, args) = noreply(args);
        let is_cas = command == b"cas";
        let wanted = if is_cas { 5 } else { 4 };
        if args.len() != wanted || !valid_key(args[0]) {
            return reply(line_end, BAD_FORMAT);
        }
        let (Some(flags), Some(exptime), Some(bytes)) = (
            number::<u32>(args[1]),
            number::<i64>(args[2]),
            number::<usize>(args[3]),
        ) else {
            return reply(line_end, BAD_FORMAT);
        };
        let unique = if is_cas {
            match number::<u64>(args[4]) {
                Some(unique) => Some(unique),
                None => return reply(line_end, BAD_FORMAT),
            }
        } else {
            None
        };
        if bytes > MAX_VALUE {
            // Refused; its data (and the CRLF after it) is skipped.
            let here = (input.len() - line_end).min(bytes + 2);
            return Outcome::Reply {
                consumed: line_end + here,
                skip: bytes + 2 - here,
                reply: b"SERVER_ERROR object too large for cache\r\n".to_vec(),
                close: false,
            };
        }
        let total = line_end + bytes + 2;
        if input.len() < total {
            return Outcome::Incomplete;
        }
        if &input[line_end + bytes..total] != b"\r\n" {
            // The data block is not what the line said: what follows
            // cannot be trusted to be a command.
            return Outcome::Reply {
                consumed: input.len(),
                skip: 0,
                reply: b"CLIENT_ERROR bad data chunk\r\n".to_vec(),
                close: true,
            };
        }
        let data = &input[line_end..line_end + bytes];
        let key = args[0];
        self.stats.cmd_set += 1;
        let expires = self.expiry(exptime, now_ns);
        let exists = self.store.get(key, now_ns).map(|item| item.cas);
        let result: Result<&[u8], ()> = match command {
            b"set" => self.put(key, data, flags, expires),
            b"add" if exists.is_some() => Ok(b"NOT_STORED\r\n"),
            b"add" => self.put(key, data, flags, expires),
            b"replace" if exists.is_none() => Ok(b"NOT_STORED\r\n"),
            b"replace" => self.put(key, data, flags, expires),
            b"append" | b"prepend" => {
                match self.store.concat(key, data, command == b"prepend", now_ns) {
                    Ok(true) => Ok(b"STORED\r\n"),
                    Ok(false) => Ok(b"NOT_STORED\r\n"),
                    Err(_) => Err(()),
                }
            }
            _ => match exists {
                None => Ok(b"NOT_FOUND\r\n"),
                Some(current) if Some(current) != unique => Ok(b"EXISTS\r\n"),
                Some(_) => self.put(key, data, flags, expires),
            },
        };
        let text: &[u8] = match result {
            Ok(text) => text,
            Err(()) => b"SERVER_ERROR out of memory storing object\r\n",
        };
        reply(total, if noreply { b"" } else { text })
    }

    fn put(
        &mut self,
        key: &[u8],
        data: &[u8],
        flags: u32,
        expires: u64,
    ) -> Result<&'static [u8], ()> {
        self.store
            .set(key, data.to_vec(), flags, expires)
            .map_err(|_| ())?;
        self.stats.total_items += 1;
        Ok(b"STORED\r\n")
    }

    fn stats_text(&self, now_ns: u64) -> Vec<u8> {
        let s = &self.stats;
        let uptime = now_ns.saturating_sub(self.started_ns) / NS;
        alloc::format!(
            "STAT pid 1\r\nSTAT uptime {uptime}\r\nSTAT version {VERSION}\r\nSTAT pointer_size 64\r\n\
             STAT curr_connections {}\r\nSTAT total_connections {}\r\nSTAT cmd_get {}\r\n\
             STAT cmd_set {}\r\nSTAT cmd_touch {}\r\nSTAT get_hits {}\r\nSTAT get_misses {}\r\n\
             STAT curr_items {}\r\nSTAT total_items {}\r\nSTAT bytes {}\r\nSTAT limit_maxbytes {}\r\n\
             STAT threads 1\r\nEND\r\n",
            s.curr_connections,
            s.connections,
            s.cmd_get,
            s.cmd_set,
            s.cmd_touch,
            s.get_hits,
            s.get_misses,
            self.store.len(),
            s.total_items,
            self.store.bytes(),
            self.store.limit
        )
        .into_bytes()
    }

    /// One UDP request datagram (its 8-byte frame header, then commands)
    /// to the response datagrams (each with its header: the request id,
    /// its sequence number, the total). A request that spans datagrams,
    /// or is shorter than the header, is dropped (no reply).
    pub fn datagram(&mut self, request: &[u8], now_ns: u64) -> Vec<Vec<u8>> {
        if request.len() < 8 || request[4..6] != [0, 1] {
            return Vec::new();
        }
        let id = [request[0], request[1]];
        let mut input = &request[8..];
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.execute(input, now_ns) {
                Outcome::Incomplete => {
                    out.extend_from_slice(b"CLIENT_ERROR incomplete request\r\n");
                    break;
                }
                Outcome::Reply {
                    consumed,
                    reply,
                    close,
                    ..
                } => {
                    out.extend_from_slice(&reply);
                    input = &input[consumed.min(input.len())..];
                    if close {
                        break;
                    }
                }
            }
        }
        if out.is_empty() {
            return Vec::new();
        }
        let total = out.len().div_ceil(UDP_CHUNK);
        if total > usize::from(u16::MAX) {
            return Vec::new();
        }
        out.chunks(UDP_CHUNK)
            .enumerate()
            .map(|(seq, chunk)| {
                let mut datagram = Vec::with_capacity(8 + chunk.len());
                datagram.extend_from_slice(&id);
                datagram.extend_from_slice(&(seq as u16).to_be_bytes());
                datagram.extend_from_slice(&(total as u16).to_be_bytes());
                datagram.extend_from_slice(&[0, 0]);
                datagram.extend_from_slice(chunk);
                datagram
            })
            .collect()
    }
}

/// Strips a trailing `noreply`.
fn noreply<'a, 'b>(args: &'a [&'b [u8]]) -> (bool, &'a [&'b [u8]]) {
    match args.split_last() {
        Some((last, rest)) if *last == b"noreply" => (true, rest),
        _ => (false, args),
    }
}
