//! Links the kernel at 1 MiB with our linker script (PVH boot, see
//! `src/boot.rs`), and embeds the public key that domain images must be
//! signed with (`src/domain/loaded.rs`).
fn main() {
    embed_public_key();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap();
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Copies the build's domain-signing public key (32 raw bytes) to
/// `OUT_DIR/domain.pub`: from `DOMAIN_PUBKEY` if set, else
/// `build/keys/domain.pub` (which `make images` writes). Without one, the
/// kernel gets all zeroes and refuses every image with a message saying so.
fn embed_public_key() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    let path = std::env::var("DOMAIN_PUBKEY")
        .unwrap_or_else(|_| format!("{dir}/../build/keys/domain.pub"));
    println!("cargo:rerun-if-env-changed=DOMAIN_PUBKEY");
    println!("cargo:rerun-if-changed={path}");
    let key = match std::fs::read(&path) {
        Ok(key) if key.len() == 32 => key,
        Ok(key) => panic!("{path}: a public key is 32 bytes, this is {}", key.len()),
        Err(_) => {
            println!(
                "cargo:warning=no domain signing key at {path}: the kernel will refuse every image (run `make images`)"
            );
            vec![0; 32]
        }
    };
    std::fs::write(format!("{out}/domain.pub"), key).unwrap();
}
