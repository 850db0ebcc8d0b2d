//! runc's semantics where runtime-spec leaves room (issue 9): configs `runc spec` writes, a
//! frozen cgroup, `list` of a missing root, tmpfs mode and tmpcopyup, and --debug; and
//! runtime-spec 1.3.0's `linux.netDevices`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

#[test]
fn runc_spec_ambient_capabilities_warn_and_run() {
    let env = Env::new();
    // What `runc spec` writes: ambient capabilities and no inheritable set, so the kernel
    // refuses to raise them. runc warns and runs; so must hako.
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let out = env.run_sh(
        "grep -E '^Cap(Inh|Eff|Amb)' /proc/self/status | cut -f2 | tr '\\n' ' '",
        |c| {
            c["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps});
        },
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29); ambient empty.
    assert_eq!(
        stdout(&out),
        "0000000000000000 0000000020000420 0000000000000000 ",
        "{err}"
    );
    assert!(
        err.contains("can't raise ambient capability CAP_KILL"),
        "no warning: {err}"
    );
}

/// Runs `cmd` for at most `limit` (output through files, as `output_via_files`); None when it
/// had to be killed.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<std::process::Output> {
    use std::io::{Read, Seek};
    let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            out.rewind().unwrap();
            out.read_to_end(&mut stdout).unwrap();
            err.rewind().unwrap();
            err.read_to_end(&mut stderr).unwrap();
            return Some(std::process::Output {
                status,
                stdout,
                stderr,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn create_into_a_frozen_cgroup_is_refused() {
    let freezer = Path::new("/sys/fs/cgroup/freezer");
    let (dir, file, frozen, thawed) = if freezer.exists() {
        (freezer.to_path_buf(), "freezer.state", "FROZEN", "THAWED")
    } else {
        (PathBuf::from("/sys/fs/cgroup"), "cgroup.freeze", "1", "0")
    };
    let env = Env::new();
    let rel = format!("/{}", unique_id("hako-frozen"));
    let cg = dir.join(&rel[1..]);
    std::fs::create_dir(&cg).unwrap();
    std::fs::write(cg.join(file), frozen).unwrap();
    let b = env.bundle(|c| c["linux"]["cgroupsPath"] = json!(rel));
    let id = unique_id("frozen");
    // Bounded: without the check the init freezes in the cgroup and create never returns.
    let out = run_bounded(
        &mut env.command(&["create", "-b", b.path(), &id]),
        Duration::from_secs(10),
    );
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
    std::fs::write(cg.join(file), thawed).unwrap();
    if out.is_none() || !env.ids().is_empty() {
        let _ = env.hako(&["delete", "--force", &id]);
    }
    let memory_made = Path::new("/sys/fs/cgroup/memory").join(&rel[1..]).exists();
    let _ = std::fs::remove_dir(&cg);
    let out = out.expect("create hung on the frozen cgroup");
    assert_error(&out, "is frozen");
    assert!(
        stderr(&out).contains(&rel),
        "the cgroup is not named: {}",
        stderr(&out)
    );
    assert!(procs.trim().is_empty(), "a process was left in it: {procs}");
    assert!(env.ids().is_empty(), "a container record was left");
    assert!(!memory_made, "a cgroup was made beside the frozen one");
}

#[test]
fn list_of_a_missing_root_fails() {
    let env = Env::new();
    let missing = env.dir.path().join("no-such-root");
    let list = || {
        output_via_files(
            Command::new(HAKO)
                .arg("--root")
                .arg(&missing)
                .args(["list", "-q"])
                .stdin(Stdio::null()),
        )
    };
    let out = list();
    assert_error(&out, &format!("--root {}", missing.display()));
    assert!(stderr(&out).contains("No such file or directory"));
    assert!(!missing.exists(), "list made the root");
    // An existing empty root lists nothing, successfully.
    std::fs::create_dir(&missing).unwrap();
    let out = list();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tmpfs_without_mode_takes_the_mode_of_the_directory_it_covers() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["stat", "-c", "%n %a", "/covered", "/fresh", "/given"]);
        let mounts = c["mounts"].as_array_mut().unwrap();
        for dest in ["/covered", "/fresh"] {
            mounts.push(
                json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "size=1m"]}),
            );
        }
        mounts.push(
            json!({"destination": "/given", "type": "tmpfs", "source": "tmpfs",
            "options": ["mode=750"]}),
        );
    });
    for d in ["covered", "given"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
        std::fs::set_permissions(b.rootfs().join(d), PermissionsExt::from_mode(0o711)).unwrap();
    }
    let out = env.hako(&["run", "-b", b.path(), &unique_id("tmpfs")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Covered: the directory's 711; made by hako: tmpfs's 1777; mode= given: that.
    assert_eq!(stdout(&out), "/covered 711\n/fresh 1777\n/given 750\n");
}

#[test]
fn tmpcopyup_copies_what_the_tmpfs_covers() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cd /etc/app && cat a sub/b && stat -c '%a %u:%g' a sub && readlink link && \
             grep -c ' /etc/app tmpfs ' /proc/mounts && echo new > c"
        ]);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/etc/app",
            "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nosuid"]}));
    });
    let app = b.rootfs().join("etc/app");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    std::fs::write(app.join("a"), "one\n").unwrap();
    std::fs::write(app.join("sub/b"), "two\n").unwrap();
    std::fs::set_permissions(app.join("a"), PermissionsExt::from_mode(0o604)).unwrap();
    std::fs::set_permissions(app.join("sub"), PermissionsExt::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(app.join("a"), Some(123), Some(456)).unwrap();
    std::os::unix::fs::symlink("a", app.join("link")).unwrap();
    let out = env.hako(&["run", "-b", b.path(), &unique_id("copyup")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n604 123:456\n750 0:0\na\n1\n");
    // The container wrote to its tmpfs, not to the rootfs.
    assert!(
        !app.join("c").exists(),
        "the write went through to the rootfs"
    );
    assert_eq!(std::fs::metadata(app.join("a")).unwrap().uid(), 123);
}

/// A veth pair made for a test, deleted when dropped (if the container did not take it along).
struct Veth(String, String);

impl Veth {
    fn new() -> Veth {
        let n = std::process::id() % 1_000_000;
        let v = Veth(format!("hkt{n}a"), format!("hkt{n}b"));
        let ok = Command::new("ip")
            .args(["link", "add", &v.0, "type", "veth", "peer", "name", &v.1])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip link add veth (install iproute2)");
        let ok = Command::new("ip")
            .args(["addr", "add", "10.231.7.5/24", "dev", &v.0])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        v
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl Drop for Veth {
    fn drop(&mut self) {
        for n in [&self.0, &self.1] {
            if link_exists(n) {
                let _ = Command::new("ip").args(["link", "del", n]).status();
            }
        }
    }
}

#[test]
fn net_devices_are_moved_renamed_up_with_their_addresses() {
    let env = Env::new();
    let veth = Veth::new();
    let out = env.run_sh(
        "ip -o addr show dev ctr0 | grep -o 'inet [0-9./]*'; ip -o link show dev ctr0 | grep -o '<.*>'; ls /sys/class/net",
        |c| c["linux"]["netDevices"] = json!({ veth.0.clone(): {"name": "ctr0"} }),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // Renamed, its permanent global address kept, up (the spec's three MUSTs); nothing else.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "inet 10.231.7.5/24", "{text}");
    assert!(lines[1].contains(",UP"), "not up: {text}");
    assert_eq!(&lines[2..], ["ctr0", "lo"], "{text}");
    // Nothing is moved back (the spec forbids it): a virtual device dies with the namespace,
    // its peer with it.
    assert!(
        eventually(|| !link_exists(&veth.0) && !link_exists(&veth.1)),
        "the veth pair outlived the container's network namespace"
    );
}

#[test]
fn net_devices_errors_name_the_field_and_leave_nothing() {
    let env = Env::new();
    let b = env.bundle(|c| c["linux"]["netDevices"] = json!({"hkt-missing0": {}}));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("nd")]),
        "linux.netDevices.hkt-missing0: no such network device on the host",
    );
    let b = env.bundle(|c| {
        c["linux"]["netDevices"] = json!({"lo": {"name": "a/b"}});
    });
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("nd")]),
        "linux.netDevices.lo.name: \"a/b\" is not a valid network device name",
    );
    let b = env.bundle(|c| {
        c["linux"]["netDevices"] = json!({"lo": {}});
        remove_namespace(c, "network");
    });
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("nd")]),
        "linux.netDevices: the container has no network namespace",
    );
    // The name is taken in the container's namespace: `lo` is in every new one.
    let veth = Veth::new();
    let b = env.bundle(|c| c["linux"]["netDevices"] = json!({ veth.0.clone(): {"name": "lo"} }));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("nd")]),
        &format!("linux.netDevices.{}.name: \"lo\" already exists", veth.0),
    );
    assert!(
        link_exists(&veth.0),
        "the device left the host on a failed create"
    );
    assert!(env.ids().is_empty(), "a container was left behind");
}

#[test]
fn debug_says_what_hako_does() {
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["args"] = json!(["true"]));
    let out = env.hako(&["--debug", "run", "-b", b.path(), &unique_id("dbg")]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for needle in [
        "level=debug msg=\"plan: namespaces: clone",
        "plan: mounts [/proc, /dev,",
        "plan: capabilities: bounding [",
        "level=debug msg=\"cgroup made, joined by the init (v1 tasks) or cloned into (cgroup2)\"",
        "process executed",
        "delete ",
    ] {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    // Without --debug, none of it; with --log, all of it goes to the log, none to stderr.
    let out = env.hako(&["run", "-b", b.path(), &unique_id("dbg")]);
    assert!(!stderr(&out).contains("level=debug"), "{}", stderr(&out));
    let log = env.dir.path().join("debug.json");
    let l = log.to_str().unwrap();
    let out = env.hako(&[
        "--log",
        l,
        "--log-format",
        "json",
        "--debug",
        "run",
        "-b",
        b.path(),
        &unique_id("dbg"),
    ]);
    assert!(
        out.status.success() && !stderr(&out).contains("debug"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"level\":\"debug\",\"msg\":\"plan: namespaces"),
        "{text}"
    );
}

#[test]
fn kill_with_signal_0_checks_the_container_is_there() {
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["args"] = json!(["sleep", "30"]));
    let id = unique_id("sig0");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // kill(2)'s signal 0: nothing is sent, the call says whether the process is there.
    let out = env.hako(&["kill", &id, "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status(&id), "created");
    assert_error(&env.hako(&["kill", &id, "999"]), "invalid signal");
}

#[test]
fn proc_is_not_mounted_through_a_symlink() {
    let env = Env::new();
    for (dest, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        let b = env.bundle(|_| {});
        let path = b.rootfs().join(dest);
        std::fs::remove_dir(&path).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &path).unwrap();
        assert_error(
            &env.hako(&["create", "-b", b.path(), &unique_id("procln")]),
            &format!("/{dest}: {typ} must be mounted on ordinary directory"),
        );
        assert!(
            !b.rootfs().join("elsewhere").exists(),
            "mounted through the symlink"
        );
    }
    assert!(env.ids().is_empty());
}
