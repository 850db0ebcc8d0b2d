//! config-linux.md "Control groups": linux.cgroupsPath and linux.resources, read back from
//! /sys/fs/cgroup and seen to bite; pause/resume, update, events and ps. Written for a host
//! with cgroup v1 controllers (legacy or hybrid); on a unified host they return early.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

pub(crate) fn v1_host() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    if !v1 {
        eprintln!("skipped: these tests read cgroup v1 files");
    }
    v1
}

/// A process's cgroup directory for a v1 controller, from /proc/PID/cgroup.
pub(crate) fn cg_dir(pid: i64, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            parts.next();
            Some((parts.next()?, parts.next()?))
        })
        .find(|(ctrls, _)| ctrls.split(',').any(|c| c == controller))
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| panic!("{pid} has no {controller} cgroup"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

pub(crate) fn cg_read(pid: i64, controller: &str, file: &str) -> String {
    let path = cg_dir(pid, controller).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn own_cgroup(controller: &str) -> String {
    let dir = cg_dir(std::process::id() as i64, controller);
    let rel = dir.strip_prefix(Path::new("/sys/fs/cgroup").join(controller));
    format!("/{}", rel.unwrap().display())
}

/// create + start a container running `sh -c script`; returns its id and host pid.
pub(crate) fn started(env: &Env, script: &str, edit: impl FnOnce(&mut Value)) -> (String, i64) {
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", script]);
        edit(c);
    });
    let id = unique_id("cg");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = env.hako(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    (id, pid)
}

/// Directories named `name` anywhere under /sys/fs/cgroup.
pub(crate) fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name() == name {
                    found.push(e.path());
                }
                walk(&e.path(), name, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, &mut found);
    found
}

/// The first real block device's major:minor (for throttle rules).
fn a_block_device() -> Option<(i64, i64)> {
    let mut devs: Vec<_> = std::fs::read_dir("/sys/block").ok()?.flatten().collect();
    devs.sort_by_key(|d| d.file_name());
    devs.iter()
        .filter(|d| !d.file_name().to_string_lossy().starts_with("loop"))
        .find_map(|d| {
            let text = std::fs::read_to_string(d.path().join("dev")).ok()?;
            let (a, b) = text.trim().split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
}

#[test]
fn resources_are_read_back_from_sysfs() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let dev = a_block_device();
    let (_id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["resources"] = json!({
            "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                       "swappiness": 20, "kernelTCP": 64 << 20, "disableOOMKiller": false},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 5000,
                    "cpus": "0", "mems": "0"},
            "pids": {"limit": 42},
        });
        if let Some((major, minor)) = dev {
            c["linux"]["resources"]["blockIO"] = json!({
                "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
            });
        }
    });
    for (ctrl, file, want) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.soft_limit_in_bytes", "33554432"),
        ("memory", "memory.memsw.limit_in_bytes", "134217728"),
        ("memory", "memory.swappiness", "20"),
        ("memory", "memory.kmem.tcp.limit_in_bytes", "67108864"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_quota_us", "20000"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_burst_us", "5000"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "42"),
    ] {
        assert_eq!(cg_read(pid, ctrl, file), want, "{file}");
    }
    assert!(cg_read(pid, "memory", "memory.oom_control").contains("oom_kill_disable 0"));
    if let Some((major, minor)) = dev {
        let rbps = cg_read(pid, "blkio", "blkio.throttle.read_bps_device");
        assert!(rbps.contains(&format!("{major}:{minor} 1048576")), "{rbps}");
        let wiops = cg_read(pid, "blkio", "blkio.throttle.write_iops_device");
        assert!(wiops.contains(&format!("{major}:{minor} 300")), "{wiops}");
    }
}

#[test]
fn device_rules_apply_in_order_after_a_deny_all_and_before_the_defaults() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    // c 1:200 is a minor /dev/mem's driver does not have: allowed, open says ENXIO; denied by
    // the device cgroup, EPERM.
    let script = "cat /dev/hako0 2>&1; echo ok > /dev/null && echo null-ok";
    let node = json!([{"path": "/dev/hako0", "type": "c", "major": 1, "minor": 200}]);
    let out = env.run_sh(script, |c| {
        c["linux"]["devices"] = node.clone();
        // Denying /dev/null does not stick: the defaults come after the config's rules.
        c["linux"]["resources"]["devices"] =
            json!([{"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]);
    });
    let text = stdout(&out);
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(text.contains("null-ok"), "{text}");

    let (_id, pid) = started(&env, "cat /dev/hako0 2>/tmp/err; sleep 1000", |c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["devices"] = node.clone();
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 200, "access": "rw"},
        ]);
    });
    let list = cg_read(pid, "devices", "devices.list");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "c 1:200 rw", "{list}");
    for default in [
        "c 1:3 rwm",
        "c 1:9 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c *:* m",
    ] {
        assert!(lines.contains(&default), "{default} missing: {list}");
    }
    assert!(!lines.contains(&"a *:* rwm"), "{list}");
}

/// On v1 the rules begin with "deny all" and the defaults come after the config's: with 2000
/// rules in between, an init that made its device nodes while the parent still wrote them
/// failed with "mknod /dev/null: EPERM". The rules are written before the init goes on.
#[test]
fn device_nodes_are_made_after_every_device_rule_is_written() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let rules: Vec<_> = (0..2000)
        .map(|i| json!({"allow": true, "type": "c", "major": 4000 + i, "minor": 0, "access": "r"}))
        .collect();
    for _ in 0..3 {
        let out = env.run_sh("echo ok > /dev/null && echo null-ok", |c| {
            c["linux"]["resources"]["devices"] = json!(rules);
        });
        assert_eq!(stdout(&out), "null-ok\n", "{}", stderr(&out));
    }
}

/// The container's new network namespace (~90 KB of the kernel's memory here) is charged to
/// its own memory cgroup, as runc's is, not to whoever ran hako: the same container with and
/// without one differs by it. (clone(2) makes namespaces in the caller's context: charged to
/// hako's cgroup, the two came out 4-8 KB apart.)
#[test]
fn a_new_network_namespace_is_charged_to_the_containers_memory_cgroup() {
    if !v1_host() {
        return;
    }
    let kmem = "memory.kmem.usage_in_bytes";
    if !Path::new("/sys/fs/cgroup/memory").join(kmem).exists() {
        eprintln!("skipped: no {kmem} on this kernel");
        return;
    }
    let env = Env::new();
    let charged = |with_netns: bool| {
        let (_id, pid) = started(&env, "sleep 1000", |c| {
            if !with_netns {
                remove_namespace(c, "network");
            }
        });
        cg_read(pid, "memory", kmem).parse::<i64>().unwrap()
    };
    let (with, without) = (charged(true), charged(false));
    assert!(
        with - without >= 48 << 10,
        "kernel memory charged with a new netns {with}, without {without}"
    );
}

#[test]
fn device_rule_allows_the_device() {
    let env = Env::new();
    let out = env.run_sh("cat /dev/hako0 2>&1; true", |c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/hako0", "type": "c", "major": 1, "minor": 200}]);
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 200, "access": "rw"},
        ]);
    });
    let text = stdout(&out);
    assert!(text.contains("No such device"), "{text}");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    // The subshell forks until the limit refuses, then dies of it: bounded by the limit.
    let script = "(while true; do sleep 1000 & done) 2>/dev/null; exec sleep 1000";
    let (_id, pid) = started(&env, script, |c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 10});
    });
    assert!(
        eventually(|| cg_read(pid, "pids", "pids.events") != "max 0"),
        "no fork was refused"
    );
    let current: u64 = cg_read(pid, "pids", "pids.current").parse().unwrap();
    assert!(current <= 10, "pids.current {current}");
    assert_eq!(cg_read(pid, "pids", "pids.max"), "10");
}

#[test]
fn memory_limit_oom_kills() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    // tail holds the whole line of zeros. Whichever process the OOM killer picks (the hog, or
    // the shell as the container's init), `run` reports a SIGKILL; without the limit the
    // pipeline finishes and exits 0.
    let out = env.run_sh("head -c 200m /dev/zero | tail", |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    });
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

/// `hako events ID` as a child, its lines arriving on a channel.
fn events_stream(env: &Env, id: &str) -> (std::process::Child, mpsc::Receiver<Value>) {
    let mut child = env
        .command(&["events", "--interval", "1s", id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    (child, rx)
}

#[test]
fn events_report_stats_and_an_oom_kill() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let b = env.bundle(|c| {
        let script = "head -c 200m /dev/zero | tail; sleep 1000";
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    });
    let id = unique_id("ev");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    let (mut child, rx) = events_stream(&env, &id);
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a stats line");
    assert_eq!(first["type"], "stats");
    assert_eq!(first["id"], id.as_str());
    assert_eq!(first["data"]["memory"]["usage"]["limit"], 32 << 20);
    assert!(env.hako(&["start", &id]).status.success());
    let oom = (0..30)
        .filter_map(|_| rx.recv_timeout(Duration::from_secs(2)).ok())
        .find(|v| v["type"] == "oom");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(oom, Some(json!({"type": "oom", "id": id})));
}

#[test]
fn events_stats_prints_one_runc_shaped_line() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let (id, _pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c["linux"]["resources"]["pids"] = json!({"limit": 100});
    });
    let out = env.hako(&["events", "--stats", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 64 << 20);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(d["memory"]["raw"]["rss"].is_u64());
    assert_eq!(d["pids"]["current"], 1);
    assert_eq!(d["pids"]["limit"], 100);
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert!(d["cpu"]["usage"]["percpu"].is_array());
    assert!(d["blkio"].is_object() && d["hugetlb"].is_object());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let script = "i=0; while true; do i=$((i+1)); echo $i > /count; usleep 20000; done";
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["root"]["readonly"] = json!(false);
    });
    let id = unique_id("pause");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    assert!(env.hako(&["start", &id]).status.success());
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let count = || -> u64 {
        std::fs::read_to_string(b.rootfs().join("count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(eventually(|| count() > 2), "the counter does not run");

    let out = env.hako(&["pause", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status(&id), "paused");
    assert_eq!(cg_read(pid, "freezer", "freezer.state"), "FROZEN");
    let frozen_at = count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), frozen_at, "the counter ran while paused");
    assert_error(&env.hako(&["pause", &id]), "paused, not running");
    assert_error(&env.hako(&["start", &id]), "paused");

    let out = env.hako(&["resume", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status(&id), "running");
    assert_eq!(cg_read(pid, "freezer", "freezer.state"), "THAWED");
    assert!(
        eventually(|| count() > frozen_at),
        "no progress after resume"
    );
    assert_error(&env.hako(&["resume", &id]), "not paused");

    // A paused container still dies of delete --force, and of kill KILL.
    assert!(env.hako(&["pause", &id]).status.success());
    let out = env.hako(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cgroup_dirs_named(&id).is_empty());
    let (id, _pid) = started(&env, "sleep 1000", |_| {});
    assert!(env.hako(&["pause", &id]).status.success());
    assert!(env.hako(&["kill", &id, "KILL"]).status.success());
    assert!(eventually(|| env.status(&id) == "stopped"));
    assert!(env.hako(&["delete", &id]).status.success());
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn update_changes_a_running_containers_limits() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let (id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 32 << 20});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    let out = env.hako(&["update", "--memory", "64M", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cg_read(pid, "memory", "memory.limit_in_bytes"), "67108864");
    // The container's config copy follows, and keeps what was not updated.
    let config: Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(config["linux"]["resources"]["pids"]["limit"], 50);

    let out = env.hako(&["update", "--cpu-share", "300", "--pids-limit", "20", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cg_read(pid, "cpu", "cpu.shares"), "300");
    assert_eq!(cg_read(pid, "pids", "pids.max"), "20");

    let file = env.dir.path().join("resources.json");
    std::fs::write(&file, r#"{"memory":{"limit":50331648},"pids":{"limit":7}}"#).unwrap();
    let out = env.hako(&["update", "-r", file.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cg_read(pid, "memory", "memory.limit_in_bytes"), "50331648");
    assert_eq!(cg_read(pid, "pids", "pids.max"), "7");

    assert_error(&env.hako(&["update", "--memory", "64Q", &id]), "--memory");
    std::fs::write(&file, r#"{"memory":{"limit":"x"}}"#).unwrap();
    let out = env.hako(&["update", "-r", file.to_str().unwrap(), &id]);
    assert_error(&out, "memory.limit");
}

#[test]
fn delete_leaves_no_cgroup_directory_in_any_hierarchy() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let (id, _pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    assert!(
        cgroup_dirs_named(&id).len() >= 5,
        "{:?}",
        cgroup_dirs_named(&id)
    );
    let out = env.hako(&["delete", "-f", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cgroup_dirs_named(&id), Vec::<PathBuf>::new());

    // The container's init dying on its own (a crash) changes nothing: delete still cleans up.
    let (id, pid) = started(&env, "sleep 1000", |_| {});
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    assert!(eventually(|| env.status(&id) == "stopped"));
    let out = env.hako(&["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cgroup_dirs_named(&id), Vec::<PathBuf>::new());
}

#[test]
fn cgroups_path_relative_is_under_hakos_own_absolute_from_the_root() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let name = unique_id("hako-rel");
    let (_id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["cgroupsPath"] = json!(name);
    });
    // hako runs in this test's cgroups; v1 takes its memory hierarchy's path for every
    // controller (libcgroups' v1 manager has one path).
    let own = own_cgroup("memory");
    let want = Path::new(&own).join(&name);
    for ctrl in ["memory", "pids", "cpu", "devices"] {
        let root = Path::new("/sys/fs/cgroup").join(ctrl);
        assert_eq!(
            cg_dir(pid, ctrl),
            root.join(want.strip_prefix("/").unwrap()),
            "{ctrl}"
        );
    }

    let abs = format!("/{}", unique_id("hako-abs"));
    let (id, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["cgroupsPath"] = json!(abs);
    });
    assert_eq!(
        cg_dir(pid, "memory"),
        Path::new("/sys/fs/cgroup/memory").join(&abs[1..])
    );
    assert!(env.hako(&["delete", "-f", &id]).status.success());
    assert!(!Path::new("/sys/fs/cgroup/memory").join(&abs[1..]).exists());
}

#[test]
fn a_cgroup_in_use_is_refused_and_left_alone() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let path = format!("/{}", unique_id("hako-shared"));
    let (first, pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let b = env.bundle(|c| c["linux"]["cgroupsPath"] = json!(path));
    let second = unique_id("cg");
    assert_error(
        &env.hako(&["create", "-b", b.path(), &second]),
        "already has",
    );
    assert!(!env.root.join(&second).exists());
    assert_eq!(env.status(&first), "running");
    assert!(cg_dir(pid, "pids").join("cgroup.procs").exists());

    // An existing empty cgroup is taken, and removed on delete.
    assert!(env.hako(&["delete", "-f", &first]).status.success());
    let dir = Path::new("/sys/fs/cgroup/pids").join(&path[1..]);
    std::fs::create_dir(&dir).unwrap();
    let (third, _pid) = started(&env, "sleep 1000", |c| {
        c["linux"]["cgroupsPath"] = json!(path);
    });
    assert!(env.hako(&["delete", "-f", &third]).status.success());
    assert!(!dir.exists());
}

#[test]
fn ps_lists_the_containers_processes() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let (id, pid) = started(&env, "sleep 1000 & exec sleep 999", |_| {});
    assert!(eventually(|| {
        let out = env.hako(&["ps", "-f", "json", &id]);
        serde_json::from_slice::<Vec<i64>>(&out.stdout).is_ok_and(|p| p.len() == 2)
    }));
    let out = env.hako(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");

    let out = env.hako(&["ps", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("PID") && lines[0].contains("CMD"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().any(|l| l.contains("sleep 999")), "{text}");

    let out = env.hako(&["ps", &id, "-o", "pid,comm"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("    PID COMMAND") || text.contains("PID"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn what_the_host_cannot_apply_is_a_clear_error() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let create = |edit: &dyn Fn(&mut Value)| {
        let b = env.bundle(|c| edit(c));
        env.hako(&["create", "-b", b.path(), &unique_id("bad")])
    };
    let out = create(&|c| c["linux"]["resources"]["unified"] = json!({"memory.high": "1M"}));
    // runc's "invalid configuration" (its suite greps it) after the field.
    assert_error(
        &out,
        "linux.resources.unified: invalid configuration: needs cgroup v2",
    );
    if !Path::new("/sys/fs/cgroup/hugetlb").exists() {
        let out = create(&|c| {
            c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 1}])
        });
        assert_error(
            &out,
            "hugepageLimits[0]: this host has no hugetlb cgroup controller",
        );
    }
    if !Path::new("/sys/fs/cgroup/net_cls").exists() {
        let out = create(&|c| c["linux"]["resources"]["network"] = json!({"classID": 1}));
        assert_error(
            &out,
            "network.classID: this host has no net_cls cgroup controller",
        );
    }
    if !Path::new("/sys/fs/cgroup/blkio/blkio.leaf_weight").exists() {
        let out = create(&|c| c["linux"]["resources"]["blockIO"] = json!({"leafWeight": 300}));
        assert_error(
            &out,
            "blockIO.leafWeight: this host's blkio controller has no blkio.leaf_weight",
        );
    }
    let out = create(&|c| {
        c["linux"]["resources"]["devices"] = json!([{"allow": true, "type": "p", "access": "r"}])
    });
    assert_error(&out, "linux.resources.devices[0].type");
    let out = create(&|c| c["linux"]["resources"]["memory"] = json!({"swappiness": 101}));
    assert_error(&out, "linux.resources.memory");
    // The systemd driver: v2 only in hako, and this is a v1 host.
    let b = env.bundle(|c| c["linux"]["cgroupsPath"] = json!("system.slice:hako:x"));
    let out = env.hako(&[
        "--systemd-cgroup",
        "create",
        "-b",
        b.path(),
        &unique_id("sd"),
    ]);
    assert_error(&out, "--systemd-cgroup");
    assert!(env.ids().is_empty(), "a failed create left {:?}", env.ids());
}
