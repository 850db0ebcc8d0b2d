//! Adapter over libcgroups: picks the manager for this host (v1, hybrid, unified, systemd),
//! resolves `linux.cgroupsPath` like runc, and turns libcgroups' errors into one-line messages.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

/// The cgroup path for a container: `linux.cgroupsPath` when absolute (or, with the systemd
/// driver, in `slice:prefix:name` form), else relative to hako's own cgroup (`<id>` by default).
pub fn resolve_path(spec: &Spec, id: &str, systemd: bool) -> Result<PathBuf> {
    let configured = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    if systemd {
        return Ok(configured.unwrap_or_else(|| PathBuf::from(format!("system.slice:hako:{id}"))));
    }
    let path = configured.unwrap_or_else(|| PathBuf::from(id));
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(own_cgroup()?.join(path))
}

/// hako's own cgroup (from /proc/self/cgroup; the memory hierarchy on v1, the unified one on v2).
fn own_cgroup() -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?;
    Ok(parse_own_cgroup(&text))
}

pub fn parse_own_cgroup(text: &str) -> PathBuf {
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        if controllers.split(',').any(|c| c == "memory") {
            return PathBuf::from(path);
        }
        if controllers.is_empty() {
            unified = Some(PathBuf::from(path));
        }
    }
    unified.unwrap_or_else(|| PathBuf::from("/"))
}

pub struct Cgroup {
    manager: AnyCgroupManager,
    pub path: PathBuf,
}

fn flat<'a, E: std::fmt::Display>(
    what: &str,
    path: &'a Path,
) -> impl FnOnce(E) -> anyhow::Error + 'a {
    let what = what.to_string();
    move |e| anyhow!("cgroup {}: {what}: {e}", path.display())
}

impl Cgroup {
    pub fn open(path: &Path, systemd: bool, id: &str) -> Result<Cgroup> {
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: path.to_path_buf(),
            systemd_cgroup: systemd,
            container_name: id.to_string(),
        })
        .map_err(flat("open", path))?;
        Ok(Cgroup {
            manager,
            path: path.to_path_buf(),
        })
    }

    pub fn add_task(&self, pid: i32) -> Result<()> {
        self.manager
            .add_task(Pid::from_raw(pid))
            .map_err(flat("add the container's process", &self.path))
    }

    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        let disable_oom_killer = resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false);
        let opt = ControllerOpt {
            resources,
            disable_oom_killer,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager
            .apply(&opt)
            .map_err(flat("config.json: linux.resources", &self.path))
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager
            .freeze(state)
            .map_err(flat("freezer", &self.path))
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(self
            .manager
            .get_all_pids()
            .map_err(flat("list processes", &self.path))?
            .into_iter()
            .map(|p| p.as_raw())
            .collect())
    }

    pub fn remove(&self) -> Result<()> {
        self.manager.remove().map_err(flat("remove", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_prefers_memory_hierarchy() {
        let v1 = "12:pids:/a\n5:memory:/user/x\n0::/init.scope\n";
        assert_eq!(parse_own_cgroup(v1), PathBuf::from("/user/x"));
        assert_eq!(
            parse_own_cgroup("0::/sys.slice/y\n"),
            PathBuf::from("/sys.slice/y")
        );
    }

    #[test]
    fn absolute_path_kept_systemd_default() {
        let text = r#"{"ociVersion":"1.0.2","linux":{"cgroupsPath":"/abs/x"}}"#;
        let spec = crate::bundle::parse_config(text, "config.json").unwrap();
        assert_eq!(
            resolve_path(&spec, "id", false).unwrap(),
            PathBuf::from("/abs/x")
        );
        let spec = Spec::default();
        assert_eq!(
            resolve_path(&spec, "c1", true).unwrap(),
            PathBuf::from("system.slice:hako:c1")
        );
        assert!(resolve_path(&spec, "c1", false).unwrap().ends_with("c1"));
    }
}
