//! cgroup v2 with the cgroupfs driver: the container's directory made before clone, for
//! clone3's CLONE_INTO_CGROUP. The init is born in its cgroup instead of being moved there
//! (a write to cgroup.procs takes the kernel's global cgroup lock, and with it an RCU grace
//! period, as on v1). libcgroups' v2 manager still applies the resources.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use anyhow::{Context, Result};

/// Makes `path` under the cgroup2 `root` with every available controller enabled on the way
/// down (as libcgroups does: best effort, one controller at a time; the leaf gets none, or no
/// process could join it), and opens it for CLONE_INTO_CGROUP.
pub fn make(root: &Path, path: &Path) -> Result<OwnedFd> {
    let file = root.join("cgroup.controllers");
    let available = fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    let enable = |dir: &Path| {
        for c in available.split_whitespace() {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    };
    let parts: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut dir = root.to_path_buf();
    enable(&dir);
    for (i, part) in parts.iter().enumerate() {
        dir.push(part);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("cgroup {}", dir.display()))
            }
            _ => {}
        }
        if i + 1 < parts.len() {
            enable(&dir);
        }
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&dir)
        .with_context(|| format!("cgroup {}", dir.display()))?;
    Ok(f.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_made_controllers_enabled_above_the_leaf_only() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::write(r.join("cgroup.controllers"), "cpu pids\n").unwrap();
        fs::create_dir(r.join("a")).unwrap(); // an existing level is fine
        let fd = make(r, Path::new("/a/b")).unwrap_or_else(|e| panic!("{e:#}"));
        drop(fd);
        assert!(r.join("a/b").is_dir());
        // A plain file keeps the last write; cgroupfs takes each as one command.
        for dir in ["", "a"] {
            let got = fs::read_to_string(r.join(dir).join("cgroup.subtree_control")).unwrap();
            assert_eq!(got, "+pids", "{dir}");
        }
        assert!(!r.join("a/b/cgroup.subtree_control").exists());
    }
}
