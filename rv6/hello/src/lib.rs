//! `hello`: the smallest rv6 program. Started from its image file in the
//! file system (`Kernel::spawn_program`), it writes `/hello.out` through
//! `fs/files` and logs that it did; then it waits to be killed.
//! (Arguments, descriptors and an exit status come with rv6's process
//! domain.)
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::time::Duration;

use domain_sdk::{Exports, Kernel, log, sleep, spawn};
use rv6_ulib::Files;

/// What the program writes.
pub const GREETING: &[u8] = b"hello from a program\n";

async fn main() {
    let mut fs = loop {
        match Files::connect() {
            Ok(fs) => break fs,
            Err(_) => sleep(Duration::from_millis(20)).await,
        }
    };
    match fs.write_file("/hello.out", GREETING).await {
        Ok(()) => log("hello: wrote /hello.out"),
        Err(e) => log(&alloc::format!("hello: /hello.out: {e}")),
    }
    loop {
        sleep(Duration::from_secs(3600)).await;
    }
}

pub fn init(_kernel: &'static dyn Kernel) -> Result<Exports, String> {
    spawn(main()).map_err(|e| alloc::format!("spawn: {e}"))?;
    Ok(Exports::new())
}
