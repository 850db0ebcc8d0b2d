//! What this host's cgroups offer, and what `linux.resources` asks of them. libcgroups skips
//! controllers it cannot find and reports missing files as bare I/O errors; checking the
//! resources against the host first turns that into one line naming the key and what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;

use crate::linux::mountinfo::{self, read_small};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The host's cgroup layout: v1 hierarchies (legacy or hybrid) or the unified one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub unified: bool,
    /// Controller name → the directory its root files live in (a v1 mount point, or the cgroup2
    /// root for the controllers it lists).
    pub roots: BTreeMap<String, PathBuf>,
    /// On a hybrid host, the controller-less cgroup2 hierarchy at /sys/fs/cgroup/unified.
    pub hybrid: Option<PathBuf>,
    /// The cgroup and cgroup2 mounts of mountinfo (v1 and hybrid; empty on v2, where
    /// mountinfo is not read): the init's /sys/fs/cgroup is made of them (linux/rootfs.rs).
    pub mounts: Vec<mountinfo::Mount>,
}

impl Host {
    /// The host's layout, learnt once per process: one statfs of /sys/fs/cgroup, then
    /// cgroup.controllers (v2) or /proc/self/mountinfo (v1, hybrid), each in one read.
    pub fn detect() -> Result<Host> {
        static HOST: OnceLock<Host> = OnceLock::new();
        if let Some(h) = HOST.get() {
            return Ok(h.clone());
        }
        let host = Host::detect_now()?;
        Ok(HOST.get_or_init(|| host).clone())
    }

    fn detect_now() -> Result<Host> {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};
        let kind = statfs(CGROUP_ROOT)
            .map_err(|e| anyhow::anyhow!("{CGROUP_ROOT}: {e}"))?
            .filesystem_type();
        if kind == CGROUP2_SUPER_MAGIC {
            let file = Path::new(CGROUP_ROOT).join("cgroup.controllers");
            let text = read_small(&file).with_context(|| format!("{}", file.display()))?;
            return Ok(Host::unified_from(&text));
        }
        if kind != TMPFS_MAGIC {
            bail!("{CGROUP_ROOT}: neither cgroup2 nor a tmpfs of cgroup v1 hierarchies");
        }
        let text = read_small(Path::new("/proc/self/mountinfo")).context("/proc/self/mountinfo")?;
        Ok(Host::v1_from_mountinfo(&text))
    }

    pub fn unified_from(controllers: &str) -> Host {
        let roots = controllers
            .split_whitespace()
            .map(|c| (c.to_string(), PathBuf::from(CGROUP_ROOT)))
            .collect();
        Host {
            unified: true,
            roots,
            hybrid: None,
            mounts: Vec::new(),
        }
    }

    /// v1 hierarchies from mountinfo: each `cgroup` mount's super options name its controllers
    /// (`rw,cpu,cpuacct`, or `rw,name=systemd` for a named one, which controls nothing); a
    /// cgroup2 mount at /sys/fs/cgroup/unified (the last mount there) makes the host hybrid.
    pub fn v1_from_mountinfo(text: &str) -> Host {
        let unified = Path::new(CGROUP_ROOT).join("unified");
        let mut roots = BTreeMap::new();
        let mut hybrid = None;
        let mut mounts = Vec::new();
        // Only the cgroup lines are parsed (and the hybrid mount point's): a busy host has
        // hundreds of others. " - " comes once a line, before the type (spaces are escaped).
        let wanted = text
            .lines()
            .filter(|l| l.contains(" - cgroup") || l.contains(" /sys/fs/cgroup/unified "));
        for m in wanted.flat_map(mountinfo::parse) {
            if m.mount_point == unified {
                hybrid = (m.fstype == "cgroup2").then(|| unified.clone());
            }
            if m.fstype == "cgroup" {
                for opt in m.super_options.split(',') {
                    if ["rw", "ro"].contains(&opt) || opt.contains('=') {
                        continue;
                    }
                    roots
                        .entry(opt.to_string())
                        .or_insert_with(|| m.mount_point.clone());
                }
            }
            if m.fstype == "cgroup" || m.fstype == "cgroup2" {
                mounts.push(m);
            }
        }
        Host {
            unified: false,
            roots,
            hybrid,
            mounts,
        }
    }

    /// The directory of `controller`'s files for the cgroup at `path` (absolute, in the
    /// hierarchy's own terms).
    pub fn dir(&self, controller: &str, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        self.roots.get(controller).map(|root| root.join(rel))
    }
}

/// One thing `linux.resources` asks of the host: a controller and (on v1) one of some files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub key: String,
    pub controller: &'static str,
    /// Any one of these must exist in the controller's root (empty: the controller suffices).
    pub files: Vec<String>,
}

fn need(key: impl Into<String>, controller: &'static str, files: &[&str]) -> Need {
    Need {
        key: key.into(),
        controller,
        files: files.iter().map(|f| f.to_string()).collect(),
    }
}

const R: &str = "linux.resources";

/// What applying `r` needs on a v1 host (`unified: false`) or a v2 one. Keys the host's kind
/// cannot express at all are errors here.
pub fn needs(r: &LinuxResources, unified: bool) -> Result<Vec<Need>> {
    let mut out = Vec::new();
    let v1 = !unified;
    let mut add = |key: String, controller: &'static str, v1_files: &[&str]| {
        out.push(need(key, controller, if v1 { v1_files } else { &[] }));
    };
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) && v1 {
        add(format!("{R}.devices"), "devices", &["devices.allow"]);
    }
    if let Some(m) = r.memory() {
        let k = |f: &str| format!("{R}.memory.{f}");
        add(format!("{R}.memory"), "memory", &[]);
        if m.limit().is_some() {
            add(k("limit"), "memory", &["memory.limit_in_bytes"]);
        }
        if m.reservation().is_some() {
            add(k("reservation"), "memory", &["memory.soft_limit_in_bytes"]);
        }
        if m.swap().is_some_and(|s| s != 0) {
            add(k("swap"), "memory", &["memory.memsw.limit_in_bytes"]);
        }
        if m.kernel_tcp().is_some() {
            if unified {
                bail!(
                    "config.json: {}: cgroup v2 has no kernel TCP memory limit",
                    k("kernelTCP")
                );
            }
            add(
                k("kernelTCP"),
                "memory",
                &["memory.kmem.tcp.limit_in_bytes"],
            );
        }
        if m.swappiness().is_some() && v1 {
            add(k("swappiness"), "memory", &["memory.swappiness"]);
        }
        if m.disable_oom_killer().is_some() && v1 {
            add(k("disableOOMKiller"), "memory", &["memory.oom_control"]);
        }
        if m.use_hierarchy().is_some() && v1 {
            add(k("useHierarchy"), "memory", &["memory.use_hierarchy"]);
        }
    }
    if let Some(c) = r.cpu() {
        let k = |f: &str| format!("{R}.cpu.{f}");
        for (set, key, file) in [
            (c.shares().is_some(), "shares", "cpu.shares"),
            (c.quota().is_some(), "quota", "cpu.cfs_quota_us"),
            (c.period().is_some(), "period", "cpu.cfs_period_us"),
            (c.burst().is_some(), "burst", "cpu.cfs_burst_us"),
            (c.idle().is_some(), "idle", "cpu.idle"),
            (
                c.realtime_runtime().is_some(),
                "realtimeRuntime",
                "cpu.rt_runtime_us",
            ),
            (
                c.realtime_period().is_some(),
                "realtimePeriod",
                "cpu.rt_period_us",
            ),
        ] {
            if set {
                add(k(key), "cpu", &[file]);
            }
        }
        if c.cpus().is_some() {
            add(k("cpus"), "cpuset", &["cpuset.cpus"]);
        }
        if c.mems().is_some() {
            add(k("mems"), "cpuset", &["cpuset.mems"]);
        }
    }
    if r.pids().is_some() {
        add(format!("{R}.pids.limit"), "pids", &["pids.max"]);
    }
    if let Some(b) = r.block_io() {
        let (ctl, k) = (if v1 { "blkio" } else { "io" }, |f: &str| {
            format!("{R}.blockIO.{f}")
        });
        if b.weight().is_some_and(|w| w != 0) {
            add(k("weight"), ctl, &["blkio.weight", "blkio.bfq.weight"]);
        }
        if b.leaf_weight().is_some() {
            if unified {
                bail!(
                    "config.json: {}: cgroup v2 has no leaf weights",
                    k("leafWeight")
                );
            }
            add(k("leafWeight"), ctl, &["blkio.leaf_weight"]);
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            if d.weight().is_some() {
                let files = ["blkio.weight_device", "blkio.bfq.weight_device"];
                add(k(&format!("weightDevice[{i}].weight")), ctl, &files);
            }
            if d.leaf_weight().is_some() {
                if unified {
                    bail!(
                        "config.json: {}: cgroup v2 has no leaf weights",
                        k("weightDevice")
                    );
                }
                let key = k(&format!("weightDevice[{i}].leafWeight"));
                add(key, ctl, &["blkio.leaf_weight_device"]);
            }
        }
        for (key, list, file) in [
            (
                "throttleReadBpsDevice",
                b.throttle_read_bps_device(),
                "read_bps_device",
            ),
            (
                "throttleWriteBpsDevice",
                b.throttle_write_bps_device(),
                "write_bps_device",
            ),
            (
                "throttleReadIOPSDevice",
                b.throttle_read_iops_device(),
                "read_iops_device",
            ),
            (
                "throttleWriteIOPSDevice",
                b.throttle_write_iops_device(),
                "write_iops_device",
            ),
        ] {
            if list.as_ref().is_some_and(|l| !l.is_empty()) {
                add(k(key), ctl, &[&format!("blkio.throttle.{file}")]);
            }
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
        add(format!("{R}.hugepageLimits[{i}]"), "hugetlb", &[&file]);
    }
    if let Some(n) = r.network() {
        if unified && (n.class_id().is_some() || n.priorities().is_some()) {
            bail!("config.json: {R}.network: cgroup v2 has no net_cls or net_prio controller");
        }
        if n.class_id().is_some() {
            add(
                format!("{R}.network.classID"),
                "net_cls",
                &["net_cls.classid"],
            );
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            add(
                format!("{R}.network.priorities"),
                "net_prio",
                &["net_prio.ifpriomap"],
            );
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        add(format!("{R}.rdma"), "rdma", &["rdma.max"]);
    }
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) && v1 {
        bail!(
            "config.json: {R}.unified: invalid configuration: needs cgroup v2, and this \
             host's controllers are on cgroup v1 hierarchies"
        );
    }
    Ok(out)
}

/// Checks each need against the host: the controller must be there, and one of the files in
/// the cgroup's directory for it (`dir_of`; None skips the file check); `exists` probes a file.
pub fn check(
    needs: &[Need],
    host: &Host,
    dir_of: impl Fn(&str) -> Option<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Result<()> {
    for n in needs {
        if !host.roots.contains_key(n.controller) {
            let why = if host.unified {
                "not in /sys/fs/cgroup/cgroup.controllers"
            } else {
                "no cgroup v1 hierarchy mounts it"
            };
            bail!(
                "config.json: {}: this host has no {} cgroup controller ({why})",
                n.key,
                n.controller
            );
        }
        let Some(dir) = dir_of(n.controller) else {
            continue;
        };
        if !n.files.is_empty() && !n.files.iter().any(|f| exists(&dir.join(f))) {
            bail!(
                "config.json: {}: this host's {} controller has no {} (not in {})",
                n.key,
                n.controller,
                n.files.join(" or "),
                dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
30 25 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
31 25 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
";

    fn dir_of(host: &Host) -> impl Fn(&str) -> Option<PathBuf> + '_ {
        |c| host.dir(c, Path::new("/c1"))
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_hierarchies_from_mountinfo() {
        let h = Host::v1_from_mountinfo(MOUNTINFO);
        assert!(!h.unified);
        assert_eq!(h.roots["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(
            h.roots["net_prio"],
            PathBuf::from("/sys/fs/cgroup/net_cls,net_prio")
        );
        assert!(!h.roots.contains_key("name=systemd") && !h.roots.contains_key("systemd"));
        assert_eq!(h.hybrid, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        // Every cgroup mount, named ones and cgroup2 included, for the init's /sys/fs/cgroup.
        assert_eq!(h.mounts.len(), 7);
        assert!(h.mounts.iter().all(|m| m.fstype.starts_with("cgroup")));
        let legacy = Host::v1_from_mountinfo(&MOUNTINFO.replace("cgroup2 cgroup2", "tmpfs tmpfs"));
        assert_eq!(legacy.hybrid, None);
        assert_eq!(
            h.dir("memory", Path::new("/a/b")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/a/b"))
        );
        assert_eq!(h.dir("hugetlb", Path::new("/a")), None);
        let u = Host::unified_from("cpuset cpu io memory pids\n");
        assert!(u.unified && u.roots.contains_key("io") && !u.roots.contains_key("hugetlb"));
    }

    #[test]
    fn missing_controller_names_key_and_controller() {
        let host = Host::v1_from_mountinfo(MOUNTINFO);
        let r = res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#);
        let err = check(&needs(&r, false).unwrap(), &host, dir_of(&host), |_| true).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("linux.resources.hugepageLimits[0]"), "{err}");
        assert!(err.contains("no hugetlb cgroup controller"), "{err}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let host = Host::v1_from_mountinfo(MOUNTINFO);
        let r = res(r#"{"blockIO":{"weight":500,"leafWeight":300}}"#);
        let n = needs(&r, false).unwrap();
        // Neither weight file exists: the error names both.
        let err = check(&n, &host, dir_of(&host), |_| false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux.resources.blockIO.weight"), "{err}");
        assert!(err.contains("blkio.weight or blkio.bfq.weight"), "{err}");
        assert!(err.contains("(not in /sys/fs/cgroup/blkio/c1)"), "{err}");
        // With BFQ's weight only, the leaf weight is what is missing.
        let bfq = |p: &Path| p.ends_with("blkio.bfq.weight");
        let err = check(&n, &host, dir_of(&host), bfq)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("blockIO.leafWeight") && err.contains("blkio.leaf_weight"),
            "{err}"
        );
    }

    #[test]
    fn present_everything_passes() {
        let host = Host::v1_from_mountinfo(MOUNTINFO);
        let r = res(
            r#"{"memory":{"limit":1,"swap":2,"swappiness":10},"cpu":{"shares":2,"quota":3},
                "network":{"classID":1,"priorities":[{"name":"lo","priority":1}]}}"#,
        );
        check(&needs(&r, false).unwrap(), &host, dir_of(&host), |_| true).unwrap();
        // cpus/mems need cpuset, absent from this mountinfo.
        let r = res(r#"{"cpu":{"cpus":"0"}}"#);
        let err = check(&needs(&r, false).unwrap(), &host, dir_of(&host), |_| true).unwrap_err();
        assert!(
            err.to_string().contains("linux.resources.cpu.cpus"),
            "{err}"
        );
    }

    #[test]
    fn v1_and_v2_only_keys() {
        let r = res(r#"{"unified":{"memory.high":"1M"}}"#);
        let err = needs(&r, false).unwrap_err().to_string();
        assert!(
            err.contains("linux.resources.unified") && err.contains("cgroup v2"),
            "{err}"
        );
        assert!(needs(&r, true).unwrap().is_empty());
        let r = res(r#"{"network":{"classID":1}}"#);
        assert!(needs(&r, true).unwrap_err().to_string().contains("net_cls"));
        let r = res(r#"{"blockIO":{"leafWeight":10}}"#);
        assert!(needs(&r, true).is_err());
        // On v2 only controllers are checked, under their v2 names.
        let r = res(r#"{"blockIO":{"weight":10},"memory":{"limit":1}}"#);
        let n = needs(&r, true).unwrap();
        assert!(n.iter().all(|n| n.files.is_empty()));
        let host = Host::unified_from("memory");
        let err = check(&n, &host, dir_of(&host), |_| false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no io cgroup controller (not in"), "{err}");
    }
}
