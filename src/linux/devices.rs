//! /dev: the default devices and symlinks every container gets, and `linux.devices`, made with
//! mknod(2) or, inside a user namespace where mknod is refused, bound from the host.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::mounts::{create_in_root, fd_path};

/// A device node to create: path inside the container, kind, numbers, mode and owner.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices the runtime-spec says every Linux container has.
pub fn default_nodes() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| DeviceNode {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The symlinks under /dev (link, target).
pub const DEFAULT_LINKS: [(&str, &str); 5] = [
    ("dev/fd", "/proc/self/fd"),
    ("dev/stdin", "/proc/self/fd/0"),
    ("dev/stdout", "/proc/self/fd/1"),
    ("dev/stderr", "/proc/self/fd/2"),
    ("dev/ptmx", "pts/ptmx"),
];

/// `linux.devices` as nodes; pure.
pub fn configured_nodes(spec: &Spec) -> Result<Vec<DeviceNode>> {
    let mut out = Vec::new();
    let devices = spec.linux().as_ref().and_then(|l| l.devices().clone());
    for (i, d) in devices.iter().flatten().enumerate() {
        let field = format!("config.json: linux.devices[{i}]");
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => bail!("{field}.type: 'a' is for cgroup rules, not a device node"),
        };
        if !d.path().is_absolute() {
            bail!(
                "{field}.path: {}: must be an absolute path",
                d.path().display()
            );
        }
        if d.major() < 0 || d.minor() < 0 {
            bail!("{field}: major and minor must not be negative");
        }
        out.push(DeviceNode {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

fn rel(path: &Path) -> PathBuf {
    super::mounts::relative(path)
}

/// Makes `node` in `dir`, the directory its path names inside the root (opened by the caller:
/// once for the default devices, which share /dev).
fn make_node(dir: &OwnedFd, node: &DeviceNode, in_userns: bool) -> Result<()> {
    let name = node.path.file_name().context("device path has no name")?;
    // Everything by fd, relative to `dir`: a symlink swapped in at `name` meanwhile (a /dev
    // shared with another writer) is neither followed nor changed (O_NOFOLLOW, then the node's
    // own fd for chmod/chown).
    let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir);
    let open_node = || -> Result<OwnedFd> {
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: fresh fd from openat(2).
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    if in_userns && node.kind != SFlag::S_IFIFO {
        // mknod is refused in a user namespace: bind the host's node instead.
        let made = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?;
        nix::unistd::close(made)?;
        let host = std::ffi::CString::new(node.path.as_os_str().as_bytes())?;
        let tree = super::mounts::clone_tree(libc::AT_FDCWD, &host, 0)
            .with_context(|| format!("bind {} from the host", node.path.display()))?;
        return super::mounts::attach_tree(&tree, &open_node()?)
            .with_context(|| format!("bind {} from the host", node.path.display()));
    }
    nix::sys::stat::mknodat(
        Some(dir.as_raw_fd()),
        name,
        node.kind,
        Mode::from_bits_truncate(node.mode),
        makedev(node.major, node.minor),
    )
    .with_context(|| format!("mknod {}", node.path.display()))?;
    let fd = open_node()?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    // A fifo has no device number, whatever the config says.
    let is_device = node.kind == SFlag::S_IFCHR || node.kind == SFlag::S_IFBLK;
    let rdev_differs = is_device && st.st_rdev != makedev(node.major, node.minor);
    if st.st_mode & libc::S_IFMT != node.kind.bits() || rdev_differs {
        bail!("{}: replaced while it was made", node.path.display());
    }
    // Mode and owner set exactly where mknod (under the caller's umask of 0, as root) did not
    // already, on the node itself (its fd's magic link).
    if st.st_mode & 0o7777 != node.mode & 0o7777 {
        std::fs::set_permissions(fd_path(&fd), std::fs::Permissions::from_mode(node.mode))?;
    }
    if (st.st_uid, st.st_gid) != (node.uid, node.gid) {
        nix::unistd::chown(&fd_path(&fd), Some(node.uid.into()), Some(node.gid.into()))
            .with_context(|| format!("chown {}", node.path.display()))?;
    }
    Ok(())
}

/// Runs `f` with the umask 0, so that nodes are made with their modes as given (the init is
/// single-threaded: nothing else creates files meanwhile).
fn without_umask<T>(f: impl FnOnce() -> T) -> T {
    let old = nix::sys::stat::umask(Mode::empty());
    let out = f();
    nix::sys::stat::umask(old);
    out
}

/// Default devices and links in the container's /dev.
pub fn populate_default(root: &OwnedFd, in_userns: bool) -> Result<()> {
    let dev = create_in_root(root, Path::new("dev"), false)?;
    without_umask(|| {
        default_nodes().iter().try_for_each(|node| {
            make_node(&dev, node, in_userns)
                .with_context(|| format!("default device {}", node.path.display()))
        })
    })?;
    for (link, target) in DEFAULT_LINKS {
        let at = fd_path(&dev).join(Path::new(link).file_name().unwrap_or_default());
        match std::os::unix::fs::symlink(target, &at) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /{link}")),
        }
    }
    if Path::new("/proc/kcore").exists() {
        let _ = std::os::unix::fs::symlink("/proc/kcore", fd_path(&dev).join("core"));
    }
    Ok(())
}

/// `linux.devices` in the container.
pub fn create_configured(root: &OwnedFd, nodes: &[DeviceNode], in_userns: bool) -> Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    without_umask(|| {
        nodes.iter().enumerate().try_for_each(|(i, node)| {
            let rel = rel(&node.path);
            create_in_root(root, rel.parent().unwrap_or(Path::new("")), false)
                .and_then(|dir| make_node(&dir, node, in_userns))
                .with_context(|| {
                    format!("config.json: linux.devices[{i}]: {}", node.path.display())
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_devices_planned() {
        let text = r#"{"ociVersion":"1.0.2","linux":{"devices":[
            {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0},
            {"path":"/dev/loop9","type":"b","major":7,"minor":9}]}}"#;
        let spec = crate::bundle::parse_config(text, "config.json").unwrap();
        let nodes = configured_nodes(&spec).unwrap();
        assert_eq!(nodes[0].kind, SFlag::S_IFCHR);
        assert_eq!(
            (nodes[0].major, nodes[0].minor, nodes[0].mode),
            (10, 229, 0o666)
        );
        assert_eq!(nodes[1].kind, SFlag::S_IFBLK);
    }

    #[test]
    fn relative_device_path_rejected() {
        let text = r#"{"ociVersion":"1.0.2","linux":{"devices":[{"path":"dev/x","type":"c","major":1,"minor":3}]}}"#;
        let spec = crate::bundle::parse_config(text, "config.json").unwrap();
        let err = configured_nodes(&spec).unwrap_err().to_string();
        assert!(err.contains("linux.devices[0].path"), "{err}");
    }
}
