//! `sh`: rv6's shell. Reads lines from descriptor 0 and runs them:
//!
//! - commands separated by `;`, or ended by `&` (run in the background:
//!   its pid is printed and the shell goes on; `[pid] done (status N)`
//!   is printed before a later prompt);
//! - pipelines `a | b | c`;
//! - redirections `< file`, `> file`, `>> file`;
//! - quotes `"..."` and `'...'`, and `$?`, the status of the last
//!   foreground command;
//! - built-ins `cd [DIR]` and `exit [CODE]`;
//! - a command without `/` is run from `/bin`.
//!
//! A command that crashed or was killed is reported with its status (139
//! or 137). On the console, the kernel takes `monitor CMD` lines itself
//! (the monitor's commands) before they reach the shell.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod parse;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rv6_ulib::{Process, STDERR, STDIN, STDOUT, open_flags, status};

use parse::{Command, Job};

/// Reads one line from standard input (without its newline); `None` at
/// the end.
async fn read_line(p: &mut Process, pending: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            return Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        let mut buf = [0u8; 512];
        match p.read(STDIN, &mut buf).await {
            Ok(0) | Err(_) => {
                if pending.is_empty() {
                    return None;
                }
                let line = core::mem::take(pending);
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

fn program_path(name: &str) -> String {
    if name.contains('/') {
        String::from(name)
    } else {
        format!("/bin/{name}")
    }
}

fn describe(name: &str, code: u32) -> Option<String> {
    match code as u64 {
        status::CRASHED => Some(format!("sh: {name}: crashed (status {code})\n")),
        status::KILLED => Some(format!("sh: {name}: killed (status {code})\n")),
        _ => None,
    }
}

/// Runs a pipeline; the status of its last command (waited for unless
/// `background`).
async fn run(p: &mut Process, job: &Job, background: bool) -> u32 {
    let n = job.commands.len();
    let mut pids = Vec::new();
    let mut prev_read: Option<u32> = None;
    for (i, cmd) in job.commands.iter().enumerate() {
        let Command {
            argv,
            input,
            output,
            append,
        } = cmd;
        let mut opened = Vec::new();
        let stdin = match (input, prev_read.take()) {
            (Some(path), previous) => {
                if let Some(fd) = previous {
                    let _ = p.close(fd).await;
                }
                match p.open(path, open_flags::READ).await {
                    Ok(fd) => {
                        opened.push(fd);
                        fd
                    }
                    Err(e) => {
                        p.eprint(&format!("sh: {path}: {e}\n")).await;
                        return 1;
                    }
                }
            }
            (None, Some(fd)) => {
                opened.push(fd);
                fd
            }
            (None, None) => STDIN,
        };
        let stdout = if i + 1 < n {
            match p.pipe().await {
                Ok((r, w)) => {
                    prev_read = Some(r);
                    opened.push(w);
                    w
                }
                Err(e) => {
                    p.eprint(&format!("sh: pipe: {e}\n")).await;
                    return 1;
                }
            }
        } else if let Some(path) = output {
            let mut flags = open_flags::WRITE | open_flags::CREATE;
            flags |= if *append {
                rv6_ulib::APPEND_FLAG
            } else {
                open_flags::TRUNCATE
            };
            match p.open(path, flags).await {
                Ok(fd) => {
                    opened.push(fd);
                    fd
                }
                Err(e) => {
                    p.eprint(&format!("sh: {path}: {e}\n")).await;
                    return 1;
                }
            }
        } else {
            STDOUT
        };
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match p
            .spawn(&program_path(&argv[0]), &args, [stdin, stdout, STDERR])
            .await
        {
            Ok(pid) => pids.push((pid, argv[0].clone())),
            Err(e) => p.eprint(&format!("sh: {}: {e}\n", argv[0])).await,
        }
        // The children have their own references now.
        for fd in opened {
            let _ = p.close(fd).await;
        }
    }
    if let Some(fd) = prev_read {
        let _ = p.close(fd).await;
    }
    if background {
        if let Some((pid, _)) = pids.last() {
            p.print(&format!("[{pid}]\n")).await;
        }
        return 0;
    }
    let mut last = if pids.is_empty() { 127 } else { 0 };
    for (pid, name) in pids {
        match p.wait(pid).await {
            Ok((_, code)) => {
                if let Some(text) = describe(&name, code) {
                    p.eprint(&text).await;
                }
                last = code;
            }
            Err(e) => p.eprint(&format!("sh: wait {pid}: {e}\n")).await,
        }
    }
    last
}

/// Reports background jobs that have ended.
async fn reap_background(p: &mut Process) {
    while let Ok((pid, code)) = p.wait(u32::MAX).await {
        p.print(&format!("[{pid}] done (status {code})\n")).await;
    }
}

async fn main(p: &mut Process, _args: Vec<String>) -> u32 {
    let mut pending = Vec::new();
    let mut last = 0u32;
    loop {
        reap_background(p).await;
        p.print("$ ").await;
        let Some(line) = read_line(p, &mut pending).await else {
            return last;
        };
        let jobs = match parse::parse_deferred(&line) {
            Ok(jobs) => jobs,
            Err(e) => {
                p.eprint(&format!("sh: {e}\n")).await;
                last = 2;
                continue;
            }
        };
        for (job, background) in jobs {
            let job = job.with_status(last);
            let first = &job.commands[0].argv;
            if job.commands.len() == 1 {
                match first[0].as_str() {
                    "exit" => {
                        let code = first.get(1).and_then(|c| c.parse().ok()).unwrap_or(last);
                        return code;
                    }
                    "cd" => {
                        let dir = first.get(1).map_or("/", String::as_str);
                        last = match p.chdir(dir).await {
                            Ok(()) => 0,
                            Err(e) => {
                                p.eprint(&format!("sh: cd: {dir}: {e}\n")).await;
                                1
                            }
                        };
                        continue;
                    }
                    _ => {}
                }
            }
            last = run(p, &job, background).await;
        }
    }
}

rv6_ulib::program!(main);
