//! Cgroups for a non-root user (rootless): the container's cgroup is used when the user may
//! make it (a delegated cgroup v2 subtree, or v1 hierarchy directories chowned to the user),
//! otherwise the container runs without one — as runc, unless `linux.resources` asks for
//! something only a cgroup could give, which is then an error naming the key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxResources;

use super::extra::Write;
use super::host::{Host, CGROUP_ROOT};

/// The directories the container's cgroup at `path` would have on this host.
pub fn dirs(host: &Host, path: &Path) -> Vec<PathBuf> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let mut dirs: Vec<PathBuf> = if host.unified {
        vec![Path::new(CGROUP_ROOT).join(rel)]
    } else {
        super::v1::CONTROLLERS
            .iter()
            .filter_map(|c| host.dir(c, path))
            .collect()
    };
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The first of `dirs` the user cannot make or use: the nearest existing directory (itself or
/// an ancestor) must be writable. None when all can be used.
pub fn unusable(
    dirs: &[PathBuf],
    exists: impl Fn(&Path) -> bool,
    writable: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    dirs.iter().find_map(|dir| {
        let nearest = dir.ancestors().find(|d| exists(d))?;
        (!writable(nearest)).then(|| nearest.to_path_buf())
    })
}

/// `linux.resources` keys that only a cgroup can apply (device rules are not among them: as
/// with runc, a user namespace cannot make device nodes anyway, and rootless ignores them).
pub fn needs_cgroup(r: &LinuxResources) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut key = |set: bool, name| {
        if set {
            keys.push(name)
        }
    };
    key(r.memory().is_some(), "memory");
    key(r.cpu().is_some(), "cpu");
    key(r.pids().is_some(), "pids");
    key(r.block_io().is_some(), "blockIO");
    key(
        r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        "hugepageLimits",
    );
    key(r.network().is_some(), "network");
    key(r.rdma().as_ref().is_some_and(|h| !h.is_empty()), "rdma");
    key(
        r.unified().as_ref().is_some_and(|u| !u.is_empty()),
        "unified",
    );
    keys
}

/// On cgroup v1 a non-root user's resources are written by hako: libcgroups' v1 manager
/// always writes device rules too, which take CAP_SYS_ADMIN. The keys a user's cgroup can hold,
/// in an order the kernel accepts (memsw after the limit, the period before the quota); any
/// other key is an error naming it.
pub fn v1_writes(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    let mut w = |key: &str, controller, file, value: String| {
        out.push(Write {
            key: format!("linux.resources.{key}"),
            controller,
            files: vec![file],
            value,
            only_if_different: false,
        })
    };
    if let Some(p) = r.pids() {
        let limit = p.limit();
        let value = if limit > 0 {
            limit.to_string()
        } else {
            "max".to_string()
        };
        w("pids.limit", "pids", "pids.max", value);
    }
    if let Some(m) = r.memory() {
        if let Some(v) = m.limit() {
            w(
                "memory.limit",
                "memory",
                "memory.limit_in_bytes",
                v.to_string(),
            );
        }
        if let Some(v) = m.reservation() {
            w(
                "memory.reservation",
                "memory",
                "memory.soft_limit_in_bytes",
                v.to_string(),
            );
        }
        if let Some(v) = m.swap() {
            w(
                "memory.swap",
                "memory",
                "memory.memsw.limit_in_bytes",
                v.to_string(),
            );
        }
        let other = m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some();
        if other {
            unsupported("memory")?;
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = c.shares() {
            w("cpu.shares", "cpu", "cpu.shares", v.to_string());
        }
        if let Some(v) = c.period() {
            w("cpu.period", "cpu", "cpu.cfs_period_us", v.to_string());
        }
        if let Some(v) = c.quota() {
            w("cpu.quota", "cpu", "cpu.cfs_quota_us", v.to_string());
        }
        if let Some(v) = c.cpus() {
            w("cpu.cpus", "cpuset", "cpuset.cpus", v.clone());
        }
        if let Some(v) = c.mems() {
            w("cpu.mems", "cpuset", "cpuset.mems", v.clone());
        }
        let other = c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.idle().is_some()
            || c.burst().is_some();
        if other {
            unsupported("cpu")?;
        }
    }
    for key in needs_cgroup(r) {
        if !["pids", "memory", "cpu"].contains(&key) {
            unsupported(key)?;
        }
    }
    Ok(out)
}

fn unsupported(key: &str) -> Result<()> {
    bail!(
        "config.json: linux.resources.{key}: not supported rootless on cgroup v1 (a user's \
         cgroup takes pids.limit, memory limit/reservation/swap and cpu \
         shares/period/quota/cpus/mems)"
    )
}

/// Whether a non-root user's container gets its cgroup at `path`; says which on one warning
/// line. An error when resources are asked for and no cgroup can hold them.
pub fn decide(host: &Host, path: &Path, r: &LinuxResources) -> Result<bool> {
    let uid = match nix::unistd::geteuid() {
        // Rootless podman runs hako as root of its user namespace.
        u if u.is_root() => "0 in a user namespace".to_string(),
        u => u.to_string(),
    };
    let writable = |d: &Path| nix::unistd::access(d, nix::unistd::AccessFlags::W_OK).is_ok();
    match unusable(&dirs(host, path), Path::exists, writable) {
        None => {
            tracing::warn!(
                "rootless (uid {uid}): cgroup {} is writable by this user: using it",
                path.display()
            );
            Ok(true)
        }
        Some(dir) => {
            if let Some(key) = needs_cgroup(r).first() {
                bail!(
                    "config.json: linux.resources.{key}: needs a cgroup, and uid {uid} \
                     (rootless) cannot write {} (delegate a cgroup to the user, or remove \
                     linux.resources.{key})",
                    dir.display()
                );
            }
            tracing::warn!(
                "rootless (uid {uid}): no writable cgroup ({} is not writable): running \
                 without one",
                dir.display()
            );
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn v1() -> Host {
        let mut roots = BTreeMap::new();
        roots.insert("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory"));
        roots.insert(
            "cpu".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
        );
        roots.insert(
            "cpuacct".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
        );
        roots.insert("rdma".to_string(), PathBuf::from("/sys/fs/cgroup/rdma"));
        Host {
            unified: false,
            roots,
            hybrid: None,
            mounts: Vec::new(),
        }
    }

    #[test]
    fn every_v1_hierarchy_the_manager_uses_once() {
        let d = dirs(&v1(), Path::new("/u/c1"));
        assert_eq!(
            d,
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/u/c1"),
                PathBuf::from("/sys/fs/cgroup/memory/u/c1"),
            ]
        );
        let v2 = Host::unified_from("memory pids");
        assert_eq!(
            dirs(&v2, Path::new("/u/c1")),
            vec![PathBuf::from("/sys/fs/cgroup/u/c1")]
        );
    }

    #[test]
    fn the_nearest_existing_directory_must_be_writable() {
        let d = dirs(&v1(), Path::new("/u/c1"));
        let exists = |p: &Path| p.ends_with("u") || !p.to_string_lossy().contains("/u");
        // /u is the user's in both hierarchies.
        assert_eq!(unusable(&d, exists, |p| p.ends_with("u")), None);
        // /u is the user's in memory only.
        let only_memory = |p: &Path| p == Path::new("/sys/fs/cgroup/memory/u");
        assert_eq!(
            unusable(&d, exists, only_memory),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/u"))
        );
    }

    #[test]
    fn v1_keys_a_user_can_write_in_order() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"pids":{"limit":0},"memory":{"limit":1000,"swap":2000},
                "cpu":{"quota":5000,"period":10000}}"#,
        )
        .unwrap();
        let w: Vec<(String, String)> = v1_writes(&r)
            .unwrap()
            .into_iter()
            .map(|w| (w.files[0].to_string(), w.value))
            .collect();
        let want = [
            ("pids.max", "max"),
            ("memory.limit_in_bytes", "1000"),
            ("memory.memsw.limit_in_bytes", "2000"),
            ("cpu.cfs_period_us", "10000"),
            ("cpu.cfs_quota_us", "5000"),
        ];
        assert_eq!(w, want.map(|(f, v)| (f.to_string(), v.to_string())));
        let r: LinuxResources = serde_json::from_str(r#"{"blockIO":{"weight":100}}"#).unwrap();
        let err = v1_writes(&r).unwrap_err().to_string();
        assert!(err.starts_with("config.json: linux.resources.blockIO: not supported rootless"));
    }

    #[test]
    fn resources_that_need_a_cgroup() {
        let r: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(needs_cgroup(&r).is_empty());
        let r: LinuxResources =
            serde_json::from_str(r#"{"pids":{"limit":10},"memory":{"limit":1000000}}"#).unwrap();
        assert_eq!(needs_cgroup(&r), vec!["memory", "pids"]);
    }
}
