//! Adapter over libcgroups: libcgroups picks the manager for this host (v1 for legacy and
//! hybrid, v2 for unified, systemd with `--systemd-cgroup`); hako resolves `linux.cgroupsPath`
//! like runc, checks `linux.resources` against what the host offers, plans the device rules,
//! writes the keys libcgroups skips, and turns errors into one line naming the key.

pub mod devices;
pub mod extra;
pub mod host;
pub mod oom;
pub mod stats;
pub mod update;

use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use host::Host;

/// The cgroup of a container. With the systemd driver, `linux.cgroupsPath` in runc's
/// `slice:prefix:name` form (default `:hako:<id>`, the slice left to libcgroups). Otherwise a
/// path: absolute from the hierarchy's root, or relative to where hako itself runs (default
/// `<id>`), like runc.
pub fn resolve_path(spec: &Spec, id: &str, systemd: bool) -> Result<PathBuf> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .filter(|p| !p.as_os_str().is_empty());
    if systemd {
        let path = configured.unwrap_or_else(|| PathBuf::from(format!(":hako:{id}")));
        check_systemd_path(&path)?;
        return Ok(path);
    }
    let path = configured.unwrap_or_else(|| PathBuf::from(id));
    if path.is_absolute() {
        return Ok(clean(&path));
    }
    let text = std::fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?;
    let unified = Path::new(host::CGROUP_ROOT)
        .join("cgroup.controllers")
        .exists();
    Ok(join_relative(&parse_own_cgroup(&text), &path, unified))
}

/// `slice:prefix:name`, the slice empty or a `.slice` unit.
fn check_systemd_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let parts: Vec<&str> = text.split(':').collect();
    let ok = parts.len() == 3
        && !parts[2].is_empty()
        && (parts[0].is_empty() || parts[0].ends_with(".slice"))
        && !text.contains('/');
    if !ok {
        bail!(
            "config.json: linux.cgroupsPath: {text:?}: the systemd cgroup driver wants \
             slice:prefix:name (e.g. system.slice:hako:c1)"
        );
    }
    Ok(())
}

/// A relative path's place: under hako's own cgroup on v1 (as runc's fs driver), under its
/// parent on v2 (hako's own cgroup has processes, so it cannot have controller-enabled
/// children: runc's fs2 driver does the same).
pub fn join_relative(own: &Path, rel: &Path, unified: bool) -> PathBuf {
    let base = if unified {
        own.parent().unwrap_or(Path::new("/"))
    } else {
        own
    };
    clean(&base.join(rel))
}

/// `..` and `.` resolved lexically, never above `/` (runc's CleanPath).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// hako's own cgroup: its memory hierarchy on v1 (one path serves every controller, as
/// libcgroups' v1 manager takes one), the unified one otherwise.
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
    pub host: Host,
    systemd: bool,
}

fn flat<E: std::fmt::Display>(what: &str, path: &Path) -> impl FnOnce(E) -> anyhow::Error {
    let (what, path) = (what.to_string(), path.display().to_string());
    move |e| anyhow!("{what}: cgroup {path}: {e}")
}

/// Resources holding only what `set` puts in.
fn only(set: impl FnOnce(&mut LinuxResources) -> &mut LinuxResources) -> LinuxResources {
    let mut part = LinuxResources::default();
    set(&mut part);
    part
}

impl Cgroup {
    pub fn open(path: &Path, systemd: bool, id: &str) -> Result<Cgroup> {
        let host = Host::detect()?;
        if systemd {
            if !host.unified {
                bail!(
                    "--systemd-cgroup: hako's systemd driver needs cgroup v2, and this host's \
                     controllers are on cgroup v1 hierarchies"
                );
            }
            if !Path::new("/run/systemd/system").exists() {
                bail!("--systemd-cgroup: systemd is not running on this host");
            }
        }
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: path.to_path_buf(),
            systemd_cgroup: systemd,
            container_name: id.to_string(),
        })
        .map_err(flat("open", path))?;
        Ok(Cgroup {
            manager,
            path: path.to_path_buf(),
            host,
            systemd,
        })
    }

    /// The directory of `controller` for this cgroup (None with the systemd driver, whose
    /// directory systemd chooses).
    fn dir(&self, controller: &str) -> Option<PathBuf> {
        if self.systemd {
            return None;
        }
        if self.host.unified {
            // One directory for every controller.
            let rel = self.path.strip_prefix("/").unwrap_or(&self.path);
            return Some(Path::new(host::CGROUP_ROOT).join(rel));
        }
        self.host.dir(controller, &self.path)
    }

    /// A cgroup another container (or anything else) still uses is not ours to take: runc 1.2
    /// refuses a non-empty one, and a frozen one would freeze the container from its start.
    pub fn ensure_unused(&self) -> Result<()> {
        // Checked first: on v1 the cgroup may exist in the freezer hierarchy alone.
        if self.is_frozen() {
            bail!(
                "cgroup {}: is frozen (the container's cgroup unexpectedly frozen): \
                 thaw it or choose another linux.cgroupsPath",
                self.path.display()
            );
        }
        let exists = self.dir("devices").is_some_and(|d| d.exists());
        if !exists {
            return Ok(());
        }
        let pids = self.pids().unwrap_or_default();
        if !pids.is_empty() {
            bail!(
                "cgroup {}: already has {} process(es) in it (another container's?): \
                 choose another linux.cgroupsPath",
                self.path.display(),
                pids.len()
            );
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> bool {
        let (file, frozen) = if self.host.unified {
            ("cgroup.freeze", "1")
        } else {
            ("freezer.state", "FROZEN")
        };
        self.dir("freezer")
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .is_some_and(|s| s.trim() == frozen)
    }

    pub fn add_task(&self, pid: i32) -> Result<()> {
        self.manager
            .add_task(Pid::from_raw(pid))
            .map_err(flat("add the container's process", &self.path))
    }

    /// Applies a container's `linux.resources` at create: checked against the host, the device
    /// rules first, then key by key so an error names its key.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let needs = host::needs(r, self.host.unified)?;
        host::check(&needs, &self.host, |c| self.dir(c), Path::exists)?;
        let rules = devices::plan(r.devices().as_deref().unwrap_or_default())?;
        if self.host.unified {
            // libcgroups enforces v2 device rules with eBPF only in its cgroupsv2_devices
            // build, which hako does not use.
            tracing::warn!("linux.resources.devices: not enforced on this cgroup v2 host");
        }
        let devs = only(|p| p.set_devices(Some(devices::as_spec(&rules))));
        self.apply_part("linux.resources.devices", &devs)?;
        self.apply_live(r)?;
        self.apply_parts([
            (
                "hugepageLimits",
                only(|p| p.set_hugepage_limits(r.hugepage_limits().clone())),
            ),
            ("network", only(|p| p.set_network(r.network().clone()))),
        ])?;
        self.apply_extra(r)
    }

    /// Applies the keys `hako update` changes on a live container (not the device rules).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let needs = host::needs(r, self.host.unified)?;
        host::check(&needs, &self.host, |c| self.dir(c), Path::exists)?;
        self.apply_live(&update::live_subset(r))
    }

    fn apply_live(&self, r: &LinuxResources) -> Result<()> {
        self.apply_parts([
            ("memory", only(|p| p.set_memory(*r.memory()))),
            ("cpu", only(|p| p.set_cpu(r.cpu().clone()))),
            ("pids", only(|p| p.set_pids(*r.pids()))),
            ("blockIO", only(|p| p.set_block_io(r.block_io().clone()))),
            ("unified", only(|p| p.set_unified(r.unified().clone()))),
        ])?;
        self.check_kernel_memory(r);
        Ok(())
    }

    /// Applies each non-empty part on its own, so that an error names its key.
    fn apply_parts<const N: usize>(&self, parts: [(&str, LinuxResources); N]) -> Result<()> {
        for (key, part) in parts {
            if part != LinuxResources::default() {
                self.apply_part(&format!("linux.resources.{key}"), &part)?;
            }
        }
        Ok(())
    }

    fn apply_part(&self, key: &str, part: &LinuxResources) -> Result<()> {
        let disable_oom_killer = part
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false);
        let opt = ControllerOpt {
            resources: part,
            disable_oom_killer,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager
            .apply(&opt)
            .map_err(flat(&format!("config.json: {key}"), &self.path))
    }

    fn apply_extra(&self, r: &LinuxResources) -> Result<()> {
        let writes = extra::plan(r, self.host.unified);
        if writes.is_empty() {
            return Ok(());
        }
        if self.systemd {
            bail!(
                "config.json: {}: not supported with --systemd-cgroup",
                writes[0].key
            );
        }
        extra::apply(&writes, |controller| self.dir(controller))
    }

    /// memory.kernel: deprecated, and since Linux 5.16 a write to memory.kmem.limit_in_bytes
    /// is accepted and ignored. runtime-spec lets runtimes ignore it: say so, go on.
    fn check_kernel_memory(&self, r: &LinuxResources) {
        let Some(kernel) = r.memory().as_ref().and_then(|m| m.kernel()) else {
            return;
        };
        let file = self
            .dir("memory")
            .map(|d| d.join("memory.kmem.limit_in_bytes"));
        let read = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok());
        let ignored = match &read {
            Some(text) => extra::kernel_memory_ignored(kernel, text),
            None => true,
        };
        if ignored {
            tracing::warn!(
                "config.json: linux.resources.memory.kernel: ignored: this kernel does not \
                 limit kernel memory (memory.kmem.limit_in_bytes)"
            );
        }
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

    pub fn stats(&self) -> Result<stats::RuncStats> {
        let s = self
            .manager
            .stats()
            .map_err(flat("statistics", &self.path))?;
        Ok(stats::from_libcgroups(&s, self.host.unified))
    }

    /// A watch for OOM kills in this cgroup.
    pub fn oom_watch(&self) -> Result<oom::OomWatch> {
        let dir = self
            .dir("memory")
            .ok_or_else(|| anyhow!("cgroup {}: no memory controller", self.path.display()))?;
        oom::OomWatch::new(&dir, self.host.unified)
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
    fn relative_paths_like_runc() {
        let own = Path::new("/user.slice/session-1.scope");
        let rel = Path::new("testdir/c");
        assert_eq!(
            join_relative(own, rel, false),
            PathBuf::from("/user.slice/session-1.scope/testdir/c")
        );
        assert_eq!(
            join_relative(own, rel, true),
            PathBuf::from("/user.slice/testdir/c")
        );
        assert_eq!(
            join_relative(Path::new("/"), Path::new("../../x/./y"), true),
            PathBuf::from("/x/y")
        );
        assert_eq!(clean(Path::new("/a/../../b/")), PathBuf::from("/b"));
    }

    #[test]
    fn absolute_path_kept_systemd_default() {
        let text = r#"{"ociVersion":"1.0.2","linux":{"cgroupsPath":"/abs/../x"}}"#;
        let spec = crate::bundle::parse_config(text, "config.json").unwrap();
        assert_eq!(
            resolve_path(&spec, "id", false).unwrap(),
            PathBuf::from("/x")
        );
        let spec = Spec::default();
        assert_eq!(
            resolve_path(&spec, "c1", true).unwrap(),
            PathBuf::from(":hako:c1")
        );
        assert!(resolve_path(&spec, "c1", false).unwrap().ends_with("c1"));
    }

    #[test]
    fn systemd_path_form() {
        for ok in ["system.slice:hako:c1", ":docker:abc", "machine.slice:p:n"] {
            check_systemd_path(Path::new(ok)).unwrap();
        }
        for bad in [
            "/abs/path",
            "a:b",
            "system:hako:c1",
            "x.slice:p:",
            "a.slice:p:n:m",
        ] {
            let err = check_systemd_path(Path::new(bad)).unwrap_err().to_string();
            assert!(err.contains("linux.cgroupsPath") && err.contains("slice:prefix:name"));
        }
    }
}
