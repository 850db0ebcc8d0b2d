//! `hako exec`: another process in a created or running container — its namespaces, cgroup,
//! rlimits, capabilities, no_new_privs, LSM labels and seccomp filter, from config.json's
//! `process` changed by the flags, or from `--process FILE`. Without -d, waits for it and
//! exits with its code (128+N for signal N).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process};

use crate::cgroups;
use crate::cli::{ExecArgs, Global};
use crate::container::{Container, Record, Status};
use crate::launch::exec::{self as launch_exec, ExecConfig, ExecParent};
use crate::launch::plan;
use crate::linux::seccomp::{self, Listener};
use crate::linux::{capabilities, console, lsm, namespaces};
use crate::terminal;

pub fn run(g: &Global, args: &ExecArgs) -> Result<i32> {
    // Not locked: a process joining a frozen cgroup (--ignore-paused) waits for `resume`,
    // which takes the lock.
    let c = Container::read(&g.root, &args.id)?;
    match c.status() {
        // Until it execs, the init is non-dumpable (linux/exeseal.rs), so its /proc/PID/ns
        // files are real root's to open.
        Status::Created if crate::linux::userns::rootless() => bail!(
            "cannot exec in a created container {:?} rootless: start it first (its init's \
             namespaces open to root only until it runs)",
            args.id
        ),
        Status::Created | Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        // runc's wording, which scripts look for.
        Status::Paused => bail!(
            "cannot exec in a paused container {:?} (resume it, or use --ignore-paused)",
            args.id
        ),
        status => bail!("cannot exec in a {status} container {:?}", args.id),
    }
    // Sizes the child's list of fds to keep: bounded as for create.
    let preserve_fds = super::create::passed_fds(args.preserve_fds, 0, super::create::nr_open)?;
    let mut spec = c.spec()?;
    let text = match &args.process {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--process {}", path.display()))?,
        ),
        None => None,
    };
    let process = exec_process(spec.process().as_ref(), args, text.as_deref())?;
    spec.set_process(Some(process.clone()));
    lsm::check(&spec, lsm::apparmor_enabled(), lsm::selinux_enabled())?;
    let plan = plan::process(
        &process,
        spec.linux().as_ref(),
        &[],
        &capabilities::own_bounding()?,
    )?;
    if crate::linux::userns::rootless() {
        plan::check_rootless(&plan)?;
    }
    if args.detach && plan.terminal && args.console_socket.is_none() {
        bail!("exec: -d with a terminal needs --console-socket (nothing would hold the pty)");
    }
    if !plan.terminal && args.console_socket.is_some() {
        bail!("--console-socket: only with a terminal (-t, or process.terminal)");
    }

    let r = &c.record;
    let types = namespaces::exec_joins(spec.linux().as_ref());
    let joins = namespaces::open_of_process(r.pid, &types)
        .with_context(|| format!("container {:?}: its namespaces", r.id))?;
    tracing::debug!(
        "exec: {:?} as {}:{} in {:?} (init {}), joining {} namespaces",
        plan.args,
        plan.user.uid(),
        plan.user.gid(),
        r.id,
        r.pid,
        joins.len()
    );
    let has_mount_ns = types.contains(&oci_spec::runtime::LinuxNamespaceType::Mount);

    let mut set = None;
    if !args.detach {
        set = Some(terminal::hold_signals()?);
    }
    // A terminal without a console socket: hako takes the master and relays it.
    let (ours, theirs) = match (&args.console_socket, plan.terminal) {
        (_, false) => (None, None),
        (Some(path), true) => (
            None,
            Some(OwnedFd::from(UnixStream::connect(path).with_context(
                || format!("--console-socket {}", path.display()),
            )?)),
        ),
        (None, true) => {
            let (a, b) = UnixStream::pair().context("socketpair for the terminal")?;
            (Some(a), Some(OwnedFd::from(b)))
        }
    };
    let mut cgroups = cgroups::join::Joins::default();
    if r.cgroup_path.as_os_str().is_empty() {
        // Rootless without a cgroup: the process stays in the caller's, as the init did.
        if let Some(sub) = args.cgroup.first() {
            bail!("--cgroup {sub}: the container has no cgroup (rootless)");
        }
    } else {
        cgroups::join::prepare(r.pid, None, Path::new(""), &mut cgroups)
            .with_context(|| format!("container {:?}: its cgroup", r.id))?;
        for sub in &args.cgroup {
            prepare_sub_cgroup(r.pid, sub, &mut cgroups)?;
        }
    }
    let cfg = ExecConfig {
        process: plan,
        joins,
        chroot: (!has_mount_ns).then(|| r.rootfs.clone()),
        console_socket: theirs,
        preserve_fds,
        cgroup_tasks: cgroups.own,
    };
    let mut parent = Parent {
        record: r,
        cgroup_dirs: cgroups.by_parent,
    };
    let pid = launch_exec::spawn(&cfg, &mut parent)?;
    tracing::debug!("exec: the program runs as pid {pid}");
    drop(cfg);
    if let Some(path) = &args.pid_file {
        if let Err(e) = super::create::write_pid_file(path, pid) {
            // Nobody could find it: the process does not outlive a failed exec.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(e);
        }
    }
    let pty = match ours {
        Some(sock) => Some(console::recv_fd(sock.as_raw_fd())?),
        None => None,
    };
    // The lock is not held while waiting: other commands on this container must work.
    drop(c);
    match set {
        Some(set) => {
            let code = terminal::wait(pid, &set, pty)?;
            let _ = set.thread_unblock();
            Ok(code)
        }
        None => Ok(0),
    }
}

struct Parent<'a> {
    record: &'a Record,
    /// The cgroups the parent writes the pid into (cgroups/join.rs).
    cgroup_dirs: Vec<std::path::PathBuf>,
}

impl ExecParent for Parent<'_> {
    fn spawned(&mut self, pid: i32) -> Result<()> {
        cgroups::join::write_pid(&self.cgroup_dirs, pid)
            .with_context(|| format!("container {:?}: its cgroup", self.record.id))
    }

    fn seccomp_listener(&mut self, pid: i32, listener: &Listener, fd: OwnedFd) -> Result<()> {
        let state = serde_json::from_str(&self.record.state_json(Status::Running))?;
        seccomp::send_to_agent(listener, pid, state, std::os::fd::AsFd::as_fd(&fd))
    }
}

/// `--cgroup [CONTROLLER[,CONTROLLER]:]PATH`: an existing cgroup under the container's, for
/// those controllers or for all of them; `/` is the container's own.
fn prepare_sub_cgroup(init_pid: i32, value: &str, j: &mut cgroups::join::Joins) -> Result<()> {
    let (controllers, sub) = match value.split_once(':') {
        Some((c, p)) => (Some(c), p),
        None => (None, value),
    };
    let sub = Path::new(sub.trim_start_matches('/'));
    if sub.components().any(|c| c.as_os_str() == "..") {
        bail!(
            "--cgroup {value}: {} is not a sub cgroup path",
            sub.display()
        );
    }
    let wrap = |e: anyhow::Error| e.context(format!("--cgroup {value}"));
    match controllers {
        None => cgroups::join::prepare(init_pid, None, sub, j).map_err(wrap),
        Some(list) => list
            .split(',')
            .try_for_each(|c| cgroups::join::prepare(init_pid, Some(c), sub, j))
            .map_err(wrap),
    }
}

/// The process to run: `--process`'s (flags ignored, as with runc), else config.json's with
/// ARGS and the flags applied. Pure.
pub fn exec_process(
    base: Option<&Process>,
    a: &ExecArgs,
    process_file: Option<&str>,
) -> Result<Process> {
    if let Some(text) = process_file {
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--process: {e}"))?;
        // runc runs a process without `user` as uid 0, gid 0.
        if let Some(obj) = value.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        return serde_path_to_error::deserialize(value)
            .map_err(|e| anyhow::anyhow!("--process: {}: {}", e.path(), e.inner()));
    }
    let mut p = base.cloned().context("config.json: process: missing")?;
    if a.args.is_empty() {
        bail!("exec: no program given (ARGS, or --process FILE)");
    }
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(a.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let bad = || anyhow::anyhow!("--user {u:?}: want UID[:GID] (numbers)");
        let (uid, gid) = match u.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (u.as_str(), None),
        };
        user.set_uid(uid.parse().map_err(|_| bad())?);
        if let Some(gid) = gid {
            user.set_gid(gid.parse().map_err(|_| bad())?);
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if !a.cap.is_empty() {
        p.set_capabilities(Some(add_caps(p.capabilities().clone(), &a.cap)?));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    Ok(p)
}

/// `-c CAP`: added to every set (runc 1.1 does; ambient needs inheritable).
fn add_caps(caps: Option<LinuxCapabilities>, names: &[String]) -> Result<LinuxCapabilities> {
    let mut caps = caps.unwrap_or_else(|| {
        let none = Some(Capabilities::new());
        let mut c = LinuxCapabilities::default();
        c.set_bounding(none.clone())
            .set_effective(none.clone())
            .set_inheritable(none.clone())
            .set_permitted(none.clone())
            .set_ambient(none);
        c
    });
    for name in names {
        let upper = name.to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
            .map_err(|_| anyhow::anyhow!("--cap {name}: not a capability"))?;
        let add = |set: &Option<Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(cap);
            Some(s)
        };
        let (b, e, i, p, a) = (
            add(caps.bounding()),
            add(caps.effective()),
            add(caps.inheritable()),
            add(caps.permitted()),
            add(caps.ambient()),
        );
        caps.set_bounding(b)
            .set_effective(e)
            .set_inheritable(i)
            .set_permitted(p)
            .set_ambient(a);
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Process {
        serde_json::from_str(
            r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],"env":["A=1"],
                "terminal":true,"capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],
                "permitted":["CAP_KILL"]}}"#,
        )
        .unwrap()
    }

    fn args(f: impl FnOnce(&mut ExecArgs)) -> ExecArgs {
        let mut a = ExecArgs {
            id: "c".into(),
            args: vec!["true".into()],
            ..Default::default()
        };
        f(&mut a);
        a
    }

    #[test]
    fn flags_change_config_process() {
        let a = args(|a| {
            a.env = vec!["B=2".into()];
            a.user = Some("10:20".into());
            a.additional_gids = vec![5];
            a.cwd = Some("/tmp".into());
            a.cap = vec!["CAP_CHOWN".into(), "net_raw".into()];
            a.no_new_privs = true;
        });
        let p = exec_process(Some(&base()), &a, None).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["true"]);
        assert_eq!(p.env().as_deref().unwrap(), ["A=1", "B=2"]);
        assert_eq!((p.user().uid(), p.user().gid()), (10, 20));
        assert_eq!(p.user().additional_gids().as_deref().unwrap(), [5]);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(p.terminal(), Some(false), "-t decides, not config.json");
        let caps = p.capabilities().as_ref().unwrap();
        let eff = caps.effective().as_ref().unwrap();
        assert!(eff.contains(&Capability::Kill) && eff.contains(&Capability::NetRaw));
        assert!(caps
            .ambient()
            .as_ref()
            .unwrap()
            .contains(&Capability::Chown));
        assert_eq!(p.no_new_privileges(), Some(true));
    }

    #[test]
    fn bad_flags_and_process_files_are_named() {
        let e = |a: ExecArgs, f: Option<&str>| {
            exec_process(Some(&base()), &a, f).unwrap_err().to_string()
        };
        assert!(e(args(|a| a.user = Some("bob".into())), None).contains("--user \"bob\""));
        assert!(e(args(|a| a.cap = vec!["CAP_NOPE".into()]), None).contains("--cap CAP_NOPE"));
        assert!(e(args(|a| a.args.clear()), None).contains("no program"));
        let err = e(
            args(|_| {}),
            Some(r#"{"cwd":"/","user":{"uid":"x"},"args":["a"]}"#),
        );
        assert!(err.contains("--process: user.uid"), "{err}");
        let p = exec_process(
            None,
            &args(|a| a.tty = true),
            Some(r#"{"cwd":"/w","user":{"uid":1,"gid":1},"args":["id"]}"#),
        )
        .unwrap();
        assert_eq!(p.cwd(), Path::new("/w"));
        assert_eq!(p.terminal(), None, "--process is taken as is");
        let p = exec_process(None, &args(|_| {}), Some(r#"{"cwd":"/","args":["id"]}"#)).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0), "no user: root");
    }
}
