//! `hako exec`: a second process in a running container, with runc's flags and semantics —
//! namespaces, cgroup, capabilities, seccomp, user, env, cwd, terminal, exit code, and the
//! same defences as create (no host fd, cwd inside the container).

use std::os::unix::net::UnixListener;
use std::process::Output;

use serde_json::{json, Value};

use crate::common::*;

/// A container running `sleep` (started, detached); returns its id and host pid.
fn running(env: &Env, edit: impl FnOnce(&mut Value)) -> (String, i64) {
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        edit(c);
    });
    let id = unique_id("exec");
    let out = env.hako(&["run", "-d", "-b", b.path(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    (id, pid)
}

fn exec(env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    env.hako(&all)
}

/// exec's own failure: exit 255 (as runc: 1..254 may be the process's code), one line.
fn assert_exec_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(255),
        "expected exit 255; stderr: {err}"
    );
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line: {err}"
    );
}

fn exec_ok(env: &Env, args: &[&str]) -> String {
    let out = exec(env, args);
    assert!(
        out.status.success(),
        "exec {args:?}: {:?} {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn the_exit_code_is_the_processs() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    assert_eq!(
        exec(&env, &[&id, "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    let out = exec(&env, &[&id, "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
    assert_exec_error(
        &exec(&env, &[&id, "no-such-program"]),
        "executable file not found in $PATH",
    );
}

#[test]
fn env_cwd_user_and_groups() {
    let env = Env::new();
    let (id, _) = running(&env, |c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("FROM_CONFIG=yes"));
    });
    let out = exec_ok(
        &env,
        &[
            "--cwd",
            "/tmp/sub",
            "-e",
            "X=1",
            "-e",
            "FROM_CONFIG=overridden",
            "-u",
            "10:20",
            "--additional-gids",
            "5",
            "-g",
            "6",
            &id,
            "sh",
            "-c",
            "pwd; echo $X $FROM_CONFIG; id -u; id -g; id -G; echo $HOME",
        ],
    );
    assert_eq!(out, "/tmp/sub\n1 overridden\n10\n20\n20 5 6\n/\n");
    // Without flags: config.json's process (user 0, cwd /, its env).
    let out = exec_ok(&env, &[&id, "sh", "-c", "pwd; id -u; echo $FROM_CONFIG"]);
    assert_eq!(out, "/\n0\nyes\n");
}

#[test]
fn the_namespaces_are_the_inits() {
    let env = Env::new();
    let (id, pid) = running(&env, |_| {});
    let names = ["pid", "mnt", "net", "uts", "ipc", "cgroup"];
    let script = names
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n};"))
        .collect::<String>();
    let inside = exec_ok(&env, &[&id, "sh", "-c", &script]);
    let host: String = names
        .iter()
        .map(|n| {
            let l = std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap();
            format!("{}\n", l.display())
        })
        .collect();
    assert_eq!(inside, host);
    // The pid namespace is joined by a fork: the process sees the container's pids.
    let out = exec_ok(
        &env,
        &[
            &id,
            "sh",
            "-c",
            "echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
        ],
    );
    let mut lines = out.lines();
    assert_ne!(lines.next(), Some("1"));
    assert_eq!(lines.next(), Some("sleep 1000 "));
}

#[test]
fn detached_with_a_pid_file_in_the_containers_cgroup() {
    let env = Env::new();
    let (id, pid) = running(&env, |_| {});
    let pid_file = env.dir.path().join("exec.pid");
    let out = exec(
        &env,
        &[
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "500",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let exec_pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let cgroup = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cgroup(exec_pid), cgroup(pid));
    let cmdline = std::fs::read_to_string(format!("/proc/{exec_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x00500\x00");
    // `ps` of the container lists it.
    let ps = env.hako(&["ps", "-f", "json", &id]);
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&exec_pid), "{pids:?}");
}

#[test]
fn capabilities_default_to_the_containers_and_cap_adds() {
    let env = Env::new();
    let (id, pid) = running(&env, |_| {});
    let eff = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("CapEff:\t"))
            .unwrap()
            .to_string()
    };
    let init = eff(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    let script = "grep CapEff /proc/self/status";
    let inside = exec_ok(&env, &[&id, "sh", "-c", script]);
    assert_eq!(eff(&inside), init);
    let with = exec_ok(&env, &["-c", "CAP_SYS_ADMIN", &id, "sh", "-c", script]);
    let with = u64::from_str_radix(&eff(&with), 16).unwrap();
    let init = u64::from_str_radix(&init, 16).unwrap();
    assert_eq!(with, init | 1 << 21, "CAP_SYS_ADMIN is bit 21");
}

#[test]
fn the_containers_seccomp_filter_applies() {
    let env = Env::new();
    let (id, _) = running(&env, |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let out = exec(
        &env,
        &[
            &id,
            "sh",
            "-c",
            "grep ^Seccomp: /proc/self/status; mkdir /tmp/d",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("Seccomp:\t2"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn paused_and_stopped_containers_are_refused() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    assert!(env.hako(&["pause", &id]).status.success());
    assert_exec_error(
        &exec(&env, &[&id, "true"]),
        "cannot exec in a paused container",
    );
    assert!(env.hako(&["resume", &id]).status.success());
    exec_ok(&env, &[&id, "true"]);
    // --ignore-paused: the process waits in the frozen cgroup until `resume`.
    assert!(env.hako(&["pause", &id]).status.success());
    let mut waiting = env.command(&["exec", "--ignore-paused", &id, "echo", "ok"]);
    let waiting = std::thread::spawn(move || output_via_files(&mut waiting));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(env.hako(&["resume", &id]).status.success());
    let out = waiting.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
    assert!(env.hako(&["kill", &id, "KILL"]).status.success());
    assert!(eventually(|| env.status(&id) == "stopped"));
    assert_exec_error(
        &exec(&env, &[&id, "true"]),
        "cannot exec in a stopped container",
    );
    assert_exec_error(
        &exec(&env, &["no-such-container", "true"]),
        "no-such-container",
    );
}

#[test]
fn a_terminal_through_the_console_socket() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    let sock_path = env.dir.path().join("exec-console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let receiver = pty_output_of(listener);
    let out = exec(
        &env,
        &[
            "-t",
            "-d",
            "--console-socket",
            sock_path.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            "tty; test -t 0 && echo stdin-is-a-tty",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = receiver.join().unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(text.ends_with("\nstdin-is-a-tty\n"), "{text:?}");
}

/// The pty belongs to the process's user (runc's tty owner test); its group stays devpts' tty.
#[test]
fn the_terminal_is_the_users() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    let script = "stat -c %u:%g $(tty)";
    let mut cmd = env.command(&["exec", "-t", "-u", "1000:100", &id, "sh", "-c", script]);
    cmd.stdin(std::process::Stdio::null());
    let out = output_via_files(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1000:5\n");
}

#[test]
fn a_terminal_relayed_by_hako_itself() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    std::fs::write(env.dir.path().join("in"), "hello\n").unwrap();
    let mut cmd = env.command(&["exec", "-t", &id, "sh", "-c", "read l; echo got $l; exit 3"]);
    cmd.stdin(std::fs::File::open(env.dir.path().join("in")).unwrap());
    let out = output_via_files(&mut cmd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("got hello\n"), "{:?}", stdout(&out));
}

/// `--preserve-fds N` passes fds 3..3+N; any other fd of the caller's stays out (here the
/// shell's fd 4, a directory of the host: CVE-2024-21626's leak).
#[test]
fn preserved_fds_pass_and_no_other_fd_does() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    let data = env.dir.path().join("data");
    std::fs::write(&data, "through fd 3\n").unwrap();
    let script = format!(
        "exec 3<{} 4</; exec {HAKO} --root {} exec --preserve-fds 1 {id} sh -c \
         'cat <&3; test -e /proc/self/fd/4 && echo fd 4 leaked || echo fd 4 closed'",
        data.display(),
        env.root.display()
    );
    let out = output_via_files(std::process::Command::new("/bin/sh").args(["-c", &script]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "through fd 3\nfd 4 closed\n");
    assert_exec_error(
        &exec(&env, &["--preserve-fds", "4294967295", &id, "true"]),
        "--preserve-fds 4294967295: fd 4294967297 is past the kernel's limit",
    );
}

/// The attack of CVE-2024-21626 through exec: a host directory's fd open in the caller, and
/// `--cwd /proc/self/fd/N`. The process must not start with its cwd outside the container.
#[test]
fn a_cwd_through_a_host_fd_is_refused() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    let script = format!(
        "exec 7</; exec {HAKO} --root {} exec --cwd /proc/self/fd/7 {id} sh -c \
         'ls ..; cat ../../../../etc/hostname'",
        env.root.display()
    );
    let out = output_via_files(std::process::Command::new("/bin/sh").args(["-c", &script]));
    assert_eq!(out.status.code(), Some(255), "escaped: {}", stdout(&out));
    assert!(stdout(&out).is_empty(), "escaped: {}", stdout(&out));
    assert!(stderr(&out).contains("process.cwd"), "{}", stderr(&out));
}

#[test]
fn a_process_file_replaces_config_process() {
    let env = Env::new();
    let (id, _) = running(&env, |_| {});
    let file = env.dir.path().join("process.json");
    std::fs::write(
        &file,
        json!({"args": ["sh", "-c", "id -u; pwd; echo $ONLY"], "cwd": "/etc",
               "user": {"uid": 7, "gid": 7}, "env": ["ONLY=file", "PATH=/bin"]})
        .to_string(),
    )
    .unwrap();
    let out = exec_ok(&env, &["--process", file.to_str().unwrap(), &id]);
    assert_eq!(out, "7\n/etc\nfile\n");
    std::fs::write(&file, r#"{"args":["true"],"cwd":"/","user":{"uid":"x"}}"#).unwrap();
    assert_exec_error(
        &exec(&env, &["--process", file.to_str().unwrap(), &id]),
        "--process: user.uid",
    );
}

/// podman with hako as its runtime: `podman exec` (plain and -t) goes through conmon to
/// `hako exec --process FILE --detach --pid-file ...`. Skipped without podman.
#[test]
fn podman_exec_works() {
    let Some(podman) = ["/usr/bin/podman", "/usr/local/bin/podman"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("note: podman is not installed: podman exec not tried");
        return;
    };
    let env = Env::new();
    let b = env.bundle(|_| {});
    let d = env.dir.path();
    let name = unique_id("pm-exec");
    let dir = |n: &str| d.join(n).to_string_lossy().into_owned();
    let podman = |args: &[&str]| {
        output_via_files(
            std::process::Command::new(podman)
                .args(["--root", &dir("pm-root"), "--runroot", &dir("pm-run")])
                .args(["--tmpdir", &dir("pm-tmp"), "--storage-driver", "vfs"])
                .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
                .args(["--runtime", HAKO])
                .args(args)
                .stdin(std::process::Stdio::null()),
        )
    };
    let rootfs = b.rootfs().to_string_lossy().into_owned();
    let out = podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--rootfs",
        &rootfs,
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "podman run: {}", stderr(&out));
    let plain = podman(&["exec", &name, "sh", "-c", "echo exec-ok; exit 3"]);
    let tty = podman(&["exec", "-t", &name, "sh", "-c", "tty; echo a"]);
    let rm = podman(&["rm", "-f", "-t", "0", &name]);
    assert_eq!(plain.status.code(), Some(3), "{}", stderr(&plain));
    assert_eq!(stdout(&plain), "exec-ok\n");
    assert!(tty.status.success(), "{}", stderr(&tty));
    // (podman's side of the pty sometimes has ONLCR set again: \r is not what is tested here.)
    let text = stdout(&tty).replace('\r', "");
    assert!(
        text.starts_with("/dev/pts/") && text.ends_with("\na\n"),
        "{text:?}"
    );
    assert!(rm.status.success(), "podman rm: {}", stderr(&rm));
}

#[test]
fn a_sub_cgroup_and_lsm_flags() {
    let env = Env::new();
    // `hako spec` has no cgroup namespace on a v1 host (runc's default): asked for here.
    let (id, pid) = running(&env, |c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        if !ns.iter().any(|n| n["type"] == "cgroup") {
            ns.push(json!({"type": "cgroup"}));
        }
    });
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .unwrap();
    let sub = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(mem.trim_start_matches('/'))
        .join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = exec(
        &env,
        &[
            "--cgroup",
            "memory:sub",
            &id,
            "grep",
            ":memory:",
            "/proc/self/cgroup",
        ],
    );
    let _ = std::fs::remove_dir(&sub);
    assert!(out.status.success(), "{}", stderr(&out));
    // Inside the container's cgroup namespace, its cgroup is the root.
    assert!(
        stdout(&out).trim_end().ends_with(":memory:/sub"),
        "{}",
        stdout(&out)
    );
    assert_exec_error(
        &exec(&env, &["--cgroup", "memory:../x", &id, "true"]),
        "--cgroup memory:../x: ../x is not a sub cgroup path",
    );
    assert_exec_error(
        &exec(&env, &["--cgroup", "nosuch:x", &id, "true"]),
        "unknown controller nosuch",
    );
    if !std::path::Path::new("/sys/module/apparmor").exists() {
        assert_exec_error(
            &exec(&env, &["--apparmor", "p", &id, "true"]),
            "AppArmor is not enabled",
        );
    }
}
