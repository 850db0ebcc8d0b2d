//! Release builds link the functions of hako's usual paths first (hack/hot-functions.txt, made
//! by hack/hot-functions.sh): packed together they fault in far fewer 64 KB text blocks, which is
//! most of the peak RSS. Only for x86_64 Linux, whose default linker is rust-lld; without the
//! file, or with names that no longer exist, the link is the same as before.
fn main() {
    let list = std::path::Path::new("hack/hot-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = std::env::var("TARGET").unwrap_or_default();
    // hack/hot-functions.sh asks for the link map of the build it probes (the same flags, so the
    // same mangled names as the shipped binary; a map is made even when the binary is stripped).
    println!("cargo:rerun-if-env-changed=HAKO_LINK_MAP");
    if let Ok(map) = std::env::var("HAKO_LINK_MAP") {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={map},--no-demangle");
    }
    // The sealed re-exec at the entry point, before glibc starts (linux/exeseal_entry.rs): not
    // in a static build without optimisation, which would run unrelocated calls there.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let static_unoptimised = features.split(',').any(|f| f == "crt-static")
        && std::env::var("OPT_LEVEL").is_ok_and(|o| o == "0");
    if arch == "x86_64" && os == "linux" && !static_unoptimised {
        println!("cargo:rustc-link-arg-bin=hako=-Wl,--entry=hako_entry");
    }
    if release && target == "x86_64-unknown-linux-gnu" && list.exists() && links_with_lld() {
        let abs = std::fs::canonicalize(list).expect("hack/hot-functions.txt");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            abs.display()
        );
    }
}

/// Whether rustc links x86_64 Linux binaries with its own lld by default (Rust 1.90 and later):
/// GNU ld does not know --symbol-ordering-file, and the build must not fail where it is used.
fn links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("-V").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (...)"
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
