//! The host binary is never reachable from a container (CVE-2019-5736). The container's init is
//! a clone of hako, so until execve its /proc/self/exe is hako's binary: a container that
//! executes /proc/self/exe (directly, as a script interpreter or as an ELF interpreter) runs
//! hako with its own loader and could reopen the file for writing. So every command that puts a
//! process into a container first re-executes itself from a sealed memfd copy: the file behind
//! /proc/self/exe is then a private, immutable copy (writes fail with EPERM), never the host's.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether `f` is a memfd carrying all of our seals.
fn is_sealed(f: &File) -> bool {
    // SAFETY: F_GET_SEALS takes no argument; EINVAL for files that are not memfds.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Returns when this process runs from a sealed copy; otherwise makes one and re-executes
/// itself from it with the same arguments and environment (does not return on success).
/// Must run before any other thread exists and before fds that must not survive are open.
pub fn ensure_sealed() -> Result<()> {
    let mut exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if is_sealed(&exe) {
        return Ok(());
    }
    let copy = sealed_copy(&mut exe)?;
    drop(exe);
    let args = cstrings(std::env::args_os().map(|a| a.as_bytes().to_vec()))?;
    let env = cstrings(std::env::vars_os().map(|(k, v)| {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        kv
    }))?;
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

fn cstrings(items: impl Iterator<Item = Vec<u8>>) -> Result<Vec<CString>> {
    items
        .map(|s| CString::new(s).context("an argument or variable holds a NUL byte"))
        .collect()
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

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
