//! Adapter over libcgroups: libcgroups picks the manager for this host (v1 for legacy and
//! hybrid, v2 for unified, systemd with `--systemd-cgroup`); hako resolves `linux.cgroupsPath`
//! like runc, checks `linux.resources` against what the host offers, plans the device rules,
//! writes the keys libcgroups skips, and turns errors into one line naming the key.

pub mod device_bpf;
pub mod devices;
pub mod extra;
pub mod host;
mod hybrid;
pub mod join;
pub mod oom;
pub mod rootless;
pub mod stats;
pub mod update;
pub mod v1;
pub mod v2;

use std::cell::OnceCell;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::linux::mountinfo::read_small;
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
    let text = read_small(Path::new("/proc/self/cgroup")).context("/proc/self/cgroup")?;
    // As if v1 where the layout is unknown: Cgroup::open then says what is wrong.
    let unified = Host::detect().is_ok_and(|h| h.unified);
    Ok(join_relative(&parse_own_cgroup(&text), &path, unified))
}

/// Where systemd puts the unit of a `slice:prefix:name` path, relative to the cgroup root: the
/// slice expanded as systemd does (`a-b.slice` → `a.slice/a-b.slice`; empty: system.slice),
/// then `prefix-name.scope` (or the name itself when it is a slice), as libcgroups names it;
/// systemd's own cgroup is taken to be the root (systemd is the host's PID 1).
pub fn systemd_dir(path: &Path) -> Option<PathBuf> {
    let text = path.to_string_lossy();
    let mut parts = text.splitn(3, ':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    let expand = |slice: &str| -> PathBuf {
        let mut out = PathBuf::new();
        let stem = slice.trim_end_matches(".slice");
        if stem == "-" {
            return out;
        }
        let mut so_far = String::new();
        for part in stem.split('-') {
            so_far = if so_far.is_empty() {
                part.to_string()
            } else {
                format!("{so_far}-{part}")
            };
            out.push(format!("{so_far}.slice"));
        }
        out
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else {
        format!("{prefix}-{name}.scope")
    };
    Some(expand(slice).join(unit))
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
/// children: runc's fs2 driver does the same). The relative path is cleaned on its own first,
/// as if rooted, so its `..` cannot climb above that base (runc's CleanPath).
pub fn join_relative(own: &Path, rel: &Path, unified: bool) -> PathBuf {
    let base = if unified {
        own.parent().unwrap_or(Path::new("/"))
    } else {
        own
    };
    let rel = clean(rel);
    clean(&base.join(rel.strip_prefix("/").unwrap_or(&rel)))
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

/// The cgroups below `dir`, deepest first (a cgroup directory's only subdirectories are
/// cgroups; cgroupfs has no symlinks).
/// Whether `dir` is gone after one rmdir (removed now, or already).
fn try_rmdir(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn remove_children(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.with_context(|| format!("{}", dir.display()))?,
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_children(&e.path())?;
            std::fs::remove_dir(e.path())
                .with_context(|| format!("remove {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// hako's own cgroup: its memory hierarchy on v1 (one path serves every controller, as
/// libcgroups' v1 manager takes one), the unified one otherwise.
pub fn parse_own_cgroup(text: &str) -> PathBuf {
    let lines = crate::linux::mountinfo::parse_cgroups(text);
    let memory = lines
        .iter()
        .find(|l| l.controllers.iter().any(|c| c == "memory"));
    let unified = lines.iter().find(|l| l.controllers.is_empty());
    memory
        .or(unified)
        .map_or_else(|| PathBuf::from("/"), |l| l.path.clone())
}

/// How the init joins its cgroup (`Cgroup::prepare_join`); where neither applies (systemd, or
/// clone3 refused) the parent moves it (`add_task`).
#[derive(Default)]
pub struct Join {
    /// v1 `tasks` files the init writes "0" to.
    pub tasks: Vec<OwnedFd>,
    /// The cgroup2 directory to clone the init into: the container's on v2, its directory in
    /// the controller-less cgroup2 hierarchy on a hybrid host (hybrid.rs).
    pub clone_into: Option<OwnedFd>,
    /// The host's cgroup mounts as the parent read them (v1 and hybrid), so that the init
    /// need not read mountinfo again for its /sys/fs/cgroup.
    pub mounts: Vec<crate::linux::mountinfo::Mount>,
}

pub struct Cgroup {
    /// libcgroups' manager, built on first use on the v1 fast path (see v1.rs: building it is
    /// most of what a create or delete would spend on cgroups).
    manager: OnceCell<AnyCgroupManager>,
    pub path: PathBuf,
    pub host: Host,
    systemd: bool,
    /// Run rootless: device rules are not applied (runc's rootless rule: they need
    /// CAP_SYS_ADMIN on the host, and a user namespace cannot make device nodes anyway).
    rootless: bool,
    id: String,
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
        if systemd && crate::linux::userns::rootless() && !Path::new("/run/systemd/system").exists()
        {
            bail!(
                "--systemd-cgroup: as non-root (uid {}) hako would use the user's systemd \
                 instance (user slice), and systemd is not running on this host",
                nix::unistd::geteuid()
            );
        }
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
        let cg = Cgroup {
            manager: OnceCell::new(),
            path: path.to_path_buf(),
            host,
            systemd,
            rootless: crate::linux::userns::rootless(),
            id: id.to_string(),
        };
        if !cg.v1_fast() {
            cg.manager()?;
        }
        Ok(cg)
    }

    /// The cgroup of a container's record; None when it runs without one (rootless, no
    /// writable cgroup: `create` recorded an empty path).
    pub fn of(r: &crate::container::Record) -> Result<Option<Cgroup>> {
        if r.cgroup_path.as_os_str().is_empty() {
            return Ok(None);
        }
        Cgroup::open(&r.cgroup_path, r.systemd_cgroup, &r.id).map(Some)
    }

    /// The container's cgroup, for a command that cannot do without one.
    pub fn required(r: &crate::container::Record, command: &str) -> Result<Cgroup> {
        Cgroup::of(r)?.ok_or_else(|| {
            anyhow!(
                "container {:?} has no cgroup (created rootless without a writable cgroup): \
                 {command} needs one",
                r.id
            )
        })
    }

    /// v1 hierarchies with the cgroupfs driver: hako makes, joins and removes the cgroup itself.
    fn v1_fast(&self) -> bool {
        !self.host.unified && !self.systemd
    }

    fn manager(&self) -> Result<&AnyCgroupManager> {
        if let Some(m) = self.manager.get() {
            return Ok(m);
        }
        let m = create_cgroup_manager(CgroupConfig {
            cgroup_path: self.path.clone(),
            systemd_cgroup: self.systemd,
            container_name: self.id.clone(),
        })
        .map_err(flat("open", &self.path))?;
        Ok(self.manager.get_or_init(|| m))
    }

    /// Before clone: how the init gets into its cgroup without being moved by the parent. On
    /// v1 (cgroupfs) the directories are made and their `tasks` files opened: the init writes
    /// itself in (v1.rs); on v2 (cgroupfs) the directory is made and opened for
    /// CLONE_INTO_CGROUP (v2.rs; where that fails, the parent moves the init as before).
    /// On a hybrid host the init is also cloned into its cgroup2 directory. With systemd:
    /// nothing, and `add_task` after clone.
    pub fn prepare_join(&self) -> Result<Join> {
        if self.v1_fast() {
            let clone_into = match self.hybrid_unified_dir() {
                Some(dir) => Some(hybrid::make(&dir)?),
                None => None,
            };
            let tasks = v1::make(&self.host, &self.path)?;
            let mounts = self.host.mounts.clone();
            return Ok(Join {
                tasks,
                clone_into,
                mounts,
            });
        }
        if self.host.unified && !self.systemd {
            let root = Path::new(host::CGROUP_ROOT);
            match v2::make(root, &self.path) {
                Ok(fd) => {
                    return Ok(Join {
                        clone_into: Some(fd),
                        ..Join::default()
                    })
                }
                Err(e) => tracing::debug!("CLONE_INTO_CGROUP not prepared: {e:#}"),
            }
        }
        Ok(Join::default())
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
        // delete removes the cgroups below the container's (those it made): none may be there
        // before it, as another container's or service's. Listing each directory also tells
        // whether the cgroup exists at all: where it exists nowhere (the usual create), it
        // is neither frozen nor in use, and nothing else need be read.
        let dirs = self.own_dirs();
        let (mut found, mut child) = (false, None);
        for d in &dirs {
            match std::fs::read_dir(d) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => found = true,
                Ok(entries) => {
                    found = true;
                    child = child.or_else(|| {
                        entries
                            .flatten()
                            .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    });
                }
            }
        }
        if !dirs.is_empty() && !found {
            return Ok(());
        }
        // Checked first: on v1 the cgroup may exist in the freezer hierarchy alone.
        if self.is_frozen() {
            bail!(
                "cgroup {}: is frozen (the container's cgroup unexpectedly frozen): \
                 thaw it or choose another linux.cgroupsPath",
                self.path.display()
            );
        }
        let in_use = |n: usize| {
            anyhow!(
                "cgroup {}: already has {n} process(es) in it (another container's?): \
                 choose another linux.cgroupsPath",
                self.path.display(),
            )
        };
        // A hybrid host's cgroup2 directory may be in use alone (a service's, on a host whose
        // systemd tracks processes there): delete would remove it once emptied.
        if let Some(dir) = self.hybrid_unified_dir() {
            let procs = read_small(&dir.join("cgroup.procs")).unwrap_or_default();
            match procs.lines().count() {
                0 => {}
                n => return Err(in_use(n)),
            }
        }
        if let Some(child) = child {
            bail!(
                "cgroup {}: has a cgroup below it ({}): choose another linux.cgroupsPath",
                self.path.display(),
                child.path().display()
            );
        }
        let exists = self.dir("devices").is_some_and(|d| d.exists());
        if !exists {
            return Ok(());
        }
        match self.pids().unwrap_or_default().len() {
            0 => Ok(()),
            n => Err(in_use(n)),
        }
    }

    /// Whether the cgroup's directory is there (always true with the systemd driver).
    pub fn exists(&self) -> bool {
        self.systemd
            || ["freezer", "pids", "memory", "devices"]
                .iter()
                .any(|c| self.dir(c).is_some_and(|d| d.exists()))
    }

    pub fn is_frozen(&self) -> bool {
        let (file, frozen) = if self.host.unified {
            ("cgroup.freeze", "1")
        } else {
            ("freezer.state", "FROZEN")
        };
        self.dir("freezer")
            .and_then(|d| read_small(&d.join(file)).ok())
            .is_some_and(|s| s.trim() == frozen)
    }

    /// The parent's part of the join when the init was not cloned into its cgroup: on v1 the
    /// init writes itself into the controllers' hierarchies, and the hybrid cgroup2 one is left.
    pub fn add_task(&self, pid: i32) -> Result<()> {
        if !self.v1_fast() {
            self.manager()?
                .add_task(Pid::from_raw(pid))
                .map_err(flat("add the container's process", &self.path))?;
        }
        match self.hybrid_unified_dir() {
            Some(dir) => hybrid::add(&dir, pid),
            None => Ok(()),
        }
    }

    /// The container's directories with the cgroupfs driver: one per v1 hierarchy and the
    /// hybrid cgroup2 one, or the one of cgroup v2. None with systemd, which makes and removes
    /// the scope's.
    fn own_dirs(&self) -> std::collections::BTreeSet<PathBuf> {
        if self.systemd {
            return Default::default();
        }
        if self.host.unified {
            return self.dir("pids").into_iter().collect();
        }
        (self.host.roots.keys())
            .filter_map(|c| self.dir(c))
            .chain(self.hybrid_unified_dir())
            .collect()
    }

    /// The container's cgroup2 directory on a hybrid host (hybrid.rs). Not rootless: that
    /// hierarchy is the host's process tracking, never delegated to a user.
    fn hybrid_unified_dir(&self) -> Option<PathBuf> {
        (!self.host.unified && !self.systemd && !crate::linux::userns::rootless())
            .then(|| hybrid::unified_dir(&self.host, &self.path))
            .flatten()
    }

    /// The device rules, the first part of applying a container's `linux.resources` at create:
    /// before the init may make its device nodes, since v1 rules begin with "deny all" and a
    /// mknod at that moment fails. None when rootless (its devices are bound from the host).
    pub fn apply_device_rules(&self, r: &LinuxResources) -> Result<()> {
        if self.rootless {
            return Ok(());
        }
        self.apply_devices(r)
    }

    /// The rest of `linux.resources` (after `apply_device_rules`): the limits, written while the
    /// init makes its mounts, checked against the host, then key by key so an error names its
    /// key.
    pub fn apply_limits(&self, r: &LinuxResources) -> Result<()> {
        let needs = host::needs(r, self.host.unified)?;
        host::check(&needs, &self.host, |c| self.dir(c), Path::exists)?;
        if self.rootless && !self.host.unified {
            return self.apply_rootless_v1(r);
        }
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

    /// Applies the keys `hako update` changes on a live container. On v2 the device program is
    /// replaced too (as runc does; the swap has no moment without rules); on v1 the device
    /// rules stay as they are, since rewriting them would deny every device for a moment.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let needs = host::needs(r, self.host.unified)?;
        host::check(&needs, &self.host, |c| self.dir(c), Path::exists)?;
        if self.rootless && !self.host.unified {
            return self.apply_rootless_v1(&update::live_subset(r));
        }
        if self.host.unified && !self.rootless {
            self.apply_devices(r)?;
        }
        self.apply_live(&update::live_subset(r))
    }

    fn apply_rootless_v1(&self, r: &LinuxResources) -> Result<()> {
        extra::apply(&rootless::v1_writes(r)?, |c| self.dir(c))
    }

    /// The device rules: v1 in devices.allow/deny (v1.rs), v2 as a BPF program —
    /// with the systemd driver too, on the scope's directory (libcgroups sets no DeviceAllow, so
    /// systemd would leave every device open).
    fn apply_devices(&self, r: &LinuxResources) -> Result<()> {
        let rules = devices::plan(r.devices().as_deref().unwrap_or_default())?;
        let dir = if self.systemd {
            systemd_dir(&self.path).map(|rel| Path::new(host::CGROUP_ROOT).join(rel))
        } else {
            self.dir("devices")
        };
        match dir {
            Some(dir) if self.host.unified => device_bpf::apply(&dir, &rules),
            Some(dir) if self.v1_fast() => v1::apply_devices(&dir, &rules),
            // Unreachable: systemd on v1 is refused at open, and a systemd path always names
            // its scope's directory.
            _ => bail!(
                "config.json: linux.resources.devices: cgroup {}: no device cgroup to apply them to",
                self.path.display()
            ),
        }
    }

    fn apply_live(&self, r: &LinuxResources) -> Result<()> {
        // libcgroups 0.7 converts a v2 blockIO.weight in u16 arithmetic, which overflows for
        // weights above 16: hako writes that one itself.
        let mut block_io = r.block_io().clone();
        let v2_weight = match block_io.as_mut() {
            Some(b) if self.host.unified && !self.systemd => b.weight().inspect(|_| {
                b.set_weight(None);
            }),
            _ => None,
        };
        // On v1 hako writes the CFS period and quota itself, in runc's order.
        let mut cpu = r.cpu().clone();
        let v1_cfs = match cpu.as_mut() {
            Some(c) if !self.host.unified && !self.systemd => {
                let cfs = (c.period(), c.quota());
                c.set_period(None);
                c.set_quota(None);
                Some(cfs).filter(|cfs| *cfs != (None, None))
            }
            _ => None,
        };
        self.apply_parts([
            ("memory", only(|p| p.set_memory(*r.memory()))),
            ("cpu", only(|p| p.set_cpu(cpu))),
            ("pids", only(|p| p.set_pids(*r.pids()))),
            ("blockIO", only(|p| p.set_block_io(block_io))),
            ("unified", only(|p| p.set_unified(r.unified().clone()))),
        ])?;
        if let Some((period, quota)) = v1_cfs {
            let dir = self
                .dir("cpu")
                .ok_or_else(|| anyhow!("config.json: linux.resources.cpu: no cpu controller"))?;
            extra::write_v1_cfs(&dir, period, quota)?;
        }
        if let Some(w) = v2_weight {
            self.apply_io_weight(w)?;
        }
        self.check_kernel_memory(r);
        Ok(())
    }

    /// blockIO.weight on v2, as runc writes it: as it is to io.bfq.weight where the BFQ
    /// scheduler offers it, else scaled to io.weight's range.
    fn apply_io_weight(&self, weight: u16) -> Result<()> {
        let dir = self.dir("io").unwrap_or_default();
        let bfq = dir.join("io.bfq.weight");
        let (file, value) = if bfq.exists() {
            (bfq, weight.to_string())
        } else {
            let io = extra::io_weight_from_blkio(weight);
            (dir.join("io.weight"), format!("default {io}"))
        };
        std::fs::write(&file, &value).map_err(|e| {
            anyhow!(
                "config.json: linux.resources.blockIO.weight: write {value:?} to {}: {e}",
                file.display()
            )
        })
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
        self.manager()?
            .apply(&opt)
            .map_err(flat(&format!("config.json: {key}"), &self.path))
    }

    fn apply_extra(&self, r: &LinuxResources) -> Result<()> {
        let mut writes = extra::plan(r, self.host.unified);
        if self.systemd {
            if let Some(w) = writes.first() {
                bail!(
                    "config.json: {}: not supported with --systemd-cgroup",
                    w.key
                );
            }
            return Ok(());
        }
        if self.host.unified {
            writes.extend(extra::v2_swap_off(r));
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
        self.manager()?
            .freeze(state)
            .map_err(flat("freezer", &self.path))
    }

    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(self
            .manager()?
            .get_all_pids()
            .map_err(flat("list processes", &self.path))?
            .into_iter()
            .map(|p| p.as_raw())
            .collect())
    }

    pub fn stats(&self) -> Result<stats::RuncStats> {
        let s = self
            .manager()?
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
        let dirs = self.own_dirs();
        // The usual case, a container that has exited: every directory is empty and one rmdir
        // each removes it (no listing, no cgroup.procs read: about 70 syscalls fewer).
        // A busy one (processes left, or cgroups below it) takes the full way below.
        if !dirs.is_empty() && dirs.iter().all(|d| try_rmdir(d)) {
            return Ok(());
        }
        // Cgroups the container made inside its own (through a writable cgroup mount) go
        // first: rmdir does not remove a cgroup with children. (create refused a cgroup that
        // had any, so these are the container's.)
        for dir in dirs {
            remove_children(&dir)?;
        }
        if self.v1_fast() {
            v1::remove(&self.host, &self.path)
                .map_err(|e| anyhow!("remove: cgroup {}: {e}", self.path.display()))?;
            return match self.hybrid_unified_dir() {
                Some(dir) => hybrid::remove(&dir),
                None => Ok(()),
            };
        }
        self.manager()?.remove().map_err(flat("remove", &self.path))
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
        // `..` never climbs out of the base, nor leaves a directory it named on the way.
        assert_eq!(
            join_relative(own, Path::new("../../../escape"), false),
            PathBuf::from("/user.slice/session-1.scope/escape")
        );
        assert_eq!(
            join_relative(own, Path::new("a/../b"), true),
            PathBuf::from("/user.slice/b")
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
    fn systemd_unit_directories() {
        let d = |p: &str| systemd_dir(Path::new(p)).unwrap();
        assert_eq!(d(":hako:c1"), PathBuf::from("system.slice/hako-c1.scope"));
        assert_eq!(
            d("machine-a-b.slice:p:n"),
            PathBuf::from("machine.slice/machine-a.slice/machine-a-b.slice/p-n.scope")
        );
        assert_eq!(d("-.slice:p:n"), PathBuf::from("p-n.scope"));
        assert_eq!(
            d("system.slice:p:x.slice"),
            PathBuf::from("system.slice/x.slice")
        );
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
