//! compile() tested by running its programs on a classic-BPF interpreter, as the kernel would.

use serde_json::{json, Value};

use super::bpf::*;
use super::tables::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::*;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

/// Runs `prog` on one syscall (struct seccomp_data, little-endian) and returns its verdict.
fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = &prog[pc];
        pc += 1;
        let jump = |cond: bool| if cond { i.jt } else { i.jf } as usize;
        match i.code {
            LD_W_ABS => {
                let k = i.k as usize;
                acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
            }
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ => pc += jump(acc == i.k),
            JGE => pc += jump(acc >= i.k),
            JGT => pc += jump(acc > i.k),
            RET_K => return i.k,
            other => panic!("opcode {other:#x}"),
        }
    }
}

fn profile(v: Value) -> LinuxSeccomp {
    serde_json::from_value(v).unwrap()
}

fn plan(v: Value) -> SeccompPlan {
    compile(&profile(v)).unwrap()
}

fn err(v: Value) -> String {
    format!("{:#}", compile(&profile(v)).unwrap_err())
}

fn nr(name: &str) -> u32 {
    ABIS[0].number(name).unwrap()
}

/// A native x86_64 call of `name`.
fn call(p: &SeccompPlan, name: &str, args: [u64; 6]) -> u32 {
    run(&p.program, AUDIT_ARCH_X86_64, nr(name), args)
}

fn arg0(a: u64) -> [u64; 6] {
    [a, 0, 0, 0, 0, 0]
}

#[test]
fn errno_rule_and_default() {
    let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(call(&p, "mkdir", [0; 6]), errno(122));
    assert_eq!(call(&p, "mkdirat", [0; 6]), errno(122));
    assert_eq!(call(&p, "getcwd", [0; 6]), errno(libc::EPERM));
    assert_eq!(call(&p, "getpid", [0; 6]), ALLOW);
    assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, 100_000, [0; 6]), ALLOW);
    assert_eq!(p.flags, 0);
    assert_eq!(p.listener, None);
}

#[test]
fn a_name_that_is_no_syscall_is_an_error() {
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["read", "fooo"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(
        e,
        r#"config.json: linux.seccomp.syscalls[1].names[1]: "fooo" is not a syscall"#
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [], "action": "SCMP_ACT_ERRNO"}]}));
    assert!(e.contains("syscalls[0].names: must list"), "{e}");
}

#[test]
fn names_of_other_architectures_are_skipped() {
    let v = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [{"names": ["socketcall", "arm_fadvise64_64", "breakpoint",
            "s390_pci_mmio_read", "getpid"], "action": "SCMP_ACT_ERRNO"}]});
    let p = plan(v);
    assert_eq!(run(&p.program, AUDIT_ARCH_I386, 102, [0; 6]), errno(1));
    assert_eq!(call(&p, "getpid", [0; 6]), errno(1));
    assert_eq!(call(&p, "getppid", [0; 6]), ALLOW);
}

#[test]
fn unlisted_abis_do_not_slip_through() {
    let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(run(&p.program, AUDIT_ARCH_I386, 20, [0; 6]), KILL_PROCESS);
    let x32_getpid = 39 | X32_SYSCALL_BIT;
    assert_eq!(
        run(&p.program, AUDIT_ARCH_X86_64, x32_getpid, [0; 6]),
        KILL_PROCESS
    );
    assert_eq!(
        run(&p.program, tables::AUDIT_ARCH_AARCH64, 1, [0; 6]),
        KILL_PROCESS
    );
    // -1 is no syscall, and not x32 either.
    assert_eq!(run(&p.program, AUDIT_ARCH_X86_64, u32::MAX, [0; 6]), ALLOW);

    let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(run(&p.program, AUDIT_ARCH_I386, 20, [0; 6]), ALLOW);
    assert_eq!(run(&p.program, AUDIT_ARCH_I386, 54, [0; 6]), errno(1));
    assert_eq!(
        run(&p.program, AUDIT_ARCH_X86_64, x32_getpid, [0; 6]),
        ALLOW
    );
    let x32_ioctl = 514 | X32_SYSCALL_BIT;
    assert_eq!(
        run(&p.program, AUDIT_ARCH_X86_64, x32_ioctl, [0; 6]),
        errno(1)
    );
    assert_eq!(call(&p, "ioctl", [0; 6]), errno(1));
}

/// Every operator against values around the 32-bit halves, checked against plain Rust.
#[test]
fn all_operators_on_64_bit_values() {
    let samples = [
        0,
        1,
        7,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x8000_0000_0000_0000,
        u64::MAX,
    ];
    type Check = fn(u64, u64) -> bool;
    let ops: [(&str, Check); 6] = [
        ("SCMP_CMP_NE", |a, v| a != v),
        ("SCMP_CMP_LT", |a, v| a < v),
        ("SCMP_CMP_LE", |a, v| a <= v),
        ("SCMP_CMP_EQ", |a, v| a == v),
        ("SCMP_CMP_GE", |a, v| a >= v),
        ("SCMP_CMP_GT", |a, v| a > v),
    ];
    for (op, holds) in ops {
        for v in samples {
            let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": v, "op": op}]}]}));
            for a in samples {
                let want = if holds(a, v) { errno(1) } else { ALLOW };
                assert_eq!(call(&p, "personality", arg0(a)), want, "{a:#x} {op} {v:#x}");
            }
        }
    }
    for (mask, want) in [
        (0xff00_0000_0000_00ffu64, 0x0100_0000_0000_0001u64),
        (0x7, 0),
    ] {
        let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 3, "value": mask, "valueTwo": want, "op": "SCMP_CMP_MASKED_EQ"}]}]}));
        for a in samples
            .iter()
            .chain(&[0x01ff_0000_0000_0001, 8, 0x0100_0000_0000_0101])
        {
            let holds = a & mask == want;
            let got = call(&p, "personality", [0, 0, 0, *a, 0, 0]);
            assert_eq!(got, if holds { errno(1) } else { ALLOW }, "{a:#x}");
        }
    }
}

#[test]
fn masked_eq_outside_its_mask_never_matches() {
    let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 0xf0, "valueTwo": 0x01, "op": "SCMP_CMP_MASKED_EQ"}]}]}));
    for a in [0, 1, 0xf1, u64::MAX] {
        assert_eq!(call(&p, "personality", arg0(a)), ALLOW);
    }
}

#[test]
fn i386_compares_the_low_32_bits() {
    let p = plan(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let i386_personality = 136;
    assert_eq!(
        run(
            &p.program,
            AUDIT_ARCH_I386,
            i386_personality,
            arg0(0xffff_ffff)
        ),
        errno(1)
    );
    assert_eq!(
        run(&p.program, AUDIT_ARCH_I386, i386_personality, arg0(8)),
        ALLOW
    );
}

#[test]
fn args_are_anded_and_rules_ored_each_with_its_action() {
    let p = plan(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}));
    assert_eq!(call(&p, "personality", arg0(0)), ALLOW);
    assert_eq!(call(&p, "personality", arg0(8)), libc::SECCOMP_RET_LOG);
    assert_eq!(call(&p, "personality", arg0(9)), errno(1));
    assert_eq!(call(&p, "socket", [16, 3, 9, 0, 0, 0]), errno(22));
    assert_eq!(call(&p, "socket", [16, 3, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, "socket", [2, 1, 9, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, "uname", [0; 6]), KILL_PROCESS);
    assert_eq!(call(&p, "getpid", [0; 6]), errno(1));
}

#[test]
fn actions_and_their_errnos() {
    let cases = [
        ("SCMP_ACT_KILL", None, libc::SECCOMP_RET_KILL_THREAD),
        ("SCMP_ACT_KILL_THREAD", None, libc::SECCOMP_RET_KILL_THREAD),
        ("SCMP_ACT_KILL_PROCESS", None, KILL_PROCESS),
        ("SCMP_ACT_TRAP", None, libc::SECCOMP_RET_TRAP),
        ("SCMP_ACT_TRACE", Some(5), libc::SECCOMP_RET_TRACE | 5),
        ("SCMP_ACT_TRACE", None, libc::SECCOMP_RET_TRACE | 1),
        ("SCMP_ACT_LOG", None, libc::SECCOMP_RET_LOG),
        ("SCMP_ACT_ERRNO", Some(0), errno(0)),
    ];
    for (action, e, want) in cases {
        let mut rule = json!({"names": ["getpid"], "action": action});
        if let Some(e) = e {
            rule["errnoRet"] = json!(e);
        }
        let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}));
        assert_eq!(call(&p, "getpid", [0; 6]), want, "{action}");
        let p = plan(json!({"defaultAction": action, "defaultErrnoRet": e}));
        assert_eq!(call(&p, "getpid", [0; 6]), want, "default {action}");
    }
}

#[test]
fn errno_where_the_action_takes_none_is_an_error() {
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}));
    assert!(
        e.starts_with(
            "config.json: linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno"
        ),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}));
    assert!(
        e.starts_with("config.json: linux.seccomp.defaultErrnoRet:"),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}));
    assert!(
        e.contains("syscalls[0].args[0].index: 6 is out of range"),
        "{e}"
    );
}

#[test]
fn notify_needs_a_listener_and_sets_its_flags() {
    let notify = json!({"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"});
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [notify]}));
    assert!(
        e.starts_with("config.json: linux.seccomp.listenerPath:"),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}));
    assert!(
        e.contains("listenerMetadata: set without listenerPath"),
        "{e}"
    );
    let p = plan(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "listenerMetadata": "m", "syscalls": [notify],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
    );
    assert_eq!(call(&p, "mkdir", [0; 6]), libc::SECCOMP_RET_USER_NOTIF);
    let want = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        | libc::SECCOMP_FILTER_FLAG_TSYNC
        | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    assert_eq!(p.flags, want);
    let l = p.listener.unwrap();
    assert_eq!(
        (l.path.to_str(), l.metadata.as_deref()),
        (Some("/run/agent.sock"), Some("m"))
    );
    // Without a listener, WAIT_KILLABLE_RECV means nothing (and the kernel would refuse it).
    let p = plan(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags":
        ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}));
    let want = libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    assert_eq!(p.flags, want);
    // hako needs sendmsg to pass the notify fd on.
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}));
    assert!(
        e.contains("SCMP_ACT_NOTIFY for sendmsg is not supported"),
        "{e}"
    );
    let p = plan(
        json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a",
        "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(call(&p, "getpid", [0; 6]), libc::SECCOMP_RET_USER_NOTIF);
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    let p = plan(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}));
    assert_eq!(call(&p, "read", [0; 6]), ALLOW);
    assert_eq!(call(&p, "getpid", [0; 6]), errno(libc::EPERM));
    assert_eq!(call(&p, "clone3", [0; 6]), errno(libc::ENOSYS));
    let p = plan(
        json!({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(call(&p, "clone3", [0; 6]), KILL_PROCESS);
}

/// The Docker-sized profile the integration tests and hack/bench-seccomp.sh run.
#[test]
fn docker_sized_profile_compiles_small() {
    let text = include_str!("../../../tests/oci-validation/fixtures/seccomp-docker-sized.json");
    let s: LinuxSeccomp = serde_json::from_str(text).unwrap();
    let names: usize = s.syscalls().iter().flatten().map(|r| r.names().len()).sum();
    assert!(names >= 300, "{names}");
    let p = compile(&s).unwrap();
    eprintln!("{names} names: {} BPF instructions", p.program.len());
    assert!(p.program.len() < 1500, "{} instructions", p.program.len());
    let clone_newuser = libc::CLONE_NEWUSER as u64;
    assert_eq!(call(&p, "clone", arg0(libc::SIGCHLD as u64)), ALLOW);
    assert_eq!(call(&p, "clone", arg0(clone_newuser)), errno(libc::EPERM));
    assert_eq!(call(&p, "clone3", [0; 6]), errno(libc::ENOSYS));
    assert_eq!(call(&p, "personality", arg0(8)), ALLOW);
    assert_eq!(call(&p, "personality", arg0(0x40000)), errno(libc::EPERM));
    assert_eq!(call(&p, "socket", [40, 1, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(call(&p, "socket", [2, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call(&p, "getpid", [0; 6]), ALLOW);
    assert_eq!(call(&p, "mount", [0; 6]), errno(libc::EPERM));
    assert_eq!(run(&p.program, AUDIT_ARCH_I386, 20, [0; 6]), ALLOW);
}

/// A unit bench, run by hack/bench-seccomp.sh:
/// `cargo test --release --bin hako compile_time -- --ignored --nocapture`.
#[test]
#[ignore]
fn compile_time() {
    let text = include_str!("../../../tests/oci-validation/fixtures/seccomp-docker-sized.json");
    let s: LinuxSeccomp = serde_json::from_str(text).unwrap();
    let n = 500;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(compile(std::hint::black_box(&s)).unwrap());
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    eprintln!("compile of the Docker-sized profile: {us:.1} µs (mean of {n})");
}
