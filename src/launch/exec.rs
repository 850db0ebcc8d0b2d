//! A process exec'd into a running container: it writes itself into the container's v1 cgroups
//! (the parent puts it into the others), joins the container's namespaces (user first; a pid or
//! time namespace takes one more fork), opens its terminal, then finishes as the init does
//! (launch/finalize.rs).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::sched::setns;
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::finalize::{self, Failed};
use super::plan::ProcessPlan;
use super::sync::{self, Channel, Msg};
use crate::linux::namespaces::clone_flag;
use crate::linux::procfs::ProcFs;
use crate::linux::seccomp::Listener;
use crate::linux::{console, fds};

/// Everything the exec'd process needs, prepared by the parent before clone.
pub struct ExecConfig {
    pub process: ProcessPlan,
    /// The container's namespaces to join, the user namespace first.
    pub joins: Vec<(OwnedFd, LinuxNamespaceType)>,
    /// A container without a mount namespace of its own: chroot into its rootfs instead.
    pub chroot: Option<PathBuf>,
    pub console_socket: Option<OwnedFd>,
    /// fds 3..3+preserve_fds pass into the process.
    pub preserve_fds: u32,
    /// v1 `tasks` files the process writes itself into first thing (cgroups/join.rs).
    pub cgroup_tasks: Vec<OwnedFd>,
}

/// What the parent does at the handshake's points.
pub trait ExecParent {
    /// Right after clone, before the child joins anything: put `pid` in the container's cgroups
    /// it does not join itself.
    fn spawned(&mut self, pid: i32) -> Result<()>;
    /// The process installed a seccomp filter that notifies: hand its fd to the agent.
    fn seccomp_listener(&mut self, pid: i32, listener: &Listener, fd: OwnedFd) -> Result<()>;
}

/// Spawns the process and drives it to execve. Returns its pid (host view).
pub fn spawn(cfg: &ExecConfig, parent: &mut dyn ExecParent) -> Result<i32> {
    let (parent_end, child_end) = sync::pair()?;
    let first = super::clone_process(nix::sched::CloneFlags::empty())?;
    if first == 0 {
        drop(parent_end);
        child_main(cfg, child_end);
    }
    drop(child_end);
    let mut pid = first;
    let result = drive(cfg, parent, &parent_end, first, &mut pid);
    if result.is_err() {
        super::kill_and_reap(first, pid);
    }
    result.map(|()| pid)
}

fn drive(
    cfg: &ExecConfig,
    parent: &mut dyn ExecParent,
    chan: &Channel,
    first: i32,
    pid: &mut i32,
) -> Result<()> {
    parent.spawned(first)?;
    chan.send(&Msg::Proceed)?;
    // The parent only waits for the child now: a good time for this (linux/exeseal.rs).
    crate::linux::exeseal::release_mounts();
    loop {
        match chan.recv_with_fd()? {
            Some((Msg::Pid { pid: p }, _)) => {
                *pid = p;
                // The intermediate process exits once it has forked into the pid namespace.
                match waitpid(Pid::from_raw(first), None) {
                    Ok(WaitStatus::Exited(_, 0)) => {}
                    other => bail!("exec: intermediate process ended badly: {other:?}"),
                }
            }
            Some((Msg::SeccompListener, fd)) => {
                let listener = cfg
                    .process
                    .seccomp
                    .as_ref()
                    .and_then(|p| p.listener.as_ref());
                let (Some(listener), Some(fd)) = (listener, fd) else {
                    bail!("exec: seccomp listener message without a listener or fd");
                };
                parent.seccomp_listener(*pid, listener, fd)?;
            }
            Some((Msg::Error { msg }, _)) => bail!("{msg}"),
            Some((other, _)) => bail!("exec: unexpected message {other:?}"),
            // The channel is close-on-exec: closed without a word, the program runs.
            None => return Ok(()),
        }
    }
}

/// The child's entry point; never returns.
fn child_main(cfg: &ExecConfig, chan: Channel) -> ! {
    let (err, code) = match run(cfg, &chan) {
        Ok(Failed::Setup(e)) => (e, 1),
        Ok(Failed::Program(e)) => (e, 127),
        Err(e) => (e, 1),
    };
    let msg = crate::logging::error_line(&err);
    if chan.send(&Msg::Error { msg: msg.clone() }).is_err() {
        eprintln!("hako: {msg}");
    }
    // SAFETY: _exit ends this process without running the parent's atexit handlers or
    // flushing its stdio buffers, which this copy of memory shares with the parent.
    unsafe { libc::_exit(code) }
}

fn run(cfg: &ExecConfig, chan: &Channel) -> Result<Failed> {
    // Until execve, /proc/self/exe of this process is the hako binary: keep it unreachable
    // from the container (CVE-2019-5736).
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
    for fd in &cfg.cgroup_tasks {
        nix::unistd::write(fd, b"0").context("join the container's cgroup (v1 tasks)")?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("sigprocmask")?;
    // SAFETY: restoring the default disposition (hako ignores SIGPIPE, see main; an ignored
    // signal would stay ignored across execve).
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.context("reset SIGPIPE")?;
    // The runtime's own /proc, checked before any namespace of the container is joined: every
    // /proc file the process writes goes through it (linux/procfs.rs).
    let proc = ProcFs::open()?;
    let mut keep: Vec<RawFd> = super::preserved(cfg.preserve_fds);
    keep.extend([chan.raw_fd(), proc.raw_fd()]);
    keep.extend(cfg.console_socket.as_ref().map(|s| s.as_raw_fd()));
    keep.extend(cfg.joins.iter().map(|(fd, _)| fd.as_raw_fd()));
    fds::close_all_except(&keep);

    chan.expect(Msg::Proceed)?;
    let mut fork_after = false;
    for (fd, typ) in &cfg.joins {
        setns(fd, clone_flag(*typ))
            .with_context(|| format!("join the container's {typ} namespace"))?;
        match typ {
            LinuxNamespaceType::User => super::init::become_root()?,
            LinuxNamespaceType::Pid | LinuxNamespaceType::Time => fork_after = true,
            _ => {}
        }
    }
    if fork_after {
        super::init::fork_into_namespaces(chan)?;
    }
    if let Some(root) = &cfg.chroot {
        nix::unistd::chroot(root).with_context(|| format!("chroot {}", root.display()))?;
        nix::unistd::chdir("/").context("chdir /")?;
    }
    if cfg.process.terminal {
        let Some(sock) = &cfg.console_socket else {
            bail!("exec: a terminal needs --console-socket");
        };
        console::setup(
            sock.as_raw_fd(),
            cfg.process.console_size,
            cfg.process.user.uid(),
        )?;
    }
    let ready = finalize::prepare(&cfg.process, &proc, chan, cfg.preserve_fds, false)?;
    // As in the init: the runtime's /proc must not be reachable while execve resolves paths.
    drop(proc);
    Ok(ready.exec())
}
