//! The one parser of /proc/PID/mountinfo and /proc/PID/cgroup, for the rootfs (cgroup mounts,
//! mount points) and for cgroups (the host's hierarchies, hako's own cgroup).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One line of mountinfo (proc(5)): the fields hako uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// The super block's options (for cgroup v1: `rw,cpu,cpuacct`).
    pub super_options: String,
}

/// Parses mountinfo text; malformed lines are skipped. Pure.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // Optional fields end at " - ", after which come type, source, super options.
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            Some(Mount {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: r.next()?.to_string(),
                source: r.next().unwrap_or("").to_string(),
                super_options: r.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The calling process's mounts.
pub fn read_own() -> Result<Vec<Mount>> {
    let text = read_small(Path::new("/proc/self/mountinfo")).context("/proc/self/mountinfo")?;
    Ok(parse(&text))
}

/// mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/PID/cgroup: a v1 hierarchy's controllers (`name=systemd` included), or
/// none for the unified hierarchy, and the cgroup's path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// Parses /proc/PID/cgroup text. Pure.
pub fn parse_cgroups(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(CgroupLine {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The cgroups of process `pid` ("self" for the caller).
pub fn read_cgroups(pid: &str) -> Result<Vec<CgroupLine>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = read_small(Path::new(&path)).with_context(|| path.clone())?;
    Ok(parse_cgroups(&text))
}

/// A small kernel file (procfs, cgroupfs) in as few read(2)s as its size allows: std's
/// read_to_string on a File stats it first (procfs reports size 0), then reads from 32 bytes
/// up. Through `take` std has no size hint to ask for, and reads into the capacity given.
pub fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut text = String::with_capacity(4096);
    f.take(u64::MAX).read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt\\040dir rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
                    garbage\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt dir"));
        assert_eq!(
            (m[0].fstype.as_str(), m[0].source.as_str()),
            ("ext3", "/dev/root")
        );
        assert_eq!(m[1].super_options, "rw,cpu,cpuacct");
    }

    #[test]
    fn cgroup_lines() {
        let l = parse_cgroups("4:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c:d\n");
        assert_eq!(l[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(l[1].controllers, ["name=systemd"]);
        assert!(l[2].controllers.is_empty());
        assert_eq!(l[2].path, PathBuf::from("/c:d"));
    }
}
