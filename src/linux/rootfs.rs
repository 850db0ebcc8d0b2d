//! The container's root filesystem, in runc's order: make / a slave (or `rootfsPropagation`),
//! bind the rootfs onto itself, mount `mounts[]`, populate /dev, run createContainer hooks,
//! pivot_root, then masked and read-only paths and a read-only root.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::Spec;

use super::mountinfo::{self, CgroupLine, Mount};
use super::mounts::{self, MountPlan};

/// What the rootfs setup needs besides the spec.
pub struct RootfsOptions<'a> {
    pub rootfs: &'a Path,
    pub no_pivot: bool,
    pub in_userns: bool,
    pub has_cgroup_ns: bool,
    /// User namespaces holding the idmaps of idmapped mounts, by `mounts[]` index.
    pub idmaps: &'a [(usize, OwnedFd)],
    /// Bind sources the parent opened (O_PATH), by `mounts[]` index.
    pub sources: &'a [(usize, OwnedFd)],
    /// The host's cgroup mounts as the parent read them (None: read mountinfo here).
    pub cgroup_mounts: Option<&'a [Mount]>,
}

/// `linux.rootfsPropagation` as (the propagation of the runtime's / in the new mount namespace
/// before pivot_root, the propagation of the container's / after it). Default: rslave before,
/// nothing after (runc's default). Unbindable can only be applied after the rootfs is bound.
pub fn root_propagation(spec: &Spec) -> Result<(MsFlags, Option<MsFlags>)> {
    use MsFlags as F;
    let value = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let flags = match value.as_deref() {
        None | Some("") => return Ok((F::MS_SLAVE | F::MS_REC, None)),
        Some("private") => F::MS_PRIVATE,
        Some("rprivate") => F::MS_PRIVATE | F::MS_REC,
        Some("shared") => F::MS_SHARED,
        Some("rshared") => F::MS_SHARED | F::MS_REC,
        Some("slave") => F::MS_SLAVE,
        Some("rslave") => F::MS_SLAVE | F::MS_REC,
        Some("unbindable") => F::MS_UNBINDABLE,
        Some("runbindable") => F::MS_UNBINDABLE | F::MS_REC,
        Some(other) => {
            bail!("config.json: linux.rootfsPropagation: {other:?} is not a propagation type")
        }
    };
    let before = if flags.contains(F::MS_UNBINDABLE) {
        F::MS_SLAVE | F::MS_REC
    } else if flags.contains(F::MS_PRIVATE) {
        F::MS_PRIVATE | F::MS_REC
    } else {
        flags | F::MS_REC
    };
    Ok((before, Some(flags)))
}

/// The planned `mounts[]`, in order.
pub fn plan_mounts(spec: &Spec) -> Result<Vec<MountPlan>> {
    let label = spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref());
    spec.mounts()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            let mut plan = mounts::plan(i, m)?;
            if !plan.is_bind {
                plan.data = super::lsm::with_mount_label(&plan.data, label);
            }
            Ok(plan)
        })
        .collect()
}

fn none() -> Option<&'static str> {
    None
}

pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let fd = open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: fresh fd from open(2).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Everything up to (not including) pivot_root. Runs in the container's mount namespace.
/// Returns the read-only tmpfs mounts still writable, for `finish`.
pub fn prepare<'p>(
    spec: &Spec,
    plans: &'p [MountPlan],
    nodes: &[super::devices::DeviceNode],
    opts: &RootfsOptions,
) -> Result<ReadOnlyLater<'p>> {
    let (propagation, _) = root_propagation(spec)?;
    mount(none(), "/", none(), propagation, none())
        .context("config.json: linux.rootfsPropagation: set the propagation of /")?;
    if propagation.contains(MsFlags::MS_SHARED) {
        // pivot_root refuses a new root whose parent mount is shared.
        let parent = opts.rootfs.parent().unwrap_or(Path::new("/"));
        let mount_point = mount_point_of(parent)?;
        mount(none(), &mount_point, none(), MsFlags::MS_PRIVATE, none())
            .with_context(|| format!("make {} private", mount_point.display()))?;
    }
    mount(
        Some(opts.rootfs),
        opts.rootfs,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none(),
    )
    .with_context(|| format!("bind rootfs {}", opts.rootfs.display()))?;
    let root = open_dir(opts.rootfs)?;
    crate::trace::phase("root propagation set, rootfs bound");
    let mut ro_later = Vec::new();
    for m in plans {
        if m.fstype == "cgroup" && !m.is_bind {
            mount_cgroup(&root, m, opts)?;
        } else {
            let idmap = opts
                .idmaps
                .iter()
                .find(|(i, _)| *i == m.index)
                .map(|(_, fd)| fd);
            let source = opts
                .sources
                .iter()
                .find(|(i, _)| *i == m.index)
                .map(|(_, fd)| fd);
            if let Some(top) = mounts::apply(&root, m, opts.in_userns, idmap, source)? {
                ro_later.push((m, top));
            }
        }
        if crate::trace::enabled() {
            crate::trace::phase(&format!("mount {}", m.destination.display()));
        }
    }
    let dev_is_bound = plans
        .iter()
        .any(|m| m.is_bind && mounts::relative(&m.destination) == Path::new("dev"));
    if !dev_is_bound {
        super::devices::populate_default(&root, opts.in_userns)?;
    }
    super::devices::create_configured(&root, nodes, opts.in_userns)?;
    crate::trace::phase("devices made in /dev");
    Ok(ro_later)
}

/// Read-only tmpfs mounts made writable to be filled, each with its root opened when mounted.
pub type ReadOnlyLater<'p> = Vec<(&'p MountPlan, OwnedFd)>;

/// pivot_root (or a chroot for --no-pivot), leaving the container's root at /.
pub fn enter(opts: &RootfsOptions) -> Result<()> {
    if opts.no_pivot {
        hide_outer_proc_and_sys(opts.rootfs)?;
        chdir(opts.rootfs).context("chdir rootfs")?;
        mount(Some(opts.rootfs), "/", none(), MsFlags::MS_MOVE, none())
            .context("move rootfs to /")?;
        chroot(".").context("chroot")?;
        chdir("/").context("chdir /")?;
        return Ok(());
    }
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(opts.rootfs)?;
    fchdir(new.as_raw_fd()).context("fchdir rootfs")?;
    pivot_root(".", ".").context("pivot_root")?;
    // The old root is now stacked under the new one: detach it.
    fchdir(old.as_raw_fd()).context("fchdir old root")?;
    mount(
        none(),
        ".",
        none(),
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        none(),
    )
    .context("old root slave")?;
    umount2(".", MntFlags::MNT_DETACH).context("detach old root")?;
    chdir("/").context("chdir /")?;
    Ok(())
}

/// With --no-pivot the runtime's mounts stay in the container's mount namespace under its
/// root, and a procfs or sysfs there that is fully visible lets the container mount a fresh,
/// unmasked one (in a user namespace of its own). Those outside the rootfs are detached, or
/// covered with an empty tmpfs where they cannot be, as runc does.
fn hide_outer_proc_and_sys(rootfs: &Path) -> Result<()> {
    let mut outer: Vec<Mount> = mountinfo::read_own()?
        .into_iter()
        .filter(|m| matches!(m.fstype.as_str(), "proc" | "sysfs"))
        .filter(|m| !m.mount_point.starts_with(rootfs))
        .collect();
    // Deepest first, so a mount is not hidden by its parent's detach before its turn.
    outer.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
    for m in outer {
        if umount2(&m.mount_point, MntFlags::MNT_DETACH).is_err() {
            mount(
                Some("tmpfs"),
                &m.mount_point,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )
            .with_context(|| format!("--no-pivot: hide {}", m.mount_point.display()))?;
        }
    }
    Ok(())
}

/// Without a mount namespace of its own the container shares the runtime's mounts: mounting
/// anything would change the host, so the init only changes its root.
pub fn chroot_only(opts: &RootfsOptions) -> Result<()> {
    chroot(opts.rootfs).with_context(|| format!("chroot {}", opts.rootfs.display()))?;
    chdir("/").context("chdir /")?;
    Ok(())
}

/// After pivot_root: the container's / propagation, masked paths, read-only paths, read-only
/// tmpfs mounts and root.
pub fn finish(spec: &Spec, ro_later: ReadOnlyLater) -> Result<()> {
    if let (_, Some(flags)) = root_propagation(spec)? {
        mount(none(), "/", none(), flags, none())
            .context("config.json: linux.rootfsPropagation")?;
    }
    for (m, top) in ro_later {
        // The tmpfs itself, through the fd opened when it was mounted: by now a later mount
        // (a volume) may cover its path, and a remount with the tmpfs's flags would clear
        // that mount's nosuid/nodev/noexec. A bind remount changes this mount only, and keeps
        // the flags it has (should a swap of the path have led `top` elsewhere when opened).
        let target = mounts::fd_path(&top);
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | m.flags;
        let flags = flags | mounts::locked_flags(&target);
        mount(none(), &target, none(), flags, none()).with_context(|| {
            format!(
                "{}: remount {} read-only",
                m.field(),
                m.destination.display()
            )
        })?;
    }
    if let Some(linux) = spec.linux() {
        let root = open_dir(Path::new("/"))?;
        let mut null = None;
        for p in linux.masked_paths().iter().flatten() {
            mask_path(&root, &mut null, Path::new(p))
                .with_context(|| format!("config.json: linux.maskedPaths: {p}"))?;
        }
        for p in linux.readonly_paths().iter().flatten() {
            readonly_path(Path::new(p))
                .with_context(|| format!("config.json: linux.readonlyPaths: {p}"))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        let flags = flags | mounts::locked_flags(Path::new("/"));
        mount(none(), "/", none(), flags, none())
            .context("config.json: root.readonly: remount / read-only")?;
    }
    Ok(())
}

/// Masks a path: a directory gets an empty read-only tmpfs, anything else /dev/null. Both the
/// target and /dev/null are opened once, inside the root, and mounted by fd: what was checked is
/// what gets mounted (CVE-2025-31133).
fn mask_path(root: &OwnedFd, null: &mut Option<OwnedFd>, path: &Path) -> Result<()> {
    let target = match mounts::open_in_root(root, &mounts::relative(path)) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = nix::sys::stat::fstat(target.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return mounts::attach_tree(&mounts::detached_empty_tmpfs()?, &target);
    }
    if null.is_none() {
        *null = Some(open_dev_null(root)?);
    }
    mounts::bind_fd(null.as_ref().expect("opened above"), &target)
}

/// The container's /dev/null, checked to be the null device (1:3), as an O_PATH fd.
fn open_dev_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = mounts::open_in_root(root, Path::new("dev/null")).context("/dev/null")?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).context("/dev/null")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        bail!("/dev/null is not the null device (1:3): refusing to mask with it");
    }
    Ok(fd)
}

fn readonly_path(path: &Path) -> Result<()> {
    // lstat: a dangling or looping symlink is an error from mount(2), not a path to skip.
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    mount(
        Some(path),
        path,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none(),
    )?;
    let flags =
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | mounts::locked_flags(path);
    mount(none(), path, none(), flags, none())?;
    Ok(())
}

/// The mount point of the mount holding `path` (the longest mount point that is its prefix).
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    Ok(mountinfo::read_own()?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/")))
}

/// The host's cgroup hierarchies, with their controllers (the super options but rw/ro): those
/// the parent read, else from mountinfo, where only the cgroup lines are parsed (a busy host
/// has hundreds of others).
fn host_hierarchies(given: Option<&[Mount]>) -> Result<Vec<Mount>> {
    let mut out = match given {
        Some(mounts) => mounts.to_vec(),
        None => {
            let path = Path::new("/proc/self/mountinfo");
            let text = mountinfo::read_small(path).context("/proc/self/mountinfo")?;
            let cgroup_lines = text.lines().filter(|l| l.contains(" - cgroup"));
            cgroup_lines.flat_map(mountinfo::parse).collect()
        }
    };
    out.retain(|m| m.fstype == "cgroup" || m.fstype == "cgroup2");
    for m in &mut out {
        m.super_options = m
            .super_options
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect::<Vec<_>>()
            .join(",");
    }
    Ok(out)
}

/// A `cgroup` mount: with the host's v1 (or hybrid) hierarchies, a tmpfs holding one mount per
/// hierarchy (a fresh cgroup mount inside a cgroup namespace, else the container's own cgroup
/// bound from the host); on a unified host, cgroup2.
fn mount_cgroup(root: &OwnedFd, m: &MountPlan, opts: &RootfsOptions) -> Result<()> {
    let field = m.field();
    let rel = mounts::relative(&m.destination);
    let hierarchies = host_hierarchies(opts.cgroup_mounts)?;
    let own = mountinfo::read_cgroups("self")?;
    let base = Path::new("/sys/fs/cgroup");
    let ro = m.flags & MsFlags::MS_RDONLY;
    let flags = (m.flags - MsFlags::MS_RDONLY)
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    // One hierarchy, at the destination itself (unified), or one each under a tmpfs (v1).
    let unified_only = hierarchies.iter().all(|h| h.fstype == "cgroup2");
    // The tmpfs's root, opened once: it is new and nothing but this process has written to
    // it, so each hierarchy's directory is made and opened right under it (no lookup through
    // the rootfs, about 25 syscalls fewer per hierarchy).
    let top = if unified_only {
        None
    } else {
        let dest = mounts::create_destination(root, &rel, false)
            .with_context(|| format!("{field}.destination"))?;
        mount(
            Some("tmpfs"),
            &mounts::fd_path(&dest),
            Some("tmpfs"),
            flags,
            Some("mode=755"),
        )
        .with_context(|| format!("{field}: tmpfs for cgroup hierarchies"))?;
        Some(mounts::open_in_root(root, &rel).with_context(|| format!("{field}.destination"))?)
    };
    // The mount_setattr attributes that give the tmpfs and its binds `flags | ro` (None: flags
    // it cannot express; each bind is then remounted with them).
    let plain = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME;
    let setattr = ((flags - plain).is_empty() && top.is_some()).then(|| {
        let ro = if ro.is_empty() {
            0
        } else {
            mounts::MOUNT_ATTR_RDONLY
        };
        ro | mounts::MOUNT_ATTR_NOSUID | mounts::MOUNT_ATTR_NODEV | mounts::MOUNT_ATTR_NOEXEC
    });
    let mut in_tmpfs_bound: Vec<PathBuf> = Vec::new();
    for h in &hierarchies {
        let name = match h.mount_point.strip_prefix(base) {
            Ok(_) if unified_only => PathBuf::new(),
            Ok(name) if !name.as_os_str().is_empty() => name.to_path_buf(),
            _ => continue,
        };
        let in_tmpfs = top.as_ref().filter(|_| is_one_component(&name));
        let dest_rel = rel.join(&name);
        let open_dest = |create: bool| -> Result<OwnedFd> {
            match in_tmpfs {
                Some(top) => open_under(top, &name, create),
                None => mounts::create_destination(root, &dest_rel, false),
            }
        };
        if opts.has_cgroup_ns {
            let sub = open_dest(true)?;
            let data = (!h.super_options.is_empty()).then_some(h.super_options.as_str());
            mount(
                Some("cgroup"),
                &mounts::fd_path(&sub),
                Some(h.fstype.as_str()),
                flags | ro,
                data,
            )
            .with_context(|| format!("{field}: mount {} {}", h.fstype, name.display()))?;
        } else if let Some(path) = own_cgroup_in(&own, h) {
            // Without a cgroup namespace: the container's own cgroup, bound from the host, then
            // remounted through a fresh fd (the first one names the directory under the bind)
            // — or, in the tmpfs, left for the one recursive mount_setattr below.
            let src = h.mount_point.join(path.strip_prefix("/").unwrap_or(&path));
            let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | ro;
            let bound = open_dest(true).and_then(|dest| {
                mount(
                    Some(&src),
                    &mounts::fd_path(&dest),
                    none(),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none(),
                )?;
                let bound = match in_tmpfs {
                    Some(_) if setattr.is_some() => {
                        in_tmpfs_bound.push(name.clone());
                        return Ok(());
                    }
                    Some(top) => open_under(top, &name, false)?,
                    None => mounts::open_in_root(root, &dest_rel)?,
                };
                mount(none(), &mounts::fd_path(&bound), none(), remount, none())?;
                Ok(())
            });
            bound.with_context(|| format!("{field}: bind {}", src.display()))?;
        }
    }
    // The tmpfs and every bind in it made read-only (and nosuid, nodev, noexec) at once: one
    // syscall instead of a remount per hierarchy. Where the kernel lacks mount_setattr (before
    // 5.12), each bind is remounted on its own.
    if let (Some(top), Some(attrs)) = (&top, setattr) {
        match mounts::set_recursive_attrs(top, attrs, 0) {
            Ok(()) => return Ok(()),
            Err(e) => tracing::debug!("{field}: {e:#}: remounting each hierarchy instead"),
        }
        let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | ro;
        for name in &in_tmpfs_bound {
            open_under(top, name, false)
                .and_then(|b| {
                    Ok(mount(
                        none(),
                        &mounts::fd_path(&b),
                        none(),
                        remount,
                        none(),
                    )?)
                })
                .with_context(|| format!("{field}: remount {} read-only", name.display()))?;
        }
    }
    if let Some(top) = top.filter(|_| !ro.is_empty()) {
        let flags = MsFlags::MS_REMOUNT | flags | ro;
        mount(
            none(),
            &mounts::fd_path(&top),
            none(),
            flags,
            Some("mode=755"),
        )
        .with_context(|| format!("{field}: remount read-only"))?;
    }
    Ok(())
}

fn is_one_component(name: &Path) -> bool {
    let mut c = name.components();
    matches!(c.next(), Some(std::path::Component::Normal(_))) && c.next().is_none()
}

/// Opens (making it first when `create`) the directory `name` right under `dir`, never
/// following a symlink; a mount on it is crossed, so after a bind this is the bound root.
fn open_under(dir: &OwnedFd, name: &Path, create: bool) -> Result<OwnedFd> {
    if create {
        match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755))
        {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", name.display())),
        }
    }
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", name.display()))?;
    // SAFETY: fresh fd from openat(2), owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// This process's cgroup in hierarchy `h`.
fn own_cgroup_in(own: &[CgroupLine], h: &Mount) -> Option<PathBuf> {
    let options: Vec<&str> = h.super_options.split(',').collect();
    own.iter()
        .find(|l| {
            if h.fstype == "cgroup2" {
                l.controllers.is_empty()
            } else {
                !l.controllers.is_empty()
                    && l.controllers.iter().all(|c| options.contains(&c.as_str()))
            }
        })
        .map(|l| l.path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_default_and_unknown() {
        let spec = Spec::default();
        assert_eq!(
            root_propagation(&spec).unwrap(),
            (MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
        );
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap();
        linux.set_rootfs_propagation(Some("sideways".into()));
        spec.set_linux(Some(linux.clone()));
        let err = root_propagation(&spec).unwrap_err().to_string();
        assert!(err.contains("linux.rootfsPropagation"), "{err}");
        linux.set_rootfs_propagation(Some("unbindable".into()));
        spec.set_linux(Some(linux));
        assert_eq!(
            root_propagation(&spec).unwrap(),
            (
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                Some(MsFlags::MS_UNBINDABLE)
            )
        );
    }

    #[test]
    fn default_spec_mounts_plan() {
        let plans = plan_mounts(&Spec::default()).unwrap();
        assert_eq!(plans[0].destination, Path::new("/proc"));
        assert!(plans.iter().any(|p| p.fstype == "cgroup"));
    }
}
