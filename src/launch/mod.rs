//! Making the container's init: the parent side. clone(2) with the new namespaces (no exec
//! of hako), then drive the handshake: cgroup, id maps, prestart/createRuntime hooks, `created`.

pub mod exec;
pub mod finalize;
pub mod init;
pub mod plan;
pub mod sync;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::container::Record;
use crate::linux::mounts;
use crate::linux::namespaces::NamespacePlan;
use crate::linux::seccomp::Listener;
use plan::{ContainerPlan, ProcessPlan};
use sync::{Channel, Msg};

/// Everything the init needs, prepared by the parent before clone (the init's copy of memory
/// carries it across).
pub struct InitConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub ns: NamespacePlan,
    /// Opened namespace files to join, in order.
    pub joins: Vec<(OwnedFd, CloneFlags)>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// fds 3..3+preserve_fds pass into the container.
    pub preserve_fds: u32,
    pub console_socket: Option<OwnedFd>,
    /// O_PATH fd of `<root>/<id>/exec.fifo`.
    pub exec_fifo: OwnedFd,
    /// User namespaces with the idmaps of idmapped mounts, by `mounts[]` index.
    pub idmaps: Vec<(usize, OwnedFd)>,
    /// The container's record (pid not yet known): the state the init's own hooks get.
    pub record: Record,
    /// The process's settings, the seccomp program and capability sets included.
    pub process: ProcessPlan,
    /// Mounts, sysctls, clocks, personality.
    pub container: ContainerPlan,
    /// hako runs rootless (linux/userns.rs): device nodes cannot be made, even without a user
    /// namespace in the config (rootless podman runs hako inside its own).
    pub rootless: bool,
    /// The cgroup's v1 `tasks` files: the init writes itself in first thing (cgroups/v1.rs).
    pub cgroup_tasks: Vec<OwnedFd>,
    /// The cgroup2 directory the init is cloned into (CLONE_INTO_CGROUP, cgroups/v2.rs).
    pub clone_into: Option<OwnedFd>,
    /// Whether the parent has work when the rootfs is ready (hooks, network devices, a new
    /// pid to record, a user namespace's messages before it): else `Go` goes right after
    /// `proceeding`, and the init does not report RootfsReady and wait for the answer.
    pub rootfs_ready_handshake: bool,
    /// The host's cgroup mounts, read by the parent (empty: the init reads mountinfo).
    pub cgroup_mounts: Vec<crate::linux::mountinfo::Mount>,
}

/// `InitConfig::rootfs_ready_handshake`. The parent's other answers to requests of the init
/// (id maps, mount sources) are in a user namespace only: with none, a `Go` sent early cannot
/// come before an answer the init waits for.
pub fn rootfs_ready_handshake(spec: &Spec, ns: &NamespacePlan, netdevs: bool) -> bool {
    spec.hooks().is_some() || ns.fork_after || ns.has_user_ns || netdevs
}

/// What the parent does at the handshake's points.
pub trait Handshake {
    /// Right after clone, before the init does anything: put `pid` in the container's cgroup
    /// (unless it was born there, `in_cgroup`, or joins it itself).
    fn spawned(&mut self, pid: i32, in_cgroup: bool) -> Result<()>;
    /// The init goes on with its namespaces: what the parent does meanwhile.
    fn proceeding(&mut self, pid: i32) -> Result<()>;
    /// The init is in its namespaces with its mounts made, before pivot_root (its final pid is
    /// known): run the prestart and createRuntime hooks.
    fn rootfs_ready(&mut self, pid: i32) -> Result<()>;
    /// The init installed a seccomp filter that notifies: hand its fd to the agent.
    fn seccomp_listener(&mut self, pid: i32, listener: &Listener, fd: OwnedFd) -> Result<()>;
}

/// clone(2) with `flags`, fork-like (the child runs on a copy of this stack).
/// Returns the child's pid in the parent and 0 in the child.
fn clone_process(flags: CloneFlags) -> Result<i32> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a null stack makes clone behave like fork(2): the child continues on a
    // copy-on-write copy of this stack. hako is single-threaded here, so no lock is held by
    // another thread across the call.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("clone the container's init");
    }
    if rc == 0 {
        crate::trace::in_child();
    }
    Ok(rc as i32)
}

/// clone3(2)'s arguments (linux/sched.h, CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like `clone_process`, the child born in the cgroup2 directory `cgroup`. None when this
/// kernel cannot (before 5.7, or the cgroup refuses): the caller clones as usual.
fn clone_into_cgroup(flags: CloneFlags, cgroup: RawFd) -> Option<Result<i32>> {
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: args is a valid clone_args of the size passed; a zero stack makes clone3 behave
    // like fork(2) (the child continues on a copy of this stack). hako is single-threaded here.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == 0 {
        crate::trace::in_child();
    }
    if rc >= 0 {
        return Some(Ok(rc as i32));
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EOPNOTSUPP | libc::EBUSY) => {
            tracing::debug!("clone3 with CLONE_INTO_CGROUP: {err}: the parent moves the init");
            None
        }
        _ => Some(Err(err).context("clone the container's init (clone3)")),
    }
}

/// Kills what the handshake started (used on every error path).
fn kill_and_reap(first: i32, last: i32) {
    for pid in [last, first] {
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = waitpid(Pid::from_raw(first), None);
}

/// Spawns the init and drives it to `created`. Returns the container's pid (host view).
pub fn spawn_init(cfg: &InitConfig, parent: &mut dyn Handshake) -> Result<i32> {
    let (parent_end, init_end) = sync::pair()?;
    let into = cfg
        .clone_into
        .as_ref()
        .and_then(|fd| clone_into_cgroup(cfg.ns.clone_flags, fd.as_raw_fd()));
    let in_cgroup = into.is_some();
    if in_cgroup {
        tracing::debug!("init cloned into its cgroup (CLONE_INTO_CGROUP)");
    }
    let first = match into {
        Some(r) => r?,
        None => clone_process(cfg.ns.clone_flags)?,
    };
    if first == 0 {
        drop(parent_end);
        init::main(cfg, init_end);
    }
    drop(init_end);
    if crate::trace::enabled() {
        let ns = crate::linux::namespaces::flag_names(cfg.ns.clone_flags);
        crate::trace::phase(&format!("init cloned (new namespaces: {ns})"));
    }
    let mut pid = first;
    let result = drive(cfg, parent, &parent_end, first, in_cgroup, &mut pid);
    if result.is_err() {
        kill_and_reap(first, pid);
    }
    result.map(|()| pid)
}

fn drive(
    cfg: &InitConfig,
    parent: &mut dyn Handshake,
    chan: &Channel,
    first: i32,
    in_cgroup: bool,
    pid: &mut i32,
) -> Result<()> {
    parent.spawned(first, in_cgroup)?;
    if cfg.ns.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
        crate::linux::userns::write_maps(cfg.spec, first)?;
    }
    chan.send(&Msg::Proceed)?;
    parent.proceeding(first)?;
    if !cfg.rootfs_ready_handshake {
        // An init gone meanwhile shows at the next receive (its error, or its exit status).
        let _ = chan.send(&Msg::Go);
    }
    loop {
        let (msg, fd) = match chan.recv_with_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
            Some(Msg::WriteIdMaps) => {
                crate::linux::userns::write_maps(cfg.spec, first)?;
                crate::trace::phase("uid and gid maps written");
                chan.send(&Msg::IdMapsWritten)?;
            }
            Some(Msg::Pid { pid: p }) => {
                *pid = p;
                // The intermediate process exits once it has forked the container's pid 1.
                match waitpid(Pid::from_raw(first), None) {
                    Ok(WaitStatus::Exited(_, 0)) => {}
                    other => bail!("container init: intermediate process ended badly: {other:?}"),
                }
                crate::trace::phase("intermediate process reaped");
            }
            Some(Msg::OpenMountSources) => send_mount_sources(cfg, chan, *pid)?,
            Some(Msg::RootfsReady) => {
                parent.rootfs_ready(*pid)?;
                chan.send(&Msg::Go)?;
            }
            Some(Msg::SeccompListener) => {
                let listener = cfg
                    .process
                    .seccomp
                    .as_ref()
                    .and_then(|p| p.listener.as_ref());
                let (Some(listener), Some(fd)) = (listener, fd) else {
                    bail!("container init: seccomp listener message without a listener or fd");
                };
                parent.seccomp_listener(*pid, listener, fd)?;
            }
            Some(Msg::Created) => return Ok(()),
            Some(Msg::Error { msg }) => bail!("{msg}"),
            Some(other) => bail!("container init: unexpected message {other:?}"),
            None => {
                let status = waitpid(Pid::from_raw(first), None);
                bail!("container init exited before it was created ({status:?})");
            }
        }
    }
}

/// In a user namespace the init cannot reach a bind source only the host's root may (below a
/// 0700 directory). The parent, host root, opens each source for it through the init's root:
/// the init's mount namespace before pivot_root, a copy of the host's mounts, so the fd is one
/// the init can bind from and the path means what it means on the host (symlinks resolve
/// inside that root, magic links are refused). A relative source is relative to the working
/// directory, as for the init. A source the parent cannot open goes without an fd; the init then
/// tries the path itself and names the field if that fails.
fn send_mount_sources(cfg: &InitConfig, chan: &Channel, pid: i32) -> Result<()> {
    use std::os::fd::AsFd;
    // Not reachable (a parent without the rights over the init, as when rootless): no fds.
    let root = crate::linux::rootfs::open_dir(Path::new(&format!("/proc/{pid}/root"))).ok();
    let cwd = std::env::current_dir().ok();
    for m in cfg.container.mounts.iter().filter(|m| m.is_bind) {
        let msg = Msg::MountSource { index: m.index };
        let source = m.source.as_deref().and_then(|s| match s.is_absolute() {
            true => Some(s.to_path_buf()),
            false => cwd.as_ref().map(|c| c.join(s)),
        });
        let fd = root
            .as_ref()
            .zip(source)
            .and_then(|(root, s)| mounts::open_in_root(root, &mounts::relative(&s)).ok());
        match fd {
            Some(fd) => chan.send_with_fd(&Channel::encode(&msg)?, fd.as_fd())?,
            None => chan.send(&msg)?,
        }
    }
    Ok(())
}

/// The fds a container gets beyond stdio: 3 .. 3+n.
pub fn preserved(n: u32) -> Vec<RawFd> {
    (3..3 + n as RawFd).collect()
}

/// For `create`: the O_PATH fd the init reopens to block on the exec fifo.
pub fn open_fifo_path(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("{}", path.display()))?;
    // SAFETY: fresh fd from open(2).
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}
