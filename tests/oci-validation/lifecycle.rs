//! runtime.md: the state, create, start, kill and delete operations and their errors.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

fn sleeper(env: &Env) -> Bundle {
    env.bundle(|c| c["process"]["args"] = json!(["sleep", "1000"]))
}

#[test]
fn run_prints_and_exits_with_the_process_code() {
    let env = Env::new();
    let out = env.run_sh("echo hi; exit 3", |_| {});
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(env.ids().is_empty(), "run left a record: {:?}", env.ids());
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    let env = Env::new();
    // Without a pid namespace the shell is not a pid 1 that ignores signals.
    let out = env.run_sh("kill -9 $$", |c| remove_namespace(c, "pid"));
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

#[test]
fn create_start_kill_delete() {
    let env = Env::new();
    let b =
        env.bundle(|c| c["process"]["args"] = json!(["sh", "-c", "touch /started; sleep 1000"]));
    let id = unique_id("life");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));

    // state: the MUST fields, status created, a live pid; the program has not run yet.
    let s = env.state(&id);
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"], "created");
    assert_eq!(s["bundle"], b.path());
    assert!(s["ociVersion"].as_str().is_some_and(|v| !v.is_empty()));
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !b.rootfs().join("started").exists(),
        "user program ran before start"
    );

    let out = env.hako(&["start", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        eventually(|| b.rootfs().join("started").exists()),
        "program did not run after start"
    );
    assert_eq!(env.status(&id), "running");
    assert_eq!(
        env.state(&id)["pid"].as_i64(),
        Some(pid),
        "start changed the pid"
    );

    // start of a running container is an error.
    assert_error(&env.hako(&["start", &id]), "not created");
    // delete of a running container needs --force.
    assert_error(&env.hako(&["delete", &id]), "running, not stopped");

    let out = env.hako(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(|| env.status(&id) == "stopped"));
    // kill of a stopped container is an error and changes nothing.
    assert_error(&env.hako(&["kill", &id, "TERM"]), "container not running");
    assert_eq!(env.status(&id), "stopped");

    let out = env.hako(&["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.root.join(&id).exists(), "record left behind");
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/memory/{id}")).exists(),
        "cgroup left behind"
    );
    assert_error(&env.hako(&["state", &id]), "does not exist");
}

#[test]
fn kill_signal_spellings_reach_the_process() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", "trap 'touch /got-usr1' USR1; trap 'touch /got-hup' HUP; trap 'exit 0' TERM; while true; do sleep 0.05; done"])
    });
    let id = unique_id("sig");
    assert!(env
        .hako(&["run", "-d", "-b", b.path(), &id])
        .status
        .success());
    std::thread::sleep(Duration::from_millis(200));
    assert!(env.hako(&["kill", &id, "SIGUSR1"]).status.success());
    assert!(
        eventually(|| b.rootfs().join("got-usr1").exists()),
        "SIGUSR1 not delivered"
    );
    assert!(env.hako(&["kill", &id, "1"]).status.success());
    assert!(
        eventually(|| b.rootfs().join("got-hup").exists()),
        "signal 1 not delivered"
    );
    assert_error(&env.hako(&["kill", &id, "NOTASIGNAL"]), "invalid signal");
    assert!(env.hako(&["kill", &id]).status.success(), "default TERM");
    assert!(eventually(|| env.status(&id) == "stopped"));
}

#[test]
fn delete_of_created_container_fails_without_force() {
    let env = Env::new();
    let b = sleeper(&env);
    let id = unique_id("delc");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_error(&env.hako(&["delete", &id]), "created, not stopped");
    assert_eq!(env.status(&id), "created");
    assert!(alive(pid));
    let out = env.hako(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(|| !alive(pid)), "init {pid} still alive");
    assert!(!env.root.join(&id).exists());
}

#[test]
fn delete_force_kills_a_running_container() {
    let env = Env::new();
    let b = sleeper(&env);
    let id = unique_id("delf");
    assert!(env
        .hako(&["run", "-d", "-b", b.path(), &id])
        .status
        .success());
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let out = env.hako(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(|| !alive(pid)));
    assert!(!env.root.join(&id).exists());
}

/// Alive and not a zombie.
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn pid_file_holds_the_host_pid() {
    let env = Env::new();
    let b = sleeper(&env);
    let id = unique_id("pidf");
    let pid_file = env.dir.path().join("pidfile");
    let out = env.hako(&[
        "create",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "-b",
        b.path(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(Some(written), env.state(&id)["pid"].as_i64());
}

#[test]
fn duplicate_id_is_refused_and_the_first_is_untouched() {
    let env = Env::new();
    let b = sleeper(&env);
    let id = unique_id("dup");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    let pid = env.state(&id)["pid"].clone();
    assert_error(
        &env.hako(&["create", "-b", b.path(), &id]),
        "already exists",
    );
    assert_eq!(env.state(&id)["pid"], pid);
    assert_eq!(env.status(&id), "created");
}

/// A change that breaks a bundle, and what the error must name.
type BadCase = (Box<dyn Fn(&Bundle)>, &'static str);

#[test]
fn bad_input_is_one_clear_error_and_leaves_nothing() {
    let env = Env::new();
    let cases: Vec<BadCase> = vec![
        (
            Box::new(|b| std::fs::remove_file(b.dir.join("config.json")).unwrap()),
            "config.json",
        ),
        (
            Box::new(|b| {
                let text = std::fs::read_to_string(b.dir.join("config.json")).unwrap();
                std::fs::write(b.dir.join("config.json"), &text[..text.len() / 2]).unwrap();
            }),
            "config.json",
        ),
        (
            Box::new(|b| {
                let mut c: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap())
                        .unwrap();
                c["process"]["args"] = json!([]);
                b.write_config(&c);
            }),
            "process.args",
        ),
        (
            Box::new(|b| {
                let mut c: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap())
                        .unwrap();
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, json!({"type": "bogus"}));
                b.write_config(&c);
            }),
            "linux.namespaces[0].type",
        ),
        (
            Box::new(|b| std::fs::remove_dir_all(b.rootfs()).unwrap()),
            "root.path",
        ),
    ];
    for (break_it, needle) in cases {
        let b = sleeper(&env);
        break_it(&b);
        let id = unique_id("bad");
        assert_error(&env.hako(&["create", "-b", b.path(), &id]), needle);
        assert!(!env.root.join(&id).exists(), "{needle}: record left behind");
    }
    let b = sleeper(&env);
    for bad_id in ["../x", "", "a/b", ".."] {
        assert_error(
            &env.hako(&["create", "-b", b.path(), bad_id]),
            "invalid container id",
        );
    }
    assert!(env.ids().is_empty(), "left behind: {:?}", env.ids());
    for cmd in ["start", "state", "delete"] {
        assert_error(&env.hako(&[cmd, "no-such-container"]), "does not exist");
    }
    assert_error(
        &env.hako(&["kill", "no-such-container", "KILL"]),
        "does not exist",
    );
}

#[test]
fn config_changes_after_create_do_not_affect_the_container() {
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["args"] = json!(["sh", "-c", "echo first > /out"]));
    let id = unique_id("cfg");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    let mut c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    c["process"]["args"] = json!(["sh", "-c", "echo second > /out"]);
    b.write_config(&c);
    assert!(env.hako(&["start", &id]).status.success());
    assert!(eventually(|| std::fs::read_to_string(
        b.rootfs().join("out")
    )
    .is_ok_and(|s| s == "first\n")));
}

#[test]
fn hostname_and_domainname() {
    let env = Env::new();
    let out = env.run_sh("hostname; cat /proc/sys/kernel/domainname", |c| {
        c["hostname"] = json!("box-name");
        c["domainname"] = json!("example.test");
    });
    assert_eq!(stdout(&out), "box-name\nexample.test\n", "{}", stderr(&out));
}

#[test]
fn list_shows_containers_and_quiet_ids() {
    let env = Env::new();
    let b = sleeper(&env);
    let id = unique_id("list");
    assert!(env.hako(&["create", "-b", b.path(), &id]).status.success());
    let out = env.hako(&["list"]);
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("created")),
        "{text}"
    );
    assert_eq!(stdout(&env.hako(&["list", "-q"])), format!("{id}\n"));
    let json: serde_json::Value =
        serde_json::from_slice(&env.hako(&["list", "-f", "json"]).stdout).unwrap();
    assert_eq!(json[0]["id"], id.as_str());
}

#[test]
fn json_log_lines_are_runc_shaped() {
    let env = Env::new();
    let log = env.dir.path().join("log.json");
    let out = env.hako(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert!(last["time"].is_string());
}

#[test]
fn preserve_fds_pass_exactly_the_named_fds() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    });
    let id = unique_id("fds");
    // Open fds 3, 4, 5 in the caller (sh execs hako with them); preserve only one.
    let script = format!("exec 3</dev/null 4</dev/null 5</dev/null; exec {HAKO} --root {} run --preserve-fds 1 -b {} {id}", env.root.display(), b.path());
    let out = output_via_files(std::process::Command::new("sh").args(["-c", &script]));
    assert!(out.status.success(), "{}", stderr(&out));
    // 0 1 2, the preserved 3, and the fd ls opens for the directory.
    assert_eq!(stdout(&out), "0 1 2 3 4 ", "{}", stderr(&out));
}

#[test]
fn spec_writes_a_loadable_default_and_refuses_to_overwrite() {
    let env = Env::new();
    let dir = env.dir.path().join("spec");
    std::fs::create_dir(&dir).unwrap();
    let out = env.hako(&["spec", "-b", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["process"]["args"], json!(["sh"]));
    assert_eq!(c["root"]["path"], "rootfs");
    assert_error(
        &env.hako(&["spec", "-b", dir.to_str().unwrap()]),
        "already exists",
    );
}

#[test]
fn features_lists_namespaces_and_hooks() {
    let env = Env::new();
    let f: serde_json::Value = serde_json::from_slice(&env.hako(&["features"]).stdout).unwrap();
    assert_eq!(f["linux"]["namespaces"].as_array().unwrap().len(), 8);
    assert!(f["hooks"]
        .as_array()
        .unwrap()
        .contains(&json!("createRuntime")));
}

#[test]
fn a_missing_program_fails_at_start_with_127_and_a_clear_message() {
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["args"] = json!(["no-such-program"]));
    let id = unique_id("noprog");
    let out = env.hako(&["run", "-b", b.path(), &id]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("\"no-such-program\": executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_oci_version_is_refused() {
    let env = Env::new();
    let b = env.bundle(|c| c["ociVersion"] = json!("invalid"));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("ver")]),
        "ociVersion",
    );
}

#[test]
fn without_a_mount_namespace_the_container_shares_the_hosts_mounts() {
    let env = Env::new();
    let out = env.run_sh("readlink /proc/1/ns/mnt 2>/dev/null; ls /", |c| {
        remove_namespace(c, "mount");
        remove_namespace(c, "pid");
        c["mounts"] = json!([]);
    });
    assert!(out.status.success(), "{}", stderr(&out));
    // The root changed (the bundle's rootfs) without any mount on the host.
    assert!(stdout(&out).contains("bin"), "{}", stdout(&out));
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(env.dir.path().to_str().unwrap()),
        "a mount leaked to the host"
    );
}

#[test]
fn delete_force_after_create_was_killed_midway_removes_everything() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "100"]);
        // A slow createRuntime hook: create is killed while it runs.
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"]}]});
    });
    let id = unique_id("crash");
    let mut child = env
        .command(&["create", "-b", b.path(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the init exists and is recorded.
    assert!(eventually(|| std::fs::read_to_string(
        env.root.join(&id).join("state.json")
    )
    .is_ok_and(|s| !s.contains("\"pid\":0,"))));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&id).join("state.json")).unwrap())
            .unwrap();
    let pid = record["pid"].as_i64().unwrap();
    let cgroup = record["cgroupPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = env.hako(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(|| !alive(pid)), "init {pid} survived");
    assert!(!env.root.join(&id).exists(), "record left behind");
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(&cgroup);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn usage_errors_exit_1() {
    let env = Env::new();
    for args in [
        &["create"][..],
        &["kill"],
        &["no-such-command"],
        &["state", "a", "b"],
    ] {
        let out = env.hako(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// A `delete` that waited for a container's lock while that container was removed and another
/// made under its id (a second delete, then a restart: delete and create again) must take the
/// new one's lock before touching it, never act on a container another hako is working on.
#[test]
fn a_delete_that_waited_for_a_removed_container_takes_the_new_ones_lock() {
    use nix::fcntl::{Flock, FlockArg};
    use std::process::Stdio;
    let env = Env::new();
    let id = unique_id("relock");
    let paths = [unique_id("hako-relock"), unique_id("hako-relock")];
    let bundle = |path: &str| {
        env.bundle(|c| {
            c["process"]["args"] = json!(["sleep", "1000"]);
            c["linux"]["cgroupsPath"] = json!(format!("/{path}"));
        })
    };
    let (first, second) = (bundle(&paths[0]), bundle(&paths[1]));
    let lock = |d: &std::path::Path| {
        let f = std::fs::File::open(d).unwrap();
        Flock::lock(f, FlockArg::LockExclusive).unwrap()
    };
    assert!(env
        .hako(&["create", "-b", first.path(), &id])
        .status
        .success());
    let first_pid = env.state(&id)["pid"].as_i64().unwrap();
    let dir = env.root.join(&id);
    let old = lock(&dir);
    let mut waiting = env
        .command(&["delete", "--force", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let waited = waiting.try_wait().unwrap().is_none();
    // The first container's directory goes (moved aside, for the cleanup) and a second
    // container is made under the id, then held busy (its lock taken, as by its create).
    let aside = env.dir.path().join("aside");
    std::fs::rename(&dir, &aside).unwrap();
    let made = env.hako(&["create", "-b", second.path(), &id]);
    let busy = lock(&dir);
    drop(old);
    std::thread::sleep(Duration::from_millis(300));
    let meanwhile = waiting.try_wait().unwrap();
    let state = env.hako(&["state", &id]);
    drop(busy);
    let deleted = waiting.wait_with_output().unwrap();
    let after = env.hako(&["state", &id]);

    // Cleanup: the first container back under its id and deleted; its process and cgroup
    // removed by hand should its record be gone.
    let _ = env.hako(&["delete", "--force", &id]);
    let _ = std::fs::rename(&aside, &dir);
    if !env.hako(&["delete", "--force", &id]).status.success() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(first_pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        std::thread::sleep(Duration::from_millis(200));
        for ctrl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(ctrl.path().join(&paths[0]));
        }
    }

    assert!(waited, "delete did not wait for the lock");
    assert!(made.status.success(), "create: {}", stderr(&made));
    assert!(
        meanwhile.is_none(),
        "delete went on without the new container's lock"
    );
    assert!(state.status.success(), "{}", stderr(&state));
    assert!(stdout(&state).contains("\"created\""), "{}", stdout(&state));
    // Once free, the id's container is the one deleted.
    assert!(deleted.status.success(), "delete: {}", stderr(&deleted));
    assert_error(&after, "does not exist");
}
