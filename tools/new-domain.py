#!/usr/bin/env python3
"""Writes a new domain: `make new-domain NAME=x [CLIENT=1] [INTERFACE=1]`.

    python3 tools/new-domain.py NAME [--client] [--interface] [--root DIR]

What it writes (nothing is registered by hand: the workspace finds
`domains/*` by glob, the image builder finds every crate with an image
binary, `make test` finds every `session.console`):

- `domains/NAME/`: the service. A library (`src/lib.rs`: its state, its
  methods, `init`), the one-line image binary (`src/main.rs`), a
  `Cargo.toml` declaring what the image may export, host unit tests of its
  logic (`cargo test -p domain-NAME`) and `session.console`, the console
  session `make test` runs against it in QEMU.
- with `--interface`: `interfaces/src/NAME.rs`, a new interface (a plain
  method, one moving an `RRef` in and back, an `async fn`) that the
  service implements and exports under `NAME`, plus its `pub mod` line in
  `interfaces/src/lib.rs`. Without it the service exports only `control`
  (what the console's `call` reaches).
- with `--client`: `domains/NAME-client/`, a domain that calls the service
  every 20 ms, looks it up again after a failure (the service may be
  restarted), counts what happened (`call NAME-client 0|1`), and its own
  session, which crashes the service under it.

Bad input (a name that is not 1-32 of `[a-z0-9-]` starting with a letter,
a Rust keyword, a crate or interface module that exists) is refused with a
message, before anything is written.
"""

import argparse
import os
import re
import subprocess
import sys

KEYWORDS = {
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
    "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen", "core", "std",
    "alloc",
}


def fail(message):
    print(f"new-domain: {message}", file=sys.stderr)
    sys.exit(2)


def check_name(name, client):
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name or ""):
        fail(f"bad NAME '{name}': use lowercase letters, digits and single dashes, "
             "starting with a letter (e.g. NAME=kv-store)")
    longest = len(name) + (len("-client") if client else 0)
    if longest > 32:
        fail(f"NAME '{name}' is too long: domain names are at most 32 characters"
             + (" (and the client adds '-client')" if client else ""))
    snake = name.replace("-", "_")
    if snake in KEYWORDS:
        fail(f"NAME '{name}' is a Rust keyword or a crate every domain uses; pick another")
    if name in ("sdk", "control", "kernel"):
        fail(f"NAME '{name}' is reserved; pick another")
    return snake


def camel(name):
    return "".join(part.capitalize() for part in name.split("-"))


def cargo_toml(name, description, exports, dev_service=None):
    quoted = ", ".join(f'"{e}"' for e in exports)
    service_dev = (f'\n# The service, loaded next to this client in its host tests.\n'
                   f'domain-{dev_service} = {{ path = "../{dev_service}" }}') if dev_service else ""
    return f'''[package]
name = "domain-{name}"
description = "{description} Untrusted: no unsafe code."
edition.workspace = true
version.workspace = true
license.workspace = true

# What the signed manifest grants this image (tools/pack writes it; the
# kernel enforces it): see docs/authoring-domains.md.
[package.metadata.domain]
exports = [{quoted}]

[dependencies]
domain-sdk = {{ path = "../../sdk" }}
interfaces = {{ path = "../../interfaces" }}

[dev-dependencies]
# The host test kit (a kernel model: `cargo test -p domain-{name}`).
domain-sdk = {{ path = "../../sdk", features = ["testing"] }}{service_dev}

[features]
# Set by tools/build-images.sh when it builds the image binary.
image = []

[[bin]]
name = "{name}"
path = "src/main.rs"
required-features = ["image"]
test = false
bench = false

[lints]
workspace = true
'''


def main_rs(snake):
    return f'''#![no_std]
#![no_main]
#![forbid(unsafe_code)]
domain_sdk::image!(domain_{snake}::init);
'''


def interface_rs(name, trait):
    return f'''//! [`{trait}`]: the interface of the `{name}` domain (written by
//! `make new-domain NAME={name} INTERFACE=1`; make it yours).

use rrpc::{{RRef, RpcResult}};

/// A buffer that crosses domains without being copied.
pub type Block = [u8; 64];

/// What the `{name}` domain exports under the name `{name}`.
#[rrpc::interface]
pub trait {trait} {{
    /// Adds `amount` to the service's total; returns the new total.
    fn add(&self, amount: u64) -> RpcResult<u64>;
    /// Sums the bytes of `block`, which moves to the service without a
    /// copy, and gives it back with the sum.
    fn sum(&self, block: RRef<Block>) -> RpcResult<(u64, RRef<Block>)>;
    /// Waits `delay_ms` (without holding the core), then returns the total.
    async fn total_after(&self, delay_ms: u64) -> RpcResult<u64>;
}}
'''


def service_rs(name, snake, trait, with_interface):
    if with_interface:
        imports = f'''use alloc::{{string::String, sync::Arc}};
use core::sync::atomic::{{AtomicU64, Ordering}};
use core::time::Duration;
use domain_sdk::{{Exports, Kernel, RRef, RpcFuture, RpcResult, sleep}};
use interfaces::control::{{Control, HELP, Text}};
use interfaces::{snake}::{{Block, {trait}}};'''
        interface_impl = f'''
impl {trait} for Service {{
    fn add(&self, amount: u64) -> RpcResult<u64> {{
        Ok(self.add_to_total(amount))
    }}

    fn sum(&self, block: RRef<Block>) -> RpcResult<(u64, RRef<Block>)> {{
        // The block is this domain's for the duration of the call; giving
        // it back in the result moves it to the caller again.
        Ok((self.sum_bytes(&block), block))
    }}

    fn total_after(&self, delay_ms: u64) -> RpcFuture<'_, u64> {{
        RpcFuture::new(async move {{
            sleep(Duration::from_millis(delay_ms)).await;
            Ok(self.total.load(Ordering::Relaxed))
        }})
    }}
}}
'''
        exports = f'''    Ok(Exports::new()
        .with::<dyn {trait} + Send + Sync>("{name}", service.clone())
        .with::<dyn Control + Send + Sync>("control", service))'''
        tests_extra = f'''
    #[test]
    fn sum_adds_the_bytes() {{
        let service = Service::default();
        let bytes: u64 = (0..64u64).sum();
        assert_eq!(service.sum_bytes(&core::array::from_fn(|i| i as u8)), bytes);
    }}
'''
        sum_helper = '''
    /// The sum of a block's bytes (what `sum` computes).
    pub fn sum_bytes(&self, block: &Block) -> u64 {
        block.iter().map(|&byte| u64::from(byte)).sum()
    }
'''
    else:
        imports = '''use alloc::{string::String, sync::Arc};
use core::sync::atomic::{AtomicU64, Ordering};
use domain_sdk::{Exports, Kernel, RRef, RpcResult};
use interfaces::control::{Control, HELP, Text};'''
        interface_impl = ""
        exports = '''    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", service))'''
        tests_extra = ""
        sum_helper = ""
    return f'''//! `{name}`: a service domain (written by `make new-domain`; make it
//! yours). `call {name} 0` shows its total, `call {name} 1 N` adds N.
#![no_std]
#![forbid(unsafe_code)]
extern crate alloc;

{imports}

/// The service's state, on the domain's private heap. It is shared by
/// every call (calls may run on several cores at once), hence atomics.
#[derive(Default)]
pub struct Service {{
    total: AtomicU64,
}}

impl Service {{
    /// Adds `amount`; returns the new total.
    pub fn add_to_total(&self, amount: u64) -> u64 {{
        self.total
            .fetch_add(amount, Ordering::Relaxed)
            .wrapping_add(amount)
    }}
{sum_helper}}}
{interface_impl}
/// The console's `call {name} OP [ARG]`: 0 shows the total, 1 adds ARG
/// (and shows the new total), 2 describes the service in text; any other
/// OP answers `u64::MAX`. `call {name} help` lists them.
impl Control for Service {{
    fn control(&self, op: u32, arg: u64) -> RpcResult<u64> {{
        Ok(match op {{
            0 => self.total.load(Ordering::Relaxed),
            1 => self.add_to_total(arg),
            _ => u64::MAX,
        }})
    }}

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {{
        match op {{
            HELP => Text::answer("0: the total\\n1 N: adds N, shows the new total\\n2: the service, in words"),
            2 => Text::answer(&alloc::format!(
                "{name}: a total of {{}}",
                self.total.load(Ordering::Relaxed)
            )),
            _ => Ok(None),
        }}
    }}
}}

/// The entry: runs inside the new domain; returns what it exports (every
/// name must be listed in `exports` in Cargo.toml).
pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {{
    let service = Arc::new(Service::default());
{exports}
}}

#[cfg(test)]
mod tests {{
    //! The service's logic on the host: `cargo test -p domain-{name}`.
    use super::*;

    #[test]
    fn control_adds_and_shows_the_total() {{
        let service = Service::default();
        assert_eq!(service.control(1, 5), Ok(5));
        assert_eq!(service.control(1, 2), Ok(7));
        assert_eq!(service.control(0, 0), Ok(7));
        assert_eq!(service.control(9, 0), Ok(u64::MAX));
    }}
{tests_extra}}}
'''


def client_rs(name, snake, trait, with_interface):
    client = f"{name}-client"
    if with_interface:
        imports = f'''use alloc::{{string::String, sync::Arc}};
use core::sync::atomic::{{AtomicU64, Ordering}};
use core::time::Duration;
use domain_sdk::{{Exports, Kernel, RRef, RpcResult, log, lookup, sleep, spawn}};
use interfaces::control::{{Control, HELP, Text}};
use interfaces::{snake}::{trait};'''
        lookup_call = f'lookup::<dyn {trait} + Send + Sync>("{name}").ok()'
        work = '''            // One call with a plain argument, one moving a buffer in and
            // back (the block is the service's during the call).
            let result = match &service {
                Some(s) => s.add(1).and_then(|_| {
                    let block = RRef::try_new([1u8; 64])?;
                    s.sum(block).map(|(sum, _block)| sum)
                }),
                None => continue,
            };'''
    else:
        imports = '''use alloc::{string::String, sync::Arc};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use domain_sdk::{Exports, Kernel, RRef, RpcResult, log, lookup, sleep, spawn};
use interfaces::control::{Control, HELP, Text};'''
        lookup_call = f'lookup::<dyn Control + Send + Sync>("{name}/control").ok()'
        work = '''            let result = match &service {
                Some(s) => s.control(1, 1),
                None => continue,
            };'''
    return f'''//! `{client}`: calls `{name}` every 20 ms (written by `make
//! new-domain`). `call {client} 0` shows the calls that worked, `call
//! {client} 1` the ones that failed.
#![no_std]
#![forbid(unsafe_code)]
extern crate alloc;

{imports}

/// What the client saw, for the console.
#[derive(Default)]
struct Stats {{
    ok: AtomicU64,
    failed: AtomicU64,
}}

impl Control for Stats {{
    fn control(&self, op: u32, _arg: u64) -> RpcResult<u64> {{
        Ok(if op == 0 {{ &self.ok }} else {{ &self.failed }}.load(Ordering::Relaxed))
    }}

    fn control_text(&self, op: u32, _arg: u64) -> RpcResult<Option<RRef<Text>>> {{
        match op {{
            HELP => Text::answer("0: calls that worked\\n1: calls that failed"),
            _ => Ok(None),
        }}
    }}
}}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {{
    let stats = Arc::new(Stats::default());
    let counts = stats.clone();
    spawn(async move {{
        // A proxy is bound to one incarnation of the service: after a
        // failed call, drop it and look the service up again (it may have
        // been restarted).
        let mut service = None;
        loop {{
            sleep(Duration::from_millis(20)).await;
            if service.is_none() {{
                service = {lookup_call};
            }}
{work}
            match result {{
                Ok(_) => counts.ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {{
                    log(&alloc::format!("call failed: {{e}}"));
                    service = None;
                    counts.failed.fetch_add(1, Ordering::Relaxed)
                }}
            }};
        }}
    }})
    .map_err(|e| alloc::format!("spawn: {{e:?}}"))?;
    Ok(Exports::new().with::<dyn Control + Send + Sync>("control", stats))
}}
'''


def service_test(name, snake, trait, with_interface):
    domain = f"{name}-test"
    if with_interface:
        body = f'''    let service = lookup::<dyn {trait} + Send + Sync>("{domain}/{name}").expect("lookup");
    assert_eq!(service.add(5), Ok(5));
    // A block moves to the service and back without a copy.
    let (sum, block) = service.sum(RRef::new([2u8; 64])).expect("sum");
    assert_eq!(sum, 128);
    assert_eq!(block[0], 2);
    // An `async fn`: its timer runs on the kit's virtual clock.
    let total = kernel.block_on(service.total_after(1000), Duration::from_secs(5));
    assert_eq!(total, Some(Ok(5)));

    // A crash is contained: the proxy's calls fail, a restart starts afresh.
    kernel.crash("{domain}").expect("crash");
    assert_eq!(service.add(1), Err(RpcError::DomainNotAlive));
    kernel.restart("{domain}").expect("restart");
    let service = lookup::<dyn {trait} + Send + Sync>("{domain}/{name}").expect("lookup again");
    assert_eq!(service.add(1), Ok(1));'''
        imports = f'''use core::time::Duration;
use domain_sdk::{{RRef, RpcError, lookup, testing}};
use interfaces::{snake}::{trait};'''
    else:
        body = f'''    let control = lookup::<dyn Control + Send + Sync>("{domain}/control").expect("lookup");
    assert_eq!(control.control(1, 5), Ok(5));
    assert_eq!(control.control(0, 0), Ok(5));

    // A crash is contained: the proxy's calls fail, a restart starts afresh.
    kernel.crash("{domain}").expect("crash");
    assert_eq!(control.control(0, 0), Err(RpcError::DomainNotAlive));
    kernel.restart("{domain}").expect("restart");
    let control = lookup::<dyn Control + Send + Sync>("{domain}/control").expect("lookup again");
    assert_eq!(control.control(0, 0), Ok(0));'''
        imports = '''use domain_sdk::{RpcError, lookup, testing};
use interfaces::control::Control;'''
    return f'''//! `{name}` as a domain on the host (`domain_sdk::testing`, a model of the
//! kernel): loaded from its entry, called through the generated proxy
//! (each call a contained entry), crashed and restarted.

{imports}

#[test]
fn calls_go_through_the_proxy_and_a_crash_is_contained() {{
    let kernel = testing::kernel();
    kernel.load("{domain}", domain_{snake}::init).expect("load");
{body}
}}
'''


def client_test(name, snake):
    client = f"{name}-client"
    csnake = client.replace("-", "_")
    return f'''//! `{client}` and `{name}` as domains on the host (`domain_sdk::testing`):
//! the client's task and its timers run on the kit's virtual clock, so a
//! second of its life takes no time.

use core::time::Duration;
use domain_sdk::{{lookup, testing}};
use interfaces::control::Control;

#[test]
fn the_client_keeps_calling_across_a_crash_of_the_service() {{
    let kernel = testing::kernel();
    kernel.load("{name}", domain_{snake}::init).expect("load the service");
    kernel.load("{client}", domain_{csnake}::init).expect("load the client");
    let stats = lookup::<dyn Control + Send + Sync>("{client}/control").expect("lookup");

    kernel.run_for(Duration::from_secs(1));
    let ok = stats.control(0, 0).expect("ok count");
    assert!(ok >= 40, "{{ok}} calls in a second of 20 ms rounds");

    kernel.crash("{name}").expect("crash");
    kernel.run_for(Duration::from_millis(100));
    assert!(stats.control(1, 0).expect("failed count") >= 1);

    kernel.restart("{name}").expect("restart");
    kernel.run_for(Duration::from_secs(1));
    assert!(stats.control(0, 0).expect("ok count") >= ok + 40, "calls resumed");
}}
'''


SESSION_HEADER = """# The console session `make test` runs for this domain in QEMU
# (tools/qemu-test.py finds every domains/*/session.console). A line
# `monitor> COMMAND` is typed at the prompt; each line after it, up to the
# next command, is a regular expression (Python syntax, multi-line mode)
# that the reply must contain, or must not contain if it starts with `!`.
# `@pause` waits half a second; `@await TEXT` waits until TEXT is printed.
"""


def service_session(name):
    return SESSION_HEADER + f"""monitor> load {name}
loaded image {name} as domain
monitor> call {name} 1 5
^5$
monitor> call {name} 1 2
^7$
monitor> call {name} 0
^7$
monitor> call {name} help
^0: the total$
^1 N: adds N
monitor> call {name} 2
^{name}: a total of 7$
monitor> crash {name} panic
domain crashed
monitor> call {name} 0
!^7$
monitor> restart {name}
restarted as generation 2
monitor> call {name} 0
^0$
"""


def client_session(name):
    client = f"{name}-client"
    return SESSION_HEADER + f"""monitor> load {name}
loaded image {name} as domain
monitor> load {client}
loaded image {client} as domain
@pause
monitor> call {client} 0
^[1-9][0-9]*$
monitor> crash {name} panic
domain crashed
@pause
monitor> call {client} 1
^[1-9][0-9]*$
monitor> restart {name}
restarted as generation 2
@pause
monitor> call {name} 0
^[1-9][0-9]*$
monitor> kill {client}
killed
"""


def write(path, text, written):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "x") as f:
        f.write(text)
    written.append(path)


def add_module(lib_rs, snake):
    text = open(lib_rs).read()
    lines = text.splitlines(keepends=True)
    mods = [i for i, line in enumerate(lines) if re.match(r"pub mod \w+;", line)]
    if not mods:
        fail(f"{lib_rs} has no `pub mod` lines to add `pub mod {snake};` next to")
    new = f"pub mod {snake};\n"
    at = next((i for i in mods if lines[i] > new), mods[-1] + 1)
    lines.insert(at, new)
    with open(lib_rs, "w") as f:
        f.write("".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--client", action="store_true", help="also write NAME-client")
    parser.add_argument("--interface", action="store_true", help="also write interfaces/src/NAME.rs")
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    name = args.name
    snake = check_name(name, args.client)
    trait = camel(name)

    service_dir = os.path.join(root, "domains", name)
    client_dir = os.path.join(root, "domains", f"{name}-client")
    module = os.path.join(root, "interfaces", "src", f"{snake}.rs")
    for path in [service_dir, os.path.join(root, "drivers", name)] + ([client_dir] if args.client else []):
        if os.path.exists(path):
            fail(f"{os.path.relpath(path, root)} exists already; pick another NAME")
    if args.interface and os.path.exists(module):
        fail(f"interfaces/src/{snake}.rs exists already; pick another NAME or leave out INTERFACE=1")

    written = []
    exports = [name, "control"] if args.interface else ["control"]
    write(os.path.join(service_dir, "Cargo.toml"),
          cargo_toml(name, f"The {name} service (written by make new-domain).", exports), written)
    write(os.path.join(service_dir, "src", "lib.rs"), service_rs(name, snake, trait, args.interface), written)
    write(os.path.join(service_dir, "src", "main.rs"), main_rs(snake), written)
    write(os.path.join(service_dir, "session.console"), service_session(name), written)
    write(os.path.join(service_dir, "tests", "host.rs"), service_test(name, snake, trait, args.interface), written)
    if args.interface:
        write(module, interface_rs(name, trait), written)
        add_module(os.path.join(root, "interfaces", "src", "lib.rs"), snake)
        written.append("interfaces/src/lib.rs (pub mod line)")
    if args.client:
        client = f"{name}-client"
        csnake = client.replace("-", "_")
        write(os.path.join(client_dir, "Cargo.toml"),
              cargo_toml(client, f"Calls the {name} service (written by make new-domain).", ["control"],
                         dev_service=name),
              written)
        write(os.path.join(client_dir, "tests", "host.rs"), client_test(name, snake), written)
        write(os.path.join(client_dir, "src", "lib.rs"), client_rs(name, snake, trait, args.interface), written)
        write(os.path.join(client_dir, "src", "main.rs"), main_rs(csnake), written)
        write(os.path.join(client_dir, "session.console"), client_session(name), written)

    # The project's formatting (how rustfmt wraps a line depends on the
    # names), so the new crates pass `cargo fmt --check` from the start.
    sources = [p for p in written if os.path.isabs(p) and p.endswith(".rs")]
    try:
        subprocess.run(["rustfmt", "--edition", "2024", *sources], cwd=root, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"new-domain: note: rustfmt did not run ({e}); run `cargo fmt`", file=sys.stderr)

    print("new-domain: wrote")
    for path in written:
        print(f"  {os.path.relpath(path, root) if os.path.isabs(path) else path}")
    print(f"""next:
  cargo test -p domain-{name}          # the service's logic on the host
  make run, then: load {name}          # or run its session: make test""")


if __name__ == "__main__":
    main()
