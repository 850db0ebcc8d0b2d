//! Rootless: hako run by a real unprivileged user (`hakotest`, made with useradd when missing),
//! through setpriv, with a private XDG_RUNTIME_DIR. Skipped (with a line saying why) when the
//! suite is not root or useradd is missing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::common::*;

mod limits;

const USER: &str = "hakotest";
/// The user's subordinate ids (/etc/subuid, /etc/subgid) when useradd did not add them.
const SUB_START: u32 = 300_000;
const SUB_COUNT: u32 = 65_536;

/// The user's first range in /etc/subuid or /etc/subgid.
fn subids(file: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:")))
        .unwrap();
    let (start, count) = line.split_once(':').unwrap();
    (start.parse().unwrap(), count.parse().unwrap())
}

/// Gone, or a zombie its new parent has not reaped yet.
fn gone(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

#[derive(Clone, Copy)]
struct Ids {
    uid: u32,
    gid: u32,
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, USER]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The test user, made once per host: the suite's tests run in parallel, and other runs of the
/// suite may too, so the check-and-create holds an exclusive flock.
fn user() -> Option<Ids> {
    static IDS: OnceLock<Option<Ids>> = OnceLock::new();
    *IDS.get_or_init(|| {
        let tools = ["/usr/sbin/useradd", "/usr/bin/setpriv"];
        if !nix::unistd::geteuid().is_root() || !tools.iter().all(|t| Path::new(t).exists()) {
            eprintln!("rootless tests skipped: they need root, useradd and setpriv");
            return None;
        }
        let lock = std::fs::File::create("/run/hako-rootless-test.lock").unwrap();
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
        if id_of("-u").is_none() {
            let out = Command::new("useradd")
                .args(["-M", "-s", "/bin/sh", USER])
                .output()
                .unwrap();
            assert!(out.status.success(), "useradd: {}", stderr(&out));
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
                let line = format!("{USER}:{SUB_START}:{SUB_COUNT}\n");
                std::fs::write(file, text + &line).unwrap();
            }
        }
        Some(Ids {
            uid: id_of("-u")?,
            gid: id_of("-g")?,
        })
    })
}

/// A private directory owned by the test user (bundles, XDG_RUNTIME_DIR, volumes).
struct Rootless {
    ids: Ids,
    dir: tempfile::TempDir,
}

fn chown_tree(path: &Path, ids: Ids) {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", ids.uid, ids.gid))
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "chown: {}", stderr(&out));
}

impl Rootless {
    fn new() -> Option<Rootless> {
        let ids = user()?;
        let dir = tempfile::Builder::new()
            .prefix("hako-rootless-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let xdg = dir.path().join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown_tree(dir.path(), ids);
        Some(Rootless { ids, dir })
    }

    fn xdg(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    /// The default state directory of the user: `$XDG_RUNTIME_DIR/hako`.
    fn state_dir(&self) -> PathBuf {
        self.xdg().join("hako")
    }

    /// `hako ARGS` as the user, in `cwd`, with HOME and XDG_RUNTIME_DIR set (no --root).
    fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        self.program(&hako_bin(), cwd, args)
    }

    /// `program ARGS` as the user.
    fn program(&self, program: &str, cwd: &Path, args: &[&str]) -> Command {
        // By its path: a test may give the user a PATH without it.
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={}", self.ids.uid))
            .arg(format!("--regid={}", self.ids.gid))
            .arg("--clear-groups")
            .arg(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.xdg())
            .stdin(Stdio::null());
        c
    }

    fn hako(&self, args: &[&str]) -> Output {
        output_via_files(&mut self.command(self.dir.path(), args))
    }

    /// A busybox bundle whose config.json is `hako spec --rootless`'s, made by the user,
    /// then changed by `edit`.
    fn bundle(&self, edit: impl FnOnce(&mut Value)) -> Bundle {
        let dir = self.dir.path().join(unique_id("bundle"));
        let b = Bundle::new(&dir, |_| {});
        std::fs::remove_file(dir.join("config.json")).unwrap();
        chown_tree(&dir, self.ids);
        let out = output_via_files(&mut self.command(&dir, &["spec", "--rootless"]));
        assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        edit(&mut config);
        b.write_config(&config);
        b
    }

    fn ids_left(&self) -> Vec<String> {
        std::fs::read_dir(self.state_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        for id in self.ids_left() {
            let _ = self.hako(&["delete", "--force", &id]);
        }
    }
}

fn sh(config: &mut Value, script: &str) {
    config["process"]["args"] = json!(["sh", "-c", script]);
}

/// The one line on stderr besides errors: the cgroup decision.
fn warnings(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.contains("level=warning"))
        .map(String::from)
        .collect()
}

#[test]
fn spec_rootless_then_run_with_no_root_flag_is_root_inside_and_the_user_outside() {
    let Some(r) = Rootless::new() else { return };
    let data = r.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chown_tree(&data, r.ids);
    let b = r.bundle(|c| {
        sh(c, "id; echo written > /data/file; cat /proc/self/uid_map");
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": data,
            "options": ["rbind", "rw"]
        }));
    });
    let id = unique_id("demo");
    let out = output_via_files(&mut r.command(&b.dir, &["run", &id]));
    assert!(out.status.success(), "run: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("uid=0(root) gid=0(root)"), "{text}");
    let map: Vec<String> = text
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(map, ["0", &r.ids.uid.to_string(), "1"], "{text}");
    let file = std::fs::metadata(data.join("file")).unwrap();
    assert_eq!((file.uid(), file.gid()), (r.ids.uid, r.ids.gid));
    // The state went under $XDG_RUNTIME_DIR/hako, and run removed it.
    assert!(r.state_dir().is_dir());
    assert!(r.ids_left().is_empty(), "{:?}", r.ids_left());
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", stderr(&out));
    assert!(w[0].contains("no writable cgroup"), "{w:?}");
}

#[test]
fn rootless_lifecycle_create_start_state_exec_ps_kill_delete() {
    let Some(r) = Rootless::new() else { return };
    let b = r.bundle(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique_id("life");
    let out = r.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let state = |r: &Rootless| -> Value {
        let out = r.hako(&["state", &id]);
        assert!(out.status.success(), "state: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let s = state(&r);
    assert_eq!(s["status"], "created");
    let pid = s["pid"].as_i64().unwrap();
    // The host sees the mapping: the container's root is the user.
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, ["0", &r.ids.uid.to_string(), "1"]);
    let host_uid = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(host_uid, r.ids.uid);
    let list = stdout(&r.hako(&["list", "-q"]));
    assert_eq!(list.trim(), id);

    assert!(r.hako(&["start", &id]).status.success());
    assert_eq!(state(&r)["status"], "running");
    let out = r.hako(&["exec", &id, "sh", "-c", "id -u; cat /proc/1/cmdline"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out), "0\nsleep\u{0}1000\u{0}");
    // No cgroup: ps lists the container's pid namespace from /proc.
    let out = r.hako(&["ps", "-f", "json", &id]);
    assert!(out.status.success(), "ps: {}", stderr(&out));
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids, [pid]);

    // Without a cgroup there is no freezer: pause says so.
    let out = r.hako(&["pause", &id]);
    assert_error(
        &out,
        "has no cgroup (created rootless without a writable cgroup): pause needs one",
    );

    let out = r.hako(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    assert!(eventually(|| state(&r)["status"] == "stopped"));
    let out = r.hako(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(r.ids_left().is_empty());
    assert!(eventually(|| gone(pid)));
}

#[test]
fn kill_all_without_a_cgroup_reaches_every_process_of_the_container() {
    let Some(r) = Rootless::new() else { return };
    // Found through the container's pid namespace in /proc.
    let b = r.bundle(|c| sh(c, "sleep 1000 & sleep 1000 & wait"));
    let id = unique_id("killall");
    let out = r.hako(&["run", "-d", "-b", b.path(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let pids = || -> Vec<i64> {
        let out = r.hako(&["ps", "-f", "json", &id]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    assert!(eventually(|| pids().len() == 3), "{:?}", pids());
    let all = pids();
    let out = r.hako(&["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "kill --all: {}", stderr(&out));
    assert!(eventually(|| all.iter().all(|p| gone(*p))), "{all:?}");
    assert!(r.hako(&["delete", "--force", &id]).status.success());
}

#[test]
fn rootless_without_xdg_runtime_dir_or_root_is_one_clear_error() {
    let Some(r) = Rootless::new() else { return };
    let mut c = r.command(r.dir.path(), &["list"]);
    c.env_remove("XDG_RUNTIME_DIR");
    let out = output_via_files(&mut c);
    assert_error(&out, "XDG_RUNTIME_DIR is not set");
    assert!(stderr(&out).contains("--root"), "{}", stderr(&out));
}

#[test]
fn multi_range_maps_go_through_newuidmap_and_need_it() {
    let Some(r) = Rootless::new() else { return };
    if !Path::new("/usr/bin/newuidmap").exists() {
        eprintln!("skipped: newuidmap (package uidmap) is not installed");
        return;
    }
    let (sub_uid, uid_count) = subids("/etc/subuid");
    let (sub_gid, gid_count) = subids("/etc/subgid");
    let maps = json!([
        {"containerID": 0, "hostID": r.ids.uid, "size": 1},
        {"containerID": 1, "hostID": sub_uid, "size": uid_count}
    ]);
    let gmaps = json!([
        {"containerID": 0, "hostID": r.ids.gid, "size": 1},
        {"containerID": 1, "hostID": sub_gid, "size": gid_count}
    ]);
    let b = r.bundle(|c| {
        sh(
            c,
            "cat /proc/self/uid_map /proc/self/gid_map; chown 1000:1000 /tmp/f",
        );
        c["root"]["readonly"] = json!(false);
        let chown = json!(["CAP_CHOWN"]);
        c["process"]["capabilities"] =
            json!({"bounding": chown, "effective": chown, "permitted": chown});
        c["linux"]["uidMappings"] = maps;
        c["linux"]["gidMappings"] = gmaps;
    });
    let tmp = b.rootfs().join("tmp");
    std::fs::write(tmp.join("f"), "").unwrap();
    chown_tree(&tmp, r.ids);
    let out = r.hako(&["run", "-b", b.path(), &unique_id("maps")]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let lines: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let want = |host0: u32, sub: u32, count: u32| {
        vec![
            vec!["0".to_string(), host0.to_string(), "1".to_string()],
            vec!["1".to_string(), sub.to_string(), count.to_string()],
        ]
    };
    assert_eq!(lines[..2], want(r.ids.uid, sub_uid, uid_count)[..]);
    assert_eq!(lines[2..], want(r.ids.gid, sub_gid, gid_count)[..]);
    // The container's id 1000 is the subordinate id start + 999 on the host.
    let f = std::fs::metadata(tmp.join("f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (sub_uid + 999, sub_gid + 999));

    // Without the helper on PATH: one line naming the field, the helper and its package.
    let mut c = r.command(
        r.dir.path(),
        &["run", "-b", b.path(), &unique_id("nohelper")],
    );
    c.env("PATH", "/nonexistent");
    let out = output_via_files(&mut c);
    assert_error(&out, "config.json: linux.uidMappings:");
    assert!(
        stderr(&out).contains("newuidmap (package uidmap)"),
        "{}",
        stderr(&out)
    );
    assert!(r.ids_left().is_empty());
}

#[test]
fn sysfs_in_a_user_namespace_without_its_own_network_is_the_hosts_read_only() {
    let Some(r) = Rootless::new() else { return };
    let b = r.bundle(|c| {
        sh(
            c,
            "grep ' /sys ' /proc/mounts; ls /sys/class/net; touch /sys/x",
        );
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                            "options": ["nosuid", "noexec", "nodev", "ro"]});
            }
        }
    });
    let out = r.hako(&["run", "-b", b.path(), &unique_id("sys")]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(text.starts_with("sysfs /sys sysfs ro,"), "{text}");
    // The host's sysfs, bound (a fresh one cannot be mounted here), and read-only.
    assert!(text.contains("lo\n"), "{text}");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}

/// Leaves of a JSON value as (path, value) pairs.
fn leaves(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| leaves(v, format!("{path}.{k}"), out)),
        Value::Array(a) if a.iter().any(|x| x.is_object()) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, format!("{path}[{i}]"), out)),
        _ => out.push((path, v.clone())),
    }
}

#[test]
fn spec_rootless_matches_runcs_but_where_hakos_spec_differs_anyway() {
    let Some(r) = Rootless::new() else { return };
    if !Path::new("/usr/sbin/runc").exists() {
        eprintln!("skipped: runc is not installed");
        return;
    }
    let spec_of = |program: &str| -> Value {
        let dir = r
            .dir
            .path()
            .join(unique_id(program.rsplit('/').next().unwrap()));
        std::fs::create_dir(&dir).unwrap();
        chown_tree(&dir, r.ids);
        let out = output_via_files(&mut r.program(program, &dir, &["spec", "--rootless"]));
        assert!(out.status.success(), "{program} spec: {}", stderr(&out));
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
    };
    let (mut hako, mut runc) = (Vec::new(), Vec::new());
    leaves(&spec_of(&hako_bin()), String::new(), &mut hako);
    leaves(&spec_of("/usr/sbin/runc"), String::new(), &mut runc);
    // Capability sets are sets: their order means nothing.
    for (path, v) in hako.iter_mut().chain(runc.iter_mut()) {
        if let (true, Value::Array(a)) = (path.starts_with(".process.capabilities"), v) {
            a.sort_by_key(|c| c.to_string());
        }
    }
    // Where `hako spec` differs from `runc spec` with or without --rootless: the spec version,
    // the hostname, a cgroup namespace, the inheritable capabilities (oci-spec's default).
    let deliberate = [
        ".ociVersion",
        ".hostname",
        ".annotations",
        ".linux.namespaces",
        ".process.capabilities.inheritable",
    ];
    let keep = |l: &Vec<(String, Value)>| -> Vec<(String, Value)> {
        l.iter()
            .filter(|(p, _)| !deliberate.iter().any(|d| p.starts_with(d)))
            .cloned()
            .collect()
    };
    assert_eq!(keep(&hako), keep(&runc));
    // The namespaces: runc's, and a cgroup namespace.
    let ns = |l: &Vec<(String, Value)>| -> Vec<Value> {
        l.iter()
            .filter(|(p, _)| p.starts_with(".linux.namespaces"))
            .map(|(_, v)| v.clone())
            .filter(|v| v != "cgroup")
            .collect()
    };
    assert_eq!(ns(&hako), ns(&runc));
}

#[test]
fn a_user_namespace_made_by_unshare_gets_its_maps_too() {
    let Some(r) = Rootless::new() else { return };
    // A time namespace makes the init unshare its namespaces after clone (the second path to
    // the id maps: the parent writes them on the init's request).
    let b = r.bundle(|c| {
        sh(c, "cat /proc/self/uid_map /proc/self/gid_map");
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
    });
    let out = r.hako(&["run", "-b", b.path(), &unique_id("unshare")]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let lines: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines[0], ["0", &r.ids.uid.to_string(), "1"]);
    assert_eq!(lines[1], ["0", &r.ids.gid.to_string(), "1"]);
}
