//! Joining a running container's cgroups (for `exec`): the directories its init is in, read
//! from /proc/<init>/cgroup and the host's cgroup mounts — the same paths whatever made them
//! (libcgroups' v1 or v2 manager, systemd), and no cgroup manager to set up.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::linux::mountinfo::{self, CgroupLine, Mount};

/// The directories to write a pid into: for each hierarchy the init is in (and that is mounted),
/// its cgroup, or `sub` below it — for every hierarchy, or for the one of `controller`. Pure.
pub fn dirs(
    init: &[CgroupLine],
    mounts: &[Mount],
    controller: Option<&str>,
    sub: &Path,
) -> Result<Vec<PathBuf>> {
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
            out.push(m.mount_point.join(rel).join(sub));
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

/// Moves `pid` into the cgroups of `init_pid` (`sub` below them, for `controller` only if
/// given).
pub fn join(init_pid: i32, pid: i32, controller: Option<&str>, sub: &Path) -> Result<()> {
    let init = mountinfo::read_cgroups(&init_pid.to_string())?;
    let mounts = mountinfo::read_own()?;
    // Where the process is already (a hierarchy the container has no cgroup of its own in, as
    // rootless): nothing to write, and a rootless user could not.
    let own = mountinfo::read_cgroups(&pid.to_string())
        .ok()
        .and_then(|lines| dirs(&lines, &mounts, None, Path::new("")).ok())
        .unwrap_or_default();
    for dir in dirs(&init, &mounts, controller, sub)? {
        if own.contains(&dir) {
            continue;
        }
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
        let want: Vec<PathBuf> = [
            "/sys/fs/cgroup/cpu,cpuacct/h/c1",
            "/sys/fs/cgroup/memory/h/c1",
            "/sys/fs/cgroup/systemd/h",
            "/sys/fs/cgroup/unified/h",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(d, want, "perf_event is not mounted: left out");
        let d = dirs(&init, &m, Some("memory"), Path::new("sub")).unwrap();
        assert_eq!(d, [PathBuf::from("/sys/fs/cgroup/memory/h/c1/sub")]);
        let err = dirs(&init, &m, Some("pids"), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("unknown controller pids"), "{err}");
    }
}
