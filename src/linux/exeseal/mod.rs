//! The host binary is never reachable from a container (CVE-2019-5736). The container's init is
//! a clone of hako, so until execve its /proc/self/exe is hako's binary: a container that
//! executes /proc/self/exe (directly, as a script interpreter or as an ELF interpreter) runs
//! hako with its own loader and could reopen the file for writing. Two ways keep it out:
//!
//! - The exec stub (stub.rs, the usual way): every process hako starts in a container executes
//!   a tiny sealed memfd program, which executes the program; at the program's execve,
//!   /proc/self/exe is that sealed stub. Until then the process is non-dumpable (its
//!   /proc/PID/exe closed to the container) and runs nothing the container controls.
//! - The sealed view: hako re-executes itself from its binary's directory in a detached
//!   overlayfs with no upper layer (read-only by construction, nothing copied), or where
//!   overlayfs cannot be mounted, from a sealed memfd copy (several ms). Then every exec it
//!   makes is safe, including the container-side hooks', which the stub does not cover, and the
//!   exec needs no execveat and no executable memfd. Used when the stub cannot do it
//!   (`needs_sealed_view`) or cannot be made here.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use nix::fcntl::FdFlag;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, Spec};

use super::exec::{cstrings, pointers};

mod stub;

/// Set for the re-executed process, which then checks that it really runs from a sealed view.
/// Its value lists the view's mount fds, passed across the re-exec (see `release_mounts`).
const MARK: &str = "_HAKO_SEALED_EXE";

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

/// Called first thing (main, single-threaded, nothing opened yet) by every command that puts a
/// process into a container. A process re-executed from the sealed view takes it; any other
/// makes the exec stub, or where it cannot (not x86_64, executable memfds refused by
/// vm.memfd_noexec), re-executes itself from the sealed view (and does not return).
pub fn protect() -> Result<()> {
    if std::env::var_os(MARK).is_none() {
        if let Ok(fd) = exec_stub() {
            let _ = STUB.set(fd);
            return Ok(());
        }
    }
    ensure_sealed()
}

/// Once the config is read: re-executes hako from its sealed view (does not return) when the
/// stub is not enough for it (`needs_sealed_view`) and this process does not run from it yet.
/// Nothing may have been made yet: the re-executed hako starts the command over.
pub fn seal_if_needed(why: Option<&str>) -> Result<()> {
    match why {
        Some(why) if !is_sealed_process() => {
            tracing::debug!("re-executing from the sealed view of hako's binary: {why}");
            crate::trace::carry_start_across_reexec();
            ensure_sealed()
        }
        _ => Ok(()),
    }
}

/// Why the exec stub cannot stand in for the sealed view for this container (`hooks`: the
/// command runs its container-side hooks), or None.
pub fn needs_sealed_view(spec: &Spec, hooks: bool) -> Option<&'static str> {
    let h = spec.hooks().as_ref();
    let container_hooks = h.is_some_and(|h| {
        h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
    });
    let process = spec.process().as_ref();
    if hooks && container_hooks {
        Some("createContainer or startContainer hooks are executed inside the container")
    } else if process.is_some_and(|p| p.apparmor_profile().is_some() || p.selinux_label().is_some())
    {
        Some("an AppArmor profile or SELinux label applies at the stub's execve")
    } else if !spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .is_none_or(allows_execveat)
    {
        Some("the seccomp profile may not allow execveat, which starts the stub")
    } else {
        None
    }
}

/// Whether a seccomp profile lets every execveat(2) through: by default with no rule naming
/// it otherwise, or by an unconditional rule with no other rule naming it.
fn allows_execveat(seccomp: &LinuxSeccomp) -> bool {
    let rules: Vec<_> = seccomp
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == "execveat"))
        .collect();
    let allow = |a: LinuxSeccompAction| a == LinuxSeccompAction::ScmpActAllow;
    let all_allow = rules.iter().all(|r| allow(r.action()));
    let unconditional = rules
        .iter()
        .any(|r| r.args().as_ref().is_none_or(|a| a.is_empty()));
    all_allow && (allow(seccomp.default_action()) || unconditional)
}

/// The exec stub, when this process has one (`protect`).
static STUB: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// The exec stub's fd (close-on-exec), to keep open in the init and exec's child and to
/// execveat: None when this process runs from the sealed view instead.
pub fn stub_fd() -> Option<std::os::fd::RawFd> {
    STUB.get().map(|fd| fd.as_raw_fd())
}

/// Whether a process this one starts in a container is safe to execve: through the stub, or
/// because this process runs from the sealed view.
pub fn is_protected() -> bool {
    is_sealed_process() || STUB.get().is_some()
}

/// The exec stub in a sealed memfd.
fn exec_stub() -> Result<OwnedFd> {
    let image = stub::image().context("no exec stub for this architecture")?;
    let mut file = sealable_memfd(c"hako-exec-stub")?;
    std::io::Write::write_all(&mut file, &image).context("write the exec stub")?;
    seal(&file)?;
    Ok(file.into())
}

/// Returns when this process runs from a sealed view of its binary; otherwise makes one and
/// re-executes itself from it with the same arguments and environment (does not return on
/// success). Must run before any other thread exists and before fds that must not survive are
/// open.
fn ensure_sealed() -> Result<()> {
    ensure_sealed_now()?;
    SEALED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Set once `ensure_sealed` has returned: this process runs from a sealed view or copy.
static SEALED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process runs from the sealed view (or copy) of hako's binary.
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
    let mut copy = sealable_memfd(c"hako")?;
    std::io::copy(exe, &mut copy).context("copy hako into its sealed memfd")?;
    seal(&copy)?;
    Ok(copy.into())
}

/// A new memfd meant to be executed once sealed.
fn sealable_memfd(name: &std::ffi::CStr) -> Result<File> {
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) says the memfd is meant to be executed; older kernels refuse the
    // flag; vm.memfd_noexec=2 refuses it with EACCES (then so would execve).
    // SAFETY: name is NUL-terminated; memfd_create returns a new fd or -1.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | libc::MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("memfd_create {name:?}"));
    }
    // SAFETY: fresh fd from memfd_create.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Seals `f` against every change of its content or size.
fn seal(f: &File) -> Result<()> {
    // SAFETY: F_ADD_SEALS takes an int of seal bits.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal a memfd");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_stub_is_enough_for_a_plain_container() {
        let plain = spec(serde_json::json!({
            "ociVersion": "1.3.0",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "hooks": {"prestart": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true"}]},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}}
        }));
        assert_eq!(needs_sealed_view(&plain, true), None);
    }

    #[test]
    fn hooks_inside_the_container_and_lsm_labels_need_the_sealed_view() {
        for kind in ["createContainer", "startContainer"] {
            let s = spec(serde_json::json!({
                "ociVersion": "1.3.0",
                "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "hooks": {kind: [{"path": "/bin/true"}]}
            }));
            assert!(needs_sealed_view(&s, true).is_some(), "{kind}");
            // exec runs no hooks.
            assert_eq!(needs_sealed_view(&s, false), None, "{kind}");
        }
        for (key, value) in [("apparmorProfile", "p"), ("selinuxLabel", "l")] {
            let s = spec(serde_json::json!({
                "ociVersion": "1.3.0",
                "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, key: value}
            }));
            assert!(needs_sealed_view(&s, false).is_some(), "{key}");
        }
    }

    #[test]
    fn a_seccomp_profile_must_plainly_allow_execveat() {
        let with = |seccomp: serde_json::Value| {
            let s = spec(serde_json::json!({
                "ociVersion": "1.3.0",
                "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "linux": {"seccomp": seccomp}
            }));
            needs_sealed_view(&s, false).is_none()
        };
        let rule = |action: &str, args: serde_json::Value| serde_json::json!({"names": ["execve", "execveat"], "action": action, "args": args});
        let allow_list = |rules: Vec<serde_json::Value>| serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules});
        let deny_list = |rules: Vec<serde_json::Value>| serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules});
        assert!(with(deny_list(vec![])));
        assert!(with(allow_list(vec![rule(
            "SCMP_ACT_ALLOW",
            serde_json::json!([])
        )])));
        assert!(!with(allow_list(vec![])));
        assert!(!with(deny_list(vec![rule(
            "SCMP_ACT_ERRNO",
            serde_json::json!([])
        )])));
        assert!(!with(deny_list(vec![rule(
            "SCMP_ACT_KILL",
            serde_json::json!([])
        )])));
        let conditional = serde_json::json!([{"index": 4, "value": 0, "op": "SCMP_CMP_EQ"}]);
        assert!(!with(allow_list(vec![rule("SCMP_ACT_ALLOW", conditional)])));
        assert!(!with(allow_list(vec![
            rule("SCMP_ACT_ALLOW", serde_json::json!([])),
            rule("SCMP_ACT_ERRNO", serde_json::json!([]))
        ])));
    }

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
