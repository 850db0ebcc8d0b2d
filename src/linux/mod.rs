//! One module per kernel facility: a pure plan from the spec, and a thin apply.

pub mod capabilities;
pub mod console;
pub mod devices;
pub mod exec;
pub mod exeseal;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod exeseal_entry;
pub mod fds;
pub mod idmap;
pub mod lsm;
pub mod mountinfo;
pub mod mounts;
pub mod namespaces;
pub mod netdev;
pub mod procfs;
pub mod proctree;
pub mod rlimits;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod shared;
pub mod sysctl;
pub mod user;
pub mod userns;

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// openat2(2) with the given RESOLVE_* flags; the fd is close-on-exec.
pub fn openat2(dir: RawFd, rel: &Path, flags: i32, resolve: u64) -> std::io::Result<OwnedFd> {
    let path = std::ffi::CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is a plain C struct; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: path and how are valid for the call; the kernel returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
