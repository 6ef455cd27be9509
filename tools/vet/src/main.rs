//! `vet DIR...`: screens each domain crate directory (see the library);
//! prints every finding and exits 1 if there is any, 2 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        eprintln!("usage: vet DIR...");
        return ExitCode::from(2);
    }
    match vet::vet_dirs(&dirs) {
        Ok(findings) if findings.is_empty() => ExitCode::SUCCESS,
        Ok(findings) => {
            for finding in &findings {
                eprintln!("vet: {finding}");
            }
            eprintln!(
                "vet: {} finding(s): the domain sources use constructs through which known compiler soundness bugs break isolation",
                findings.len()
            );
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("vet: {error}");
            ExitCode::from(2)
        }
    }
}
