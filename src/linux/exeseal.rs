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

use super::exec::{cstrings, pointers};

/// Set for the re-executed process, which then checks that it really runs from a sealed view.
const MARK: &str = "_HAKO_SEALED_EXE";

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
    // SAFETY: statfs/statvfs are plain data, filled by the kernel for a valid fd.
    let (mut sfs, mut svfs): (libc::statfs, libc::statvfs) = unsafe { std::mem::zeroed() };
    // SAFETY: f is open; both structs are valid writable memory.
    let ok = unsafe {
        libc::fstatfs(f.as_raw_fd(), &mut sfs) == 0 && libc::fstatvfs(f.as_raw_fd(), &mut svfs) == 0
    };
    ok && sfs.f_type == OVERLAYFS_SUPER_MAGIC && svfs.f_flag & libc::ST_RDONLY != 0
}

/// Returns when this process runs from a sealed view of its binary; otherwise makes one and
/// re-executes itself from it with the same arguments and environment (does not return on
/// success). Must run before any other thread exists and before fds that must not survive are
/// open.
pub fn ensure_sealed() -> Result<()> {
    let marked = std::env::var_os(MARK).is_some();
    if marked {
        // Single-threaded (see above), so changing the environment races nothing.
        std::env::remove_var(MARK);
    }
    let mut exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if is_sealed(&exe) || (marked && is_read_only_overlay(&exe)) {
        return Ok(());
    }
    let copy = match sealed_view() {
        Ok(view) => view,
        Err(_) => sealed_copy(&mut exe)?,
    };
    drop(exe);
    let args: Vec<_> = std::env::args_os().collect();
    let args = cstrings(args.iter().map(|a| a.as_bytes()))?;
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .chain(std::iter::once(format!("{MARK}=1").into_bytes()))
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
fn sealed_view() -> Result<OwnedFd> {
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
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
        let view = File::from(sealed_view().unwrap());
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
