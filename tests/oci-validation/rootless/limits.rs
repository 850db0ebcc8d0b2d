//! Rootless limits: cgroups (used when the user can write one, refused resources when not,
//! the user's systemd) and rlimits.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

#[test]
fn resources_without_a_writable_cgroup_are_refused_naming_the_key() {
    let Some(r) = Rootless::new() else { return };
    let b = r.bundle(|c| c["linux"]["resources"] = json!({"pids": {"limit": 10}}));
    let id = unique_id("res");
    let out = r.hako(&["run", "-b", b.path(), &id]);
    assert_error(&out, "config.json: linux.resources.pids: needs a cgroup");
    assert!(r.ids_left().is_empty());
}

#[test]
fn systemd_cgroup_as_non_root_needs_the_users_systemd() {
    let Some(r) = Rootless::new() else { return };
    if Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: systemd runs here");
        return;
    }
    let b = r.bundle(|c| sh(c, "true"));
    let out = r.hako(&["--systemd-cgroup", "run", "-b", b.path(), &unique_id("sd")]);
    assert_error(&out, "--systemd-cgroup: as non-root");
    assert!(stderr(&out).contains("user's systemd"), "{}", stderr(&out));
    assert!(r.ids_left().is_empty());
}

#[test]
fn a_cgroup_chowned_to_the_user_is_used() {
    let Some(r) = Rootless::new() else { return };
    let pids_root = Path::new("/sys/fs/cgroup/pids");
    if !pids_root.join("pids.max").exists() && !pids_root.join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup v1 pids hierarchy");
        return;
    }
    // The v1 hierarchies libcgroups uses, each with a directory delegated to the user.
    let base = unique_id("hako-rootless");
    let mut made = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let sep = f.iter().position(|x| *x == "-").unwrap();
        if f[sep + 1] != "cgroup" || f[sep + 3].contains("name=") {
            continue;
        }
        let dir = Path::new(f[4]).join(&base);
        std::fs::create_dir(&dir).unwrap();
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(Path::new(f[4]).join(file)) {
                std::fs::write(dir.join(file), v).unwrap();
            }
        }
        chown_tree(&dir, r.ids);
        made.push(dir);
    }
    let cleanup = |made: &[PathBuf]| {
        for d in made {
            let _ = std::fs::remove_dir(d.join("c"));
            let _ = std::fs::remove_dir(d);
        }
    };
    let b = r.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["linux"]["cgroupsPath"] = json!(format!("/{base}/c"));
        c["linux"]["resources"] = json!({"pids": {"limit": 42}});
        // `spec` has a cgroup namespace only on cgroup v2 (runc's rule); this test wants one.
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        if !ns.iter().any(|n| n["type"] == "cgroup") {
            ns.push(json!({"type": "cgroup"}));
        }
    });
    let id = unique_id("cg");
    let out = r.hako(&["create", "-b", b.path(), &id]);
    if !out.status.success() {
        cleanup(&made);
        panic!("create: {}", stderr(&out));
    }
    let limit = std::fs::read_to_string(pids_root.join(&base).join("c/pids.max"));
    let procs = std::fs::read_to_string(pids_root.join(&base).join("c/cgroup.procs"));
    let pid = stdout(&r.hako(&["ps", "-f", "json", &id]));
    // exec joins the container's cgroup (the user's to write); a created container's init
    // is non-dumpable, so a rootless exec needs it started.
    let refused = r.hako(&["exec", &id, "true"]);
    let started = r.hako(&["start", &id]);
    let exec = r.hako(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let w = warnings(&out);
    let deleted = r.hako(&["delete", "--force", &id]);
    let gone = !pids_root.join(&base).join("c").exists();
    cleanup(&made);
    assert_eq!(limit.unwrap().trim(), "42");
    let procs = procs.unwrap();
    assert_eq!(procs.lines().count(), 1, "{procs}");
    assert_eq!(pid.trim(), format!("[{}]", procs.trim()));
    assert_eq!(w.len(), 1, "{}", stderr(&out));
    assert!(w[0].contains("is writable by this user: using it"), "{w:?}");
    // exec's own failures exit 255, as runc's.
    assert_eq!(refused.status.code(), Some(255));
    assert!(stderr(&refused).contains("created container"));
    assert!(stderr(&refused).contains("start it first"));
    assert!(started.status.success(), "start: {}", stderr(&started));
    assert!(exec.status.success(), "exec: {}", stderr(&exec));
    // The container's cgroup namespace is rooted at its cgroup: outside it would read `/..`.
    assert!(stdout(&exec).contains(":pids:/\n"), "{}", stdout(&exec));
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(gone, "delete left the container's cgroup");
}

#[test]
fn a_hard_rlimit_above_the_users_is_refused_before_anything_is_made() {
    let Some(r) = Rootless::new() else { return };
    // setpriv keeps this process's limits: the user's hard limit is ours.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
    let b = r.bundle(|c| {
        sh(c, "true");
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 64, "hard": hard + 1}]);
    });
    let out = r.hako(&["run", "-b", b.path(), &unique_id("rlimit")]);
    assert_error(
        &out,
        &format!(
            "process.rlimits: RLIMIT_NOFILE: hard limit {} is above hako's own ({hard})",
            hard + 1
        ),
    );
    assert!(r.ids_left().is_empty());
}
