//! Idmapped bind mounts (`mounts[].uidMappings` / `gidMappings`): the parent makes a user
//! namespace holding the mount's mappings, and the init attaches a clone of the source tree with
//! that idmap (open_tree, mount_setattr MOUNT_ATTR_IDMAP, move_mount).

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{fork, pipe, read, write, ForkResult};
use oci_spec::runtime::Mount;

use super::namespaces::id_map_text;

/// A user namespace file holding the mount's mappings. Runs a short-lived child that unshares a
/// user namespace; the caller (root) writes its maps, opens its ns file, lets it go.
pub fn userns_for(index: usize, m: &Mount) -> Result<OwnedFd> {
    let field = format!("config.json: mounts[{index}]");
    let uid = id_map_text(m.uid_mappings().as_deref().unwrap_or_default());
    let gid = id_map_text(m.gid_mappings().as_deref().unwrap_or_default());
    if uid.is_empty() || gid.is_empty() {
        bail!("{field}: an idmapped mount needs both uidMappings and gidMappings");
    }
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let (done_r, done_w) = pipe().context("pipe")?;
    // SAFETY: hako is single-threaded; the child only makes system calls and exits.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = unshare(CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = write(&ready_w, &[ok as u8]);
            let mut b = [0u8; 1];
            let _ = read(done_r.as_raw_fd(), &mut b);
            // SAFETY: leave without running the parent's cleanup in this copy.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let result = (|| {
                let mut b = [0u8; 1];
                if read(ready_r.as_raw_fd(), &mut b).context("wait for the idmap helper")? != 1
                    || b[0] != 1
                {
                    bail!("{field}: cannot make a user namespace for the idmap");
                }
                let pid = child.as_raw();
                std::fs::write(format!("/proc/{pid}/uid_map"), &uid)
                    .with_context(|| format!("{field}.uidMappings"))?;
                std::fs::write(format!("/proc/{pid}/gid_map"), &gid)
                    .with_context(|| format!("{field}.gidMappings"))?;
                let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .context("open the idmap user namespace")?;
                Ok(OwnedFd::from(f))
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

fn check(rc: libc::c_long, what: &str) -> Result<libc::c_long> {
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(rc)
}

/// Binds `source` on the directory or file `target` refers to, with the idmap of `userns`.
pub fn bind(source: &Path, target: &OwnedFd, userns: &OwnedFd, recursive: bool) -> Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let src = CString::new(source.as_os_str().as_bytes())?;
    let rec = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    let tree = super::mounts::clone_tree(libc::AT_FDCWD, &src, rec)?;
    let attr = [MOUNT_ATTR_IDMAP, 0, 0, userns.as_raw_fd() as u64];
    // SAFETY: attr has the layout of struct mount_attr (four u64s); "" with AT_EMPTY_PATH acts
    // on the tree fd.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint | rec,
                attr.as_ptr(),
                std::mem::size_of_val(&attr),
            )
        },
        "mount_setattr(MOUNT_ATTR_IDMAP)",
    )?;
    super::mounts::attach_tree(&tree, target)?;
    Ok(())
}
