//! `coreutils`: rv6's utilities in one program, which runs the one its
//! first argument names (the file system holds it as `/bin/ls`,
//! `/bin/cat`, ...): `ls cat echo mkdir rm rmdir ln mv cp touch wc grep
//! head kill ps sync true false crash sleep timespawn tail`. Errors go to
//! standard error and
//! give status 1; `crash` panics on purpose (its status is 139).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rv6_ulib::{Process, STDIN, kind, open_flags};

/// The utilities this program holds.
pub const APPLETS: [&str; 19] = [
    "ls", "cat", "echo", "mkdir", "rm", "rmdir", "ln", "mv", "cp", "touch", "wc", "grep", "head",
    "kill", "ps", "sync", "true", "false", "crash",
];

struct Ctx<'a> {
    p: &'a mut Process,
    name: String,
    failed: bool,
}

impl Ctx<'_> {
    async fn error(&mut self, what: &str, e: rv6_ulib::Errno) {
        let text = format!("{}: {what}: {e}\n", self.name);
        self.p.eprint(&text).await;
        self.failed = true;
    }

    async fn usage(&mut self, usage: &str) {
        let text = format!("usage: {} {usage}\n", self.name);
        self.p.eprint(&text).await;
        self.failed = true;
    }

    /// The contents of each of `files`, or of standard input if none.
    async fn inputs(&mut self, files: &[String]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        if files.is_empty() {
            match self.p.read_all(STDIN).await {
                Ok(data) => out.push((String::new(), data)),
                Err(e) => self.error("standard input", e).await,
            }
            return out;
        }
        for f in files {
            let data = match self.p.open(f, open_flags::READ).await {
                Ok(fd) => {
                    let r = self.p.read_all(fd).await;
                    let _ = self.p.close(fd).await;
                    r
                }
                Err(e) => Err(e),
            };
            match data {
                Ok(d) => out.push((f.clone(), d)),
                Err(e) => self.error(f, e).await,
            }
        }
        out
    }
}

fn kind_name(k: u8) -> &'static str {
    match k {
        kind::DIR => "dir",
        kind::FILE => "file",
        _ => "dev",
    }
}

async fn ls(c: &mut Ctx<'_>, args: &[String]) {
    let targets: Vec<String> = if args.is_empty() {
        alloc::vec![String::from(".")]
    } else {
        args.to_vec()
    };
    for t in &targets {
        let st = match c.p.stat(t).await {
            Ok(st) => st,
            Err(e) => {
                c.error(t, e).await;
                continue;
            }
        };
        if st.kind != kind::DIR {
            let line = format!(
                "{:<14} {:4} {:5} {}\n",
                t,
                kind_name(st.kind),
                st.inum,
                st.size
            );
            c.p.print(&line).await;
            continue;
        }
        let entries = match c.p.list(t).await {
            Ok(e) => e,
            Err(e) => {
                c.error(t, e).await;
                continue;
            }
        };
        let mut out = String::new();
        for e in entries {
            let path = format!("{}/{}", t.trim_end_matches('/'), e.name);
            match c.p.stat(&path).await {
                Ok(st) => out.push_str(&format!(
                    "{:<14} {:4} {:5} {}\n",
                    e.name,
                    kind_name(st.kind),
                    st.inum,
                    st.size
                )),
                Err(err) => out.push_str(&format!("{:<14} ? ({err})\n", e.name)),
            }
        }
        c.p.print(&out).await;
    }
}

async fn wc(c: &mut Ctx<'_>, args: &[String]) {
    let inputs = c.inputs(args).await;
    let (mut tl, mut tw, mut tb) = (0, 0, 0);
    let several = inputs.len() > 1;
    for (name, data) in &inputs {
        let lines = data.iter().filter(|&&b| b == b'\n').count();
        let words = data
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .count();
        let line = format!("{lines} {words} {} {name}\n", data.len());
        c.p.print(line.trim_end_matches(' ')).await;
        tl += lines;
        tw += words;
        tb += data.len();
    }
    if several {
        c.p.print(&format!("{tl} {tw} {tb} total\n")).await;
    }
}

async fn grep(c: &mut Ctx<'_>, args: &[String]) {
    let Some((pattern, files)) = args.split_first() else {
        return c.usage("PATTERN [FILE...]").await;
    };
    let inputs = c.inputs(files).await;
    let several = inputs.len() > 1;
    let mut found = false;
    let mut out = String::new();
    for (name, data) in &inputs {
        for line in String::from_utf8_lossy(data).lines() {
            if line.contains(pattern.as_str()) {
                found = true;
                if several {
                    out.push_str(&format!("{name}:{line}\n"));
                } else {
                    out.push_str(&format!("{line}\n"));
                }
            }
        }
    }
    c.p.print(&out).await;
    if !found {
        c.failed = true;
    }
}

async fn head(c: &mut Ctx<'_>, args: &[String]) {
    let (n, files) = match args.first().map(String::as_str) {
        Some("-n") => match args.get(1).and_then(|v| v.parse::<usize>().ok()) {
            Some(n) => (n, &args[2..]),
            None => return c.usage("[-n N] [FILE...]").await,
        },
        _ => (10, args),
    };
    for (_, data) in c.inputs(files).await {
        let text = String::from_utf8_lossy(&data);
        let mut out = String::new();
        for line in text.lines().take(n) {
            out.push_str(line);
            out.push('\n');
        }
        c.p.print(&out).await;
    }
}

async fn run(c: &mut Ctx<'_>, args: &[String]) {
    let name = c.name.clone();
    match name.as_str() {
        "echo" => {
            let line = format!("{}\n", args.join(" "));
            c.p.print(&line).await;
        }
        "cat" => {
            for (_, data) in c.inputs(args).await {
                let _ = c.p.write(rv6_ulib::STDOUT, &data).await;
            }
        }
        "ls" => ls(c, args).await,
        "mkdir" | "rm" | "rmdir" | "touch" => {
            if args.is_empty() {
                return c.usage("FILE...").await;
            }
            for a in args {
                let r = match name.as_str() {
                    "mkdir" => c.p.mkdir(a).await,
                    "rm" => c.p.unlink(a).await,
                    "rmdir" => c.p.rmdir(a).await,
                    _ => match c.p.open(a, open_flags::WRITE | open_flags::CREATE).await {
                        Ok(fd) => c.p.close(fd).await,
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = r {
                    c.error(a, e).await;
                }
            }
        }
        "ln" | "mv" => {
            let [from, to] = args else {
                return c.usage("FROM TO").await;
            };
            let r = if name == "ln" {
                c.p.link(from, to).await
            } else {
                c.p.rename(from, to).await
            };
            if let Err(e) = r {
                c.error(from, e).await;
            }
        }
        "cp" => {
            let [from, to] = args else {
                return c.usage("FROM TO").await;
            };
            let data = match c.inputs(core::slice::from_ref(from)).await.pop() {
                Some((_, d)) => d,
                None => return,
            };
            let flags = open_flags::WRITE | open_flags::CREATE | open_flags::TRUNCATE;
            match c.p.open(to, flags).await {
                Ok(fd) => {
                    if let Err(e) = c.p.write(fd, &data).await {
                        c.error(to, e).await;
                    }
                    let _ = c.p.close(fd).await;
                }
                Err(e) => c.error(to, e).await,
            }
        }
        "wc" => wc(c, args).await,
        "grep" => grep(c, args).await,
        "head" => head(c, args).await,
        "kill" => {
            if args.is_empty() {
                return c.usage("PID...").await;
            }
            for a in args {
                match a.parse::<u32>() {
                    Ok(pid) => {
                        if let Err(e) = c.p.kill(pid).await {
                            c.error(a, e).await;
                        }
                    }
                    Err(_) => c.usage("PID...").await,
                }
            }
        }
        "ps" => match c.p.ps().await {
            Ok(text) => c.p.print(&text).await,
            Err(e) => c.error("ps", e).await,
        },
        // Every change is durable when its call returns: nothing to do.
        "sync" | "true" => {}
        "false" => c.failed = true,
        "crash" => panic!("crash: crashing on purpose"),
        // The benchmark of `make bench`: N runs of `/bin/true` (spawn,
        // then wait), and the time each took.
        "timespawn" => {
            let n = match args.first().map(|a| a.parse::<u32>()) {
                Some(Ok(n)) if (1..=10_000).contains(&n) => n,
                _ => return c.usage("RUNS (1 to 10000)").await,
            };
            let mut times = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let t = domain_sdk::now_ns();
                let pid = match c.p.spawn("/bin/true", &["true"], [0, 1, 2]).await {
                    Ok(pid) => pid,
                    Err(e) => return c.error("/bin/true", e).await,
                };
                if let Err(e) = c.p.wait(pid).await {
                    return c.error("wait", e).await;
                }
                times.push(domain_sdk::now_ns() - t);
            }
            times.sort_unstable();
            let median = times[times.len() / 2] / 1000;
            let line = format!(
                "timespawn: {n} runs of /bin/true, spawn + wait: median {median} us, min {} us, max {} us\n",
                times[0] / 1000,
                times[times.len() - 1] / 1000
            );
            c.p.print(&line).await;
        }
        // `tail -c N FILE`: the last N bytes (a seek from the end).
        "tail" => {
            let (Some("-c"), Some(Ok(n)), Some(file)) = (
                args.first().map(String::as_str),
                args.get(1).map(|v| v.parse::<i64>()),
                args.get(2),
            ) else {
                return c.usage("-c BYTES FILE").await;
            };
            let fd = match c.p.open(file, open_flags::READ).await {
                Ok(fd) => fd,
                Err(e) => return c.error(file, e).await,
            };
            let size = c.p.seek(fd, 0, 2).await.unwrap_or(0) as i64;
            let r = match c.p.seek(fd, -(n.min(size)), 2).await {
                Ok(_) => c.p.read_all(fd).await,
                Err(e) => Err(e),
            };
            let _ = c.p.close(fd).await;
            match r {
                Ok(data) => {
                    let _ = c.p.write(rv6_ulib::STDOUT, &data).await;
                }
                Err(e) => c.error(file, e).await,
            }
        }
        "sleep" => match args.first().and_then(|a| a.parse::<u64>().ok()) {
            Some(seconds) if seconds <= 3600 => {
                domain_sdk::sleep(core::time::Duration::from_secs(seconds)).await
            }
            _ => c.usage("SECONDS (at most 3600)").await,
        },
        other => {
            let text = format!(
                "coreutils: no utility '{other}' (one of: {})\n",
                APPLETS.join(" ")
            );
            c.p.eprint(&text).await;
            c.failed = true;
        }
    }
}

async fn main(p: &mut Process, args: Vec<String>) -> u32 {
    let name = args
        .first()
        .map(|a| String::from(a.rsplit('/').next().unwrap_or(a)))
        .unwrap_or_default();
    let rest = args.get(1..).unwrap_or(&[]);
    let mut c = Ctx {
        p,
        name,
        failed: false,
    };
    run(&mut c, rest).await;
    u32::from(c.failed)
}

rv6_ulib::program!(main);
