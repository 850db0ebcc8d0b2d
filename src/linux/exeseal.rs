//! The host binary is never reachable from a container (CVE-2019-5736). The container's init is
//! a clone of hako, so until execve its /proc/self/exe is hako's binary: a container that
//! executes /proc/self/exe (directly, as a script interpreter or as an ELF interpreter) runs
//! hako with its own loader and could reopen the file for writing. So every command that puts a
//! process into a container first re-executes itself from a sealed view of its binary: the file
//! behind /proc/self/exe is then immutable, never the host's writable file. The view is the
//! binary's directory in a detached overlayfs with no upper layer (read-only by construction,
//! nothing copied: about 0.2 ms); where overlayfs cannot be mounted, a sealed memfd copy
//! (writes fail with EPERM; it costs a copy of the binary, several ms).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use nix::fcntl::FdFlag;

use super::exec::{cstrings, pointers};

/// Set for the re-executed process, which then checks that it really runs from a sealed view.
/// Its value lists the view's mount fds, passed across the re-exec (see `release_mounts`).
pub(super) const MARK: &str = "_HAKO_SEALED_EXE";

/// The sealed view's mounts, held open by the re-executed hako. Closing the last fd of a
/// detached mount unmounts it and waits for an RCU grace period (1-3 ms measured here, on the
/// path of every create when it happened at the re-exec): `release_mounts` closes them
/// while the parent only waits for its init.
static MOUNTS: std::sync::Mutex<Vec<OwnedFd>> = std::sync::Mutex::new(Vec::new());

/// Closes the sealed view's mount fds (the binary stays open through /proc/self/exe).
pub fn release_mounts() {
    if let Ok(mut m) = MOUNTS.lock() {
        m.clear();
    }
}

/// Takes the mount fds named in MARK's value: close-on-exec again, closed by `release_mounts`.
/// Only fds at 3 and above that are tmpfs or overlayfs mounts are taken (the value comes from
/// the environment).
fn adopt_mounts(value: &std::ffi::OsStr) {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    const OVERLAYFS_SUPER_MAGIC: libc::c_long = 0x794c_7630;
    let Ok(mut held) = MOUNTS.lock() else { return };
    for n in value.to_string_lossy().split(',') {
        let Ok(fd) = n.parse::<i32>() else { continue };
        if fd < 3 {
            continue;
        }
        // SAFETY: statfs is plain data; fstatfs fails with EBADF for a closed fd.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: sfs is valid writable memory.
        if unsafe { libc::fstatfs(fd, &mut sfs) } != 0
            || ![TMPFS_MAGIC, OVERLAYFS_SUPER_MAGIC].contains(&sfs.f_type)
        {
            continue;
        }
        // SAFETY: F_SETFD with FD_CLOEXEC on an open fd.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: the fd is open (fstatfs succeeded) and nothing else in this process owns it:
        // it was passed across execve for this purpose.
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether `f` is a memfd carrying all of our seals.
fn is_sealed(f: &File) -> bool {
    // SAFETY: F_GET_SEALS takes no argument; EINVAL for files that are not memfds.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Whether `f` is on a read-only overlayfs mount (the view `sealed_view` makes).
fn is_read_only_overlay(f: &File) -> bool {
    const OVERLAYFS_SUPER_MAGIC: libc::c_long = 0x794c_7630;
    // statfs(2) reports the mount flags too (ST_VALID says so): one call, not fstatvfs's second.
    const ST_VALID: libc::c_long = 0x20;
    // SAFETY: statfs64 is plain data, filled by the kernel for a valid fd.
    let mut sfs: libc::statfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: f is open; sfs is valid writable memory.
    let ok = unsafe { libc::fstatfs64(f.as_raw_fd(), &mut sfs) } == 0;
    ok && sfs.f_type == OVERLAYFS_SUPER_MAGIC
        && sfs.f_flags & ST_VALID != 0
        && sfs.f_flags & libc::ST_RDONLY as libc::c_long != 0
}

/// Returns when this process runs from a sealed view of its binary; otherwise makes one and
/// re-executes itself from it with the same arguments and environment (does not return on
/// success). Must run before any other thread exists and before fds that must not survive are
/// open.
pub fn ensure_sealed() -> Result<()> {
    ensure_sealed_now()?;
    SEALED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Set once `ensure_sealed` has returned: this process runs from a sealed view or copy.
static SEALED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `ensure_sealed` has returned in this process (main checks it for every command
/// that puts a process into a container, whatever decided to seal).
pub fn is_sealed_process() -> bool {
    SEALED.load(std::sync::atomic::Ordering::Relaxed)
}

fn ensure_sealed_now() -> Result<()> {
    let mark = std::env::var_os(MARK);
    let marked = mark.is_some();
    if let Some(value) = mark {
        adopt_mounts(&value);
        // Single-threaded (see above), so changing the environment races nothing.
        std::env::remove_var(MARK);
    }
    let mut exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    // The overlay view first: what the mark almost always means.
    if (marked && is_read_only_overlay(&exe)) || is_sealed(&exe) {
        return Ok(());
    }
    let (copy, mounts) = match sealed_view() {
        Ok(view) => view,
        Err(_) => (sealed_copy(&mut exe)?, Vec::new()),
    };
    let mut passed = Vec::new();
    for m in &mounts {
        // Inherited across the re-exec (see MOUNTS).
        nix::fcntl::fcntl(
            m.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(FdFlag::empty()),
        )
        .context("pass the sealed view's mount")?;
        passed.push(m.as_raw_fd().to_string());
    }
    drop(exe);
    let args: Vec<_> = std::env::args_os().collect();
    let args = cstrings(args.iter().map(|a| a.as_bytes()))?;
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .chain(std::iter::once(
            format!("{MARK}={}", passed.join(",")).into_bytes(),
        ))
        .collect();
    let env = cstrings(env.iter().map(|e| e.as_slice()))?;
    let argv = pointers(&args);
    let envp = pointers(&env);
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to NUL-terminated strings
    // that outlive the call; on success execveat does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            copy.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(std::io::Error::last_os_error()).context("re-execute hako from its sealed copy")
}

/// The binary opened through a detached overlayfs of its directory with no upper layer: no
/// write can reach the file through it, and the mount is reachable only through our fds.
/// overlayfs wants two lower layers without an upper one: the second is an empty tmpfs.
/// Returns the binary's fd and the two mounts'.
fn sealed_view() -> Result<(OwnedFd, Vec<OwnedFd>)> {
    let path = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        anyhow::bail!("{}: no directory", path.display());
    };
    let dir = dir.to_str().context("a binary path that is not UTF-8")?;
    if dir.contains([':', ',', '\\']) || path.to_string_lossy().ends_with(" (deleted)") {
        anyhow::bail!("{}: not usable as an overlayfs layer", path.display());
    }
    let empty = super::mounts::detached_empty_tmpfs()?;
    let lower = format!("{dir}:/proc/self/fd/{}", empty.as_raw_fd());
    let mnt = super::mounts::detached_mount("overlay", &[("lowerdir", &lower)])?;
    let fd = nix::fcntl::openat(
        Some(mnt.as_raw_fd()),
        name,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("open hako in its sealed view")?;
    // SAFETY: fresh fd from openat(2).
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, vec![mnt, empty]))
}

/// A memfd holding the bytes of `exe`, sealed against every change.
fn sealed_copy(exe: &mut File) -> Result<OwnedFd> {
    let name = c"hako";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) says the copy is meant to be executed; older kernels refuse the flag.
    // SAFETY: name is NUL-terminated; memfd_create returns a new fd or -1.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | libc::MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("memfd_create for a sealed copy of hako");
    }
    // SAFETY: fresh fd from memfd_create.
    let mut copy = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::copy(exe, &mut copy).context("copy hako into its sealed memfd")?;
    // SAFETY: F_ADD_SEALS takes an int of seal bits.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal hako's memfd copy");
    }
    Ok(copy.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn view_is_read_only_overlay() {
        if !nix::unistd::geteuid().is_root() {
            return; // mounting needs root; the suite runs as root
        }
        let view = File::from(sealed_view().unwrap().0);
        assert!(is_read_only_overlay(&view));
        let exe = File::open("/proc/self/exe").unwrap();
        assert!(!is_read_only_overlay(&exe));
        // Reopening the view for writing, as a container would through /proc/self/exe, fails.
        let path = format!("/proc/self/fd/{}", view.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    }

    #[test]
    fn copy_is_identical_and_immutable() {
        let mut exe = File::open("/proc/self/exe").unwrap();
        let copy = sealed_copy(&mut exe).unwrap();
        let mut copy = File::from(copy);
        assert!(is_sealed(&copy));
        assert!(!is_sealed(&exe));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        exe.rewind().unwrap();
        exe.read_to_end(&mut a).unwrap();
        copy.rewind().unwrap();
        copy.read_to_end(&mut b).unwrap();
        assert!(a == b, "the copy differs from the binary");
        assert_eq!(
            copy.write(b"x").unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
        assert!(copy.set_len(0).is_err());
    }
}
