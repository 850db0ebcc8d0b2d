//! File descriptors: only stdio and --preserve-fds may reach the container (CVE-2024-21626).

use std::os::fd::RawFd;

/// Puts /dev/null on whichever of fds 0-2 is closed, as Rust's runtime start-up would (main
/// skips it): else the first file hako opens would become a container's stdin, stdout or
/// stderr.
pub fn fill_closed_stdio() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        // SAFETY: a NUL-terminated path; open returns the lowest free fd, this one. Left open
        // for the life of the process, as stdio.
        if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != fd {
            // No /dev/null, or fds taken meanwhile: nothing safe to go on with.
            std::process::abort();
        }
    }
}

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

#[cfg(test)]
mod tests {
    /// In a child (the test harness's own stdio stays): with fds 0 and 2 closed, both come back
    /// as /dev/null and fd 1 is left as it was.
    #[test]
    fn closed_stdio_becomes_dev_null() {
        // SAFETY: the child only makes raw syscalls on stack buffers (no allocation, no locks
        // another thread of the harness might hold) and ends with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: closes and reopens this child's own stdio; readlink into a stack buffer
            // of the length passed.
            let code = unsafe {
                libc::close(0);
                libc::close(2);
                let out_before = libc::fcntl(1, libc::F_GETFD) != -1;
                super::fill_closed_stdio();
                let mut ok = out_before && libc::fcntl(1, libc::F_GETFD) != -1;
                for path in [c"/proc/self/fd/0", c"/proc/self/fd/2"] {
                    let mut buf = [0u8; 32];
                    let n = libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len());
                    ok &= n >= 0 && &buf[..n as usize] == b"/dev/null";
                }
                if ok {
                    0
                } else {
                    1
                }
            };
            // SAFETY: ends the child without running the harness's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
    }
}
