//! `hako create`: the container's init set up and waiting on the exec fifo.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sys::stat::Mode;

use crate::bundle::{self, Bundle};
use crate::cgroups::{self, Cgroup};
use crate::cli::{CreateArgs, Global};
use crate::container::{self, Container, Record, Status};
use crate::hooks::{self, Kind};
use crate::launch::{self, Handshake, InitConfig};
use crate::linux::namespaces;

pub fn run(g: &Global, args: &CreateArgs) -> Result<()> {
    create(g, args).map(drop)
}

/// Creates the container; on failure nothing is left behind.
pub fn create(g: &Global, args: &CreateArgs) -> Result<Container> {
    container::validate_id(&args.id)?;
    let b = bundle::load(&args.bundle)?;
    let ns = namespaces::plan(b.spec.linux().as_ref())?;
    if !ns.has_mount_ns {
        bail!("config.json: linux.namespaces: a mount namespace is required");
    }
    let joins = namespaces::open_joins(&ns.joins)?;
    let terminal = b
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && args.console_socket.is_none() {
        bail!("config.json: process.terminal is true: --console-socket is required");
    }
    let console_socket = match &args.console_socket {
        Some(path) if terminal => Some(OwnedFd::from(
            UnixStream::connect(path)
                .with_context(|| format!("--console-socket {}", path.display()))?,
        )),
        _ => None,
    };
    let cgroup_path = cgroups::resolve_path(&b.spec, &args.id, g.systemd_cgroup)?;
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
    };
    // A cgroup in use is not ours: refused before the record (which delete --force would
    // clean up) names it. A taken id is the first thing to report, though.
    if g.root.join(&args.id).exists() {
        bail!("container {:?} already exists", args.id);
    }
    Cgroup::open(&cgroup_path, g.systemd_cgroup, &args.id)?.ensure_unused()?;
    let mut c = Container::reserve(&g.root, record)?;
    let result = build(g, args, &b, &mut c, ns, joins, console_socket);
    if let Err(e) = result {
        super::delete::destroy(&c, false);
        return Err(e);
    }
    Ok(c)
}

fn build(
    g: &Global,
    args: &CreateArgs,
    b: &Bundle,
    c: &mut Container,
    ns: namespaces::NamespacePlan,
    joins: Vec<(OwnedFd, nix::sched::CloneFlags)>,
    console_socket: Option<OwnedFd>,
) -> Result<()> {
    std::fs::copy(b.dir.join(bundle::CONFIG), c.config_copy()).context("copy config.json")?;
    let fifo = c.exec_fifo();
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .with_context(|| format!("{}", fifo.display()))?;
    let listen_fds: u32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut extra_env = Vec::new();
    if listen_fds > 0 {
        extra_env.push(format!("LISTEN_FDS={listen_fds}"));
        extra_env.push("LISTEN_PID=1".to_string());
    }
    let cgroup = Cgroup::open(&c.record.cgroup_path, c.record.systemd_cgroup, &c.record.id)?;
    let cfg = InitConfig {
        spec: &b.spec,
        rootfs: &b.rootfs,
        ns,
        joins,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds + listen_fds,
        extra_env,
        console_socket,
        exec_fifo: launch::open_fifo_path(&fifo)?,
        cgroup_path: c.record.cgroup_path.clone(),
        trace: g.trace,
    };
    let mut parent = Parent {
        c,
        cgroup: &cgroup,
        spec: &b.spec,
    };
    let pid = launch::spawn_init(&cfg, &mut parent)?;
    c.record.pid = pid;
    c.record.pid_start_time = container::stat_of(pid).map(|s| s.0).unwrap_or(0);
    c.record.status = Status::Created;
    c.save()?;
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    Ok(())
}

struct Parent<'a> {
    c: &'a mut Container,
    cgroup: &'a Cgroup,
    spec: &'a oci_spec::runtime::Spec,
}

impl Handshake for Parent<'_> {
    fn spawned(&mut self, pid: i32) -> Result<()> {
        // Recorded before anything else, so `delete --force` finds it after a crash.
        self.c.record.pid = pid;
        self.c.record.pid_start_time = container::stat_of(pid).map(|s| s.0).unwrap_or(0);
        self.c.save()?;
        self.cgroup.add_task(pid)?;
        // Even without linux.resources the device rules apply (deny all but the defaults).
        let resources = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        self.cgroup.apply(&resources)
    }

    fn namespaces_ready(&mut self, pid: i32) -> Result<String> {
        self.c.record.pid = pid;
        self.c.record.pid_start_time = container::stat_of(pid).map(|s| s.0).unwrap_or(0);
        self.c.save()?;
        let state = self.c.record.state_json(Status::Creating);
        // prestart is the deprecated alias run at the same point (runtime-spec 1.3.0).
        hooks::run_all(self.spec, Kind::Prestart, &state)?;
        hooks::run_all(self.spec, Kind::CreateRuntime, &state)?;
        Ok(self.c.record.state_json(Status::Created))
    }
}

/// Writes the pid file atomically, as runc does.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path =
        std::path::absolute(path).with_context(|| format!("--pid-file {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("--pid-file {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("--pid-file {}", path.display()))
}
