//! The kernel monitor: a line-editing shell on the serial console.
//!
//! It runs as an ordinary task on the BSP's executor. Input bytes arrive by
//! interrupt (see `platform::route_interrupts`), which fires [`INPUT`] to
//! wake this task; without an IOAPIC the task polls the UART every 10 ms.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Poll;

use executor::WakeSlot;
use kcore::cmdline::split_args;
use kcore::fmt::Bytes;
use kcore::lineedit::{Event, LineEditor};

use crate::{cpu, domain, inject, mem, power, sched, serial, time};

/// Fired by the COM1 interrupt handler.
pub static INPUT: WakeSlot = WakeSlot::new();

pub const PROMPT: &str = "monitor> ";

struct Command {
    name: &'static str,
    usage: &'static str,
    help: &'static str,
    run: fn(&[&str]) -> Result<(), alloc::string::String>,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        usage: "help [COMMAND]",
        help: "list commands, or explain one",
        run: cmd_help,
    },
    Command {
        name: "mem",
        usage: "mem",
        help: "free and used physical memory and kernel heap",
        run: cmd_mem,
    },
    Command {
        name: "cpus",
        usage: "cpus",
        help: "cores: APIC id, ticks, task polls, idle time",
        run: cmd_cpus,
    },
    Command {
        name: "prof",
        usage: "prof [reset]",
        help: "where each core's time went, by domain, from timer-tick samples",
        run: cmd_prof,
    },
    Command {
        name: "tasks",
        usage: "tasks",
        help: "tasks on every core's executor",
        run: cmd_tasks,
    },
    Command {
        name: "uptime",
        usage: "uptime",
        help: "time since boot",
        run: cmd_uptime,
    },
    Command {
        name: "log",
        usage: "log [LEVEL] | log NAME LEVEL|default | log show NAME [LINES]",
        help: "show or set the log level (error, warn, info, debug, trace) of the kernel or of one domain; 'show' prints a domain's recent lines (kept whatever the console showed)",
        run: cmd_log,
    },
    Command {
        name: "domains",
        usage: "domains",
        help: "domains: id, name, state, generation, heap, RRefs, tasks",
        run: cmd_domains,
    },
    Command {
        name: "blk",
        usage: "blk [check DOMAIN [BLOCKS]]",
        help: "list block devices (domains exporting 'bdev'); 'check' writes, reads back and compares BLOCKS blocks (default 64) at the device's end, in the background",
        run: cmd_blk,
    },
    Command {
        name: "net",
        usage: "net",
        help: "network interfaces (domains exporting 'net'): MAC, link, queue pairs, and per-queue frame, byte and drop counters",
        run: cmd_net,
    },
    Command {
        name: "rv6",
        usage: "rv6",
        help: "hand the console to rv6's shell ('monitor CMD' there runs a monitor command, 'monitor' comes back)",
        run: cmd_rv6,
    },
    Command {
        name: "ping",
        usage: "ping ADDRESS [COUNT]",
        help: "send COUNT (default 4, at most 100) ICMP echo requests, one a second, to an IPv4 ADDRESS through the TCP/IP domain (netstack/icmp) and print each reply's round trip, in the background",
        run: cmd_ping,
    },
    Command {
        name: "pci",
        usage: "pci",
        help: "list PCI functions: address, vendor:device, class, BARs",
        run: cmd_pci,
    },
    Command {
        name: "load",
        usage: "load IMAGE [NAME]",
        help: "start a domain from IMAGE of the signed archive in use (the boot archive, or the last one pushed: make push); no IMAGE: list them",
        run: cmd_load,
    },
    Command {
        name: "crash",
        usage: "crash NAME [panic|pagefault|gpf|divzero|invalid|overflow|loop]",
        help: "inject a fault into a domain (default panic)",
        run: cmd_crash,
    },
    Command {
        name: "storm",
        usage: "storm [FAULTS] [DOMAIN...] [entry] [seed=N]",
        help: "fault campaign: FAULTS (default 100) random faults of every kind into counter, checksum, client, ramdisk and nvme (or the DOMAINs named) at random moments, with verifying workloads on every core; then kills every domain and checks nothing leaked; 'entry' raises every fault at a domain entry instead of mid-code",
        run: cmd_storm,
    },
    Command {
        name: "kill",
        usage: "kill NAME",
        help: "stop a domain; its callers get errors",
        run: cmd_kill,
    },
    Command {
        name: "restart",
        usage: "restart NAME",
        help: "start the next generation of a domain",
        run: cmd_restart,
    },
    Command {
        name: "call",
        usage: "call NAME OP [ARG] | call NAME help",
        help: "call a domain's control interface (a domain entry) and print its answer (a number, or text); 'help' lists the operations the domain describes",
        run: cmd_call,
    },
    Command {
        name: "shutdown",
        usage: "shutdown",
        help: "power off (QEMU exits with status 0)",
        run: cmd_shutdown,
    },
];

async fn next_byte() -> u8 {
    loop {
        let got = poll_fn(|cx| {
            serial::poll_rx_if_no_irq();
            if let Some(byte) = serial::pop_rx() {
                return Poll::Ready(Some(byte));
            }
            INPUT.register(cx.waker());
            // Re-check: a byte may have arrived between the pop and the
            // registration.
            if let Some(byte) = serial::pop_rx() {
                return Poll::Ready(Some(byte));
            }
            if serial::input_irq_enabled() {
                Poll::Pending
            } else {
                Poll::Ready(None)
            }
        })
        .await;
        if let Some(byte) = got {
            return byte;
        }
        // No input interrupt: poll again shortly.
        executor::sleep(core::time::Duration::from_millis(10)).await;
    }
}

/// Collects what the line editor writes (its echo), to be written with
/// the input line's new state in one go (see `serial::console_write`).
struct Echo(Vec<u8>);

impl kcore::lineedit::Sink for Echo {
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// The bytes that draw the input line again: prompt, text, cursor moves.
fn redraw_bytes(editor: &LineEditor) -> Vec<u8> {
    let mut out = Echo(current_prompt());
    editor.redraw(&mut out);
    out.0
}

/// The console handed to rv6 (the `rv6` command): typed lines go to its
/// process domain's "tty" export, and that domain may write on the
/// console (`Kernel::console_write`).
struct Rv6 {
    tty: alloc::sync::Arc<interfaces::rv6::TtyProxy>,
    owner: executor::OwnerId,
    /// What rv6 wrote after its last newline (its shell's prompt), drawn
    /// again with the input line.
    prompt: Vec<u8>,
}

static RV6: spin::Mutex<Option<Rv6>> = spin::Mutex::new(None);

fn current_prompt() -> Vec<u8> {
    let mut rv6 = RV6.lock();
    // rv6 died: the console is the monitor's again.
    if rv6.as_ref().is_some_and(|r| !alive(r.owner)) {
        *rv6 = None;
    }
    match &*rv6 {
        Some(rv6) => rv6.prompt.clone(),
        None => Vec::from(PROMPT.as_bytes()),
    }
}

/// Most bytes one `console_write` prints.
const MAX_TTY_WRITE: usize = 16 * 1024;

/// `Kernel::console_write` for incarnation `owner`: printed only while the
/// console is handed to it. Called from the domain's own context, so all
/// of it runs as the kernel: the prompt kept in `RV6` (and every buffer)
/// is on the kernel heap, not on the domain's, which goes when it dies.
pub fn tty_write(owner: executor::OwnerId, text: &[u8]) -> bool {
    crate::cpu::kernel_section(|| {
        let text = &text[..text.len().min(MAX_TTY_WRITE)];
        let prompt = {
            let mut rv6 = RV6.lock();
            let Some(rv6) = rv6.as_mut() else {
                return false;
            };
            if rv6.owner != owner {
                return false;
            }
            match text.iter().rposition(|&b| b == b'\n') {
                Some(at) => rv6.prompt = Vec::from(&text[at + 1..]),
                None => rv6.prompt.extend_from_slice(text),
            }
            rv6.prompt.truncate(80);
            rv6.prompt.clone()
        };
        let clean: Vec<u8> = text
            .iter()
            .map(|&b| {
                if b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 {
                    b
                } else {
                    b'?'
                }
            })
            .collect();
        serial::console_write(&clean, Some(&prompt));
        true
    })
}

/// Whether incarnation `owner` is alive.
fn alive(owner: executor::OwnerId) -> bool {
    domain::all().any(|d| d.owner() == owner && d.state() == domain::State::Alive)
}

/// Hands the console to rv6 (its process domain must export "tty").
fn attach_rv6() -> Result<(), alloc::string::String> {
    let mut owner = None;
    let _ = domain::lookup("rv6/tty", &mut |_, _, o| owner = Some(o));
    let (Some(owner), Ok(tty)) = (
        owner,
        domain::proxy::<dyn interfaces::rv6::Tty + Send + Sync>("rv6/tty"),
    ) else {
        return Err("no rv6: load nvme, nvme-shadow, fs and rv6 first".into());
    };
    let tty = alloc::sync::Arc::new(tty);
    *RV6.lock() = Some(Rv6 {
        tty: tty.clone(),
        owner,
        prompt: Vec::new(),
    });
    match interfaces::rv6::Tty::attach(&*tty) {
        Ok(true) => Ok(()),
        Ok(false) => {
            *RV6.lock() = None;
            Err("rv6 could not start its shell (see its log)".into())
        }
        Err(e) => {
            *RV6.lock() = None;
            Err(alloc::format!("rv6: {e}"))
        }
    }
}

/// A line typed while the console is rv6's: `monitor CMD` runs a monitor
/// command, `monitor` alone takes the console back; anything else goes to
/// rv6. False once the console is the monitor's again.
async fn rv6_line(line: &str) -> bool {
    if line == "monitor" {
        *RV6.lock() = None;
        println!("the console is the monitor's again ('rv6' hands it back)");
        return false;
    }
    if let Some(command) = line.strip_prefix("monitor ") {
        execute(command);
        finish_restart().await;
        finish_storm().await;
        let prompt = current_prompt();
        serial::console_write(&prompt, Some(&prompt));
        return true;
    }
    let tty = match &*RV6.lock() {
        Some(rv6) => rv6.tty.clone(),
        None => return false,
    };
    let text = interfaces::control::Text::new(line);
    let alive = match rrpc::RRef::try_new(text) {
        Ok(text) => interfaces::rv6::Tty::input(&*tty, text).unwrap_or(false),
        Err(_) => true,
    };
    if !alive {
        *RV6.lock() = None;
        println!("rv6: the shell has ended; the console is the monitor's again");
    }
    alive
}

fn cmd_rv6(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    attach_rv6()?;
    Ok(())
}

pub async fn shell() {
    println!("Type 'help' for commands.");
    if crate::BOOT
        .get()
        .and_then(|b| {
            kcore::cmdline::CmdLine::parse(&b.cmdline)
                .ok()?
                .get("rv6")
                .map(|v| v == "1")
        })
        .unwrap_or(false)
    {
        // `rv6=1`: the console is rv6's shell. Its domains are loaded
        // from the boot archive (unless START already did): the NVMe
        // driver and its shadow, the file system, the process domain.
        for name in ["nvme", "nvme-shadow", "fs", "rv6"] {
            if domain::find(name).is_none()
                && let Err(e) = domain::create_from(domain::Source::Archive(name.into()), name)
            {
                println!("rv6=1: load {name}: {e}");
            }
        }
        for _ in 0..600 {
            if attach_rv6().is_ok() {
                break;
            }
            executor::sleep(core::time::Duration::from_millis(100)).await;
        }
        if RV6.lock().is_none() {
            println!("rv6=1: rv6 did not start; this is the monitor");
        }
    }
    if RV6.lock().is_none() {
        serial::console_write(PROMPT.as_bytes(), Some(PROMPT.as_bytes()));
    }
    let mut editor = LineEditor::new();
    loop {
        let byte = next_byte().await;
        let mut echo = Echo(Vec::new());
        match editor.feed(byte, &mut echo) {
            Event::Line(line) if RV6.lock().is_some() => {
                let line = alloc::string::String::from(line);
                serial::console_write(&echo.0, None);
                if !rv6_line(&line).await {
                    serial::console_write(PROMPT.as_bytes(), Some(PROMPT.as_bytes()));
                }
            }
            Event::Line(line) => {
                let line = alloc::string::String::from(line);
                // A command runs: its output is not interleaved.
                serial::console_write(&echo.0, None);
                execute(&line);
                finish_restart().await;
                finish_storm().await;
                // After `rv6`, the shell prints its own prompt.
                if RV6.lock().is_none() {
                    serial::console_write(PROMPT.as_bytes(), Some(PROMPT.as_bytes()));
                }
            }
            Event::Cancelled => {
                let prompt = current_prompt();
                echo.0.extend_from_slice(&prompt);
                serial::console_write(&echo.0, Some(&prompt));
            }
            Event::ClearedScreen => {
                let redraw = redraw_bytes(&editor);
                echo.0.extend_from_slice(&redraw);
                serial::console_write(&echo.0, Some(&redraw));
            }
            Event::None => serial::console_write(&echo.0, Some(&redraw_bytes(&editor))),
        }
    }
}

/// Runs one command line, printing its output or a clear error.
pub fn execute(line: &str) {
    let args: Vec<&str> = match split_args(line).collect::<Result<Vec<_>, _>>() {
        Ok(args) => args,
        Err(e) => {
            println!("error: {e}");
            return;
        }
    };
    let Some((&name, rest)) = args.split_first() else {
        return;
    };
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(command) => {
            if let Err(message) = (command.run)(rest) {
                println!("{name}: {message}");
                println!("usage: {}", command.usage);
            }
        }
        None => println!("unknown command '{name}'; type 'help' for the list"),
    }
}

fn no_args(args: &[&str]) -> Result<(), alloc::string::String> {
    match args.first() {
        Some(extra) => Err(alloc::format!("unexpected argument '{extra}'")),
        None => Ok(()),
    }
}

fn cmd_help(args: &[&str]) -> Result<(), alloc::string::String> {
    match args {
        [] => {
            for c in COMMANDS {
                println!("  {:<34} {}", c.usage, c.help);
            }
            Ok(())
        }
        [name] => match COMMANDS.iter().find(|c| c.name == *name) {
            Some(c) => {
                println!("{}: {}", c.usage, c.help);
                Ok(())
            }
            None => Err(alloc::format!("no command named '{name}'")),
        },
        _ => Err("too many arguments".into()),
    }
}

fn cmd_mem(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    let total = mem::frames::total_count() * mem::PAGE_SIZE;
    let free = mem::frames::free_count() * mem::PAGE_SIZE;
    let (heap_used, heap_size) = mem::heap::usage();
    println!(
        "physical: {} total, {} used, {} free",
        Bytes(total),
        Bytes(total - free),
        Bytes(free)
    );
    println!(
        "kernel heap: {} of {} used",
        Bytes(heap_used),
        Bytes(heap_size)
    );
    let (shared_bytes, shared_pages) = crate::shared_heap::usage();
    println!(
        "shared heap: {} in use, {} mapped",
        Bytes(shared_bytes),
        Bytes(shared_pages * mem::PAGE_SIZE)
    );
    let mut any = false;
    for d in domain::all() {
        let (bytes, pages) = d.heap_usage();
        let image = domain::loaded::image_bytes(d.slot);
        println!(
            "domain {:<12} heap {} in use, {} mapped{}",
            d.name,
            Bytes(bytes),
            Bytes(pages * mem::PAGE_SIZE),
            if image > 0 {
                alloc::format!("; image {} mapped", Bytes(image))
            } else {
                alloc::string::String::new()
            }
        );
        any = true;
    }
    if !any {
        println!("no domains loaded");
    }
    Ok(())
}

fn cmd_cpus(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    let now = time::now_ns().max(1);
    println!("cpu  apic  ticks       polls       tasks  idle");
    for c in cpu::all() {
        let tasks = sched::executor(c.index).map_or(0, |e| e.task_count());
        let idle_ns = time::tsc_to_ns(c.idle_tsc.load(core::sync::atomic::Ordering::Relaxed));
        println!(
            "{:<4} {:<5} {:<11} {:<11} {:<6} {}%",
            c.index,
            c.apic_id,
            c.ticks.load(core::sync::atomic::Ordering::Relaxed),
            c.polls.load(core::sync::atomic::Ordering::Relaxed),
            tasks,
            (idle_ns.min(now) * 100 / now)
        );
    }
    println!(
        "TSC {} MHz, tick {} Hz",
        time::tsc_hz() / 1_000_000,
        time::tick_hz()
    );
    Ok(())
}

/// The tick profile: each timer tick counts the domain it found running
/// on its core (or the core halted); shown as shares of each core's ticks
/// since boot or the last `prof reset`.
fn cmd_prof(args: &[&str]) -> Result<(), alloc::string::String> {
    use core::sync::atomic::Ordering::Relaxed;
    match args {
        [] => {}
        ["reset"] => {
            for c in cpu::all() {
                c.idle_samples.store(0, Relaxed);
                for s in &c.samples {
                    s.store(0, Relaxed);
                }
            }
            println!("prof: samples reset");
            return Ok(());
        }
        _ => return Err("usage: prof [reset]".into()),
    }
    // One snapshot per core: (its index, halted, each slot's samples).
    let cores: alloc::vec::Vec<(usize, u64, alloc::vec::Vec<u64>)> = cpu::all()
        .map(|c| {
            let slots = c.samples.iter().map(|s| s.load(Relaxed)).collect();
            (c.index, c.idle_samples.load(Relaxed), slots)
        })
        .collect();
    let totals: alloc::vec::Vec<u64> = cores
        .iter()
        .map(|(_, idle, slots)| idle + slots.iter().sum::<u64>())
        .collect();
    let share =
        |n: u64, total: u64| alloc::format!("{:.1}%", n as f64 * 100.0 / total.max(1) as f64);
    print!("{:<14}", "");
    for (index, ..) in &cores {
        print!(" {:>8}", alloc::format!("core {index}"));
    }
    print!("\n{:<14}", "ticks");
    for t in &totals {
        print!(" {t:>8}");
    }
    print!("\n{:<14}", "(halted)");
    for ((_, idle, _), t) in cores.iter().zip(&totals) {
        print!(" {:>8}", share(*idle, *t));
    }
    println!();
    for slot in 0..domain::MAX_SLOTS {
        if cores.iter().all(|(_, _, slots)| slots[slot] == 0) {
            continue;
        }
        let name = match slot {
            0 => alloc::string::String::from("kernel"),
            _ => {
                domain::get(slot).map_or_else(|| alloc::format!("slot {slot}"), |d| d.name.clone())
            }
        };
        print!("{name:<14}");
        for ((_, _, slots), t) in cores.iter().zip(&totals) {
            print!(" {:>8}", share(slots[slot], *t));
        }
        println!();
    }
    Ok(())
}

fn cmd_tasks(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    println!("cpu  task                owner             state");
    for c in cpu::all() {
        if let Some(exec) = sched::executor(c.index) {
            for task in exec.snapshot() {
                let owner = match task.owner {
                    executor::OwnerId::KERNEL => alloc::string::String::from("kernel"),
                    owner => match domain::get(owner.slot()) {
                        Some(d) if d.owner() == owner => {
                            alloc::format!("{} (gen {})", d.name, d.generation())
                        }
                        Some(d) => alloc::format!("{} (old gen {})", d.name, owner.generation()),
                        None => alloc::format!("{owner}"),
                    },
                };
                println!(
                    "{:<4} {:<19} {:<17} {:?}",
                    c.index,
                    alloc::format!("{:?}", task.id),
                    owner,
                    task.state
                );
            }
        }
    }
    Ok(())
}

fn cmd_uptime(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    let ms = time::now_ns() / 1_000_000;
    println!("up {}.{:03} s", ms / 1000, ms % 1000);
    Ok(())
}

fn cmd_log(args: &[&str]) -> Result<(), alloc::string::String> {
    match args {
        [] => {
            println!("log level: {}", serial::level().name());
            for d in domain::all() {
                if let Some(level) = domain::logs::level(d.slot) {
                    println!("  {:<12} {}", d.name, level.name());
                }
            }
            Ok(())
        }
        ["show", rest @ ..] => {
            let (name, lines) = match rest {
                [name] => (*name, usize::MAX),
                [name, lines] => match lines.parse::<usize>() {
                    Ok(n) if n > 0 => (*name, n),
                    _ => {
                        return Err(alloc::format!(
                            "LINES must be a positive number, not '{lines}'"
                        ));
                    }
                },
                [] => return Err("which domain? (log show NAME)".into()),
                _ => return Err("too many arguments".into()),
            };
            let d = find_domain(name)?;
            let dropped = domain::logs::show(d.slot, lines, |at, level, text| {
                let ms = at / 1_000_000;
                println!(
                    "{:>6}.{:03} [{:>5}] {}",
                    ms / 1000,
                    ms % 1000,
                    level.name(),
                    text
                );
            });
            match dropped {
                None => println!("{name} has logged nothing"),
                Some(0) => {}
                Some(n) => println!("({n} older lines dropped)"),
            }
            Ok(())
        }
        [level] => match serial::Level::parse(level) {
            Some(level) => {
                serial::set_level(level);
                Ok(())
            }
            None if domain::find(level).is_some() => Err(alloc::format!(
                "set which level for '{level}'? (log {level} LEVEL|default)"
            )),
            None => Err(alloc::format!("unknown level '{level}'")),
        },
        [name, level] => {
            let d = find_domain(name)?;
            let level = match *level {
                "default" => None,
                other => Some(
                    serial::Level::parse(other)
                        .ok_or_else(|| alloc::format!("unknown level '{other}'"))?,
                ),
            };
            domain::logs::set_level(d.slot, level);
            println!(
                "{name}: log level {}",
                level.map_or("default (the kernel's)", |l| l.name())
            );
            Ok(())
        }
        _ => Err("too many arguments".into()),
    }
}

fn cmd_shutdown(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    println!("shutting down");
    power::shutdown()
}

fn find_domain(name: &str) -> Result<&'static domain::Domain, alloc::string::String> {
    domain::find(name).ok_or_else(|| alloc::format!("no domain named '{name}' (see 'domains')"))
}

fn cmd_domains(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    println!(
        "watchdog budget per domain entry: {} ms; heap quota per domain: {}",
        domain::budget_ns() / 1_000_000,
        Bytes(domain::heap::quota())
    );
    println!("id   name         state     gen  heap        rrefs  tasks  crashes  exports");
    for d in domain::all() {
        let (bytes, _) = d.heap_usage();
        println!(
            "{:<4} {:<12} {:<9} {:<4} {:<11} {:<6} {:<6} {:<8} {}",
            d.slot,
            d.name,
            d.state().name(),
            d.generation(),
            alloc::format!("{}", Bytes(bytes)),
            d.rrefs(),
            d.task_count(),
            d.crashes(),
            domain::export_names(d)
        );
        if let Some(fault) = d.last_fault().filter(|_| d.state() != domain::State::Alive) {
            println!("     last: {fault}");
        }
        if let Some(supervisor) = domain::supervisor_name(d) {
            println!("     supervised by {supervisor} (restarts it after a crash)");
        }
    }
    Ok(())
}

fn cmd_net(args: &[&str]) -> Result<(), alloc::string::String> {
    use interfaces::net::Net;
    no_args(args)?;
    let mut any = false;
    for d in domain::all().filter(|d| d.state() == domain::State::Alive) {
        if !domain::export_names(d).split(',').any(|e| e == "net") {
            continue;
        }
        any = true;
        let net = domain::proxy::<dyn Net + Send + Sync>(&alloc::format!("{}/net", d.name))
            .map_err(|e| alloc::format!("{}: {e}", d.name))?;
        match net.info() {
            Ok(info) => {
                let m = info.mac;
                println!(
                    "{:<12} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}  link {}  {} queue pair(s)",
                    d.name,
                    m[0],
                    m[1],
                    m[2],
                    m[3],
                    m[4],
                    m[5],
                    if info.link_up && info.speed > 0 {
                        alloc::format!("up, {} Mb/s", info.speed)
                    } else if info.link_up {
                        alloc::string::String::from("up")
                    } else {
                        alloc::string::String::from("down")
                    },
                    info.queues
                );
                for queue in 0..info.queues {
                    match net.counters(queue) {
                        Ok(c) => println!(
                            "  queue {queue}: rx {} frames {} B ({} refused), tx {} frames {} B ({} refused)",
                            c.rx_packets,
                            c.rx_bytes,
                            c.rx_dropped,
                            c.tx_packets,
                            c.tx_bytes,
                            c.tx_dropped
                        ),
                        Err(e) => println!("  queue {queue}: error: {e}"),
                    }
                }
            }
            Err(e) => println!("{:<12} error: {e}", d.name),
        }
    }
    if !any {
        println!("no network interfaces (try 'load igb')");
    }
    Ok(())
}

fn cmd_ping(args: &[&str]) -> Result<(), alloc::string::String> {
    use interfaces::socket::{Icmp, Status};
    let (address, count) = match args {
        [address] => (*address, 4u16),
        [address, count] => (
            *address,
            count
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| alloc::format!("COUNT must be 1 to 100, not '{count}'"))?,
        ),
        [] => return Err("which address?".into()),
        _ => return Err("too many arguments".into()),
    };
    let octets = parse_ipv4(address).ok_or_else(|| {
        alloc::format!("'{address}' is not an IPv4 address (a.b.c.d; there is no DNS)")
    })?;
    let icmp = domain::proxy::<dyn Icmp + Send + Sync>("netstack/icmp")
        .map_err(|e| alloc::format!("netstack/icmp: {e} (try 'load netstack')"))?;
    let target = alloc::format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]);
    /// Payload bytes per request (as ping's default: 64 with the header).
    const SIZE: u16 = 56;
    println!("PING {target}: {SIZE} data bytes, {count} requests");
    crate::sched::spawn(async move {
        let mut rtts = Vec::new();
        for seq in 0..count {
            let started = time::now_ns();
            match icmp.ping(u32::from_be_bytes(octets), seq, SIZE, 1000).await {
                Ok(reply) if reply.status == Status::Ok => {
                    rtts.push(reply.rtt_us);
                    println!(
                        "{} bytes from {target}: icmp_seq={seq} time={}.{:03} ms",
                        reply.bytes,
                        reply.rtt_us / 1000,
                        reply.rtt_us % 1000
                    );
                }
                Ok(reply) => println!(
                    "no reply from {target}: icmp_seq={seq} ({})",
                    match reply.status {
                        Status::TimedOut => "timed out after 1 s",
                        Status::Unreachable => "the stack has no address yet",
                        Status::TooMany => "too many pings in flight",
                        _ => "refused",
                    }
                ),
                Err(e) => {
                    println!("ping {target}: the TCP/IP domain failed: {e}");
                    break;
                }
            }
            if seq + 1 < count {
                executor::sleep_until(started + 1_000_000_000).await;
            }
        }
        let received = rtts.len();
        let sent = usize::from(count);
        let loss = (sent - received) * 100 / sent;
        match (rtts.iter().min(), rtts.iter().max()) {
            (Some(min), Some(max)) => {
                let avg = rtts.iter().map(|&r| u64::from(r)).sum::<u64>() / received as u64;
                println!(
                    "--- {target} ping: {sent} sent, {received} received, {loss}% loss, rtt min/avg/max {}.{:03}/{}.{:03}/{}.{:03} ms",
                    min / 1000,
                    min % 1000,
                    avg / 1000,
                    avg % 1000,
                    max / 1000,
                    max % 1000
                );
            }
            _ => println!("--- {target} ping: {sent} sent, 0 received, 100% loss"),
        }
    })
    .map_err(|e| alloc::format!("spawn: {e:?}"))?
    .detach();
    Ok(())
}

/// `a.b.c.d` as four octets.
fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(octets)
}

fn cmd_blk(args: &[&str]) -> Result<(), alloc::string::String> {
    use interfaces::bdev::BDev;
    match args {
        [] => {
            let mut any = false;
            for d in domain::all().filter(|d| d.state() == domain::State::Alive) {
                if domain::export_names(d).split(',').any(|e| e == "bdev") {
                    println!("{:<12} bdev ({})", d.name, d.image_name());
                    any = true;
                }
            }
            if !any {
                println!(
                    "no block devices (try 'load nvme', 'load nvme-shadow' or 'load ramdisk')"
                );
            }
            Ok(())
        }
        ["check", name, rest @ ..] => {
            let blocks: u64 = match rest {
                [] => 64,
                [n] => n
                    .parse()
                    .ok()
                    .filter(|n| (1..=4096).contains(n))
                    .ok_or_else(|| alloc::format!("BLOCKS must be 1 to 4096, not '{n}'"))?,
                _ => return Err("too many arguments".into()),
            };
            let bdev = domain::proxy::<dyn BDev + Send + Sync>(&alloc::format!("{name}/bdev"))
                .map_err(|e| alloc::format!("{name}: {e}"))?;
            let label = alloc::string::String::from(*name);
            crate::sched::spawn(async move {
                let name = label;
                match crate::blk::check_blocks(&bdev, blocks).await {
                    Ok(first) => println!(
                        "blk check {name}: {blocks} blocks from block {first} written, read back and compared: ok"
                    ),
                    Err(e) => println!("blk check {name}: FAILED: {e}"),
                }
            })
            .map_err(|e| alloc::format!("spawn: {e:?}"))?
            .detach();
            println!("blk check {name}: running ({blocks} blocks)");
            Ok(())
        }
        _ => Err("expected nothing, or 'check DOMAIN [BLOCKS]'".into()),
    }
}

fn cmd_pci(args: &[&str]) -> Result<(), alloc::string::String> {
    no_args(args)?;
    println!(
        "iommu: {}",
        if crate::iommu::enabled() {
            "on: a claimed device's DMA reaches only the shared heap, an unclaimed one's nothing"
        } else {
            "none: device DMA is not confined (drivers are limited by their device grants only)"
        }
    );
    let functions = crate::pci::functions();
    if functions.is_empty() {
        println!("no PCI functions found");
    }
    for (position, f) in functions.iter().enumerate() {
        let holder = crate::pci::holder(position);
        let claimed = domain::get(holder.slot())
            .filter(|d| {
                holder != executor::OwnerId::KERNEL
                    && d.owner() == holder
                    && d.state() == domain::State::Alive
            })
            .map(|d| alloc::format!("  [claimed by {}]", d.name))
            .unwrap_or_default();
        println!(
            "{}  {:04x}:{:04x}  {:02x}.{:02x}.{:02x}  {}{claimed}",
            f.address(),
            f.header.vendor,
            f.header.device,
            f.header.class,
            f.header.subclass,
            f.header.prog_if,
            f.header.class_name()
        );
        for (i, bar) in f.bars.iter().enumerate() {
            match *bar {
                kcore::pci::Bar::Memory {
                    address,
                    size,
                    wide,
                    ..
                } => println!(
                    "      BAR{i}: memory {address:#x} ({}{})",
                    Bytes(size),
                    if wide { ", 64-bit" } else { "" }
                ),
                kcore::pci::Bar::Io { port, size } => {
                    println!("      BAR{i}: I/O {port:#x} ({size} ports)")
                }
                kcore::pci::Bar::None => {}
            }
        }
    }
    Ok(())
}

fn cmd_load(args: &[&str]) -> Result<(), alloc::string::String> {
    let (image, name) = match args {
        [] => {
            match domain::loaded::catalog() {
                Ok(catalog) => {
                    println!("archive in use (signed):");
                    for name in catalog.names() {
                        let size = catalog.image(name).map_or_else(
                            |e| alloc::format!("refused: {e}"),
                            |bytes| alloc::format!("{}", Bytes(bytes.len() as u64)),
                        );
                        println!("  {name:<10} {size}");
                    }
                }
                Err(e) => println!("archive: {e}"),
            }
            return Ok(());
        }
        [image] => (*image, *image),
        [image, name] => (*image, *name),
        _ => return Err("too many arguments".into()),
    };
    if image.starts_with("builtin:") {
        return Err("no images are built into this kernel: 'load' lists the boot archive's".into());
    }
    domain::check_name(name)?;
    if !domain::loaded::has_image(image) {
        return Err(match domain::loaded::catalog() {
            Ok(_) => alloc::format!("no image named '{image}' in the archive in use (try 'load')"),
            Err(e) => alloc::format!("cannot load '{image}': {e}"),
        });
    }
    let source = domain::Source::Archive(alloc::string::String::from(image));
    let d = domain::create_from(source, name)?;
    println!(
        "loaded image {image} as domain {} '{}' (generation {})",
        d.slot,
        d.name,
        d.generation()
    );
    Ok(())
}

fn cmd_crash(args: &[&str]) -> Result<(), alloc::string::String> {
    let (name, kind) = match args {
        [name] => (*name, inject::Kind::Panic),
        [name, kind] => (
            *name,
            inject::Kind::parse(kind).ok_or_else(|| {
                alloc::format!("unknown fault '{kind}' ({})", inject::Kind::NAMES)
            })?,
        ),
        _ => return Err("expected a domain name and optionally a fault".into()),
    };
    let d = find_domain(name)?;
    match domain::enter(d.owner(), || inject::trigger(kind)) {
        Ok(()) => println!("{name}: no fault raised"),
        Err(e) => println!("{name}: {e}; {}", d.last_fault().unwrap_or_default()),
    }
    Ok(())
}

fn cmd_kill(args: &[&str]) -> Result<(), alloc::string::String> {
    let [name] = args else {
        return Err("expected a domain name".into());
    };
    let d = find_domain(name)?;
    if domain::kill(d, "killed") {
        println!("{name}: killed");
        Ok(())
    } else {
        Err(alloc::format!("{name} is already {}", d.state().name()))
    }
}

fn cmd_restart(args: &[&str]) -> Result<(), alloc::string::String> {
    let [name] = args else {
        return Err("expected a domain name".into());
    };
    let d = find_domain(name)?;
    RESTART.lock().replace(d);
    Ok(())
}

/// `restart` must wait for every core to drop the old incarnation's tasks,
/// which needs this core's executor to run: the shell finishes it
/// asynchronously after the command line (see `shell`).
static RESTART: spin::Mutex<Option<&'static domain::Domain>> = spin::Mutex::new(None);

async fn finish_restart() {
    let Some(d) = RESTART.lock().take() else {
        return;
    };
    if d.state() == domain::State::Alive {
        domain::kill(d, "restarted");
    }
    domain::wait_dead(d, core::time::Duration::from_secs(2)).await;
    match domain::restart(d) {
        Ok(()) => println!("{}: restarted as generation {}", d.name, d.generation()),
        Err(e) => println!("restart: {e}"),
    }
}

/// Parses a campaign; the shell runs it after the command line (it takes
/// seconds to minutes, and needs this core's executor).
fn cmd_storm(args: &[&str]) -> Result<(), alloc::string::String> {
    use crate::storm::{Plan, Target};
    let mut plan = Plan {
        faults: 100,
        targets: Vec::new(),
        seed: time::now_ns() ^ 0x5EED,
        mid_code: true,
    };
    for (i, arg) in args.iter().enumerate() {
        if *arg == "entry" {
            plan.mid_code = false;
        } else if let Some(seed) = arg.strip_prefix("seed=") {
            plan.seed = kcore::cmdline::parse_u64(seed).map_err(|e| alloc::format!("seed: {e}"))?;
        } else if i == 0 && arg.bytes().all(|b| b.is_ascii_digit()) {
            plan.faults = arg
                .parse()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| alloc::format!("FAULTS must be 1 to 1000000, not '{arg}'"))?;
        } else {
            let target = Target::parse(arg).ok_or_else(|| {
                alloc::format!(
                    "'{arg}' is not a storm target (counter, checksum, client, ramdisk, nvme)"
                )
            })?;
            if !plan.targets.contains(&target) {
                plan.targets.push(target);
            }
        }
    }
    if plan.targets.is_empty() {
        plan.targets = Target::ALL.to_vec();
    }
    println!(
        "storm: {} faults into {} (seed {:#x}); warming up",
        plan.faults,
        plan.targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        plan.seed
    );
    STORM.lock().replace(plan);
    Ok(())
}

static STORM: spin::Mutex<Option<crate::storm::Plan>> = spin::Mutex::new(None);

async fn finish_storm() {
    let Some(plan) = STORM.lock().take() else {
        return;
    };
    match crate::storm::run(plan).await {
        Ok(report) => report.print(),
        Err(e) => println!("storm: {e}"),
    }
}

fn cmd_call(args: &[&str]) -> Result<(), alloc::string::String> {
    let (name, op, arg) = match args {
        [name, op] => (*name, *op, "0"),
        [name, op, arg] => (*name, *op, *arg),
        _ => return Err("expected NAME OP [ARG] or NAME help".into()),
    };
    let help = op == "help";
    let op = if help {
        interfaces::control::HELP
    } else {
        kcore::cmdline::parse_u64(op)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v != interfaces::control::HELP)
            .ok_or("OP must be a number below 4294967295, or 'help'")?
    };
    let arg = kcore::cmdline::parse_u64(arg).map_err(|e| alloc::format!("ARG: {e}"))?;
    let d = find_domain(name)?;
    // A text answer if the domain gives one for this operation, else its
    // number.
    match domain::call_text(d, op, arg) {
        Ok(Some(text)) => {
            for line in text.lines() {
                println!("{}", kcore::fmt::Clipped::new(line, 256));
            }
        }
        Ok(None) if help => println!("{name} describes no operations (see its documentation)"),
        Ok(None) => match domain::call(d, op, arg) {
            Ok(value) => println!("{value}"),
            Err(e) => println!("error: {e}"),
        },
        Err(e) => println!("error: {e}"),
    }
    Ok(())
}
