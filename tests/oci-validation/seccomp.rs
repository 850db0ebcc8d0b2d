//! linux.seccomp (config-linux.md "Seccomp"): filters enforced in real containers, the notify
//! agent handshake, and profiles the size of Docker's and podman's.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use serde_json::{json, Value};

use crate::common::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/oci-validation/fixtures/seccomp-docker-sized.json"
);

fn with_seccomp(s: Value) -> impl FnOnce(&mut Value) {
    move |c| c["linux"]["seccomp"] = s
}

fn run_ok(env: &Env, script: &str, s: Value) -> String {
    let out = env.run_sh(script, with_seccomp(s));
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn errno_rule_makes_mkdir_fail_with_that_errno() {
    let env = Env::new();
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]});
    let out = env.run_sh(
        "mkdir /tmp/d; echo rc=$?; [ -d /tmp/d ] && echo made; grep ^Seccomp: /proc/self/status",
        with_seccomp(profile),
    );
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{se}");
    // EDQUOT, which nothing else in a tmp directory would give.
    assert!(se.contains("Disk quota exceeded"), "{se}");
    assert!(so.contains("rc=1") && !so.contains("made"), "{so}");
    assert!(so.contains("Seccomp:\t2"), "{so}");
}

#[test]
fn without_no_new_privileges_the_filter_still_applies() {
    let env = Env::new();
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]});
    let out = env.run_sh(
        "mkdir /tmp/d || echo denied; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
        |c| {
            // Without no_new_privs, a user without CAP_SYS_ADMIN could not install a filter:
            // it goes in before the switch to that user.
            c["process"]["noNewPrivileges"] = json!(false);
            c["process"]["user"] = json!({"uid": 65534, "gid": 65534});
            with_seccomp(profile)(c)
        },
    );
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{se}");
    // The filter's EDQUOT, not the EACCES nobody would get from the kernel.
    assert!(
        so.contains("denied") && se.contains("Disk quota exceeded"),
        "{so} {se}"
    );
    assert!(
        so.contains("NoNewPrivs:\t0") && so.contains("Seccomp:\t2"),
        "{so}"
    );
}

#[test]
fn kill_trap_trace_and_log_actions() {
    let env = Env::new();
    let sigsys = Some(128 + libc::SIGSYS);
    // TRACE with no tracer attached fails the syscall (ENOSYS), which busybox's uname ignores:
    // it prints an empty name. LOG allows the syscall.
    for (action, code, out) in [
        ("SCMP_ACT_KILL_PROCESS", sigsys, ""),
        ("SCMP_ACT_KILL_THREAD", sigsys, ""),
        ("SCMP_ACT_KILL", sigsys, ""),
        ("SCMP_ACT_TRAP", sigsys, ""),
        ("SCMP_ACT_TRACE", Some(0), ""),
        ("SCMP_ACT_LOG", Some(0), "Linux"),
    ] {
        let b = env.bundle(|c| {
            c["process"]["args"] = json!(["uname", "-s"]);
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["uname"], "action": action}]});
        });
        let res = env.hako(&["run", "-b", b.path(), &unique_id("act")]);
        assert_eq!(res.status.code(), code, "{action}: {}", stderr(&res));
        assert_eq!(stdout(&res).trim(), out, "{action}");
    }
}

#[test]
fn arg_conditions_match_only_what_they_should() {
    let env = Env::new();
    // personality(PER_LINUX32) fails with EXDEV, personality(PER_LINUX) does not; unshare fails
    // with EXDEV only when its flags hold CLONE_NEWUTS (else the kernel's own EPERM: no
    // CAP_SYS_ADMIN).
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
         "args": [{"index": 0, "value": libc::CLONE_NEWUTS, "valueTwo": libc::CLONE_NEWUTS,
                   "op": "SCMP_CMP_MASKED_EQ"}]}]});
    let out = env.run_sh(
        "linux32 true; echo p32=$?; linux64 true; echo p64=$?; unshare -u true; unshare -i true",
        with_seccomp(profile),
    );
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(so.contains("p32=1") && so.contains("p64=0"), "{so} {se}");
    let lines: Vec<&str> = se.lines().filter(|l| l.contains("unshare")).collect();
    assert_eq!(lines.len(), 2, "{se}");
    assert!(lines[0].contains("Invalid cross-device link"), "{se}");
    assert!(lines[1].contains("Operation not permitted"), "{se}");
}

/// Only execve runs under the filter of hako's own calls: a profile that forbids what the
/// runtime itself would use at the end (the exec fifo, the sync socket, getcwd ...) still
/// starts the container. (runc 1.1.5 fails upstream's linux_seccomp for calling getcwd.)
#[test]
fn only_execve_of_hakos_own_calls_runs_under_the_filter() {
    let env = Env::new();
    let forbidden = [
        "openat",
        "open",
        "write",
        "sendto",
        "sendmsg",
        "close",
        "close_range",
        "fcntl",
        "getdents64",
        "prctl",
        "capset",
        "setresuid",
        "setresgid",
        "setgroups",
        "umask",
        "getcwd",
    ];
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": forbidden, "action": "SCMP_ACT_ERRNO"}]});
    let out = env.run_sh("exit 7", with_seccomp(profile));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
}

#[test]
fn a_name_that_is_no_syscall_is_a_clear_error() {
    let env = Env::new();
    let b = env.bundle(with_seccomp(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid", "socketcall", "fooo"], "action": "SCMP_ACT_ERRNO"}]}),
    ));
    let out = env.hako(&["create", "-b", b.path(), &unique_id("badname")]);
    assert_error(
        &out,
        r#"config.json: linux.seccomp.syscalls[0].names[2]: "fooo" is not a syscall"#,
    );
    assert!(env.ids().is_empty(), "left behind: {:?}", env.ids());
}

/// What the agent at listenerPath got: the JSON and the links of the fds that came with it.
fn accept_one(listener: UnixListener) -> (Value, Vec<String>) {
    let (mut conn, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<UnixAddr>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut links = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
                links.push(link.to_string_lossy().into_owned());
                nix::unistd::close(fd).unwrap();
            }
        }
    }
    let n = msg.bytes;
    let mut data = buf[..n].to_vec();
    conn.read_to_end(&mut data).unwrap();
    (serde_json::from_slice(&data).expect("state JSON"), links)
}

#[test]
fn notify_listener_receives_the_fd_and_the_state() {
    let env = Env::new();
    let sock = env.dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || accept_one(listener));
    let b = env.bundle(with_seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock, "listenerMetadata": "hello agent",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]})));
    let id = unique_id("notify");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (state, links) = agent.join().unwrap();
    assert_eq!(links, ["anon_inode:seccomp notify"]);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "hello agent");
    let pid = env.state(&id)["pid"].clone();
    assert!(pid.as_i64().unwrap() > 0);
    assert_eq!(state["pid"], pid);
    assert_eq!(state["state"]["pid"], pid);
    assert_eq!(state["state"]["id"], id.as_str());
    assert_eq!(state["state"]["status"], "creating");
    assert_eq!(state["state"]["bundle"], b.path());
    assert!(state["ociVersion"].is_string());
    assert_eq!(env.status(&id), "created");
}

#[test]
fn notify_without_an_agent_fails_create() {
    let env = Env::new();
    let sock = env.dir.path().join("nobody.sock");
    let b = env.bundle(with_seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]})));
    let out = env.hako(&["create", "-b", b.path(), &unique_id("noagent")]);
    assert_error(&out, "config.json: linux.seccomp.listenerPath: ");
    // runc's words (its suite greps them).
    assert!(
        stderr(&out).contains("failed to connect with seccomp agent"),
        "{}",
        stderr(&out)
    );
    assert!(env.ids().is_empty(), "left behind: {:?}", env.ids());
}

/// A Docker-sized profile, made from the syscalls crate's x86_64 table (not copied from
/// Docker's file): default EPERM, ~320 syscalls allowed, arg conditions on clone (no new
/// namespaces), personality (five values) and socket (no AF_VSOCK), clone3 → ENOSYS.
fn docker_sized_profile() -> Value {
    const DENIED: [&str; 50] = [
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "mount",
        "mount_setattr",
        "move_mount",
        "move_pages",
        "name_to_handle_at",
        "nfsservctl",
        "open_by_handle_at",
        "open_tree",
        "perf_event_open",
        "pivot_root",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "set_mempolicy",
        "setns",
        "settimeofday",
        "swapoff",
        "swapon",
        "sysfs",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
    ];
    const WITH_ARGS: [&str; 4] = ["clone", "clone3", "personality", "socket"];
    let allowed: Vec<&str> = syscalls::x86_64::Sysno::iter()
        .map(|s| s.name())
        .filter(|n| !DENIED.contains(n) && !WITH_ARGS.contains(n))
        .collect();
    let new_namespaces = 0x7e02_0000u64;
    let mut rules = vec![
        json!({"names": allowed, "action": "SCMP_ACT_ALLOW"}),
        json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0,
            "value": new_namespaces, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
    ];
    for p in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        rules.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]}));
    }
    // No AF_VSOCK sockets. (One rule: libseccomp refuses, with EEXIST, a second rule of another
    // action on the same argument.)
    rules.push(json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": libc::AF_VSOCK, "op": "SCMP_CMP_NE"}]}));
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

/// The fixture (used by the unit tests and hack/bench-seccomp.sh) is this generator's output.
/// HAKO_WRITE_FIXTURES=1 rewrites it.
#[test]
fn docker_sized_fixture_is_current() {
    let text = serde_json::to_string_pretty(&docker_sized_profile()).unwrap() + "\n";
    if std::env::var_os("HAKO_WRITE_FIXTURES").is_some() {
        std::fs::write(FIXTURE, &text).unwrap();
    }
    assert_eq!(std::fs::read_to_string(FIXTURE).unwrap(), text);
}

#[test]
fn docker_sized_profile_runs_a_busybox_shell() {
    let env = Env::new();
    let profile = docker_sized_profile();
    let names: usize = profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["names"].as_array().unwrap().len())
        .sum();
    assert!(names >= 300, "{names}");
    let so = run_ok(
        &env,
        "echo hi; ls / >/dev/null && echo ls-ok; grep ^Seccomp: /proc/self/status; \
         linux32 uname -m; (echo sub) | cat; unshare -u true 2>/dev/null || echo no-unshare",
        profile,
    );
    for want in [
        "hi\n",
        "ls-ok",
        "Seccomp:\t2",
        "i686",
        "sub\n",
        "no-unshare",
    ] {
        assert!(so.contains(want), "{want:?} missing: {so}");
    }
}

/// podman's own profile, resolved the way podman does before writing config.json: the
/// x86_64 entry of archMap with its sub-architectures, and the entries whose includes and
/// excludes (arches, capabilities) fit an amd64 container with the bundle's capabilities.
fn resolve_podman_profile(template: &Value, caps: &[String]) -> Value {
    let arch_map = template["archMap"].as_array().cloned().unwrap_or_default();
    let mut arches = vec![json!("SCMP_ARCH_X86_64")];
    for m in arch_map
        .iter()
        .filter(|m| m["architecture"] == "SCMP_ARCH_X86_64")
    {
        arches.extend(
            m["subArchitectures"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut rules = Vec::new();
    for r in template["syscalls"].as_array().unwrap() {
        let (inc_arch, inc_caps) = (list(&r["includes"]["arches"]), list(&r["includes"]["caps"]));
        let (exc_arch, exc_caps) = (list(&r["excludes"]["arches"]), list(&r["excludes"]["caps"]));
        let fits = (inc_arch.is_empty() || inc_arch.iter().any(|a| a == "amd64"))
            && inc_caps.iter().all(|c| caps.contains(c))
            && !exc_arch.iter().any(|a| a == "amd64")
            && !exc_caps.iter().any(|c| caps.contains(c));
        if fits {
            let mut rule = json!({"names": r["names"], "action": r["action"]});
            for k in ["errnoRet", "args"] {
                if !r[k].is_null() {
                    rule[k] = r[k].clone();
                }
            }
            rules.push(rule);
        }
    }
    let mut profile = json!({"defaultAction": template["defaultAction"],
        "architectures": arches, "syscalls": rules});
    if !template["defaultErrnoRet"].is_null() {
        profile["defaultErrnoRet"] = template["defaultErrnoRet"].clone();
    }
    profile
}

#[test]
fn podmans_profile_runs() {
    const TEMPLATE: &str = "/usr/share/containers/seccomp.json";
    let Ok(text) = std::fs::read_to_string(TEMPLATE) else {
        eprintln!(
            "note: {TEMPLATE} is absent (apt-get install podman): podman's profile not tried"
        );
        return;
    };
    let template: Value = serde_json::from_str(&text).unwrap();
    let env = Env::new();
    let out = env.run_sh(
        "echo hi; ls / >/dev/null && echo ls-ok; grep ^Seccomp: /proc/self/status; \
         (echo sub) | cat; unshare -u true 2>/dev/null || echo no-unshare",
        |c| {
            let caps: Vec<String> =
                serde_json::from_value(c["process"]["capabilities"]["bounding"].clone()).unwrap();
            c["linux"]["seccomp"] = resolve_podman_profile(&template, &caps);
            // podman leaves noNewPrivileges unset: the filter goes in before the user switch.
            c["process"]["noNewPrivileges"] = json!(false);
        },
    );
    let so = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for want in ["hi\n", "ls-ok", "Seccomp:\t2", "sub\n", "no-unshare"] {
        assert!(so.contains(want), "{want:?} missing: {so}");
    }
}

/// podman itself, with hako as its runtime: podman resolves its profile and writes it into
/// config.json (captured here by a wrapper), and the shell runs under it. Skipped without
/// podman. The ulimits keep podman's default NOFILE/NPROC limits, above this machine's hard
/// limits (runc fails on them too), out of the way; they are not about seccomp.
#[test]
fn podman_runs_hako_with_its_own_profile() {
    let Ok(podman) = which("podman") else {
        eprintln!("note: podman is not installed: podman's run not tried");
        return;
    };
    let env = Env::new();
    let b = env.bundle(|_| {});
    let d = env.dir.path();
    let captured = d.join("podman-config.json");
    let wrapper = d.join("hako-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$prev\" in --bundle|-b) cp \"$a/config.json\" {};; esac; prev=\"$a\"; done\nexec {HAKO} \"$@\"\n",
            captured.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dir = |n: &str| d.join(n).to_string_lossy().into_owned();
    let out = output_via_files(
        std::process::Command::new(podman)
            .args(["--root", &dir("pm-root"), "--runroot", &dir("pm-run")])
            .args(["--tmpdir", &dir("pm-tmp"), "--storage-driver", "vfs"])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(&wrapper)
            .args(["run", "--rm", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .arg("--rootfs")
            .arg(b.rootfs())
            .args([
                "/bin/sh",
                "-c",
                "grep ^Seccomp: /proc/self/status; echo podman-ok",
            ]),
    );
    let so = stdout(&out);
    assert!(out.status.success(), "{so} {}", stderr(&out));
    assert!(
        so.contains("Seccomp:\t2") && so.contains("podman-ok"),
        "{so}"
    );
    let config: Value = serde_json::from_slice(&std::fs::read(&captured).unwrap()).unwrap();
    let s = &config["linux"]["seccomp"];
    let names: usize = s["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["names"].as_array().unwrap().len())
        .sum();
    assert!(names >= 300, "{names}");
    assert_eq!(s["architectures"].as_array().unwrap().len(), 3, "{s}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A profile that does not allow openat2 (runtime-tools' default, Docker's before 2020): hako's
/// own steps after the filter goes in (without noNewPrivileges it goes in before the switch of
/// user) must not need it.
#[test]
fn a_profile_without_openat2_still_starts() {
    let env = Env::new();
    let mut profile: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "openat2");
        }
    }
    for nnp in [false, true] {
        let out = env.run_sh("echo started", |c| {
            c["linux"]["seccomp"] = profile.clone();
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["process"]["apparmorProfile"] = json!("");
        });
        assert!(out.status.success(), "nnp {nnp}: {}", stderr(&out));
        assert_eq!(stdout(&out), "started\n");
    }
}

/// A startContainer hook runs in the container under its filter, as the program will (runc's
/// order, and the same with or without noNewPrivileges): mkdir killed by SIGSYS fails it.
#[test]
fn start_container_hooks_run_under_the_filter() {
    let env = Env::new();
    for nnp in [true, false] {
        let b = env.bundle(|c| {
            c["process"]["args"] = json!(["true"]);
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]});
            c["hooks"] = json!({"startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/foo"]}]});
        });
        let out = env.hako(&["run", "-b", b.path(), &unique_id("hookfilter")]);
        assert_error(
            &out,
            "hooks.startContainer[0] (/bin/sh): error running hook: killed by signal 31 \
             (SIGSYS: bad system call)",
        );
    }
}
