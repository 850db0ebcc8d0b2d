//! The container's init, from clone(2) to execve(2): namespaces, rootfs, process environment,
//! `created`, the wait on the exec fifo, then the user's program. Errors go to the parent over
//! the sync channel; after `created`, to `hako start` through the exec fifo.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult, Gid, Uid};

use super::sync::{Channel, Msg};
use super::InitConfig;
use crate::container::Status;
use crate::hooks::{self, Kind};
use crate::linux::procfs::ProcFs;
use crate::linux::seccomp::{self, SeccompPlan};
use crate::linux::{
    capabilities, console, exec, fds, lsm, namespaces, rlimits, rootfs, sched, sysctl, user,
};

/// The init's entry point; never returns.
pub fn main(cfg: &InitConfig, chan: Channel) -> ! {
    let err = match run(cfg, &chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = format!("{err:#}");
    // After `created` nobody listens on the channel: the container's stderr is what is left.
    if chan.send(&Msg::Error { msg: msg.clone() }).is_err() {
        eprintln!("hako: {msg}");
    }
    // SAFETY: _exit ends this process without running the parent's atexit handlers or
    // flushing its stdio buffers, which this copy of memory shares with the parent.
    unsafe { libc::_exit(1) }
}

fn run(cfg: &InitConfig, chan: &Channel) -> Result<std::convert::Infallible> {
    // Until execve, /proc/self/exe of this process is the hako binary: keep it unreachable
    // from the container (CVE-2019-5736).
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE)")?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("sigprocmask")?;
    // SAFETY: restoring the default disposition (Rust's runtime ignores SIGPIPE; an ignored
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

    let spec = cfg.spec;
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process: missing")?;
    let linux = spec.linux().as_ref();

    chan.expect(Msg::Proceed)?;
    for (fd, flag) in &cfg.joins {
        setns(fd, *flag).with_context(|| format!("setns {flag:?}"))?;
    }
    if cfg.ns.unshare_user {
        unshare(CloneFlags::CLONE_NEWUSER).context("unshare user namespace")?;
        chan.send(&Msg::WriteIdMaps)?;
        chan.expect(Msg::IdMapsWritten)?;
    }
    if cfg.ns.has_user_ns {
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .context("become root in the user namespace (gid 0 must be mapped)")?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .context("become root in the user namespace (uid 0 must be mapped)")?;
    }
    if !cfg.ns.unshare_flags.is_empty() {
        unshare(cfg.ns.unshare_flags)
            .with_context(|| format!("unshare {:?}", cfg.ns.unshare_flags))?;
    }
    let offsets = namespaces::time_offsets_text(linux)?;
    if !offsets.is_empty() {
        proc.write("self/timens_offsets", &offsets)
            .context("config.json: linux.timeOffsets")?;
    }
    if cfg.ns.fork_after {
        // SAFETY: single-threaded; the child only continues this function.
        match unsafe { fork() }.context("fork into the pid namespace")? {
            ForkResult::Parent { child } => {
                chan.send(&Msg::Pid {
                    pid: child.as_raw(),
                })?;
                // SAFETY: see main(): leave without running shared cleanup.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Child => {}
        }
    }
    if !cfg.no_new_keyring {
        join_session_keyring();
    }

    let opts = rootfs::RootfsOptions {
        rootfs: cfg.rootfs,
        no_pivot: cfg.no_pivot,
        in_userns: cfg.ns.has_user_ns,
        has_cgroup_ns: linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup)
            }),
        idmaps: &cfg.idmaps,
    };
    if cfg.ns.has_mount_ns {
        let mounts = rootfs::plan_mounts(spec)?;
        rootfs::prepare(spec, &mounts, &opts)?;
    }
    // The runtime's hooks see the mounts made; the old root is still reachable for theirs.
    chan.send(&Msg::RootfsReady)?;
    chan.expect(Msg::Go)?;
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    env.extend(cfg.extra_env.iter().cloned());
    hooks::run_all(
        spec,
        Kind::CreateContainer,
        &own_state(cfg, Status::Creating),
        Some(&env),
    )?;
    if cfg.ns.has_mount_ns {
        rootfs::enter(&opts)?;
    } else {
        rootfs::chroot_only(&opts)?;
    }

    // The terminal is opened inside the container's devpts.
    if process.terminal().unwrap_or(false) {
        let Some(sock) = &cfg.console_socket else {
            bail!("config.json: process.terminal is true but no --console-socket was given");
        };
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        let slave = console::setup(sock.as_raw_fd(), size)?;
        console::bind_dev_console(&slave)?;
    }
    let has_ns = |name: &str| {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|list| list.iter().any(|n| n.typ().to_string() == name))
    };
    // Before readonlyPaths, which usually include /proc/sys.
    sysctl::apply(
        &proc,
        &sysctl::plan(linux.and_then(|l| l.sysctl().as_ref()), has_ns)?,
    )?;
    if cfg.ns.has_mount_ns {
        rootfs::finish(spec)?;
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
    if let Some(adj) = process.oom_score_adj() {
        proc.write("self/oom_score_adj", &adj.to_string())
            .context("config.json: process.oomScoreAdj")?;
    }
    rlimits::apply(&rlimits::plan(
        process.rlimits().as_deref().unwrap_or_default(),
    )?)?;
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        sched::apply_personality(sched::plan_personality(p)?)?;
    }
    if let Some(s) = process.scheduler() {
        sched::apply_scheduler(&sched::plan_scheduler(s))?;
    }
    if let Some(p) = process.io_priority() {
        sched::apply_io_priority(sched::plan_io_priority(p)?)?;
    }
    if let Some(a) = process.exec_cpu_affinity() {
        if let Some(cpus) = sched::plan_affinity(a)? {
            sched::apply_affinity(&cpus)?;
        }
    }

    // Environment and program, resolved in the container's root.
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(process.user().uid())));
    }
    let cwd = process.cwd();
    std::fs::create_dir_all(cwd)
        .with_context(|| format!("config.json: process.cwd: {}", cwd.display()))?;
    exec::chdir_inside_root(cwd)?;
    let args = process.args().clone().unwrap_or_default();
    // A missing program is reported when the container starts (exit 127, like a shell), so
    // that `create` of such a bundle still follows the lifecycle.
    let program =
        exec::find_program(&args[0], &env).and_then(|path| exec::Program::new(&path, &args, &env));

    // When the seccomp filter goes in (runc's order). Without no_new_privs the kernel wants
    // CAP_SYS_ADMIN for it, so it goes in before the switch of user; with a notify listener,
    // before `created` (the agent has the fd when create returns); else as the very last
    // step, so that hako itself makes no syscall under it but execve.
    let nnp = process.no_new_privileges().unwrap_or(false);
    let (early, before_created, last) = match &cfg.seccomp {
        Some(p) if !nnp => (Some(p), None, None),
        Some(p) if p.listener.is_some() => (None, Some(p), None),
        p => (None, None, p.as_ref()),
    };

    // Identity and privileges: bounding set while still root, then user, then the other sets.
    let caps = &cfg.caps;
    capabilities::apply_bounding(caps)?;
    if let Some(plan) = early {
        install_seccomp(plan, chan)?;
    }
    user::keep_caps(true)?;
    user::switch(process.user(), may_setgroups(&proc))?;
    user::keep_caps(false)?;
    capabilities::apply_sets(caps)?;
    user::set_umask(process.user());
    if nnp {
        nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    if let Some(plan) = before_created {
        install_seccomp(plan, chan)?;
    }

    // Nothing of the caller's reaches the program but stdio and the preserved fds.
    fds::cloexec_from(3 + cfg.preserve_fds);
    lsm::apply_exec_labels(spec, &proc)?;
    chan.send(&Msg::Created)?;
    let start = wait_for_start(&proc, cfg.exec_fifo.as_raw_fd())?;
    // `hako start` reads the fifo until it closes, at execve (close-on-exec) or at our exit:
    // what it finds there is why the program did not run.
    let fail = |err: anyhow::Error| -> ! {
        let _ = (&start).write_all(format!("{err:#}").as_bytes());
        // SAFETY: see main(); the error is reported by `start`, not again here.
        unsafe { libc::_exit(1) }
    };
    let own = own_state(cfg, Status::Created);
    if let Err(err) = hooks::run_all(spec, Kind::StartContainer, &own, Some(&env)) {
        fail(err);
    }
    if let Some(plan) = last {
        if let Err(err) = seccomp::install(plan) {
            fail(err);
        }
    }
    let err = match program {
        Ok(program) => program.exec(),
        Err(e) => e,
    };
    // A program that cannot run is the container's failure, not the runtime's (exit 127 like a
    // shell): the container's stderr says why.
    eprintln!("hako: {err:#}");
    // SAFETY: see main().
    unsafe { libc::_exit(127) }
}

/// Installs the filter; a notify fd goes straight to the parent, which hands it to the agent.
fn install_seccomp(plan: &SeccompPlan, chan: &Channel) -> Result<()> {
    // Encoded first: between the install and the send nothing may allocate or make another
    // syscall, which the filter could hand to an agent that has no fd yet.
    let msg = Channel::encode(&Msg::SeccompListener)?;
    if let Some(fd) = seccomp::install(plan)? {
        chan.send_with_fd(&msg, fd.as_fd())?;
    }
    Ok(())
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

/// Whether setgroups(2) is allowed (not denied in this user namespace).
fn may_setgroups(proc: &ProcFs) -> bool {
    proc.read_to_string("self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true)
}

/// The home directory of `uid` in the container's /etc/passwd, else "/".
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2] == uid.to_string())
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| "/".to_string())
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
