//! Making the container's init: the parent side. clone(2) with the new namespaces (no exec
//! of hako), then drive the handshake: cgroup, id maps, prestart/createRuntime hooks, `created`.

pub mod exec;
pub mod finalize;
pub mod init;
pub mod plan;
pub mod sync;

use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::container::Record;
use crate::linux::mounts;
use crate::linux::namespaces::{self, NamespacePlan};
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
}

/// What the parent does at the handshake's points.
pub trait Handshake {
    /// Right after clone, before the init does anything: put `pid` in the container's cgroup and
    /// record it.
    fn spawned(&mut self, pid: i32) -> Result<()>;
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

fn write_id_maps(spec: &Spec, pid: i32) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (file, maps, field) in [
        ("uid_map", linux.uid_mappings(), "linux.uidMappings"),
        ("gid_map", linux.gid_mappings(), "linux.gidMappings"),
    ] {
        let text = namespaces::id_map_text(maps.as_deref().unwrap_or_default());
        if text.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text)
            .with_context(|| format!("config.json: {field}: write {path}"))?;
    }
    Ok(())
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
    let first = clone_process(cfg.ns.clone_flags)?;
    if first == 0 {
        drop(parent_end);
        init::main(cfg, init_end);
    }
    drop(init_end);
    if crate::trace::enabled() {
        let ns = namespaces::flag_names(cfg.ns.clone_flags);
        crate::trace::phase(&format!("init cloned (new namespaces: {ns})"));
    }
    let mut pid = first;
    let result = drive(cfg, parent, &parent_end, first, &mut pid);
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
    pid: &mut i32,
) -> Result<()> {
    parent.spawned(first)?;
    if cfg.ns.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
        write_id_maps(cfg.spec, first)?;
    }
    chan.send(&Msg::Proceed)?;
    loop {
        let (msg, fd) = match chan.recv_with_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
            Some(Msg::WriteIdMaps) => {
                write_id_maps(cfg.spec, first)?;
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
