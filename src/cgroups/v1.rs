//! The cgroup v1 fast path (cgroupfs driver): the container's directories, the init's own join,
//! the device rules and removal, done by hand.
//!
//! Why not libcgroups' v1 manager here: building one opens a verified procfs handle and parses
//! /proc/self/mountinfo and /proc/self/cgroup once per controller (12 times, ~1,000 syscalls,
//! at create and again at delete), and its add_task writes the pid from the parent, which takes
//! the kernel's global cgroup_threadgroup_rwsem for writing: an RCU grace period per `run`
//! (3-16 ms measured on this 2-core host, the bulk of "init in its cgroup"). A task that
//! writes "0" to a v1 `tasks` file moves only itself, and the kernel skips that global lock.
//! So the parent makes the directories and opens each `tasks` file before clone, and the init
//! writes itself in first thing. libcgroups still applies the other resources (built lazily,
//! only when a config has any) and does stats, freeze and update.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use super::devices::Rule;
use super::host::Host;
use crate::linux::mountinfo::read_small;

/// The controllers libcgroups' v1 manager handles (its CONTROLLERS), so both see one cgroup.
pub const CONTROLLERS: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// The cgroup's directories, one per mounted hierarchy (co-mounted controllers share one),
/// the cpuset one first (the others' order does not matter). Pure.
pub fn dirs(host: &Host, path: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut out: Vec<(&'static str, PathBuf)> = Vec::new();
    for c in CONTROLLERS {
        if let Some(d) = host.dir(c, path) {
            if !out.iter().any(|(_, x)| *x == d) {
                out.push((c, d));
            }
        }
    }
    out.sort_by_key(|(c, _)| *c != "cpuset");
    out
}

/// Makes the directories and opens each `tasks` file for the init to write "0" to.
pub fn make(host: &Host, path: &Path) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    for (controller, dir) in dirs(host, path) {
        fs::create_dir_all(&dir).with_context(|| format!("cgroup {}", dir.display()))?;
        if controller == "cpuset" {
            let root = host.roots.get("cpuset").map(PathBuf::as_path);
            fill_cpuset(root.unwrap_or(Path::new("/")), &dir)?;
        }
        let tasks = dir.join("tasks");
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&tasks)
            .with_context(|| format!("cgroup {}", tasks.display()))?;
        fds.push(OwnedFd::from(f));
    }
    Ok(fds)
}

/// A new cpuset cgroup has no cpus or mems, and no task may join it so: each empty level takes
/// the value of the nearest level above it that has one. Read from the bottom up, so only the
/// levels made empty (usually the container's alone) and the one that answers are read.
fn fill_cpuset(root: &Path, dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut empty = Vec::new();
        let mut cur = dir;
        let value = loop {
            let here = read(&cur.join(file))?;
            match cur.parent() {
                _ if !here.trim().is_empty() => break here,
                Some(up) if cur != root && up.starts_with(root) => {
                    empty.push(cur);
                    cur = up;
                }
                _ => break here,
            }
        };
        for level in empty.iter().rev() {
            write(&level.join(file), &value)?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    read_small(path).with_context(|| format!("cgroup {}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<()> {
    // One write(2) per value: a cgroup file takes each write as one command.
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| anyhow!("write {value:?} to {}: {e}", path.display()))
}

/// Writes the device rules in order, each to devices.allow or devices.deny. Each file is
/// opened once: the kernel takes every write(2) as one rule (and a path walk down a cgroup
/// hierarchy per rule was a measurable part of a create's CPU time).
pub fn apply_devices(dir: &Path, rules: &[Rule]) -> Result<()> {
    let open = |name: &str| {
        let path = dir.join(name);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map(|f| (f, path))
            .map_err(|e| {
                anyhow!(
                    "config.json: linux.resources.devices: {}: {e}",
                    dir.join(name).display()
                )
            })
    };
    let (mut allow, mut deny) = (open("devices.allow")?, open("devices.deny")?);
    for r in rules {
        let (f, path) = if r.allow { &mut allow } else { &mut deny };
        let line = r.line();
        f.write_all(line.as_bytes()).map_err(|e| {
            anyhow!(
                "config.json: linux.resources.devices: write {line:?} to {}: {e}",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Removes the directories (their last processes killed, as libcgroups does); an error when one
/// is still busy, for the caller to retry.
pub fn remove(host: &Host, path: &Path) -> Result<()> {
    for (_, dir) in dirs(host, path) {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(anyhow!("{}: {e}", dir.display()))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_per_hierarchy_cpuset_first() {
        let host = Host::v1_from_mountinfo(
            "35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             36 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             37 30 0:33 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n\
             38 30 0:34 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n",
        );
        let d = dirs(&host, Path::new("/a/c1"));
        let paths: Vec<String> = d.iter().map(|(_, p)| p.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/sys/fs/cgroup/cpuset/a/c1",
                "/sys/fs/cgroup/cpu,cpuacct/a/c1",
                "/sys/fs/cgroup/memory/a/c1"
            ]
        );
    }

    #[test]
    fn device_lines() {
        let rules = super::super::devices::plan(&[]).unwrap();
        assert_eq!(rules[0].line(), "a *:* rwm");
        assert!(rules.iter().any(|r| r.line() == "c 1:3 rwm"));
        assert!(rules.iter().any(|r| r.line() == "b *:* m"));
    }

    #[test]
    fn cpuset_filled_from_the_nearest_level_that_has_one() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::create_dir_all(r.join("x/y/z")).unwrap();
        for (d, cpus) in [
            ("", "0-1\n"),
            ("a", "1\n"),
            ("a/b", "\n"),
            ("x", "\n"),
            ("x/y", "\n"),
            ("x/y/z", "\n"),
        ] {
            fs::write(r.join(d).join("cpuset.cpus"), cpus).unwrap();
            fs::write(r.join(d).join("cpuset.mems"), "0\n").unwrap();
        }
        fill_cpuset(r, &r.join("a/b")).unwrap();
        assert_eq!(read(&r.join("a/b/cpuset.cpus")).unwrap(), "1\n");
        assert_eq!(read(&r.join("a/b/cpuset.mems")).unwrap(), "0\n");
        // Every empty level down from the root takes the root's.
        fill_cpuset(r, &r.join("x/y/z")).unwrap();
        for d in ["x", "x/y", "x/y/z"] {
            assert_eq!(read(&r.join(d).join("cpuset.cpus")).unwrap(), "0-1\n");
        }
    }
}
