//! Namespaces: which are made by clone(2), which joined by setns(2), which made by unshare(2),
//! and whether the init needs one more fork to land inside a pid or time namespace.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

/// A namespace to join, with its index in `linux.namespaces` for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub index: usize,
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
}

/// How the init gets into its namespaces.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespacePlan {
    /// New namespaces made by clone(2) itself: none when something must be joined first.
    pub clone_flags: CloneFlags,
    /// Namespaces to join, a user namespace first (it grants the rights to join the rest).
    pub joins: Vec<Join>,
    /// A new user namespace made by unshare(2) after the joins (the parent writes its maps).
    pub unshare_user: bool,
    /// Other new namespaces made by unshare(2) after the parent has put the init in its cgroup
    /// (so a new cgroup namespace is rooted at the container's cgroup, and the kernel's memory
    /// for a new network namespace is charged to the container's memory cgroup).
    pub unshare_flags: CloneFlags,
    /// A pid or time namespace entered by setns/unshare only applies to children: fork once more.
    pub fork_after: bool,
    /// The container has a pid namespace (new or joined): killing its init kills everything.
    pub has_pid_ns: bool,
    /// The container has a user namespace (new or joined).
    pub has_user_ns: bool,
    /// The container has a mount namespace (required for a root filesystem of its own).
    pub has_mount_ns: bool,
    /// The container has a UTS namespace (required to set hostname/domainname).
    pub has_uts_ns: bool,
    /// The container's network namespace is new.
    pub new_net_ns: bool,
}

pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME is not in nix's CloneFlags.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Turns `linux.namespaces` into a plan. Pure: no system calls.
pub fn plan(linux: Option<&Linux>) -> Result<NamespacePlan> {
    let namespaces = linux
        .and_then(|l| l.namespaces().as_ref())
        .cloned()
        .unwrap_or_default();
    let mut p = NamespacePlan {
        clone_flags: CloneFlags::empty(),
        joins: Vec::new(),
        unshare_user: false,
        unshare_flags: CloneFlags::empty(),
        fork_after: false,
        has_pid_ns: false,
        has_user_ns: false,
        has_mount_ns: false,
        has_uts_ns: false,
        new_net_ns: false,
    };
    let mut new = CloneFlags::empty();
    for (index, ns) in namespaces.iter().enumerate() {
        let typ = ns.typ();
        match typ {
            LinuxNamespaceType::Pid => p.has_pid_ns = true,
            LinuxNamespaceType::User => p.has_user_ns = true,
            LinuxNamespaceType::Mount => p.has_mount_ns = true,
            LinuxNamespaceType::Uts => p.has_uts_ns = true,
            LinuxNamespaceType::Network if ns.path().is_none() => p.new_net_ns = true,
            _ => {}
        }
        match ns.path() {
            Some(path) if path.as_os_str().is_empty() => new |= clone_flag(typ),
            Some(path) => {
                if !path.is_absolute() {
                    bail!(
                        "config.json: linux.namespaces[{index}].path: {}: must be an absolute path",
                        path.display()
                    );
                }
                p.joins.push(Join {
                    index,
                    typ,
                    path: path.clone(),
                })
            }
            None => new |= clone_flag(typ),
        }
    }
    // Joining a user namespace first gives the rights to join the others.
    p.joins.sort_by_key(|j| j.typ != LinuxNamespaceType::User);

    let time = clone_flag(LinuxNamespaceType::Time);
    let cgroup = CloneFlags::CLONE_NEWCGROUP;
    if p.joins.is_empty() && !new.contains(time) {
        // Everything is new: clone(2) makes it all at once, and the child is pid 1 already. But
        // clone makes them in hako's context, charged to hako's memory cgroup: the network
        // namespace (~90 KB of the kernel's memory, ~0.5 ms) the init makes itself once in its
        // cgroup, as runc's does, while the parent writes the limits and the state.
        let later = cgroup | CloneFlags::CLONE_NEWNET;
        p.clone_flags = new - later;
        p.unshare_flags = new & later;
    } else {
        p.unshare_user = new.contains(CloneFlags::CLONE_NEWUSER);
        p.unshare_flags = new - CloneFlags::CLONE_NEWUSER;
        let joins_pid = p.joins.iter().any(|j| j.typ == LinuxNamespaceType::Pid);
        p.fork_after = joins_pid || new.contains(CloneFlags::CLONE_NEWPID) || new.contains(time);
    }
    Ok(p)
}

/// The text written to /proc/PID/uid_map or gid_map.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The text written to /proc/self/timens_offsets.
pub fn time_offsets_text(linux: Option<&Linux>) -> Result<String> {
    let mut text = String::new();
    if let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) {
        let mut keys: Vec<_> = offsets.keys().collect();
        keys.sort();
        for clock in keys {
            if clock != "monotonic" && clock != "boottime" {
                bail!("config.json: linux.timeOffsets.{clock}: only monotonic and boottime can be offset");
            }
            let o = &offsets[clock];
            text.push_str(&format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            ));
        }
    }
    Ok(text)
}

/// Checks, before anything is created, that each path to join exists and is a namespace of the
/// named type; returns the opened files in join order.
pub fn open_joins(joins: &[Join]) -> Result<Vec<(OwnedFd, CloneFlags)>> {
    // ioctl(NS_GET_NSTYPE) = _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let mut fds = Vec::with_capacity(joins.len());
    for j in joins {
        let field = format!("config.json: linux.namespaces[{}].path", j.index);
        let fd = open(&j.path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("{field}: {}", j.path.display()))?;
        // SAFETY: fd is a freshly opened, owned descriptor.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
        let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
        let want = clone_flag(j.typ);
        if kind < 0 {
            bail!("{field}: {}: not a namespace file", j.path.display());
        }
        if kind != want.bits() {
            bail!(
                "{field}: {}: is not a {} namespace",
                j.path.display(),
                j.typ
            );
        }
        fds.push((fd, want));
    }
    Ok(fds)
}

/// The name of a namespace type under /proc/PID/ns/.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The /proc/PID/ns/ names of the namespaces in `flags`, space-separated (for --trace). Pure.
pub fn flag_names(flags: CloneFlags) -> String {
    use LinuxNamespaceType::*;
    let names: Vec<&str> = [User, Mount, Uts, Ipc, Network, Pid, Cgroup, Time]
        .into_iter()
        .filter(|&t| flags.contains(clone_flag(t)))
        .map(proc_name)
        .collect();
    if names.is_empty() {
        return "none".to_string();
    }
    names.join(" ")
}

/// The namespaces a process exec'd into the container joins: every one the container has
/// (new or joined by its init), the user namespace first. Pure.
pub fn exec_joins(linux: Option<&Linux>) -> Vec<LinuxNamespaceType> {
    let mut types: Vec<LinuxNamespaceType> = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    types.sort_by_key(|t| *t != LinuxNamespaceType::User);
    types
}

/// Opens the namespaces of process `pid` for `types`, leaving out those the caller is in
/// already (setns into one's own user namespace fails).
pub fn open_of_process(
    pid: i32,
    types: &[LinuxNamespaceType],
) -> Result<Vec<(OwnedFd, LinuxNamespaceType)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for &typ in types {
        let path = format!("/proc/{pid}/ns/{}", proc_name(typ));
        let theirs = std::fs::metadata(&path).with_context(|| path.clone())?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(typ)));
        if ours.is_ok_and(|o| (o.dev(), o.ino()) == (theirs.dev(), theirs.ino())) {
            continue;
        }
        let fd = open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| path.clone())?;
        // SAFETY: fd is a freshly opened, owned descriptor.
        out.push((
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) },
            typ,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn flag_names_for_the_trace() {
        use nix::sched::CloneFlags as F;
        let f = F::CLONE_NEWNS | F::CLONE_NEWPID | F::CLONE_NEWNET;
        assert_eq!(super::flag_names(f), "mnt net pid");
        assert_eq!(super::flag_names(F::empty()), "none");
    }

    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};

    fn linux(list: &[(LinuxNamespaceType, Option<&str>)]) -> Linux {
        let ns: Vec<_> = list
            .iter()
            .map(|(t, p)| {
                let b = LinuxNamespaceBuilder::default().typ(*t);
                match p {
                    Some(p) => b.path(*p).build().unwrap(),
                    None => b.build().unwrap(),
                }
            })
            .collect();
        LinuxBuilder::default().namespaces(ns).build().unwrap()
    }

    use LinuxNamespaceType::*;

    #[test]
    fn all_new_uses_clone_but_for_net_first_and_cgroup_later() {
        let p = plan(Some(&linux(&[
            (Pid, None),
            (Mount, None),
            (Cgroup, None),
            (User, None),
            (Network, None),
        ])))
        .unwrap();
        assert_eq!(
            p.clone_flags,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUSER
        );
        assert_eq!(
            p.unshare_flags,
            CloneFlags::CLONE_NEWCGROUP | CloneFlags::CLONE_NEWNET,
            "made by the init in its cgroup"
        );
        assert!(!p.fork_after && !p.unshare_user);
        assert!(p.has_pid_ns && p.has_user_ns && p.has_mount_ns);
    }

    /// The init makes every new network namespace itself (it brings its loopback up after).
    #[test]
    fn a_new_network_namespace_is_always_unshared_by_the_init() {
        let lists: [&[(LinuxNamespaceType, Option<&str>)]; 4] = [
            &[(Network, None)],
            &[(Network, None), (Pid, None), (User, None), (Mount, None)],
            &[(Network, None), (Pid, Some("/proc/1/ns/pid"))],
            &[(Network, Some("")), (Time, None)],
        ];
        for list in lists {
            let p = plan(Some(&linux(list))).unwrap();
            assert!(
                !p.clone_flags.contains(CloneFlags::CLONE_NEWNET),
                "{list:?}"
            );
            assert!(
                p.unshare_flags.contains(CloneFlags::CLONE_NEWNET),
                "{list:?}"
            );
        }
    }

    #[test]
    fn a_join_moves_everything_to_unshare_and_forks_for_pid() {
        let p = plan(Some(&linux(&[
            (Pid, None),
            (Network, Some("/proc/1/ns/net")),
            (User, Some("/proc/1/ns/user")),
        ])))
        .unwrap();
        assert!(p.clone_flags.is_empty());
        assert_eq!(p.joins[0].typ, User, "user namespace joined first");
        assert_eq!(p.joins[1].index, 1);
        assert_eq!(p.unshare_flags, CloneFlags::CLONE_NEWPID);
        assert!(p.fork_after);
    }

    #[test]
    fn new_user_ns_with_joins_is_unshared() {
        let p = plan(Some(&linux(&[
            (User, None),
            (Network, Some("/proc/1/ns/net")),
        ])))
        .unwrap();
        assert!(p.unshare_user);
        assert!(!p.fork_after);
    }

    #[test]
    fn time_namespace_needs_fork() {
        let p = plan(Some(&linux(&[(Time, None), (Mount, None)]))).unwrap();
        assert!(p.clone_flags.is_empty());
        assert!(p.fork_after);
    }

    #[test]
    fn exec_joins_every_namespace_user_first() {
        let l = linux(&[(Pid, None), (Network, Some("/proc/1/ns/net")), (User, None)]);
        assert_eq!(exec_joins(Some(&l)), [User, Pid, Network]);
        assert_eq!(proc_name(Mount), "mnt");
    }

    #[test]
    fn relative_path_rejected() {
        let err = plan(Some(&linux(&[(Network, Some("ns/net"))]))).unwrap_err();
        assert!(
            err.to_string().contains("linux.namespaces[0].path"),
            "{err}"
        );
    }

    #[test]
    fn id_maps_and_offsets_text() {
        let m = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(1000u32)
            .size(65536u32)
            .build()
            .unwrap();
        assert_eq!(id_map_text(&[m]), "0 1000 65536\n");
        assert_eq!(time_offsets_text(None).unwrap(), "");
    }

    #[test]
    fn join_type_is_checked() {
        let j = Join {
            index: 2,
            typ: Network,
            path: "/proc/self/ns/uts".into(),
        };
        let err = open_joins(&[j]).unwrap_err().to_string();
        assert!(
            err.contains("linux.namespaces[2].path") && err.contains("not a net namespace"),
            "{err}"
        );
        let j = Join {
            index: 0,
            typ: Uts,
            path: "/proc/self/ns/uts".into(),
        };
        assert_eq!(open_joins(&[j]).unwrap().len(), 1);
        let j = Join {
            index: 0,
            typ: Uts,
            path: "/nonexistent/ns".into(),
        };
        assert!(open_joins(&[j]).is_err());
    }
}
