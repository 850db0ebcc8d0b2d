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
    if release && target == "x86_64-unknown-linux-gnu" && list.exists() {
        let abs = std::fs::canonicalize(list).expect("hack/hot-functions.txt");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            abs.display()
        );
    }
}
