//! Mounts: `mounts[]` entries turned into plans (flags, data, propagation, recursive
//! attributes), then applied with every destination resolved inside the rootfs by
//! openat2(RESOLVE_IN_ROOT), so a symlink in the rootfs never leads a mount out of it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

/// One `mounts[]` entry as mount(2) calls.
#[derive(Debug, Clone, PartialEq)]
pub struct MountPlan {
    pub index: usize,
    pub source: Option<PathBuf>,
    pub destination: PathBuf,
    pub fstype: String,
    /// Flags for the first mount(2) call (for binds: MS_BIND and maybe MS_REC).
    pub flags: MsFlags,
    /// For binds: flags that need a remount to take effect (ro, nosuid, ...).
    pub remount_flags: MsFlags,
    pub data: String,
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (rro, rnosuid, ...) set and cleared with mount_setattr(2).
    pub attr_set: u64,
    pub attr_clr: u64,
    pub is_bind: bool,
    /// runc's `tmpcopyup`: the new tmpfs starts with a copy of what it covers.
    pub tmpcopyup: bool,
    /// A read-only tmpfs is mounted writable (`flags` without MS_RDONLY), so that what goes
    /// inside it can be made (/dev's nodes and mounts, tmpcopyup), and made read-only after
    /// pivot_root, as runc does.
    pub ro_after: bool,
}

impl MountPlan {
    pub fn field(&self) -> String {
        format!("config.json: mounts[{}]", self.index)
    }
}

enum Opt {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    AttrSet(u64),
    AttrClr(u64),
    Ignore,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_ATIME: u64 = 0x70;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

fn option(name: &str) -> Option<Opt> {
    use MsFlags as F;
    use Opt::*;
    Some(match name {
        "defaults" => Ignore,
        "ro" => Set(F::MS_RDONLY),
        "rw" => Clear(F::MS_RDONLY),
        "suid" => Clear(F::MS_NOSUID),
        "nosuid" => Set(F::MS_NOSUID),
        "dev" => Clear(F::MS_NODEV),
        "nodev" => Set(F::MS_NODEV),
        "exec" => Clear(F::MS_NOEXEC),
        "noexec" => Set(F::MS_NOEXEC),
        "sync" => Set(F::MS_SYNCHRONOUS),
        "async" => Clear(F::MS_SYNCHRONOUS),
        "dirsync" => Set(F::MS_DIRSYNC),
        "remount" => Set(F::MS_REMOUNT),
        "mand" => Set(F::MS_MANDLOCK),
        "nomand" => Clear(F::MS_MANDLOCK),
        "atime" => Clear(F::MS_NOATIME),
        "noatime" => Set(F::MS_NOATIME),
        "diratime" => Clear(F::MS_NODIRATIME),
        "nodiratime" => Set(F::MS_NODIRATIME),
        "relatime" => Set(F::MS_RELATIME),
        "norelatime" => Clear(F::MS_RELATIME),
        "strictatime" => Set(F::MS_STRICTATIME),
        "nostrictatime" => Clear(F::MS_STRICTATIME),
        "silent" => Set(F::MS_SILENT),
        "loud" => Clear(F::MS_SILENT),
        "bind" => Set(F::MS_BIND),
        "rbind" => Set(F::MS_BIND | F::MS_REC),
        "private" => Propagation(F::MS_PRIVATE),
        "rprivate" => Propagation(F::MS_PRIVATE | F::MS_REC),
        "shared" => Propagation(F::MS_SHARED),
        "rshared" => Propagation(F::MS_SHARED | F::MS_REC),
        "slave" => Propagation(F::MS_SLAVE),
        "rslave" => Propagation(F::MS_SLAVE | F::MS_REC),
        "unbindable" => Propagation(F::MS_UNBINDABLE),
        "runbindable" => Propagation(F::MS_UNBINDABLE | F::MS_REC),
        "rro" => AttrSet(MOUNT_ATTR_RDONLY),
        "rrw" => AttrClr(MOUNT_ATTR_RDONLY),
        "rnosuid" => AttrSet(MOUNT_ATTR_NOSUID),
        "rsuid" => AttrClr(MOUNT_ATTR_NOSUID),
        "rnodev" => AttrSet(MOUNT_ATTR_NODEV),
        "rdev" => AttrClr(MOUNT_ATTR_NODEV),
        "rnoexec" => AttrSet(MOUNT_ATTR_NOEXEC),
        "rexec" => AttrClr(MOUNT_ATTR_NOEXEC),
        "rnodiratime" => AttrSet(MOUNT_ATTR_NODIRATIME),
        "rdiratime" => AttrClr(MOUNT_ATTR_NODIRATIME),
        "rnoatime" => AttrSet(MOUNT_ATTR_NOATIME),
        "rstrictatime" => AttrSet(MOUNT_ATTR_STRICTATIME),
        "rrelatime" | "ratime" | "rnorelatime" => AttrClr(MOUNT_ATTR_ATIME),
        "rnosymfollow" => AttrSet(MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => AttrClr(MOUNT_ATTR_NOSYMFOLLOW),
        // runc extensions and idmap options handled elsewhere or not applicable.
        "tmpcopyup" | "idmap" | "ridmap" | "nosymfollow" | "symfollow" => Ignore,
        _ => return None,
    })
}

/// Turns one `mounts[]` entry into a plan. Pure.
pub fn plan(index: usize, m: &Mount) -> Result<MountPlan> {
    let fstype = m.typ().clone().unwrap_or_default();
    let mut flags = MsFlags::empty();
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    let (mut attr_set, mut attr_clr) = (0, 0);
    for o in m.options().iter().flatten() {
        match option(o) {
            Some(Opt::Set(f)) => flags |= f,
            Some(Opt::Clear(f)) => flags -= f,
            Some(Opt::Propagation(f)) => propagation.push(f),
            Some(Opt::AttrSet(a)) => {
                attr_set |= a;
                attr_clr &= !a;
                if a & MOUNT_ATTR_ATIME != 0 {
                    attr_clr |= MOUNT_ATTR_ATIME;
                }
            }
            Some(Opt::AttrClr(a)) => {
                attr_clr |= a;
                attr_set &= !a;
            }
            Some(Opt::Ignore) => {}
            None => data.push(o.as_str()),
        }
    }
    let is_bind = fstype == "bind" || flags.contains(MsFlags::MS_BIND);
    if is_bind {
        flags |= MsFlags::MS_BIND;
    }
    let (flags, remount_flags) = if is_bind {
        let first = flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        (first, flags - first)
    } else {
        (flags, MsFlags::empty())
    };
    let ro_after = fstype == "tmpfs" && !is_bind && flags.contains(MsFlags::MS_RDONLY);
    let flags = match ro_after {
        true => flags - MsFlags::MS_RDONLY,
        false => flags,
    };
    let source = m.source().clone();
    if is_bind && source.is_none() {
        bail!("config.json: mounts[{index}].source: a bind mount needs a source");
    }
    Ok(MountPlan {
        index,
        source,
        destination: m.destination().clone(),
        fstype,
        flags,
        remount_flags,
        data: data.join(","),
        propagation,
        attr_set,
        attr_clr,
        is_bind,
        // runc's extension means something for tmpfs only; elsewhere runc ignores it too.
        tmpcopyup: m.typ().as_deref() == Some("tmpfs")
            && m.options().iter().flatten().any(|o| o == "tmpcopyup"),
        ro_after,
    })
}

/// proc and sysfs go on a real directory, never through a symlink or onto a file the rootfs
/// placed there (runc refuses the same: a /proc symlink has been used to fool LSM policies).
fn ordinary_dir_or_absent(root: &OwnedFd, rel: &Path, fstype: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(());
    };
    let Ok(dir) = open_in_root(root, parent) else {
        return Ok(()); // made later, as a directory
    };
    match nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            bail!("{fstype} must be mounted on ordinary directory, and this is not a directory (a symlink?)")
        }
        _ => Ok(()),
    }
}

/// tmpfs data: without `mode=`, the mode of the directory the tmpfs covers (`covered`, absent
/// when hako made the directory), as runc does; tmpfs's own default (1777) otherwise. Pure.
pub fn tmpfs_data(data: &str, covered: Option<u32>) -> String {
    let has_mode = data.split(',').any(|o| o.starts_with("mode="));
    match covered {
        Some(mode) if !has_mode => {
            let mode = format!("mode={:o}", mode & 0o7777);
            if data.is_empty() {
                mode
            } else {
                format!("{data},{mode}")
            }
        }
        _ => data.to_string(),
    }
}

/// tmpcopyup: copies the tree under `from` (the covered directory, an fd opened before the
/// mount) into `to` (the new tmpfs), keeping modes, owners, symlinks and device nodes. The source
/// is walked by fd with O_NOFOLLOW, so a symlink swapped in meanwhile is never followed out of
/// the rootfs; symlinks are copied as symlinks.
fn copy_tree(from: &OwnedFd, to: &Path) -> Result<()> {
    use nix::sys::stat::{fstatat, SFlag};
    use std::os::unix::ffi::OsStrExt;
    let nofollow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    let dir = nix::dir::Dir::openat(
        Some(from.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<CString> = dir
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let dst = to.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let st = fstatat(Some(from.as_raw_fd()), name.as_c_str(), nofollow)?;
        let kind = SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT);
        let open = |flags: OFlag| -> Result<OwnedFd> {
            let fd = nix::fcntl::openat(
                Some(from.as_raw_fd()),
                name.as_c_str(),
                flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            Ok(unsafe_owned(fd))
        };
        match kind {
            SFlag::S_IFDIR => {
                std::fs::create_dir(&dst)?;
                copy_tree(&open(OFlag::O_RDONLY | OFlag::O_DIRECTORY)?, &dst)?;
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(from.as_raw_fd()), name.as_c_str())?;
                std::os::unix::fs::symlink(target, &dst)?;
            }
            SFlag::S_IFREG => {
                let mut src = std::fs::File::from(open(OFlag::O_RDONLY)?);
                std::io::copy(&mut src, &mut std::fs::File::create(&dst)?)?;
            }
            SFlag::S_IFBLK | SFlag::S_IFCHR | SFlag::S_IFIFO => {
                let mode = Mode::from_bits_truncate(st.st_mode);
                nix::sys::stat::mknod(&dst, kind, mode, st.st_rdev)?;
            }
            _ => continue, // sockets belong to a process; runc skips them too
        }
        std::os::unix::fs::lchown(&dst, Some(st.st_uid), Some(st.st_gid))?;
        // After chown, which clears set-id bits.
        if kind != SFlag::S_IFLNK {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(st.st_mode & 0o7777);
            std::fs::set_permissions(&dst, mode)?;
        }
    }
    Ok(())
}

/// The destination relative to the rootfs, with `..` kept for openat2 to clamp.
pub fn relative(dest: &Path) -> PathBuf {
    dest.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect()
}

fn openat2_in_root(root: RawFd, rel: &Path, flags: i32) -> nix::Result<OwnedFd> {
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    super::openat2(root, rel, flags, resolve)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Opens `rel` inside `root` (O_PATH), never leaving it; symlinks resolve as if `root` were /.
pub fn open_in_root(root: &OwnedFd, rel: &Path) -> nix::Result<OwnedFd> {
    if rel.as_os_str().is_empty() {
        return openat2_in_root(root.as_raw_fd(), Path::new("."), libc::O_PATH);
    }
    openat2_in_root(root.as_raw_fd(), rel, libc::O_PATH)
}

/// `rel` with every symlink resolved as if `root` were / (an absolute target restarts at the
/// root, `..` stops there), so the result names a place inside the root even when that place
/// does not exist yet. Used only to create what is missing; every open goes through openat2.
pub fn resolve_in_root(root: &OwnedFd, rel: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push_front = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            todo.push(c.as_os_str().to_os_string());
        }
    };
    push_front(&mut todo, rel);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        match name.to_str() {
            Some("/") => out.clear(),
            Some(".") | Some("") => {}
            Some("..") => {
                out.pop();
            }
            _ => {
                let candidate = out.join(&name);
                match nix::fcntl::readlinkat(Some(root.as_raw_fd()), &candidate) {
                    Ok(target) => {
                        links += 1;
                        if links > 40 {
                            bail!("{}: too many levels of symbolic links", rel.display());
                        }
                        push_front(&mut todo, Path::new(&target));
                    }
                    Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {
                        out = candidate
                    }
                    Err(e) => return Err(e).with_context(|| candidate.display().to_string()),
                }
            }
        }
    }
    Ok(out)
}

/// Opens `rel` inside `root`, first creating missing directories (and the last component as an
/// empty file when `file` is true), never outside the root.
pub fn create_in_root(root: &OwnedFd, rel: &Path, file: bool) -> Result<OwnedFd> {
    match open_in_root(root, rel) {
        Ok(fd) => Ok(fd),
        Err(nix::errno::Errno::ENOENT) => make_missing(root, &resolve_in_root(root, rel)?, file),
        Err(e) => Err(e.into()),
    }
}

/// Creates what is missing of `resolved` (a `resolve_in_root` result) and opens it; each
/// component by fd from the root down, never following a symlink.
fn make_missing(root: &OwnedFd, resolved: &Path, file: bool) -> Result<OwnedFd> {
    let comps: Vec<_> = resolved.components().collect();
    let mut parent = open_in_root(root, Path::new(""))?;
    for (i, c) in comps.iter().enumerate() {
        let name = c.as_os_str();
        let last = i + 1 == comps.len();
        let made = if last && file {
            nix::fcntl::openat(
                Some(parent.as_raw_fd()),
                name,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(|fd| drop(unsafe_owned(fd)))
        } else {
            nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o755),
            )
        };
        match made {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("create {}", resolved.display())),
        }
        // O_NOFOLLOW: a symlink swapped in meanwhile is refused, not followed.
        let fd = nix::fcntl::openat(
            Some(parent.as_raw_fd()),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", resolved.display()))?;
        parent = unsafe_owned(fd);
    }
    Ok(parent)
}

/// A detached copy of the mount tree at `path` under `dir` (open_tree OPEN_TREE_CLONE); with an
/// empty `path`, of the file `dir` itself refers to, so a bind never re-resolves a path.
pub fn clone_tree(dir: RawFd, path: &CString, extra: libc::c_uint) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let empty = if path.as_bytes().is_empty() {
        libc::AT_EMPTY_PATH as libc::c_uint
    } else {
        0
    };
    // SAFETY: path is a valid C string; the flags ask for a detached clone of the tree.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | empty | extra,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("open_tree");
    }
    Ok(unsafe_owned(fd as RawFd))
}

/// Attaches a detached tree on the file or directory `target` refers to.
pub fn attach_tree(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both ends are given as fds with empty paths; nothing is resolved by name.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("move_mount");
    }
    Ok(())
}

/// A detached, read-only, empty tmpfs, for masking a directory.
pub fn detached_empty_tmpfs() -> Result<OwnedFd> {
    detached_mount("tmpfs", &[])
}

/// A new read-only filesystem of type `fstype` with string `options`, as a detached mount
/// (fsopen + fsconfig + fsmount): reachable only through the returned fd.
pub fn detached_mount(fstype: &str, options: &[(&str, &str)]) -> Result<OwnedFd> {
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    let what = || format!("mount {fstype}");
    let name = CString::new(fstype)?;
    // SAFETY: the name is a valid C string; returns a new fs-context fd or -1.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), 1 as libc::c_uint) };
    if fs < 0 {
        return Err(std::io::Error::last_os_error()).with_context(what);
    }
    let fs = unsafe_owned(fs as RawFd);
    let config = |cmd: libc::c_uint, key: Option<&CString>, value: Option<&CString>| {
        let ptr = |s: Option<&CString>| s.map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: key and value are NUL-terminated strings or null, as `cmd` expects.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                cmd,
                ptr(key),
                ptr(value),
                0,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    for (key, value) in options {
        let (k, v) = (CString::new(*key)?, CString::new(*value)?);
        config(FSCONFIG_SET_STRING, Some(&k), Some(&v))
            .with_context(|| format!("{}: {key}={value}", what()))?;
    }
    config(FSCONFIG_CMD_CREATE, None, None).with_context(what)?;
    // SAFETY: turns the created superblock into a detached mount; flags are plain integers.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            1 as libc::c_uint,
            MOUNT_ATTR_RDONLY,
        )
    };
    if m < 0 {
        return Err(std::io::Error::last_os_error()).with_context(what);
    }
    Ok(unsafe_owned(m as RawFd))
}

/// Binds the file `source` (an open fd) on `target`: both as checked fds, never as paths.
pub fn bind_fd(source: &impl AsRawFd, target: &OwnedFd) -> Result<()> {
    attach_tree(
        &clone_tree(source.as_raw_fd(), &CString::default(), 0)?,
        target,
    )
}

fn unsafe_owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called with an fd just returned by a successful open(2)-like call.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn none() -> Option<&'static str> {
    None
}

/// Nothing is mounted inside the container's /proc, but for the files lxcfs-style tools
/// replace, as runc allows: a mount there could hide what the kernel says or stand in for it.
/// Checked on the path with the rootfs's symlinks resolved, and on the destination opened:
/// `on_procfs` (a procfs mounted elsewhere, reached through an image symlink, counts too).
pub fn check_not_inside_proc(resolved: &Path, on_procfs: bool) -> Result<()> {
    const ALLOWED: [&str; 9] = [
        "cpuinfo",
        "diskstats",
        "meminfo",
        "stat",
        "swaps",
        "uptime",
        "loadavg",
        "slabinfo",
        "sys/kernel/ns_last_pid",
    ];
    let inside = resolved.strip_prefix("proc").ok();
    let allowed = inside
        .is_some_and(|i| i.as_os_str().is_empty() || ALLOWED.iter().any(|a| i == Path::new(a)));
    if allowed || (inside.is_none() && !on_procfs) {
        return Ok(());
    }
    bail!(
        "/{} is inside /proc: refusing to mount there",
        resolved.display()
    )
}

/// Opens (creating what is missing) a mount destination inside the root, refusing one inside
/// a procfs.
pub fn create_destination(root: &OwnedFd, rel: &Path, file: bool) -> Result<OwnedFd> {
    let resolved = resolve_in_root(root, rel)?;
    destination(root, &resolved, open_in_root(root, rel), file)
}

/// `create_destination` given `rel` resolved and the result of opening it (one resolution
/// and one open for the checks and the creation both: creating directories and empty files
/// makes no symlink, so the resolution stays what it was).
fn destination(
    root: &OwnedFd,
    resolved: &Path,
    opened: nix::Result<OwnedFd>,
    file: bool,
) -> Result<OwnedFd> {
    let dest = match opened {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => make_missing(root, resolved, file)?,
        Err(e) => return Err(e.into()),
    };
    check_not_inside_proc(resolved, super::procfs::is_procfs(&dest))?;
    Ok(dest)
}

/// Applies one planned mount under the rootfs (before pivot_root). A bind mount's source is
/// `source_fd` (opened by the parent) when given, else looked up by path. Returns the new
/// mount's root for a tmpfs to be made read-only later (`ro_after`).
pub fn apply(
    root: &OwnedFd,
    m: &MountPlan,
    in_userns: bool,
    idmap: Option<&OwnedFd>,
    source_fd: Option<&OwnedFd>,
) -> Result<Option<OwnedFd>> {
    let field = m.field();
    let rel = relative(&m.destination);
    let source = match source_fd {
        Some(fd) => Some(fd_path(fd)),
        None => m.source.clone(),
    };
    let src_is_file = match source_fd {
        Some(fd) => nix::sys::stat::fstat(fd.as_raw_fd())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR),
        // Only a bind's source is a path; another's names a filesystem ("proc", "tmpfs").
        None => {
            m.is_bind
                && m.source
                    .as_ref()
                    .is_some_and(|s| s.metadata().is_ok_and(|md| !md.is_dir()))
        }
    };
    if m.is_bind && source_fd.is_none() {
        let src = m.source.as_ref().expect("bind has a source");
        if !src.exists() {
            bail!(
                "{field}.source: {}: No such file or directory",
                src.display()
            );
        }
    }
    let resolved = resolve_in_root(root, &rel)
        .with_context(|| format!("{field}.destination: {}", m.destination.display()))?;
    check_not_inside_proc(&resolved, false)
        .with_context(|| format!("{field}.destination: {}", m.destination.display()))?;
    if matches!(m.fstype.as_str(), "proc" | "sysfs") {
        ordinary_dir_or_absent(root, &rel, &m.fstype)
            .with_context(|| format!("{field}.destination: {}", m.destination.display()))?;
    }
    let tmpfs = m.fstype == "tmpfs";
    let opened = open_in_root(root, &rel);
    // The mode of a directory the tmpfs covers, before anything is created.
    let covered = match (tmpfs, &opened) {
        (true, Ok(fd)) => nix::sys::stat::fstat(fd.as_raw_fd())
            .ok()
            .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map(|st| st.st_mode),
        _ => None,
    };
    let dest = destination(root, &resolved, opened, src_is_file)
        .with_context(|| format!("{field}.destination: {}", m.destination.display()))?;
    let target = fd_path(&dest);
    let ctx = || format!("{field}: mount {} on {}", m.fstype, m.destination.display());
    let data = match tmpfs {
        true => tmpfs_data(&m.data, covered),
        false => m.data.clone(),
    };
    let data = (!data.is_empty()).then_some(data.as_str());
    let mut host_sys = false;
    if let (true, Some(userns), Some(src)) = (m.is_bind, idmap, source.as_deref()) {
        let recursive = m.flags.contains(MsFlags::MS_REC);
        super::idmap::bind(src, &dest, userns, recursive).with_context(ctx)?;
    } else if m.is_bind {
        mount(source.as_deref(), &target, none(), m.flags, none()).with_context(ctx)?;
    } else {
        let source = m.source.as_deref().unwrap_or(Path::new(&m.fstype));
        let fstype = (!m.fstype.is_empty()).then_some(m.fstype.as_str());
        match mount(Some(source), &target, fstype, m.flags, data) {
            // A user namespace that owns no network namespace may not mount sysfs: the host's
            // /sys is bound instead, read-only (as runc does).
            Err(nix::errno::Errno::EPERM) if in_userns && m.fstype == "sysfs" => {
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                mount(Some("/sys"), &target, none(), bind, none()).with_context(ctx)?;
                host_sys = true;
            }
            r => r.with_context(ctx)?,
        }
    }
    // The fd names the directory under the new mount: reopen to reach the mount itself.
    let top = open_in_root(root, &rel).with_context(ctx)?;
    let target = fd_path(&top);
    if host_sys {
        let keep = m.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | keep;
        mount(none(), &target, none(), ro | locked_flags(&target), none())
            .with_context(|| format!("{}: the host's /sys read-only", ctx()))?;
    }
    if m.tmpcopyup {
        copy_tree(&dest, &target)
            .with_context(|| format!("{field}: tmpcopyup of {}", m.destination.display()))?;
    }
    if m.is_bind && !m.remount_flags.is_empty() {
        let mut flags = m.remount_flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
        if in_userns {
            flags |= locked_flags(&target);
        }
        mount(none(), &target, none(), flags, none()).with_context(ctx)?;
    }
    for p in &m.propagation {
        mount(none(), &target, none(), *p, none()).with_context(ctx)?;
    }
    if m.attr_set != 0 || m.attr_clr != 0 {
        set_recursive_attrs(&top, m.attr_set, m.attr_clr).with_context(ctx)?;
    }
    Ok(m.ro_after.then_some(top))
}

/// Flags a mount inherited from a more privileged namespace cannot drop on remount.
pub fn locked_flags(target: &Path) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(target) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags as S;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (S::ST_NOSUID, MsFlags::MS_NOSUID),
        (S::ST_NODEV, MsFlags::MS_NODEV),
        (S::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (S::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    out
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) with AT_RECURSIVE on the mount `fd` refers to.
pub fn set_recursive_attrs(fd: &OwnedFd, set: u64, clr: u64) -> Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: "" with AT_EMPTY_PATH acts on fd; attr is a valid mount_attr of the given size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        bail!("mount_setattr: {}", nix::errno::Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn m(typ: &str, src: &str, dest: &str, opts: &[&str]) -> Mount {
        MountBuilder::default()
            .typ(typ)
            .source(src)
            .destination(dest)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn tmpfs_flags_and_data() {
        let p = plan(
            0,
            &m(
                "tmpfs",
                "tmpfs",
                "/dev",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
        )
        .unwrap();
        assert_eq!(p.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(p.data, "mode=755,size=65536k");
        assert!(!p.is_bind);
    }

    #[test]
    fn a_read_only_tmpfs_is_made_read_only_afterwards() {
        let p = plan(
            0,
            &m("tmpfs", "tmpfs", "/dev", &["ro", "nosuid", "mode=755"]),
        )
        .unwrap();
        assert!(p.ro_after);
        assert_eq!(p.flags, MsFlags::MS_NOSUID);
        let p = plan(0, &m("bind", "/src", "/dst", &["rbind", "ro"])).unwrap();
        assert!(!p.ro_after);
        let p = plan(0, &m("tmpfs", "tmpfs", "/tmp", &["nosuid"])).unwrap();
        assert!(!p.ro_after);
    }

    #[test]
    fn bind_ro_needs_remount_and_propagation_is_separate() {
        let p = plan(
            3,
            &m(
                "bind",
                "/src",
                "/dst",
                &["rbind", "ro", "nosuid", "rprivate"],
            ),
        )
        .unwrap();
        assert!(p.is_bind);
        assert_eq!(p.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(p.remount_flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(p.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(p.field(), "config.json: mounts[3]");
    }

    #[test]
    fn bind_option_without_type_is_bind() {
        let p = plan(0, &m("none", "/src", "/dst", &["bind"])).unwrap();
        assert!(p.is_bind);
    }

    #[test]
    fn recursive_attrs() {
        let p = plan(
            0,
            &m("bind", "/s", "/d", &["rbind", "rro", "rnosuid", "rnoatime"]),
        )
        .unwrap();
        assert_eq!(
            p.attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(p.attr_clr, MOUNT_ATTR_ATIME);
    }

    #[test]
    fn tmpfs_takes_the_covered_mode_unless_told() {
        assert_eq!(tmpfs_data("size=64k", Some(0o40700)), "size=64k,mode=700");
        assert_eq!(tmpfs_data("", Some(0o41777)), "mode=1777");
        assert_eq!(tmpfs_data("mode=755", Some(0o40700)), "mode=755");
        assert_eq!(tmpfs_data("size=64k", None), "size=64k");
    }

    #[test]
    fn tmpcopyup_is_for_tmpfs() {
        let p = plan(0, &m("tmpfs", "tmpfs", "/x", &["tmpcopyup", "nosuid"])).unwrap();
        assert!(p.tmpcopyup);
        assert_eq!(p.data, "");
        let p = plan(0, &m("bind", "/a", "/x", &["rbind", "tmpcopyup"])).unwrap();
        assert!(!p.tmpcopyup);
    }

    #[test]
    fn rw_clears_ro() {
        let p = plan(0, &m("proc", "proc", "/proc", &["ro", "rw"])).unwrap();
        assert!(!p.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn nothing_mounted_inside_proc() {
        assert!(check_not_inside_proc(Path::new("proc"), false).is_ok());
        assert!(check_not_inside_proc(Path::new("proc/meminfo"), true).is_ok());
        assert!(check_not_inside_proc(Path::new("procfoo/x"), false).is_ok());
        // A procfs reached under another name (an image's /proc -> /p) counts.
        assert!(check_not_inside_proc(Path::new("p/sys/net/ipv4"), true).is_err());
        let err = check_not_inside_proc(Path::new("proc/sys/net/ipv4"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/sys/net/ipv4 is inside /proc"), "{err}");
        assert!(check_not_inside_proc(Path::new("proc/self/attr"), false).is_err());
    }

    #[test]
    fn relative_keeps_dotdot_for_the_kernel_to_clamp() {
        assert_eq!(
            relative(Path::new("/a/../b/./c")),
            PathBuf::from("a/../b/c")
        );
    }

    #[test]
    fn resolution_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("evil")).unwrap();
        let rootfd = nix::fcntl::open(
            &root,
            nix::fcntl::OFlag::O_PATH,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: fresh fd from open.
        let rootfd = unsafe { OwnedFd::from_raw_fd(rootfd) };
        create_in_root(&rootfd, Path::new("evil/sub"), false).unwrap();
        assert!(
            !outside.path().join("sub").exists(),
            "created outside the root"
        );
        // The absolute symlink resolved inside the root instead.
        assert!(root
            .join(outside.path().strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
        create_in_root(&rootfd, Path::new("../../etc/x/file"), true).unwrap();
        assert!(root.join("etc/x/file").is_file());
    }
}
