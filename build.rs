//! Release builds link the functions of hako's usual paths first (hack/hot-functions.txt, made
//! by hack/hot-functions.sh): packed together they fault in far fewer 64 KB text blocks, which is
//! most of the peak RSS. Only for x86_64 Linux, whose default linker is rust-lld; without the
//! file, or with names that no longer exist, the link is the same as before.
fn main() {
    let list = std::path::Path::new("hack/hot-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = std::env::var("TARGET").unwrap_or_default();
    if release && target == "x86_64-unknown-linux-gnu" && list.exists() {
        let abs = std::fs::canonicalize(list).expect("hack/hot-functions.txt");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            abs.display()
        );
    }
}
