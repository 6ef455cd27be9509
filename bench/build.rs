//! Builds the C baselines (`bench/c/*.c`) with the system's C compiler
//! (`cc -O2`, or `$CC`) into a static library the benchmarks link.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let cc = env::var("CC").unwrap_or_else(|_| String::from("cc"));
    let sources = ["c/hashtable.c", "c/maglev.c", "c/kvcore.c", "c/httpparse.c"];
    let mut objects = Vec::new();
    for source in sources {
        println!("cargo:rerun-if-changed={source}");
        let object = out.join(
            PathBuf::from(source)
                .with_extension("o")
                .file_name()
                .expect("name"),
        );
        let status = Command::new(&cc)
            .args(["-O2", "-fPIC", "-c", source, "-o"])
            .arg(&object)
            .status()
            .unwrap_or_else(|e| panic!("running {cc}: {e} (the C baselines need a C compiler)"));
        assert!(status.success(), "{cc} failed on {source}");
        objects.push(object);
    }
    let library = out.join("libbaselines.a");
    let _ = std::fs::remove_file(&library);
    let status = Command::new("ar")
        .arg("rcs")
        .arg(&library)
        .args(&objects)
        .status()
        .expect("running ar");
    assert!(status.success(), "ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=baselines");
    println!("cargo:rerun-if-env-changed=CC");
}
