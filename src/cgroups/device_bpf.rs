//! The device rules on cgroup v2: the planned rule list (devices.rs, the same list v1 writes to
//! devices.allow/deny) compiled to a BPF_PROG_TYPE_CGROUP_DEVICE program, and its loading and
//! attaching with bpf(2). The kernel runs the program on every open and mknod of a device node
//! by a process in the cgroup (or below it) and denies the access when it returns 0.
//!
//! The program walks the rules from the last to the first and returns the verdict of the first
//! one that matches, so the last matching rule wins; the list starts with "deny a *:* rwm", so
//! nothing falls through. An allow rule matches when it covers every access asked for (as on
//! v1: `allow c 1:3 r` does not let O_RDWR through); a deny rule matches when it covers any.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::devices::Rule;

/// One eBPF instruction, as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (class | op | source) of the few instructions the program uses.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_MOV_X: u8 = 0xbf; // dst = src
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const ALU64_AND_K: u8 = 0x57; // dst &= imm
const ALU64_RSH_K: u8 = 0x77; // dst >>= imm
const JMP32_JNE_K: u8 = 0x56; // if (u32)dst != (u32)imm goto pc + off
const JMP32_JEQ_K: u8 = 0x16; // if (u32)dst == (u32)imm goto pc + off
const JMP_EXIT: u8 = 0x95;

// Registers: r1 holds the context on entry; the fields are unpacked into r2..r5.
const R0: u8 = 0;
const R1: u8 = 1;
const ACCESS: u8 = 2;
const TYPE: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

// <linux/bpf.h>: the context's type and access bits.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// One rule's test and verdict; every jump lands just past the block (the next rule).
fn rule_block(rule: &Rule) -> Vec<Insn> {
    // Each test: (register, opcode of "skip this rule", immediate).
    let mut tests: Vec<(u8, u8, i32)> = Vec::new();
    match rule.typ {
        'b' => tests.push((TYPE, JMP32_JNE_K, DEV_BLOCK)),
        'c' => tests.push((TYPE, JMP32_JNE_K, DEV_CHAR)),
        _ => {}
    }
    // plan() keeps major and minor within u32; the 32-bit compare takes the bits as they are.
    if let Some(major) = rule.major {
        tests.push((MAJOR, JMP32_JNE_K, major as u32 as i32));
    }
    if let Some(minor) = rule.minor {
        tests.push((MINOR, JMP32_JNE_K, minor as u32 as i32));
    }
    let bits = access_bits(&rule.access);
    let mut body = Vec::new();
    let mut jumps = Vec::new();
    for (reg, op, imm) in tests {
        jumps.push(body.len());
        body.push(insn(op, reg, 0, 0, imm));
    }
    if rule.allow && bits != ACC_ALL {
        // Skip unless no access outside the rule's is asked for.
        body.push(insn(ALU64_MOV_X, R1, ACCESS, 0, 0));
        body.push(insn(ALU64_AND_K, R1, 0, 0, !bits & ACC_ALL));
        jumps.push(body.len());
        body.push(insn(JMP32_JNE_K, R1, 0, 0, 0));
    } else if !rule.allow && bits != ACC_ALL {
        // Skip unless some access the rule names is asked for.
        body.push(insn(ALU64_MOV_X, R1, ACCESS, 0, 0));
        body.push(insn(ALU64_AND_K, R1, 0, 0, bits));
        jumps.push(body.len());
        body.push(insn(JMP32_JEQ_K, R1, 0, 0, 0));
    }
    body.push(insn(ALU64_MOV_K, R0, 0, 0, rule.allow as i32));
    body.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = body.len();
    for at in jumps {
        body[at].off = (len - at - 1) as i16;
    }
    body
}

/// The program for a planned rule list (a pure function of it).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        // struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major;
        // u32 minor; }
        insn(LDX_MEM_W, ACCESS, R1, 0, 0),
        insn(ALU64_MOV_X, TYPE, ACCESS, 0, 0),
        insn(ALU64_AND_K, TYPE, 0, 0, 0xffff),
        insn(ALU64_RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let block = rule_block(rule);
        let unconditional = block.len() == 2;
        p.extend(block);
        if unconditional {
            // A rule matching everything decides; the verifier refuses code after it.
            return p;
        }
    }
    // Nothing matched (only without a plan's leading deny-all): deny.
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

// bpf(2) commands, program and attach types and flags (<linux/bpf.h>).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the kernel zero-fills the rest.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// For BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// For BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// For BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` for `cmd`, live and writable
    // for the call; the kernel reads and writes at most size_of::<T>() bytes of it, and any
    // pointers in it point at buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a successful PROG_LOAD / GET_FD_BY_ID returns a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"hako_device");
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    // Without a log first: a verifier log that overflows its buffer fails the load itself.
    let e = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(owned(fd)),
        Err(e) => e,
    };
    // Again with the log, for the verifier's reason.
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr) {
        return Ok(owned(fd));
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(0);
    let text = String::from_utf8_lossy(&log[..end]);
    let reason = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("processed "));
    Err(anyhow!(
        "load the device cgroup BPF program: {e}{}",
        reason
            .map(|l| format!(" (verifier: {l})"))
            .unwrap_or_default()
    ))
}

/// The ids of the device programs attached to the cgroup itself (not inherited ones).
fn attached(cgroup: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn attach_op(cmd: libc::c_long, cgroup: &OwnedFd, prog: &OwnedFd) -> std::io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: if cmd == BPF_PROG_ATTACH {
            BPF_F_ALLOW_MULTI
        } else {
            0
        },
    };
    bpf(cmd, &mut attr).map(drop)
}

/// Makes `rules` the cgroup's device rules: the new program is attached before the ones there
/// are detached, so while both are attached an access needs both to allow it (the kernel ANDs
/// the programs of one cgroup), and there is never a moment without rules.
pub fn apply(cgroup_dir: &Path, rules: &[Rule]) -> Result<()> {
    let what = || format!("linux.resources.devices: cgroup {}", cgroup_dir.display());
    let prog = load(&program(rules)).with_context(what)?;
    let dir = std::fs::File::open(cgroup_dir).with_context(what)?;
    let cgroup = OwnedFd::from(dir);
    let old = attached(&cgroup)
        .map_err(|e| anyhow!("query the attached device programs: {e}"))
        .with_context(what)?;
    attach_op(BPF_PROG_ATTACH, &cgroup, &prog)
        .map_err(|e| anyhow!("attach the device program: {e}"))
        .with_context(what)?;
    for id in old {
        let mut attr = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
            .map(owned)
            .map_err(|e| anyhow!("open the old device program {id}: {e}"))
            .with_context(what)?;
        attach_op(BPF_PROG_DETACH, &cgroup, &fd)
            .map_err(|e| anyhow!("detach the old device program {id}: {e}"))
            .with_context(what)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "device_bpf_tests.rs"]
mod tests;
