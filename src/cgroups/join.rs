//! Joining a running container's cgroups (for `exec`): the directories its init is in, read
//! from /proc/<init>/cgroup and the host's cgroup mounts — the same paths whatever made them
//! (libcgroups' v1 or v2 manager, systemd), and no cgroup manager to set up. On v1 the process
//! writes itself in (see `Joins`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::linux::mountinfo::{self, CgroupLine, Mount};

/// The directories to write a pid into: for each hierarchy the init is in (and that is mounted),
/// its cgroup, or `sub` below it — for every hierarchy, or for the one of `controller`; true for
/// a v1 hierarchy. Pure.
pub fn dirs(
    init: &[CgroupLine],
    mounts: &[Mount],
    controller: Option<&str>,
    sub: &Path,
) -> Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    for line in init {
        if let Some(c) = controller {
            if !line.controllers.iter().any(|x| x == c) {
                continue;
            }
        }
        let mount = mounts.iter().find(|m| {
            if line.controllers.is_empty() {
                m.fstype == "cgroup2"
            } else {
                m.fstype == "cgroup"
                    && line
                        .controllers
                        .iter()
                        .all(|c| m.super_options.split(',').any(|o| o == c))
            }
        });
        if let Some(m) = mount {
            let rel = line.path.strip_prefix("/").unwrap_or(&line.path);
            out.push((m.mount_point.join(rel).join(sub), m.fstype == "cgroup"));
        }
    }
    if out.is_empty() {
        match controller {
            Some(c) => bail!("unknown controller {c}: no {c} controller holds the container"),
            None => bail!("the container's init is in no mounted cgroup hierarchy"),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// How a process exec'd into a container joins its cgroups.
#[derive(Default)]
pub struct Joins {
    /// v1 `tasks` files the process writes "0" to itself, first thing after clone: a task
    /// moving only itself spares the kernel's global lock and its RCU grace period (v1.rs).
    pub own: Vec<OwnedFd>,
    /// Directories the parent writes the pid to (`cgroup.procs`): cgroup2 ones (a task can only
    /// move its whole process there), and v1 ones whose `tasks` did not open, so that the error
    /// names the pid as runc's does.
    pub by_parent: Vec<PathBuf>,
}

/// Before clone: where the process joins the cgroups of `init_pid` (`sub` below them, for
/// `controller` only if given). A cgroup2 directory hako itself is in is left out: the child
/// is born there.
pub fn prepare(init_pid: i32, controller: Option<&str>, sub: &Path, j: &mut Joins) -> Result<()> {
    let init = mountinfo::read_cgroups(&init_pid.to_string())?;
    let mounts = mountinfo::read_own()?;
    // Where hako is already, the child is born: nothing to write (a cgroup2 move would take the
    // global lock, and a rootless user could not make one).
    let own = dirs(
        &mountinfo::read_cgroups("self")?,
        &mounts,
        None,
        Path::new(""),
    )
    .unwrap_or_default();
    for (dir, v1) in dirs(&init, &mounts, controller, sub)? {
        if own.iter().any(|(d, _)| *d == dir) {
            continue;
        }
        if !v1 {
            j.by_parent.push(dir);
            continue;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("tasks"))
        {
            Ok(f) => j.own.push(OwnedFd::from(f)),
            Err(_) => j.by_parent.push(dir),
        }
    }
    Ok(())
}

/// After clone: the parent's part of `prepare`'s joins.
pub fn write_pid(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        // runc's wording ("adding pid N to P: no such file or directory"), which scripts match.
        if let Err(e) = std::fs::write(&procs, pid.to_string()) {
            let why = e.to_string().to_lowercase();
            let hint = match e.kind() {
                std::io::ErrorKind::PermissionDenied if crate::linux::userns::rootless() => {
                    " (rootless: a move needs the common ancestor's cgroup.procs writable too: \
                     run hako from inside the delegated cgroup)"
                }
                _ => "",
            };
            bail!("adding pid {pid} to {}: {why}{hint}", procs.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
    const INIT: &str =
        "5:memory:/h/c1\n4:cpu,cpuacct:/h/c1\n3:perf_event:/\n1:name=systemd:/h\n0::/h\n";

    #[test]
    fn the_inits_cgroups_in_every_mounted_hierarchy() {
        let m = mountinfo::parse(MOUNTINFO);
        let init = mountinfo::parse_cgroups(INIT);
        let d = dirs(&init, &m, None, Path::new("")).unwrap();
        let want: Vec<(PathBuf, bool)> = [
            ("/sys/fs/cgroup/cpu,cpuacct/h/c1", true),
            ("/sys/fs/cgroup/memory/h/c1", true),
            ("/sys/fs/cgroup/systemd/h", true),
            ("/sys/fs/cgroup/unified/h", false),
        ]
        .iter()
        .map(|(p, v1)| (PathBuf::from(p), *v1))
        .collect();
        assert_eq!(d, want, "perf_event is not mounted: left out");
        let d = dirs(&init, &m, Some("memory"), Path::new("sub")).unwrap();
        assert_eq!(d, [(PathBuf::from("/sys/fs/cgroup/memory/h/c1/sub"), true)]);
        let err = dirs(&init, &m, Some("pids"), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("unknown controller pids"), "{err}");
    }
}
