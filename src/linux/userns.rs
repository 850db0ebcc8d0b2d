//! A new user namespace's uid and gid maps, written by the parent. Root writes
//! /proc/PID/{uid,gid}_map itself. A non-root user may write one line mapping its own id only
//! (user_namespaces(7)), and for gid_map only after `deny` went into /proc/PID/setgroups; any
//! other mapping goes through the setuid helpers newuidmap/newgidmap (package uidmap), which
//! check it against /etc/subuid and /etc/subgid.

use std::process::Command;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::namespaces::id_map_text;

/// Whether hako runs without real root, by runc's rule: a non-root euid, or root inside a
/// user namespace (rootless podman runs its runtime so) unless `USER=root` says it is root's.
/// Decided once per process (create asks several times).
pub fn rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return true;
        }
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        in_userns(&map) && std::env::var("USER").map_or(true, |u| u != "root")
    })
}

/// Whether a /proc/PID/uid_map is another than the initial namespace's identity map.
pub fn in_userns(uid_map: &str) -> bool {
    uid_map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]
}

/// How one map gets written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// Nothing to write.
    None,
    /// By hako; `deny_setgroups` first when an unprivileged user writes a gid_map.
    Direct { deny_setgroups: bool },
    /// By newuidmap/newgidmap, with these arguments after the pid.
    Helper {
        program: &'static str,
        args: Vec<String>,
    },
}

/// Which writer a map needs. `own` is the caller's effective uid (or gid), `root` whether the
/// caller is root. Pure.
pub fn plan(maps: &[LinuxIdMapping], own: u32, root: bool, gid: bool) -> Writer {
    if maps.is_empty() {
        return Writer::None;
    }
    let own_only = matches!(maps, [m] if m.size() == 1 && m.host_id() == own);
    if root || own_only {
        return Writer::Direct {
            deny_setgroups: gid && !root,
        };
    }
    let args = maps
        .iter()
        .flat_map(|m| [m.container_id(), m.host_id(), m.size()])
        .map(|n| n.to_string())
        .collect();
    Writer::Helper {
        program: if gid { "newgidmap" } else { "newuidmap" },
        args,
    }
}

/// The uid map, then the gid map: its file under /proc/PID, its config field, the map and how
/// it is written.
fn planned(spec: &Spec) -> Vec<(&'static str, &'static str, &[LinuxIdMapping], Writer)> {
    let Some(linux) = spec.linux() else {
        return Vec::new();
    };
    let root = nix::unistd::geteuid().is_root();
    let own = [
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    ];
    [
        ("uid_map", "linux.uidMappings", linux.uid_mappings()),
        ("gid_map", "linux.gidMappings", linux.gid_mappings()),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (file, field, maps))| {
        let maps = maps.as_deref().unwrap_or_default();
        (file, field, maps, plan(maps, own[i], root, i == 1))
    })
    .collect()
}

/// Writes the spec's uid and gid maps for the new user namespace of `pid`.
pub fn write_maps(spec: &Spec, pid: i32) -> Result<()> {
    for (file, field, maps, writer) in planned(spec) {
        let field = format!("config.json: {field}");
        match writer {
            Writer::None => {}
            Writer::Direct { deny_setgroups } => {
                if deny_setgroups {
                    let path = format!("/proc/{pid}/setgroups");
                    std::fs::write(&path, "deny")
                        .with_context(|| format!("{field}: write {path}"))?;
                }
                let path = format!("/proc/{pid}/{file}");
                std::fs::write(&path, id_map_text(maps))
                    .with_context(|| format!("{field}: write {path}"))?;
            }
            Writer::Helper { program, args } => run_helper(&field, program, pid, &args)?,
        }
    }
    Ok(())
}

/// Before anything is made: the helpers the maps need are there.
pub fn check_helpers(spec: &Spec) -> Result<()> {
    for (_, field, _, writer) in planned(spec) {
        if let Writer::Helper { program, .. } = writer {
            let path = std::env::var_os("PATH").unwrap_or_default();
            if !std::env::split_paths(&path).any(|d| d.join(program).is_file()) {
                bail!("{}", missing(&format!("config.json: {field}"), program));
            }
        }
    }
    Ok(())
}

fn subids_file(program: &str) -> &'static str {
    if program == "newuidmap" {
        "/etc/subuid"
    } else {
        "/etc/subgid"
    }
}

fn missing(field: &str, program: &str) -> String {
    format!(
        "{field}: as non-root, a mapping other than one's own id needs {program} \
         (package uidmap) and a range in {}: {program} not found",
        subids_file(program)
    )
}

fn run_helper(field: &str, program: &str, pid: i32, args: &[String]) -> Result<()> {
    let subids = subids_file(program);
    let out = match Command::new(program)
        .arg(pid.to_string())
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{}", missing(field, program)),
        Err(e) => bail!("{field}: {program}: {e}"),
    };
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
        bail!(
            "{field}: {program} {pid} {} failed ({}): {why} (is the range in {subids}?)",
            args.join(" "),
            out.status
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn map(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    #[test]
    fn the_initial_user_namespace_by_its_map() {
        assert!(!in_userns("         0          0 4294967295\n"));
        assert!(in_userns("         0       1000          1\n"));
        assert!(in_userns(""));
    }

    #[test]
    fn root_writes_everything_itself() {
        let maps = [map(0, 100000, 65536)];
        assert_eq!(
            plan(&maps, 0, true, true),
            Writer::Direct {
                deny_setgroups: false
            }
        );
        assert_eq!(plan(&[], 0, true, false), Writer::None);
    }

    #[test]
    fn a_user_maps_its_own_id_directly_denying_setgroups_for_gids() {
        let maps = [map(0, 1000, 1)];
        assert_eq!(
            plan(&maps, 1000, false, false),
            Writer::Direct {
                deny_setgroups: false
            }
        );
        assert_eq!(
            plan(&maps, 1000, false, true),
            Writer::Direct {
                deny_setgroups: true
            }
        );
    }

    #[test]
    fn anything_else_goes_through_the_helpers() {
        let maps = [map(0, 1000, 1), map(1, 100000, 65536)];
        assert_eq!(
            plan(&maps, 1000, false, false),
            Writer::Helper {
                program: "newuidmap",
                args: ["0", "1000", "1", "1", "100000", "65536"]
                    .map(String::from)
                    .to_vec()
            }
        );
        // Another user's id, or a range, is not the user's own.
        for maps in [[map(0, 1001, 1)], [map(0, 1000, 2)]] {
            assert!(matches!(
                plan(&maps, 1000, false, true),
                Writer::Helper {
                    program: "newgidmap",
                    ..
                }
            ));
        }
    }
}
