//! config.md "Process": args and PATH lookup, env, cwd, user, rlimits, capabilities,
//! noNewPrivileges, oomScoreAdj, scheduler, ioPriority, personality.

use serde_json::json;

use crate::common::*;

#[test]
fn user_groups_umask_cwd_and_env() {
    let env = Env::new();
    let out = env.run_sh("id -u; id -g; id -G; umask; pwd; echo $GREETING", |c| {
        c["process"]["user"] = json!({"uid": 10, "gid": 20, "additionalGids": [5, 6], "umask": 63});
        c["process"]["cwd"] = json!("/work/dir");
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("GREETING=hello"));
    });
    assert_eq!(
        stdout(&out),
        "10\n20\n20 5 6\n0077\n/work/dir\nhello\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn rlimits_are_set_and_bad_ones_named() {
    let env = Env::new();
    let out = env.run_sh("ulimit -n; ulimit -Hn; ulimit -c", |c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 3000, "hard": 4000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]);
    });
    assert_eq!(stdout(&out), "3000\n4000\n0\n", "{}", stderr(&out));
    let b = env.bundle(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
    });
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("rl")]),
        "process.rlimits[0].type",
    );
    let b = env.bundle(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 30000}])
    });
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("rl")]),
        "RLIMIT_NOFILE",
    );
}

#[test]
fn capabilities_five_sets_and_unknown_names() {
    let env = Env::new();
    let out = env.run_sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | cut -f2 | tr '\\n' ' '", |c| {
        let kill = json!(["CAP_KILL"]);
        let two = json!(["CAP_KILL", "CAP_CHOWN"]);
        c["process"]["capabilities"] = json!({
            "bounding": two, "permitted": two, "effective": kill, "inheritable": kill, "ambient": kill
        });
        c["process"]["noNewPrivileges"] = json!(false);
    });
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5. execve as uid 0 makes permitted the inheritable
    // and bounding sets, and effective all of permitted (capabilities(7)), as under runc.
    assert_eq!(
        stdout(&out),
        "0000000000000020 0000000000000021 0000000000000021 0000000000000021 0000000000000020 ",
        "{}",
        stderr(&out)
    );
    let b = env.bundle(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_TEST"]));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("cap")]),
        "process.capabilities.bounding",
    );
}

#[test]
fn non_root_user_keeps_its_capabilities() {
    let env = Env::new();
    let out = env.run_sh("grep -E '^Cap(Eff|Amb)' /proc/self/status | cut -f2 | tr '\\n' ' '", |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let kill = json!(["CAP_KILL"]);
        c["process"]["capabilities"] = json!({
            "bounding": kill, "permitted": kill, "effective": kill, "inheritable": kill, "ambient": kill
        });
    });
    assert_eq!(
        stdout(&out),
        "0000000000000020 0000000000000020 ",
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
}

#[test]
fn oom_score_adj_scheduler_io_priority_personality() {
    let env = Env::new();
    let out = env.run_sh(
        "cat /proc/self/oom_score_adj; grep '^policy' /proc/self/sched | tr -d ' '; \
         cut -d' ' -f19 /proc/self/stat; ionice -p $$; uname -m",
        |c| {
            c["process"]["oomScoreAdj"] = json!(250);
            c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 3});
            c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
            c["linux"]["personality"] = json!({"domain": "LINUX32"});
        },
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"250"), "{text} {}", stderr(&out));
    // policy 3 is SCHED_BATCH; field 19 of stat is the nice value.
    assert_eq!(lines[1..4], ["policy:3", "3", "idle"], "{text}");
    assert_eq!(lines.last(), Some(&"i686"), "{text}");
}

#[test]
fn program_is_found_on_the_containers_path() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["hello-tool"]);
        c["process"]["env"] = json!(["PATH=/opt/tools"]);
    });
    std::fs::create_dir_all(b.rootfs().join("opt/tools")).unwrap();
    std::fs::write(
        b.rootfs().join("opt/tools/hello-tool"),
        "#!/bin/sh\necho found me\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(b.rootfs().join("opt/tools/hello-tool"))
            .unwrap()
            .permissions(),
        0o755,
    );
    std::fs::set_permissions(
        b.rootfs().join("opt/tools/hello-tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = env.hako(&["run", "-b", b.path(), &unique_id("path")]);
    assert_eq!(stdout(&out), "found me\n", "{}", stderr(&out));
}

#[test]
fn labels_for_security_modules_this_host_lacks_are_clear_errors() {
    if std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists()
        || std::path::Path::new("/sys/fs/selinux").exists()
    {
        eprintln!("skipped: this host runs AppArmor or SELinux");
        return;
    }
    let env = Env::new();
    let b = env.bundle(|c| c["process"]["apparmorProfile"] = json!("acme_secure_profile"));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("aa")]),
        "process.apparmorProfile: \"acme_secure_profile\": AppArmor is not enabled",
    );
    let b = env
        .bundle(|c| c["linux"]["mountLabel"] = json!("system_u:object_r:svirt_sandbox_file_t:s0"));
    assert_error(
        &env.hako(&["create", "-b", b.path(), &unique_id("sel")]),
        "linux.mountLabel",
    );
    assert!(env.ids().is_empty());
}

#[test]
fn a_bad_rlimit_fails_create_before_anything_is_made() {
    let env = Env::new();
    let marker = env.dir.path().join("hook-ran");
    let b = env.bundle(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
        // Planned in the init, the limit was checked only after the runtime's hooks ran.
        c["hooks"] = json!({"createRuntime": [{
            "path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", marker.display())]
        }]});
    });
    let id = unique_id("rl");
    assert_error(
        &env.hako(&["create", "-b", b.path(), &id]),
        "process.rlimits[0]: RLIMIT_NOFILE: soft limit 2048 is above hard limit 1024",
    );
    assert!(
        !marker.exists(),
        "the createRuntime hook ran: the init was made"
    );
    assert!(env.ids().is_empty(), "state dir left: {:?}", env.ids());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .unwrap();
    let dir = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(mem.trim_start_matches('/'))
        .join(&id);
    assert!(!dir.exists(), "cgroup left: {}", dir.display());
}

#[test]
fn an_empty_home_is_the_users_home_from_passwd() {
    let env = Env::new();
    let out = env.run_sh("echo \"[$HOME]\"", |c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("HOME="));
    });
    assert_eq!(stdout(&out), "[/root]\n", "{}", stderr(&out));
    let out = env.run_sh("echo \"[$HOME]\"", |c| {
        c["process"]["user"] = json!({"uid": 65534, "gid": 65534});
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("HOME="));
    });
    assert_eq!(stdout(&out), "[/nonexistent]\n", "{}", stderr(&out));
}
