//! `hako create`: the container's init set up and waiting on the exec fifo.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sys::stat::Mode;

use crate::bundle::{self, Bundle};
use crate::cgroups::{self, Cgroup};
use crate::cli::{CreateArgs, Global};
use crate::container::{self, Container, Record, Status};
use crate::hooks::{self, Kind};
use crate::launch::plan::{self, ContainerPlan, ProcessPlan};
use crate::launch::{self, Handshake, InitConfig};
use crate::linux::seccomp::{self, Listener, SeccompPlan};
use crate::linux::{capabilities, lsm, namespaces, netdev};
use crate::trace;

pub fn run(g: &Global, args: &CreateArgs) -> Result<()> {
    create(g, args, None).map(drop)
}

/// A container just created, with what `run` goes on using rather than read again: the spec
/// its config copy holds and its cgroup.
pub struct Created {
    pub c: Container,
    pub spec: oci_spec::runtime::Spec,
    pub cgroup: Option<Cgroup>,
}

/// Creates the container; on failure nothing is left behind. `own_console` is a connected
/// socket to use instead of `--console-socket` (`run` relays the terminal itself).
pub fn create(g: &Global, args: &CreateArgs, own_console: Option<OwnedFd>) -> Result<Created> {
    container::validate_id(&args.id)?;
    let listen_fds = listen_fds(
        std::env::var("LISTEN_FDS").ok(),
        std::env::var("LISTEN_PID").ok(),
    );
    let fds = passed_fds(args.preserve_fds, listen_fds, nr_open)?;
    let b = bundle::load(&args.bundle)?;
    trace::phase("config.json loaded and checked");
    lsm::check(&b.spec, lsm::apparmor_enabled(), lsm::selinux_enabled())?;
    let ns = namespaces::plan(b.spec.linux().as_ref())?;
    crate::linux::userns::check_helpers(&b.spec)?;
    let joins_net = ns
        .joins
        .iter()
        .any(|j| j.typ == oci_spec::runtime::LinuxNamespaceType::Network);
    let netdevs = netdev::plan(b.spec.linux().as_ref(), ns.new_net_ns, joins_net)?;
    netdev::check_host(&netdevs)?;
    if !ns.has_mount_ns && b.spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        tracing::warn!("config.json: no mount namespace: mounts[] are not applied (they would change the host's mounts)");
    }
    // Everything the init will do is planned and checked before anything is made.
    let mut extra_env = Vec::new();
    if listen_fds > 0 {
        extra_env.push(format!("LISTEN_FDS={listen_fds}"));
        extra_env.push("LISTEN_PID=1".to_string());
    }
    let process = plan::process(
        b.spec
            .process()
            .as_ref()
            .context("config.json: process: missing")?,
        b.spec.linux().as_ref(),
        &extra_env,
        &capabilities::own_bounding()?,
    )?;
    if crate::linux::userns::rootless() {
        plan::check_rootless(&process)?;
    }
    let container = plan::container(&b.spec, ns.has_mount_ns)?;
    trace::phase("process and container planned (caps, seccomp BPF, mounts, devices)");
    let joins = namespaces::open_joins(&ns.joins)?;
    debug_plan(&b, &ns, &process.caps, process.seccomp.as_ref(), &netdevs);
    let terminal = process.terminal;
    let console_socket = match (&args.console_socket, own_console) {
        _ if !terminal => None,
        (Some(path), _) => Some(OwnedFd::from(
            UnixStream::connect(path)
                .with_context(|| format!("--console-socket {}", path.display()))?,
        )),
        (None, Some(fd)) => Some(fd),
        (None, None) => {
            bail!("config.json: process.terminal is true: --console-socket is required")
        }
    };
    let cgroup_path = cgroups::resolve_path(&b.spec, &args.id, g.systemd_cgroup)?;
    // Rootless without a writable cgroup: none at all, recorded as an empty path.
    let use_cgroup = !crate::linux::userns::rootless()
        || g.systemd_cgroup
        || cgroups::rootless::decide(
            &cgroups::host::Host::detect()?,
            &cgroup_path,
            &linux_resources(&b.spec),
        )?;
    let cgroup_path = if use_cgroup {
        cgroup_path
    } else {
        std::path::PathBuf::new()
    };
    let record = Record {
        oci_version: b.spec.version().clone(),
        id: args.id.clone(),
        pid: 0,
        status: Status::Creating,
        bundle: b.dir.clone(),
        rootfs: b.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        owner: String::new(),
        annotations: b.spec.annotations().clone().unwrap_or_default(),
        pid_start_time: 0,
        cgroup_path: cgroup_path.clone(),
        systemd_cgroup: g.systemd_cgroup,
        own_pid_ns: ns.has_pid_ns,
        has_hooks: b.spec.hooks().is_some(),
    };
    // A cgroup in use is not ours: refused before the record (which delete --force would
    // clean up) names it. A taken id is the first thing to report, though.
    if g.root.join(&args.id).exists() {
        bail!("container {:?} already exists", args.id);
    }
    trace::phase("namespaces to join opened, console socket, cgroup path resolved");
    let cgroup = match use_cgroup {
        true => Some(Cgroup::open(&cgroup_path, g.systemd_cgroup, &args.id)?),
        false => None,
    };
    if let Some(cg) = &cgroup {
        cg.ensure_unused()?;
    }
    trace::phase("cgroup opened, checked unused (not frozen, no process, no cgroup below)");
    let mut c = Container::reserve(&g.root, record)?;
    trace::phase("container record reserved");
    let mut hooks_began = false;
    let parts = InitParts {
        fds,
        ns,
        joins,
        console_socket,
        process,
        container,
        netdevs,
    };
    let result = build(args, &b, &mut c, parts, cgroup.as_ref(), &mut hooks_began);
    if let Err(e) = result {
        // Once the runtime's hooks began, what they made is released by the poststop hooks
        // (runtime.md lifecycle: a failed hook continues at step 12, then 13).
        let spec = hooks_began.then_some(&b.spec);
        super::delete::destroy_known(&c, spec, cgroup.as_ref());
        return Err(e);
    }
    Ok(Created {
        c,
        spec: b.spec,
        cgroup,
    })
}

/// `--debug`: what the init will be asked to do, decided before anything exists.
fn debug_plan(
    b: &Bundle,
    ns: &namespaces::NamespacePlan,
    caps: &capabilities::CapsPlan,
    seccomp: Option<&SeccompPlan>,
    netdevs: &[netdev::NetDevPlan],
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let sorted = |set: &caps::CapsHashSet| {
        let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
        v.sort();
        v.join(",")
    };
    let joins: Vec<String> = ns
        .joins
        .iter()
        .map(|j| j.path.display().to_string())
        .collect();
    tracing::debug!(
        "plan: bundle {}, rootfs {}",
        b.dir.display(),
        b.rootfs.display()
    );
    tracing::debug!(
        "plan: namespaces: clone {:?}, unshare {:?}, join [{}], fork after: {}",
        ns.clone_flags,
        ns.unshare_flags,
        joins.join(", "),
        ns.fork_after
    );
    let mounts: Vec<String> = (b.spec.mounts().iter().flatten())
        .map(|m| m.destination().display().to_string())
        .collect();
    tracing::debug!("plan: mounts [{}]", mounts.join(", "));
    tracing::debug!(
        "plan: capabilities: bounding [{}], effective [{}], ambient [{}]",
        sorted(&caps.bounding),
        sorted(&caps.effective),
        sorted(&caps.ambient)
    );
    if let Some(s) = seccomp {
        tracing::debug!(
            "plan: seccomp: {} BPF instructions, flags {:#x}",
            s.program.len(),
            s.flags
        );
    }
    for d in netdevs {
        tracing::debug!("plan: network device {} moved in as {}", d.host, d.name);
    }
}

/// What was checked and opened before the record was made, for the init.
struct InitParts {
    /// How many fds from 3 up pass into the container (--preserve-fds and LISTEN_FDS).
    fds: u32,
    ns: namespaces::NamespacePlan,
    joins: Vec<(OwnedFd, nix::sched::CloneFlags)>,
    console_socket: Option<OwnedFd>,
    process: ProcessPlan,
    container: ContainerPlan,
    netdevs: Vec<netdev::NetDevPlan>,
}

fn build(
    args: &CreateArgs,
    b: &Bundle,
    c: &mut Container,
    parts: InitParts,
    cgroup: Option<&Cgroup>,
    hooks_began: &mut bool,
) -> Result<()> {
    // Each change under the state directory is a journaled metadata write on a disk-backed
    // root (~0.6 ms each measured on this host's ext4): no more of them than needed.
    write_config_copy(&b.text, &c.config_copy())?;
    let fifo = c.exec_fifo();
    // Made with its final mode at once (no umask to undo with a chmod).
    let old = nix::sys::stat::umask(Mode::empty());
    let made = nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622));
    nix::sys::stat::umask(old);
    made.with_context(|| format!("{}", fifo.display()))?;
    // The init opens it as the container's root, which a user namespace maps to another uid:
    // give it to that uid.
    let linux = b.spec.linux().as_ref();
    let (uid, gid) = (
        host_id_of_root(linux.and_then(|l| l.uid_mappings().as_deref())),
        host_id_of_root(linux.and_then(|l| l.gid_mappings().as_deref())),
    );
    let owner = std::fs::symlink_metadata(&fifo).map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    if owner.ok() != Some((uid, gid)) {
        nix::unistd::chown(&fifo, Some(uid.into()), Some(gid.into()))
            .with_context(|| format!("chown {}", fifo.display()))?;
    }
    container::mark_fifo_waiting(&fifo)?;
    trace::phase("config.json copied, exec fifo made");
    let join = match cgroup {
        Some(cg) => cg.prepare_join()?,
        None => cgroups::Join::default(),
    };
    trace::phase("cgroup made, joined by the init (v1 tasks) or cloned into (cgroup2)");
    let rootfs_ready_handshake =
        launch::rootfs_ready_handshake(&b.spec, &parts.ns, !parts.netdevs.is_empty());
    let cfg = InitConfig {
        rootfs_ready_handshake,
        spec: &b.spec,
        rootfs: &b.rootfs,
        ns: parts.ns,
        joins: parts.joins,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: parts.fds,
        console_socket: parts.console_socket,
        exec_fifo: launch::open_fifo_path(&fifo)?,
        idmaps: idmapped_mounts(&b.spec)?,
        record: c.record.clone(),
        process: parts.process,
        container: parts.container,
        rootless: crate::linux::userns::rootless(),
        cgroup_tasks: join.tasks,
        clone_into: join.clone_into,
        cgroup_mounts: join.mounts,
    };
    let mut parent = Parent {
        c,
        cgroup,
        spec: &b.spec,
        hooks_began: false,
        netdevs: &parts.netdevs,
    };
    trace::phase("exec fifo opened, init's config ready");
    let pid = launch::spawn_init(&cfg, &mut parent);
    *hooks_began = parent.hooks_began;
    let pid = pid?;
    trace::phase("init created, waiting on the exec fifo");
    // The pid and its start time were read when the init was proceeding (or, for a grandchild
    // pid 1, when its rootfs was ready): not read from /proc again.
    if c.record.pid != pid || c.record.pid_start_time == 0 {
        c.record.pid = pid;
        c.record.pid_start_time = container::stat_of(pid).map(|s| s.0).unwrap_or(0);
    }
    c.record.status = Status::Created;
    c.save()?;
    trace::phase("state.json written (created)");
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, pid)?;
        trace::phase("pid file written");
    }
    Ok(())
}

struct Parent<'a> {
    c: &'a mut Container,
    cgroup: Option<&'a Cgroup>,
    spec: &'a oci_spec::runtime::Spec,
    hooks_began: bool,
    netdevs: &'a [netdev::NetDevPlan],
}

impl Handshake for Parent<'_> {
    fn spawned(&mut self, pid: i32, in_cgroup: bool) -> Result<()> {
        trace::phase("init cloned");
        let Some(cgroup) = self.cgroup else {
            return Ok(());
        };
        if !in_cgroup {
            cgroup.add_task(pid)?;
            trace::phase("init moved into its cgroup by the parent");
        }
        // Before the init goes on to make its device nodes: v1 rules begin with "deny all", and
        // a mknod racing their writes failed with EPERM (seen under load). Even without
        // linux.resources the device rules apply (deny all but the defaults).
        cgroup.apply_device_rules(&linux_resources(self.spec))?;
        trace::phase("cgroup device rules applied");
        Ok(())
    }

    fn proceeding(&mut self, pid: i32) -> Result<()> {
        // The limits are written while the init makes its mounts (on another core), not before
        // it may start them: nothing the container controls runs before `rootfs_ready` (the
        // hooks) and `Go`, and runc too sets them after the rootfs is made.
        if let Some(cgroup) = self.cgroup {
            cgroup.apply_limits(&linux_resources(self.spec))?;
            trace::phase("cgroup limits applied");
        }
        // Recorded while the init works (a save is ~1 ms of journaled writes on a disk-backed
        // root), so that `delete --force` finds it after a crash: until `created` the init
        // cannot outlive hako (it ends at its next message on the channel when hako is gone),
        // and the cgroup it is in was recorded before it was made.
        self.c.record.pid = pid;
        self.c.record.pid_start_time = container::stat_of(pid).map(|s| s.0).unwrap_or(0);
        self.c.save()?;
        trace::phase("init's pid recorded in state.json");
        // The parent only waits for its init now: a good time for this (linux/exeseal.rs).
        crate::linux::exeseal::release_mounts();
        trace::phase("sealed view's mounts released");
        Ok(())
    }

    fn rootfs_ready(&mut self, pid: i32) -> Result<()> {
        // A pid namespace entered by setns or unshare made the container's pid 1 a grandchild:
        // recorded before the hooks, like the first.
        if pid != self.c.record.pid {
            self.c.record.pid = pid;
            self.c.record.pid_start_time = container::stat_of(pid).map(|s| s.0).unwrap_or(0);
            self.c.save()?;
            trace::phase("init's final pid recorded in state.json");
        }
        // Before the hooks, which may configure the devices (runtime-spec: "MUST be available").
        netdev::move_all(self.netdevs, pid)?;
        if !self.netdevs.is_empty() {
            trace::phase("network devices moved in");
        }
        // `creating`: the create operation has not finished (runtime.md "State"); runc agrees.
        let state = self.c.record.state_json(Status::Creating);
        self.hooks_began = true;
        // prestart is the deprecated alias, run first at the same point (runtime-spec 1.3.0).
        hooks::run_all(self.spec, Kind::Prestart, &state, None)?;
        hooks::run_all(self.spec, Kind::CreateRuntime, &state, None)?;
        trace::phase("prestart and createRuntime hooks run");
        Ok(())
    }

    fn seccomp_listener(&mut self, pid: i32, listener: &Listener, fd: OwnedFd) -> Result<()> {
        let state = serde_json::from_str(&self.c.record.state_json(Status::Creating))?;
        seccomp::send_to_agent(listener, pid, state, fd.as_fd())
    }
}

fn linux_resources(spec: &oci_spec::runtime::Spec) -> oci_spec::runtime::LinuxResources {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default()
}

/// The container's copy of config.json (what `start`, `delete` and `exec` read later): the text
/// that was checked, not a second read of the bundle's file (which may have changed since).
fn write_config_copy(text: &str, to: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(to)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("{}", to.display()))
}

/// A user namespace for each idmapped mount (one with uidMappings or gidMappings).
fn idmapped_mounts(spec: &oci_spec::runtime::Spec) -> Result<Vec<(usize, OwnedFd)>> {
    spec.mounts()
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, m)| m.uid_mappings().is_some() || m.gid_mappings().is_some())
        .map(|(i, m)| Ok((i, crate::linux::idmap::userns_for(i, m)?)))
        .collect()
}

/// The host id that a user namespace's mappings give to the container's id 0 (0 without one).
fn host_id_of_root(maps: Option<&[oci_spec::runtime::LinuxIdMapping]>) -> u32 {
    maps.unwrap_or_default()
        .iter()
        .find(|m| m.container_id() == 0)
        .map(|m| m.host_id())
        .unwrap_or(0)
}

/// The socket-activation fds (3 .. 3+LISTEN_FDS) handed to the container: only those systemd
/// meant for this very process (LISTEN_PID is hako's pid); a stray environment inherited from
/// elsewhere must not pass whatever fds happen to be open into the container.
fn listen_fds(fds: Option<String>, pid: Option<String>) -> u32 {
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    match fds.and_then(|n| n.parse().ok()) {
        Some(n) if ours => n,
        _ => 0,
    }
}

/// The number of fds passed into the container: no fd can be numbered at or above fs.nr_open,
/// so more is a mistake (and would size the init's list of fds to keep).
pub(super) fn passed_fds(preserve: u32, listen: u32, nr_open: impl Fn() -> u32) -> Result<u32> {
    let n = u64::from(preserve) + u64::from(listen);
    // No fd to pass: no limit to read.
    let nr_open = if n == 0 { u32::MAX } else { nr_open() };
    if 3 + n > u64::from(nr_open) {
        let with = match listen {
            0 => String::new(),
            l => format!(" and LISTEN_FDS {l}"),
        };
        bail!(
            "--preserve-fds {preserve}{with}: fd {} is past the kernel's limit (fs.nr_open {nr_open})",
            2 + n
        );
    }
    Ok(n as u32)
}

/// The kernel's highest fd number + 1 (fs.nr_open; 1048576 unless raised).
pub(super) fn nr_open() -> u32 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Writes the pid file atomically, as runc does: a temporary file next to it, created with
/// O_EXCL|O_NOFOLLOW so that a symlink or file planted at that name is refused rather than
/// written through, then renamed over the pid file (rename replaces, it never follows).
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path =
        std::path::absolute(path).with_context(|| format!("--pid-file {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("pid");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("--pid-file: {}", tmp.display()))?;
    if let Err(e) = f
        .write_all(pid.to_string().as_bytes())
        .and_then(|()| f.sync_all())
    {
        let _ = std::fs::remove_file(&tmp);
        bail!("--pid-file: {}: {e}", tmp.display());
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("--pid-file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_fds_bounded_by_nr_open() {
        assert_eq!(passed_fds(2, 1, || 1 << 20).unwrap(), 3);
        assert_eq!(passed_fds(1024 - 3, 0, || 1024).unwrap(), 1021);
        assert!(passed_fds(1024 - 2, 0, || 1024).is_err());
        assert_eq!(passed_fds(0, 0, || unreachable!()).unwrap(), 0);
        let err = passed_fds(u32::MAX, 1, || 1 << 20).unwrap_err().to_string();
        assert!(err.starts_with("--preserve-fds 4294967295 "), "{err}");
    }

    #[test]
    fn listen_fds_only_for_our_own_pid() {
        let me = Some(std::process::id().to_string());
        let s = |v: &str| Some(v.to_string());
        assert_eq!(listen_fds(s("2"), me.clone()), 2);
        assert_eq!(listen_fds(s("2"), s("1")), 0);
        assert_eq!(listen_fds(s("2"), None), 0);
        assert_eq!(listen_fds(s("x"), me.clone()), 0);
        assert_eq!(listen_fds(None, me), 0);
    }

    #[test]
    fn pid_file_refuses_a_planted_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".pid.tmp")).unwrap();
        let err = write_pid_file(&dir.path().join("pid"), 42).unwrap_err();
        assert!(err.to_string().contains(".pid.tmp"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!dir.path().join("pid").exists());

        std::fs::remove_file(dir.path().join(".pid.tmp")).unwrap();
        write_pid_file(&dir.path().join("pid"), 42).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("pid")).unwrap(),
            "42"
        );
        assert!(!dir.path().join(".pid.tmp").exists());
    }
}
