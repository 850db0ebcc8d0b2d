//! A verified procfs handle. Every /proc file the init writes or trusts (sysctls,
//! oom_score_adj, setgroups, timens_offsets, LSM attributes, its own fds) is opened through this
//! handle, never by a path the container's rootfs could redirect (CVE-2025-52881): the handle is
//! the runtime's own /proc, opened before the container's mounts exist and checked to be the root
//! of a procfs, and lookups under it refuse symlinks out of it, magic links and mount crossings.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The inode number of every procfs root directory.
const PROC_ROOT_INO: u64 = 1;

pub struct ProcFs {
    root: OwnedFd,
}

impl ProcFs {
    /// Opens the runtime's /proc and checks that it is the root of a procfs mount.
    pub fn open() -> Result<ProcFs> {
        let fd = nix::fcntl::open(
            "/proc",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context("open /proc")?;
        // SAFETY: fresh fd from open(2).
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        check_is_procfs(&root, "/proc")?;
        let st = nix::sys::stat::fstat(root.as_raw_fd()).context("fstat /proc")?;
        if st.st_ino != PROC_ROOT_INO {
            bail!("/proc is not the root of a procfs mount: refusing to use it");
        }
        Ok(ProcFs { root })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.root.as_raw_fd()
    }

    /// Opens `rel` (e.g. "sys/net/ipv4/ip_forward", "self/oom_score_adj") under the handle.
    /// A symlink leading out of it, a magic link or a mount on the way is an error.
    pub fn open_file(&self, rel: &str, flags: i32) -> Result<File> {
        let fd = super::openat2(
            self.root.as_raw_fd(),
            Path::new(rel),
            flags,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
        )
        .with_context(|| format!("/proc/{rel}"))?;
        check_is_procfs(&fd, rel)?;
        Ok(File::from(fd))
    }

    pub fn write(&self, rel: &str, value: &str) -> Result<()> {
        let mut f = self.open_file(rel, libc::O_WRONLY)?;
        f.write_all(value.as_bytes())
            .with_context(|| format!("write /proc/{rel}"))
    }

    pub fn read_to_string(&self, rel: &str) -> Result<String> {
        let mut s = String::new();
        self.open_file(rel, libc::O_RDONLY)?
            .read_to_string(&mut s)
            .with_context(|| format!("read /proc/{rel}"))?;
        Ok(s)
    }

    /// Reopens one of this process's fds (an O_PATH fd, say) with `flags`, through its own
    /// fd directory under the handle: the one magic link followed (which RESOLVE_BENEATH and
    /// RESOLVE_NO_XDEV would refuse), and only to our own fd. Plain openat(2), not openat2: this
    /// runs under the container's seccomp filter, which need not allow openat2.
    pub fn reopen(&self, fd: RawFd, flags: i32) -> Result<File> {
        let rel = format!("thread-self/fd/{fd}");
        let fd = nix::fcntl::openat(
            Some(self.root.as_raw_fd()),
            rel.as_str(),
            nix::fcntl::OFlag::from_bits_truncate(flags | libc::O_CLOEXEC),
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("reopen fd {fd}"))?;
        // SAFETY: fresh fd from openat(2).
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// Whether `fd` is on a procfs.
pub fn is_procfs(fd: &impl AsRawFd) -> bool {
    check_is_procfs(fd, "").is_ok()
}

fn check_is_procfs(fd: &impl AsRawFd, what: &str) -> Result<()> {
    // SAFETY: statfs is plain data; fstatfs fills it for a valid fd.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the call; sfs is valid writable memory.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut sfs) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("statfs {what}"));
    }
    if sfs.f_type != libc::PROC_SUPER_MAGIC {
        bail!(
            "{what}: not on a procfs (statfs magic {:#x}): refusing to use it",
            sfs.f_type
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_the_handle_and_refuses_escapes() {
        let p = ProcFs::open().unwrap();
        let own = p.read_to_string("self/status").unwrap();
        assert!(
            own.contains(&format!("Pid:\t{}", std::process::id())),
            "{own}"
        );
        // Out of the handle, through a magic link, or not procfs at all: refused.
        assert!(p.open_file("../etc/passwd", libc::O_RDONLY).is_err());
        assert!(p.open_file("self/root/etc/passwd", libc::O_RDONLY).is_err());
        assert!(p.open_file("self/cwd", libc::O_RDONLY).is_err());
        let f = File::open("/dev/null").unwrap();
        let re = p.reopen(f.as_raw_fd(), libc::O_WRONLY).unwrap();
        assert!(check_is_procfs(&re, "reopened").is_err());
    }
}
