//! Memory shared with the processes this one clones or forks (MAP_SHARED survives both): lets
//! `--trace` collect the init's phases in the parent without a message of the handshake.

use std::sync::atomic::AtomicU64;

/// `n` zeroed words shared with every child made from now on; mapped for the rest of the
/// process's life. None when mmap fails (tracing then goes without the children's phases).
pub fn words(n: usize) -> Option<&'static [AtomicU64]> {
    let len = n.checked_mul(std::mem::size_of::<AtomicU64>())?.max(1);
    // SAFETY: a fresh anonymous mapping; the kernel picks the address and zero-fills it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the mapping is page-aligned, `len` bytes long, zeroed (a valid AtomicU64 each) and
    // never unmapped, so a 'static shared slice of it is valid; every access is atomic, which
    // keeps the other processes' writes well-defined for this one.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), n) })
}
