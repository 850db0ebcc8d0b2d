//! The container's init, from clone(2) to execve(2): namespaces, rootfs, console, sysctl,
//! hostname, then the process's own steps (finalize.rs, shared with exec), `created`, the wait
//! on the exec fifo, and the user's program. Errors go to the parent over
//! the sync channel; after `created`, to `hako start` through the exec fifo.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult, Gid, Uid};

use super::finalize::{self, Failed};
use super::sync::{Channel, Msg};
use super::InitConfig;
use crate::container::Status;
use crate::hooks::{self, Kind};
use crate::linux::procfs::ProcFs;
use crate::linux::{console, fds, namespaces, netdev, rootfs, sched, sysctl};
use crate::trace;

/// The init's entry point; never returns.
pub fn main(cfg: &InitConfig, chan: Channel) -> ! {
    let err = match run(cfg, &chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = crate::logging::error_line(&err);
    // After `created` nobody listens on the channel: the container's stderr is what is left.
    if chan.send(&Msg::Error { msg: msg.clone() }).is_err() {
        eprintln!("hako: {msg}");
    } else {
        // Until the parent has read the error (it then kills this process, or closes its
        // end): exiting with a message of the parent's unread (an early Go) would reset the
        // channel, and the parent would see that instead of the error.
        while let Ok(Some(_)) = chan.recv() {}
    }
    // SAFETY: _exit ends this process without running the parent's atexit handlers or
    // flushing its stdio buffers, which this copy of memory shares with the parent.
    unsafe { libc::_exit(1) }
}

fn run(cfg: &InitConfig, chan: &Channel) -> Result<std::convert::Infallible> {
    // Until execve, /proc/self/exe of this process is the hako binary: keep it unreachable
    // from the container (CVE-2019-5736), and keep processes of namespaces it joins from
    // tracing it. A non-dumpable process's /proc files are real root's, though, so a rootless
    // parent could not write the maps of the user namespace clone made: that init turns
    // non-dumpable once they are written (it is alone in its namespaces until then).
    let dumpable = |on: bool| nix::sys::prctl::set_dumpable(on).context("prctl(PR_SET_DUMPABLE)");
    let clone_made_userns = cfg.ns.clone_flags.contains(CloneFlags::CLONE_NEWUSER);
    if !(cfg.rootless && clone_made_userns) {
        dumpable(false)?;
    }
    // Into the cgroup before anything else; "0" is this task, which spares the kernel's global
    // lock (cgroups/v1.rs). The fds are closed with the others below.
    for fd in &cfg.cgroup_tasks {
        nix::unistd::write(fd, b"0").context("join the container's cgroup (v1 tasks)")?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("sigprocmask")?;
    // SAFETY: restoring the default disposition (hako ignores SIGPIPE, see main; an ignored
    // signal would stay ignored across execve).
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.context("reset SIGPIPE")?;

    // The runtime's own /proc, checked, opened before any namespace or mount of the container:
    // every /proc file the init writes or trusts goes through it (linux/procfs.rs).
    let proc = ProcFs::open()?;
    // Close what the caller left open, but stdio, the preserved fds and the handshake's own.
    let mut keep: Vec<RawFd> = super::preserved(cfg.preserve_fds);
    keep.extend([chan.raw_fd(), cfg.exec_fifo.as_raw_fd(), proc.raw_fd()]);
    keep.extend(cfg.console_socket.as_ref().map(|s| s.as_raw_fd()));
    keep.extend(cfg.joins.iter().map(|(fd, _)| fd.as_raw_fd()));
    keep.extend(cfg.idmaps.iter().map(|(_, fd)| fd.as_raw_fd()));
    fds::close_all_except(&keep);
    trace::phase("procfs handle opened, other fds closed");

    let spec = cfg.spec;
    let linux = spec.linux().as_ref();

    chan.expect(Msg::Proceed)?;
    trace::phase("parent done with cgroup (Proceed)");
    for (fd, flag) in &cfg.joins {
        setns(fd, *flag).with_context(|| format!("setns {flag:?}"))?;
        if trace::enabled() {
            trace::phase(&format!("setns {}", namespaces::flag_names(*flag)));
        }
    }
    if cfg.ns.unshare_user {
        unshare(CloneFlags::CLONE_NEWUSER).context("unshare user namespace")?;
        trace::phase("unshare user");
        // Only for as long as a rootless parent writes the maps.
        if cfg.rootless {
            dumpable(true)?;
        }
        chan.send(&Msg::WriteIdMaps)?;
        chan.expect(Msg::IdMapsWritten)?;
    }
    dumpable(false)?;
    if cfg.ns.has_user_ns {
        become_root()?;
    }
    if !cfg.ns.unshare_flags.is_empty() {
        unshare(cfg.ns.unshare_flags)
            .with_context(|| format!("unshare {:?}", cfg.ns.unshare_flags))?;
        if trace::enabled() {
            let ns = namespaces::flag_names(cfg.ns.unshare_flags);
            trace::phase(&format!("unshare {ns}"));
        }
    }
    // A new network namespace is always the init's (namespaces::plan): its loopback goes up.
    if cfg.ns.unshare_flags.contains(CloneFlags::CLONE_NEWNET) {
        netdev::loopback_up()?;
        trace::phase("loopback up");
    }
    if !cfg.container.time_offsets.is_empty() {
        proc.write("self/timens_offsets", &cfg.container.time_offsets)
            .context("config.json: linux.timeOffsets")?;
    }
    if cfg.ns.fork_after {
        fork_into_namespaces(chan)?;
        trace::phase("forked into the pid/time namespace");
    }
    if !cfg.no_new_keyring {
        join_session_keyring();
    }

    // In a user namespace, bind sources are opened by the parent (launch::send_mount_sources),
    // when the mount namespace is a new one: a copy of the host's mounts.
    let binds = cfg.container.mounts.iter().filter(|m| m.is_bind).count();
    let new_mount_ns = !cfg.joins.iter().any(|(_, f)| *f == CloneFlags::CLONE_NEWNS);
    let sources = match cfg.ns.has_user_ns && cfg.ns.has_mount_ns && new_mount_ns && binds > 0 {
        true => receive_mount_sources(chan, binds)?,
        false => Vec::new(),
    };
    let opts = rootfs::RootfsOptions {
        rootfs: cfg.rootfs,
        no_pivot: cfg.no_pivot,
        in_userns: cfg.ns.has_user_ns || cfg.rootless,
        has_cgroup_ns: linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup)
            }),
        idmaps: &cfg.idmaps,
        sources: &[],
        // The parent's view holds in a copy of its mount namespace, not in one joined.
        cgroup_mounts: Some(cfg.cgroup_mounts.as_slice()).filter(|m| !m.is_empty() && new_mount_ns),
    };
    let mut ro_later = Vec::new();
    if cfg.ns.has_mount_ns {
        let with_sources = rootfs::RootfsOptions {
            sources: &sources,
            ..opts
        };
        ro_later = rootfs::prepare(
            spec,
            &cfg.container.mounts,
            &cfg.container.devices,
            &with_sources,
        )?;
    }
    // Host directories: closed before anything the container controls is looked up.
    drop(sources);
    // The runtime's hooks see the mounts made; the old root is still reachable for theirs.
    if cfg.rootfs_ready_handshake {
        chan.send(&Msg::RootfsReady)?;
    }
    chan.expect(Msg::Go)?;
    trace::phase("parent done with its hooks (Go)");
    let env = &cfg.process.env;
    // createContainer hooks start in the rootfs (runc's cwd for them; the spec leaves it open),
    // so a relative path in a hook names a file of the container.
    nix::unistd::chdir(cfg.rootfs).with_context(|| {
        format!(
            "chdir {} for the createContainer hooks",
            cfg.rootfs.display()
        )
    })?;
    hooks::run_all(
        spec,
        Kind::CreateContainer,
        &own_state(cfg, Status::Creating),
        Some(env),
    )?;
    trace::phase("createContainer hooks run");
    if cfg.ns.has_mount_ns {
        rootfs::enter(&opts)?;
        trace::phase("pivot_root, old root detached");
    } else {
        rootfs::chroot_only(&opts)?;
        trace::phase("chroot");
    }

    // The terminal is opened inside the container's devpts.
    if cfg.process.terminal {
        let Some(sock) = &cfg.console_socket else {
            bail!("config.json: process.terminal is true but no --console-socket was given");
        };
        let slave = console::setup(
            sock.as_raw_fd(),
            cfg.process.console_size,
            cfg.process.user.uid(),
        )?;
        console::bind_dev_console(&slave)?;
        trace::phase("console set up");
    }
    // Before readonlyPaths, which usually include /proc/sys.
    sysctl::apply(&proc, &cfg.container.sysctl)?;
    trace::phase("sysctl written");
    if cfg.ns.has_mount_ns {
        rootfs::finish(spec, ro_later)?;
        trace::phase("masked and read-only paths, root propagation");
    }

    if let Some(h) = spec.hostname() {
        if !cfg.ns.has_uts_ns {
            bail!("config.json: hostname: needs a uts namespace of the container's own");
        }
        nix::unistd::sethostname(h).context("config.json: hostname")?;
    }
    if let Some(d) = spec.domainname() {
        if !cfg.ns.has_uts_ns {
            bail!("config.json: domainname: needs a uts namespace of the container's own");
        }
        set_domainname(d)?;
    }
    if let Some(p) = cfg.container.personality {
        sched::apply_personality(p)?;
    }
    trace::phase("hostname, domainname, personality");

    let mut ready = finalize::prepare(&cfg.process, &proc, chan, cfg.preserve_fds, true)?;
    chan.send(&Msg::Created)?;
    let start = wait_for_start(&proc, cfg.exec_fifo.as_raw_fd())?;
    trace::phase("released from the exec fifo");
    // The runtime's /proc is a way out of the container (its fd/N, its pids' roots): closed
    // before anything the container controls is looked up again (hooks, execve, interpreters).
    drop(proc);
    // `hako start` reads the fifo until it closes, at execve (close-on-exec) or at our exit:
    // what it finds there is why the program did not run.
    let fail = |err: anyhow::Error| -> ! {
        let _ = (&start).write_all(format!("{err:#}").as_bytes());
        // SAFETY: see main(); the error is reported by `start`, not again here.
        unsafe { libc::_exit(1) }
    };
    let own = own_state(cfg, Status::Created);
    // startContainer hooks run in the container under its seccomp filter, as runc runs them
    // (without noNewPrivileges it is in already). With none, hako makes no syscall of its own
    // under the filter but execve.
    if !hooks::of(spec, Kind::StartContainer).is_empty() {
        if let Err(err) = ready.install_seccomp_now() {
            fail(err);
        }
    }
    if let Err(err) = hooks::run_all(spec, Kind::StartContainer, &own, Some(env)) {
        fail(err);
    }
    trace::phase("startContainer hooks run");
    match ready.exec() {
        Failed::Setup(err) => fail(err),
        // A program that cannot run is the container's failure, not the runtime's (exit 127
        // like a shell): the container's stderr says why.
        Failed::Program(err) => {
            eprintln!("hako: {err:#}");
            // SAFETY: see main().
            unsafe { libc::_exit(127) }
        }
    }
}

/// Asks the parent for the bind mounts' sources and takes the `count` answers.
fn receive_mount_sources(chan: &Channel, count: usize) -> Result<Vec<(usize, OwnedFd)>> {
    chan.send(&Msg::OpenMountSources)?;
    let mut out = Vec::new();
    for _ in 0..count {
        match chan.recv_with_fd()? {
            Some((Msg::MountSource { index }, fd)) => out.extend(fd.map(|fd| (index, fd))),
            other => bail!("sync: expected a mount source, got {other:?}"),
        }
    }
    Ok(out)
}

/// Root in the user namespace just entered (its ids 0 must be mapped).
pub(super) fn become_root() -> Result<()> {
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .context("become root in the user namespace (gid 0 must be mapped)")?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .context("become root in the user namespace (uid 0 must be mapped)")?;
    Ok(())
}

/// A pid or time namespace entered by setns/unshare holds only children: fork, report the
/// child's pid (host view) and let this process go.
pub(super) fn fork_into_namespaces(chan: &Channel) -> Result<()> {
    // SAFETY: single-threaded; the child only continues its caller.
    match unsafe { fork() }.context("fork into the pid namespace")? {
        ForkResult::Parent { child } => {
            chan.send(&Msg::Pid {
                pid: child.as_raw(),
            })?;
            // SAFETY: see main(): leave without running shared cleanup.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => Ok(()),
    }
}

/// Blocks until `hako start` opens the fifo for reading; returns the open write end. The fifo's
/// O_PATH fd is reopened through the procfs handle, so the container needs no /proc of its own.
/// Released, the init writes its byte, then stamps the fifo's mtime (create set it to 0): from
/// then on every `hako start` sees the container as started, even if the one that released it
/// was killed.
fn wait_for_start(proc: &ProcFs, fifo: RawFd) -> Result<File> {
    let f = proc
        .reopen(fifo, libc::O_WRONLY)
        .context("open the exec fifo")?;
    // The `start` that released us may be gone already: EPIPE, not a fatal SIGPIPE.
    // SAFETY: changing a signal disposition; no handler function is involved.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.context("ignore SIGPIPE")?;
    let _ = (&f).write_all(b"0");
    // SAFETY: as above; the default again, as the program must inherit it.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.context("reset SIGPIPE")?;
    nix::sys::stat::futimens(
        f.as_raw_fd(),
        &nix::sys::time::TimeSpec::UTIME_NOW,
        &nix::sys::time::TimeSpec::UTIME_NOW,
    )
    .context("mark the exec fifo released")?;
    Ok(f)
}

/// The state for the hooks the init runs in the container's namespaces: the pid is the one the
/// container sees (runtime.md "State").
fn own_state(cfg: &InitConfig, status: Status) -> String {
    let mut record = cfg.record.clone();
    record.pid = nix::unistd::getpid().as_raw();
    record.state_json(status)
}

fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `name` for the duration of the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("config.json: domainname");
    }
    Ok(())
}

/// A new session keyring, so containers do not share the caller's keys.
fn join_session_keyring() {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks for an anonymous keyring; failure (ENOSYS, EPERM) is harmless.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0usize) };
}
