//! Attacks on the host through hako's own command line and environment, each run for real:
//! a fork loop against `kill --all`, a symlink planted at the pid file's temporary name, a
//! stray LISTEN_FDS handing an open host file to the container, and configs that sized
//! allocations or left cgroup directories behind. Each test restores what it touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

fn v1_host() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/freezer/freezer.state").exists()
        || Path::new("/sys/fs/cgroup/freezer").is_dir();
    if !v1 {
        eprintln!("skipped: these tests read cgroup v1 files");
    }
    v1
}

/// A v1 controller's directory for an absolute cgroup path.
fn cg(controller: &str, path: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

fn procs(path: &str) -> Vec<i32> {
    std::fs::read_to_string(cg("pids", path).join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills whatever is left in the cgroup, frozen (the way the defence does), so that a failing
/// test leaves no fork loop running on the host.
fn reap(path: &str) {
    let state = cg("freezer", path).join("freezer.state");
    let _ = std::fs::write(&state, "FROZEN");
    for pid in procs(path) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let _ = std::fs::write(&state, "THAWED");
    let _ = eventually(|| procs(path).is_empty());
}

const FORKER: &str = r#"
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(void) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 300; i++)
        if (fork() == 0)
            for (;;) pause();
    for (int i = 0; i < 4; i++)
        if (fork() == 0)
            for (;;)
                if (fork() > 0) _exit(0);
    for (;;) pause();
}
"#;

/// Compiles a C program, statically linked, to `out`.
fn build_static(source: &str, out: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("prog.c");
    std::fs::write(&src, source).unwrap();
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .expect("cc: install gcc");
    assert!(status.success(), "cc failed");
}

#[test]
fn kill_all_freezes_first_so_a_fork_loop_cannot_outrun_it() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let path = format!("/{}", unique_id("hako-forkloop"));
    // No pid namespace of its own, so killing the init does not take the others with it. The
    // init (a subreaper that lets the kernel reap) starts 300 idle processes, then four chains
    // whose every process forks its successor and exits: the forkers are always the newest
    // pids, last in any list of the cgroup, and fork while a plain walk signals the others.
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["/forker"]);
        remove_namespace(c, "pid");
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"]["pids"] = json!({"limit": 400});
    });
    build_static(FORKER, &b.rootfs().join("forker"));
    let id = unique_id("forkloop");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = env.hako(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let grown = eventually(|| procs(&path).len() >= 304);

    let out = env.hako(&["kill", "--all", &id, "KILL"]);
    std::thread::sleep(Duration::from_millis(500));
    let left = procs(&path);
    reap(&path);
    assert!(grown, "the fork loop did not get going");
    assert!(out.status.success(), "kill --all: {}", stderr(&out));
    assert_eq!(left, Vec::<i32>::new(), "processes outlived kill --all");

    assert!(eventually(|| env.status(&id) == "stopped"));
    let out = env.hako(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    for ctrl in ["pids", "freezer", "memory", "devices"] {
        assert!(!cg(ctrl, &path).exists(), "{ctrl} cgroup left behind");
    }

    // `delete --force` of the running fork loop leaves no process and no cgroup either.
    let id = unique_id("forkloop");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    assert!(env.hako(&["start", &id]).status.success());
    let grown = eventually(|| procs(&path).len() >= 304);
    let out = env.hako(&["delete", "--force", &id]);
    std::thread::sleep(Duration::from_millis(500));
    let (left, dirs) = (procs(&path), cgroup_dirs_named(&path[1..]));
    reap(&path);
    for dir in &dirs {
        let _ = std::fs::remove_dir(dir);
    }
    assert!(grown, "the fork loop did not get going");
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    assert_eq!(left, Vec::<i32>::new(), "processes outlived delete --force");
    assert_eq!(dirs, Vec::<PathBuf>::new(), "cgroup left behind");
}

#[test]
fn kill_of_a_stopped_container_is_runcs_error_and_kill_all_reaps_what_is_left() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let path = format!("/{}", unique_id("hako-leftover"));
    // The init exits at once and leaves a process behind in its cgroup.
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", "sleep 1000 & touch /started"]);
        remove_namespace(c, "pid");
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let id = unique_id("leftover");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    assert!(env.hako(&["start", &id]).status.success());
    let stopped = eventually(|| env.status(&id) == "stopped");
    let before = procs(&path);

    // containerd's shim matches runc's text.
    let plain = env.hako(&["kill", &id, "TERM"]);
    let all = env.hako(&["kill", "--all", &id, "KILL"]);
    let reaped = eventually(|| procs(&path).is_empty());
    reap(&path);
    assert!(stopped, "the init did not exit");
    assert_eq!(before.len(), 1, "the leftover sleep: {before:?}");
    assert_error(&plain, "container not running");
    assert!(all.status.success(), "kill --all: {}", stderr(&all));
    assert!(reaped, "kill --all left {:?}", procs(&path));
    assert!(env.hako(&["delete", &id]).status.success());
    assert!(!cg("pids", &path).exists(), "cgroup left behind");
}

#[test]
fn pid_file_never_follows_a_symlink_planted_at_its_temporary_name() {
    let env = Env::new();
    let dir = env.dir.path().join("run");
    std::fs::create_dir(&dir).unwrap();
    let victim = env.dir.path().join("victim");
    std::fs::write(&victim, "root-owned content\n").unwrap();
    let tmp = dir.join(".pid.tmp");
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();

    // Like runc (O_CREAT|O_EXCL on the temporary name), create fails and makes nothing.
    let b = env.bundle(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = unique_id("pidfile");
    let pid_file = dir.join("pid");
    let out = env.hako(&[
        "create",
        "-b",
        b.path(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root-owned content\n",
        "the victim was written through the symlink"
    );
    assert_error(&out, ".pid.tmp");
    assert!(!pid_file.exists());
    assert!(!env.root.join(&id).exists(), "container left behind");

    // Once the name is free, the pid file holds the container's pid and nothing else is left.
    std::fs::remove_file(&tmp).unwrap();
    let out = env.hako(&[
        "create",
        "-b",
        b.path(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(!tmp.exists());
}

/// `hako run` from a shell that first opens `secret` as fd 3 and sets LISTEN_FDS=1;
/// LISTEN_PID is `listen_pid`, evaluated by that shell (`$$` is hako's pid after exec).
fn run_with_fd3(env: &Env, secret: &Path, listen_pid: &str) -> std::process::Output {
    let b = env.bundle(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat <&3 || echo no-fd-3; echo LISTEN_FDS=$LISTEN_FDS"
        ]);
    });
    let id = unique_id("listen");
    let script = format!(
        "export LISTEN_FDS=1 LISTEN_PID={listen_pid}; exec \"$0\" --root \"$1\" run -b \"$2\" \"$3\" 3<\"$4\""
    );
    output_via_files(Command::new("sh").args([
        "-c",
        &script,
        HAKO,
        env.root.to_str().unwrap(),
        b.path(),
        &id,
        secret.to_str().unwrap(),
    ]))
}

#[test]
fn listen_fds_for_another_pid_pass_no_host_fd_into_the_container() {
    let env = Env::new();
    let secret = env.dir.path().join("shadow");
    std::fs::write(&secret, "s3cr3t-host-data\n").unwrap();

    let out = run_with_fd3(&env, &secret, "1");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !text.contains("s3cr3t"),
        "the container read the host file: {text}"
    );
    assert!(text.contains("no-fd-3"), "{text}");
    assert!(text.contains("LISTEN_FDS=\n"), "{text}");

    // Meant for hako (systemd's rule), the fd is passed on, renumbered for the container.
    let out = run_with_fd3(&env, &secret, "$$");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("s3cr3t-host-data"), "{text}");
    assert!(text.contains("LISTEN_FDS=1"), "{text}");
}

/// Directories named `name` anywhere under /sys/fs/cgroup.
fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
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

#[test]
fn values_that_sized_allocations_are_refused_before_anything_is_made() {
    let env = Env::new();
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 5] = [
        // Was a capacity-overflow panic in the init.
        (
            |c| c["process"]["execCPUAffinity"] = json!({"initial": "0-18446744073709551615"}),
            "config.json: process.execCPUAffinity.initial: cpu 18446744073709551615 is above 1023",
        ),
        // Was an Instant overflow panic in create, after the cgroup and the init were made.
        (
            |c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/true", "timeout": i64::MAX}]}),
            "config.json: hooks.createRuntime[0].timeout: 9223372036854775807: at most",
        ),
        (
            |c| {
                set_namespace(c, "user", None);
                let map = json!({"containerID": 0, "hostID": 100000, "size": 1});
                c["linux"]["uidMappings"] = json!(vec![map; 341]);
            },
            "config.json: linux.uidMappings: 341 entries: at most 340",
        ),
        (
            |c| c["process"]["consoleSize"] = json!({"height": u64::MAX, "width": 80}),
            "config.json: process.consoleSize.height: 18446744073709551615 is above 65535",
        ),
        (
            |c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1".repeat(5000)}),
            "config.json: linux.sysctl.net.ipv4.ip_forward: a value of 5000 bytes",
        ),
    ];
    for (edit, needle) in cases {
        let b = env.bundle(|c| {
            c["process"]["args"] = json!(["true"]);
            edit(c);
        });
        let id = unique_id("bounded");
        assert_error(&env.hako(&["create", "-b", b.path(), &id]), needle);
        assert!(!env.root.join(&id).exists(), "{needle}: record left behind");
        assert_eq!(cgroup_dirs_named(&id), Vec::<PathBuf>::new(), "{needle}");
    }
    // The command line too: the init sized its list of fds to keep by this (an overflow panic,
    // or a loop over two billion fds).
    let b = env.bundle(|c| c["process"]["args"] = json!(["true"]));
    for n in ["4294967295", "2000000000"] {
        let id = unique_id("fds");
        let out = env.hako(&["create", "--preserve-fds", n, "-b", b.path(), &id]);
        assert_error(&out, &format!("--preserve-fds {n}: fd "));
        assert!(!env.root.join(&id).exists(), "record left behind");
    }
}

#[test]
fn cgroups_path_dot_dot_neither_climbs_nor_leaves_directories() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let (a, b) = (unique_id("hako-dd-a"), unique_id("hako-dd-b"));
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.split_once(":memory:"))
        .map(|(_, p)| p.trim_start_matches('/').to_string())
        .unwrap();
    for (path, want) in [
        // Absolute: cleaned lexically, so `a` is never made.
        (format!("/{a}/../{b}"), b.clone()),
        // Relative: cleaned on its own, then put under hako's own cgroup (it cannot climb out).
        (format!("{a}/../../../{b}"), format!("{own}/{b}")),
    ] {
        let bundle = env.bundle(|c| {
            c["process"]["args"] = json!(["sleep", "1000"]);
            c["linux"]["cgroupsPath"] = json!(path);
        });
        let id = unique_id("dotdot");
        let out = env.hako(&["create", "-b", bundle.path(), &id]);
        assert!(out.status.success(), "create: {}", stderr(&out));
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let made = cgroup_dirs_named(&a);
        assert!(env.hako(&["delete", "-f", &id]).status.success());
        assert!(
            cgroup.contains(&format!("pids:/{want}\n")),
            "{path}: placed at {cgroup}"
        );
        // A hybrid host's cgroup2 hierarchy: the same cleaned path (cgroups/hybrid.rs).
        assert!(
            !hybrid_host() || cgroup.contains(&format!("0::/{want}\n")),
            "{path}: placed at {cgroup}"
        );
        assert_eq!(made, Vec::<PathBuf>::new(), "{path}");
        assert_eq!(cgroup_dirs_named(&a), Vec::<PathBuf>::new(), "{path}");
        assert_eq!(cgroup_dirs_named(&b), Vec::<PathBuf>::new(), "{path}");
    }
}

fn hybrid_host() -> bool {
    let out = Command::new("stat")
        .args(["-f", "-c", "%T", "/sys/fs/cgroup/unified"])
        .output()
        .unwrap();
    stdout(&out).trim() == "cgroup2fs"
}

/// Given a writable cgroup mount (the mount list is the user's), the container makes child
/// cgroups of its own, nested, in every hierarchy. Deleting it must remove them with its
/// cgroup: neither rmdir nor libcgroups' v1 manager removes a cgroup with children, so each
/// container left its directories behind on the host.
#[test]
fn cgroups_the_container_made_inside_its_own_are_removed_with_it() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let name = unique_id("hako-nest");
    let b = env.bundle(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "for h in memory pids devices freezer unified; do \
             [ ! -d /sys/fs/cgroup/$h ] || mkdir -p /sys/fs/cgroup/$h/a/b /sys/fs/cgroup/$h/c \
             || exit 1; done"
        ]);
        c["linux"]["cgroupsPath"] = json!(format!("/{name}"));
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        mounts.push(json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["rw", "nosuid", "noexec", "nodev"]
        }));
    });
    let out = env.hako(&["run", "-b", b.path(), &unique_id("nest")]);
    let left = cgroup_dirs_named(&name);
    // Whatever the outcome, leave nothing behind: deepest first.
    let mut all: Vec<PathBuf> = left
        .iter()
        .flat_map(|d| [d.join("a/b"), d.join("a"), d.join("c"), d.clone()])
        .collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in all {
        let _ = std::fs::remove_dir(d);
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(left, Vec::<PathBuf>::new(), "{}", stderr(&out));
}

/// On a hybrid host the container goes in the cgroup2 hierarchy too, at the same path. A
/// cgroup there that something else uses (with no v1 directories of its own, as a service's
/// where systemd tracks processes) is refused like a v1 one in use: the container would join
/// it, and delete would remove it once empty.
#[test]
fn a_hybrid_cgroup2_cgroup_in_use_is_not_taken() {
    if !v1_host() || !hybrid_host() {
        return;
    }
    let env = Env::new();
    let name = unique_id("hako-foreign");
    let foreign = Path::new("/sys/fs/cgroup/unified").join(&name);
    std::fs::create_dir(&foreign).unwrap();
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    std::fs::write(foreign.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["true"]);
        c["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    });
    let id = unique_id("foreign");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    let procs = std::fs::read_to_string(foreign.join("cgroup.procs")).unwrap();
    let _ = env.hako(&["delete", "-f", &id]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let _ = eventually(|| std::fs::remove_dir(&foreign).is_ok());
    assert_error(
        &out,
        &format!("cgroup /{name}: already has 1 process(es) in it"),
    );
    assert_eq!(procs.trim(), sleeper.id().to_string());
    assert_eq!(cgroup_dirs_named(&name), Vec::<PathBuf>::new());
}

/// delete removes the cgroups below the container's, so a cgroup that already has some (another
/// container's, stopped and empty, or a service's) is not taken: delete would remove them.
#[test]
fn a_cgroup_with_cgroups_below_it_is_not_taken() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let name = unique_id("hako-parent");
    let mut hierarchies = vec!["pids"];
    if hybrid_host() {
        hierarchies.push("unified");
    }
    for h in hierarchies {
        let child = Path::new("/sys/fs/cgroup")
            .join(h)
            .join(&name)
            .join("other");
        std::fs::create_dir_all(&child).unwrap();
        let b = env.bundle(|c| {
            c["process"]["args"] = json!(["true"]);
            c["linux"]["cgroupsPath"] = json!(format!("/{name}"));
        });
        let id = unique_id("parent");
        let out = env.hako(&["run", "-b", b.path(), &id]);
        let _ = env.hako(&["delete", "-f", &id]);
        let kept = child.exists();
        let _ = std::fs::remove_dir(&child);
        for d in cgroup_dirs_named(&name) {
            let _ = std::fs::remove_dir(d);
        }
        assert!(kept, "{h}: delete removed {}", child.display());
        assert_error(
            &out,
            &format!(
                "cgroup /{name}: has a cgroup below it ({})",
                child.display()
            ),
        );
    }
}

/// The container's pid 1 renames itself to a name that is not UTF-8 (its comm, in
/// /proc/PID/stat): hako must still see it alive, so that `delete` without --force refuses
/// and `delete --force` kills it, leaving neither a process nor a cgroup behind.
#[test]
fn a_container_renaming_itself_is_still_seen_alive() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let path = format!("/{}", unique_id("hako-comm"));
    let b = env.bundle(|c| {
        let script = r"printf '\377)' > /proc/self/comm; while :; do sleep 1; done";
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let id = unique_id("comm");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    assert!(env.hako(&["start", &id]).status.success());
    let renamed = eventually(|| {
        procs(&path)
            .iter()
            .any(|p| std::fs::read(format!("/proc/{p}/comm")).is_ok_and(|c| c == b"\xff)\n"))
    });
    let status = env.status(&id);
    let plain = env.hako(&["delete", &id]);
    let forced = env.hako(&["delete", "--force", &id]);
    let left = procs(&path);
    // Whatever went wrong, nothing of the test stays on the host.
    reap(&path);
    for dir in cgroup_dirs_named(&path[1..]) {
        let _ = std::fs::remove_dir(dir);
    }
    assert!(renamed, "the container did not rename itself");
    assert_eq!(status, "running");
    assert_error(&plain, "not stopped");
    assert!(
        forced.status.success(),
        "delete --force: {}",
        stderr(&forced)
    );
    assert_eq!(left, Vec::<i32>::new(), "processes outlived delete --force");
}
