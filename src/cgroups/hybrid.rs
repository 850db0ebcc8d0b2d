//! A hybrid host: v1 hierarchies for the controllers, and a cgroup2 hierarchy without
//! controllers at /sys/fs/cgroup/unified (systemd's process tracking). runc's v1 manager puts
//! the container in a cgroup of that hierarchy too, at the same path, so its processes are
//! grouped there as well; libcgroups' v1 manager leaves them in the caller's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The container's directory in the host's hybrid cgroup2 hierarchy (`Host::hybrid`).
pub fn unified_dir(host: &super::host::Host, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    host.hybrid.as_ref().map(|h| h.join(rel))
}

/// Makes the directory and opens it for CLONE_INTO_CGROUP (the init is born there: no move,
/// so no wait for the kernel's global cgroup lock).
pub fn make(dir: &Path) -> Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(dir)
        })
        .map(Into::into)
        .with_context(|| format!("cgroup {}", dir.display()))
}

/// Moves `pid` in, where the init could not be cloned into the directory.
pub fn add(dir: &Path, pid: i32) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&procs, pid.to_string()))
        .with_context(|| format!("add the container's process to {}", procs.display()))
}

pub fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
