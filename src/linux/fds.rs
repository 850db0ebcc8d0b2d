//! File descriptors: only stdio and --preserve-fds may reach the container (CVE-2024-21626).

use std::os::fd::RawFd;

/// Closes every fd from 3 up that is not in `keep`.
pub fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: u32 = 3;
    for fd in keep {
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1, 0);
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX, 0);
}

/// Marks every fd from `first` up close-on-exec, so execve drops them all at once.
pub fn cloexec_from(first: u32) {
    close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32);
}

fn close_range(first: u32, last: u32, flags: i32) {
    // SAFETY: close_range only closes or flags descriptors; the caller has dropped any it owns
    // in that range or no longer uses them.
    unsafe { libc::close_range(first, last, flags) };
}
