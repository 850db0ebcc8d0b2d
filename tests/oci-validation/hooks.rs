//! config.md "POSIX-platform Hooks" and runtime.md "Lifecycle": each kind at its point and in its
//! namespace, in listed order, with the state on stdin, args, env and timeout; what a failing
//! hook of each kind does; and hack/hooks/netns-veth.sh giving a container a network.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::*;
use crate::lifecycle::alive;

/// A bundle whose config `edit` changes knowing the rootfs path (hooks write there).
fn bundle(env: &Env, edit: impl FnOnce(&Path, &mut Value)) -> Bundle {
    let b = env.bundle(|_| {});
    let mut c: Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    edit(&b.rootfs(), &mut c);
    b.write_config(&c);
    b
}

/// A hook running `sh -c SCRIPT`.
fn sh(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// A hook appending `line` to `file`.
fn append(file: &Path, line: &str) -> Value {
    sh(&format!("echo '{line}' >> {}", file.display()))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn ok(out: &std::process::Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

const CREATE_KINDS: [&str; 3] = ["prestart", "createRuntime", "createContainer"];

#[test]
fn each_kind_runs_at_its_point_in_listed_order() {
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| {
        let order = rootfs.join("order");
        let mut hooks = json!({});
        for kind in CREATE_KINDS.iter().chain(&["poststart", "poststop"]) {
            hooks[kind] = json!([
                append(&order, &format!("{kind} 1")),
                append(&order, &format!("{kind} 2"))
            ]);
        }
        // startContainer runs after pivot_root: the same file is /order there.
        hooks["startContainer"] = json!([
            append(Path::new("/order"), "startContainer 1"),
            append(Path::new("/order"), "startContainer 2")
        ]);
        c["hooks"] = hooks;
        c["process"]["args"] = json!(["sh", "-c", "cp /order /seen-by-process; sleep 1000"]);
    });
    let order = b.rootfs().join("order");
    let id = unique_id("order");
    ok(&env.hako(&["create", "-b", b.path(), &id]));
    let mut want = String::new();
    for kind in CREATE_KINDS {
        want += &format!("{kind} 1\n{kind} 2\n");
    }
    assert_eq!(read(&order), want, "after create");

    ok(&env.hako(&["start", &id]));
    want += "startContainer 1\nstartContainer 2\n";
    assert!(eventually(|| b.rootfs().join("seen-by-process").exists()));
    let seen = read(&b.rootfs().join("seen-by-process"));
    assert!(
        seen.starts_with(&want),
        "the program ran before the startContainer hooks: {seen:?}"
    );
    want += "poststart 1\npoststart 2\n";
    assert_eq!(read(&order), want, "after start");

    ok(&env.hako(&["delete", "--force", &id]));
    want += "poststop 1\npoststop 2\n";
    assert_eq!(read(&order), want, "after delete");
}

#[test]
fn state_json_on_stdin_of_each_kind() {
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| {
        let mut hooks = json!({});
        for kind in CREATE_KINDS.iter().chain(&["poststart", "poststop"]) {
            let file = rootfs.join(format!("state-{kind}"));
            hooks[kind] = json!([sh(&format!("cat > {}", file.display()))]);
        }
        hooks["startContainer"] = json!([sh("cat > /state-startContainer")]);
        c["hooks"] = hooks;
        c["annotations"] = json!({"org.example.hook": "yes"});
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    let id = unique_id("stdin");
    ok(&env.hako(&["create", "-b", b.path(), &id]));
    let host_pid = env.state(&id)["pid"].as_i64().unwrap();
    ok(&env.hako(&["start", &id]));
    ok(&env.hako(&["delete", "--force", &id]));

    // In the container's namespaces the pid is the container's own view (runtime.md "State").
    for (kind, status, pid) in [
        ("prestart", "creating", Some(host_pid)),
        ("createRuntime", "creating", Some(host_pid)),
        ("createContainer", "creating", Some(1)),
        ("startContainer", "created", Some(1)),
        ("poststart", "running", Some(host_pid)),
        ("poststop", "stopped", None),
    ] {
        let text = read(&b.rootfs().join(format!("state-{kind}")));
        let s: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(s["id"], id.as_str(), "{kind}");
        assert_eq!(s["status"], status, "{kind}");
        assert_eq!(s["bundle"], b.path(), "{kind}");
        assert_eq!(s["annotations"]["org.example.hook"], "yes", "{kind}");
        assert!(s["ociVersion"].is_string(), "{kind}");
        if let Some(pid) = pid {
            assert_eq!(s["pid"].as_i64(), Some(pid), "{kind}");
        }
    }
}

#[test]
fn args_are_argv_and_env_is_exactly_the_list() {
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| {
        let out = rootfs.join("args");
        let script = format!(
            "/usr/bin/tr '\\0' ' ' < /proc/$$/cmdline > {0}; echo \"[$FOO][$HAKO_HOOK_TEST]\" >> {0}",
            out.display()
        );
        c["hooks"] = json!({
            "createRuntime": [
                {"path": "/bin/sh", "args": ["given-argv0", "-c", script], "env": ["FOO=bar"]},
                // No env: the runtime's own, as runc does.
                sh(&format!("echo \"[$HAKO_HOOK_TEST]\" > {}", rootfs.join("inherited").display())),
            ],
            // No env, in the container: the container's.
            "startContainer": [sh("echo \"[$HOOK_VAR][$HAKO_HOOK_TEST]\" > /container-env")],
        });
        c["process"]["env"] = json!(["PATH=/bin", "HOOK_VAR=container"]);
        c["process"]["args"] = json!(["true"]);
    });
    let id = unique_id("args");
    let out = output_via_files(
        env.command(&["run", "-b", b.path(), &id])
            .env("HAKO_HOOK_TEST", "inherited")
            .stdin(std::process::Stdio::null()),
    );
    ok(&out);
    let args = read(&b.rootfs().join("args"));
    assert!(args.starts_with("given-argv0 -c /usr/bin/tr "), "{args:?}");
    assert!(args.ends_with("[bar][]\n"), "{args:?}");
    assert_eq!(read(&b.rootfs().join("inherited")), "[inherited]\n");
    assert_eq!(read(&b.rootfs().join("container-env")), "[container][]\n");
}

/// Hooks start with no signal blocked, as runc's do, even from a foreground `run`, which blocks
/// the signals it forwards to the container while it waits. (cp copies its own status: a shell
/// would clear its mask at start and hide the one it was given.)
#[test]
fn hooks_start_with_no_signal_blocked() {
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| {
        let status = |kind: &str| {
            let to = rootfs.join(kind).display().to_string();
            json!({"path": "/bin/cp", "args": ["cp", "/proc/self/status", to]})
        };
        c["hooks"] = json!({
            "createRuntime": [status("createRuntime")],
            "poststart": [status("poststart")],
            "poststop": [status("poststop")],
        });
        c["process"]["args"] = json!(["true"]);
    });
    let id = unique_id("sigblk");
    let out = output_via_files(
        env.command(&["run", "-b", b.path(), &id])
            .stdin(std::process::Stdio::null()),
    );
    ok(&out);
    for kind in ["createRuntime", "poststart", "poststop"] {
        let status = read(&b.rootfs().join(kind));
        let blocked = status.lines().find(|l| l.starts_with("SigBlk:"));
        assert_eq!(blocked, Some("SigBlk:\t0000000000000000"), "{kind}");
    }
}

/// Live processes whose command line holds `token`.
fn running_with(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(token)
            && pid.parse().is_ok_and(|p: i64| alive(p))
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_create_fails_naming_it() {
    for kind in ["createRuntime", "createContainer"] {
        let env = Env::new();
        let id = unique_id("timeout");
        let token = format!("hook-of-{id}");
        let b = bundle(&env, |_, c| {
            // It and its child sleep are killed (its process group).
            let mut hook = sh(&format!(": {token}; while :; do sleep 1; done"));
            hook["timeout"] = json!(1);
            c["hooks"] = json!({ kind: [hook] });
        });
        let out = env.hako(&["create", "-b", b.path(), &id]);
        assert_error(
            &out,
            &format!("hooks.{kind}[0] (/bin/sh): error running hook: killed"),
        );
        assert!(stderr(&out).contains("timeout of 1s"), "{}", stderr(&out));
        assert!(
            eventually(|| running_with(&token).is_empty()),
            "{kind}: hook still runs: {:?}",
            running_with(&token)
        );
        assert!(env.ids().is_empty(), "{kind}: left {:?}", env.ids());
    }
}

/// Hooks of `kind`: one that works, one that fails with a message, one that must not run; a
/// poststop hook, and a marker for each other kind.
fn failing(rootfs: &Path, c: &mut Value, kind: &str) {
    let log = rootfs.join("log");
    let mut hooks = json!({});
    for other in CREATE_KINDS.iter().chain(&["poststart", "poststop"]) {
        hooks[other] = json!([append(&log, other)]);
    }
    hooks["startContainer"] = json!([append(Path::new("/log"), "startContainer")]);
    let first = if kind == "startContainer" {
        PathBuf::from("/log")
    } else {
        log.clone()
    };
    hooks[kind] = json!([
        append(&first, &format!("{kind} 1")),
        sh("echo 'no network for you' >&2; echo 'try later' >&2; exit 7"),
        append(&first, &format!("{kind} 3")),
    ]);
    c["hooks"] = hooks;
    c["process"]["args"] = json!(["sh", "-c", "echo process >> /log; sleep 1000"]);
}

fn assert_hook_error(out: &std::process::Output, kind: &str) {
    assert_error(
        out,
        &format!("hooks.{kind}[1] (/bin/sh): error running hook: exit status 7"),
    );
    assert!(
        stderr(out).contains("no network for you; try later"),
        "{}",
        stderr(out)
    );
}

#[test]
fn a_failing_create_hook_fails_create_and_tears_down() {
    for (i, kind) in CREATE_KINDS.iter().enumerate() {
        let env = Env::new();
        let b = bundle(&env, |rootfs, c| failing(rootfs, c, kind));
        let id = unique_id("createfail");
        assert_hook_error(&env.hako(&["create", "-b", b.path(), &id]), kind);
        // Earlier kinds ran, this one stopped at its failure, later ones and the program did
        // not run; the container is gone and its poststop hooks ran (lifecycle steps 12, 13).
        let mut want: String = CREATE_KINDS[..i].iter().map(|k| format!("{k}\n")).collect();
        want += &format!("{kind} 1\npoststop\n");
        assert_eq!(read(&b.rootfs().join("log")), want, "{kind}");
        assert!(env.ids().is_empty(), "{kind}: left {:?}", env.ids());
        assert_error(&env.hako(&["state", &id]), "does not exist");
    }
}

#[test]
fn a_failing_start_container_hook_fails_start_and_tears_down() {
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| failing(rootfs, c, "startContainer"));
    let id = unique_id("startfail");
    ok(&env.hako(&["create", "-b", b.path(), &id]));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_hook_error(&env.hako(&["start", &id]), "startContainer");
    assert_eq!(
        read(&b.rootfs().join("log")),
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer 1\npoststop\n"
    );
    assert!(eventually(|| !alive(pid)), "init {pid} still alive");
    assert!(env.ids().is_empty(), "left {:?}", env.ids());

    // The same through `run`.
    let b = bundle(&env, |rootfs, c| failing(rootfs, c, "startContainer"));
    assert_hook_error(
        &env.hako(&["run", "-b", b.path(), &unique_id("runfail")]),
        "startContainer",
    );
    assert!(!read(&b.rootfs().join("log")).contains("process"));
    assert!(env.ids().is_empty(), "left {:?}", env.ids());
}

#[test]
fn a_failing_poststart_hook_fails_start_and_stops_the_container() {
    // runtime-spec 1.3.0 runtime.md lifecycle step 9: "If any poststart hook fails, the runtime
    // MUST generate an error, stop the container, and continue the lifecycle at step 12."
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| failing(rootfs, c, "poststart"));
    let id = unique_id("poststartfail");
    ok(&env.hako(&["create", "-b", b.path(), &id]));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_hook_error(&env.hako(&["start", &id]), "poststart");
    assert!(eventually(|| !alive(pid)), "container {pid} still runs");
    let log = read(&b.rootfs().join("log"));
    assert!(
        log.contains("poststart 1\n") && log.ends_with("poststop\n"),
        "{log:?}"
    );
    assert!(!log.contains("poststart 3"), "{log:?}");
    assert!(env.ids().is_empty(), "left {:?}", env.ids());
}

#[test]
fn a_failing_poststop_hook_is_a_warning() {
    let env = Env::new();
    let b = bundle(&env, |rootfs, c| {
        failing(rootfs, c, "poststop");
        c["process"]["args"] = json!(["true"]);
    });
    let id = unique_id("poststopfail");
    ok(&env.hako(&["run", "-d", "-b", b.path(), &id]));
    assert!(eventually(|| env.status(&id) == "stopped"));
    let out = env.hako(&["delete", &id]);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains("hooks.poststop[1]") && err.contains("try later"),
        "{err}"
    );
    assert!(read(&b.rootfs().join("log")).ends_with("poststop 1\npoststop 3\n"));
    assert!(env.ids().is_empty(), "left {:?}", env.ids());
}

fn ns_links(pid: &str) -> String {
    ["mnt", "uts", "ipc", "net", "pid"]
        .iter()
        .map(|n| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap())
        .map(|l| format!("{}\n", l.display()))
        .collect()
}

#[test]
fn container_hooks_run_in_the_container_and_runtime_hooks_outside() {
    let env = Env::new();
    let script = "for n in mnt uts ipc net pid; do readlink /proc/self/ns/$n; done";
    // createContainer's path resolves in the runtime namespace, startContainer's in the
    // container's: each script exists only there.
    let host_script = env.dir.path().join("ns-host.sh");
    let b = bundle(&env, |rootfs, c| {
        let out = |kind: &str| rootfs.join(format!("ns-{kind}"));
        std::fs::write(
            &host_script,
            format!(
                "#!/bin/sh\n{script} > {}\n",
                out("createContainer").display()
            ),
        )
        .unwrap();
        std::fs::write(
            rootfs.join("ns-container.sh"),
            format!("#!/bin/sh\n{script} > /ns-startContainer\n"),
        )
        .unwrap();
        for f in [host_script.clone(), rootfs.join("ns-container.sh")] {
            Command::new("chmod").arg("+x").arg(f).status().unwrap();
        }
        c["hooks"] = json!({
            "createRuntime": [sh(&format!("{script} > {}", out("createRuntime").display()))],
            "createContainer": [{"path": host_script}],
            "startContainer": [{"path": "/ns-container.sh"}],
        });
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    let id = unique_id("ns");
    ok(&env.hako(&["create", "-b", b.path(), &id]));
    let pid = env.state(&id)["pid"].as_i64().unwrap().to_string();
    ok(&env.hako(&["start", &id]));
    let container = ns_links(&pid);
    assert_ne!(container, ns_links("self"));
    assert_eq!(read(&b.rootfs().join("ns-createRuntime")), ns_links("self"));
    assert_eq!(read(&b.rootfs().join("ns-createContainer")), container);
    assert_eq!(read(&b.rootfs().join("ns-startContainer")), container);
}

/// runc runs createContainer hooks from the rootfs (runc's hooks library test touches
/// `./lib/...`); hako does the same, whatever directory create was called from.
#[test]
fn create_container_hooks_start_in_the_rootfs() {
    let env = Env::new();
    let b = bundle(&env, |_, c| {
        c["hooks"] = json!({"createContainer": [sh("pwd -P > hook-cwd")]});
        c["process"]["args"] = json!(["cat", "/hook-cwd"]);
    });
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let id = unique_id("hookcwd");
    let out = output_via_files(
        env.command(&["run", "-b", b.path(), &id])
            .current_dir(&elsewhere)
            .stdin(std::process::Stdio::null()),
    );
    ok(&out);
    let rootfs = b.rootfs().canonicalize().unwrap();
    assert_eq!(stdout(&out).trim(), rootfs.to_str().unwrap());
    assert!(!elsewhere.join("hook-cwd").exists());
}

#[test]
fn hook_fields_are_checked() {
    let env = Env::new();
    for (hook, needle) in [
        (
            json!({"path": "sh"}),
            "hooks.poststart[0].path: sh: must be an absolute path",
        ),
        (
            json!({"path": "/bin/true", "timeout": 0}),
            "hooks.poststart[0].timeout: 0: must be greater than zero",
        ),
    ] {
        let b = env.bundle(|c| c["hooks"] = json!({ "poststart": [hook] }));
        assert_error(
            &env.hako(&["create", "-b", b.path(), &unique_id("bad")]),
            needle,
        );
    }
    assert!(env.ids().is_empty());
}

#[test]
fn netns_veth_example_gives_the_container_a_network() {
    let env = Env::new();
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/hooks/netns-veth.sh");
    let b = env.bundle(|c| {
        c["hooks"] = json!({"createRuntime": [{
            "path": hook,
            "args": ["netns-veth.sh", "169.254.77.1/30", "169.254.77.2"],
        }]});
        // busybox ping uses a raw socket.
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_NET_RAW"));
        }
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "ip -4 addr show eth0 && ip route && ping -c 1 -W 5 169.254.77.1"
        ]);
    });
    let id = unique_id("veth");
    // The runtime's side lives in a network namespace of the test's own, so the host's network
    // is never touched; after `run` the pair must be gone with the container's namespace.
    let script = format!(
        "{HAKO} --root {} run -b {} {id} || exit $?
         for i in $(seq 100); do ip -o link show | grep -q ' hk' || exit 0; sleep 0.05; done
         echo 'veth left behind' >&2; ip -o link show >&2; exit 99",
        env.root.display(),
        b.path(),
    );
    let out = output_via_files(Command::new("unshare").args(["--net", "sh", "-c", &script]));
    ok(&out);
    let text = stdout(&out);
    assert!(text.contains("inet 169.254.77.2/30"), "{text}");
    assert!(text.contains("default via 169.254.77.1 dev eth0"), "{text}");
    assert!(
        text.contains("1 packets transmitted, 1 packets received"),
        "{text}"
    );
}
