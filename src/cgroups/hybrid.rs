//! A hybrid host: v1 hierarchies for the controllers, and a cgroup2 hierarchy without
//! controllers at /sys/fs/cgroup/unified (systemd's process tracking). runc's v1 manager puts
//! the container in a cgroup of that hierarchy too, at the same path, so its processes are
//! grouped there as well; libcgroups' v1 manager leaves them in the caller's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The container's directory in the hybrid cgroup2 hierarchy, if this host has one.
pub fn unified_dir(path: &Path) -> Option<PathBuf> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let unified = Path::new(super::host::CGROUP_ROOT).join("unified");
    statfs(&unified)
        .is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
        .then(|| unified.join(path.strip_prefix("/").unwrap_or(path)))
}

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
