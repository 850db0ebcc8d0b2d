//! The BPF program: dispatch on the audit arch (and the x32 bit), a binary search over syscall
//! numbers, and per syscall a chain of rules, each with its own action.
//!
//! seccompiler's `SeccompFilter` makes one program per arch with a single on-match action and
//! kills other arches; OCI profiles need an action per rule, several ABIs in one program, x32
//! told apart from x86_64, and SECCOMP_RET_USER_NOTIF, which it has no action for. So the
//! skeleton is assembled here, and seccompiler compiles what it is good at: a rule's argument
//! conditions (the seven comparisons, on 32- or 64-bit halves, with its long-jump splitting).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use seccompiler::{
    sock_filter, BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
};

use super::tables::{Abi, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};

// Opcodes (linux/bpf_common.h), as u16 like sock_filter.code.
pub const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
pub const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
pub const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
pub const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
/// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub const SECCOMP_DATA_LEN: u32 = 64;
/// BPF_MAXINSNS: the kernel refuses longer programs.
pub const MAX_INSNS: usize = 4096;

/// One comparison of a syscall argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: SeccompCmpOp,
    pub value: u64,
}

/// A rule: all its conditions hold (none: always) → return `ret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub conds: Vec<Cond>,
    pub ret: u32,
}

/// The rules of one ABI, by syscall number in that ABI.
pub struct Section {
    pub abi: Abi,
    pub syscalls: BTreeMap<u32, Vec<Rule>>,
    /// Numbers above the highest one the profile names get this instead of the default
    /// (ENOSYS, so that a program falls back from a syscall newer than the profile).
    pub above_known: Option<u32>,
}

/// What one range of syscall numbers does.
#[derive(Debug, PartialEq)]
enum Body<'a> {
    Ret(u32),
    /// Conditional rules in order, then the fallback.
    Chain(Vec<&'a Rule>, u32),
}

struct Seg<'a> {
    start: u32,
    body: Body<'a>,
}

/// The body of one syscall: its conditional rules first (in profile order, first match
/// wins), then its first unconditional rule, else the default.
fn body_of(rules: &[Rule], default: u32) -> Body<'_> {
    let fallback = rules
        .iter()
        .find(|r| r.conds.is_empty())
        .map_or(default, |r| r.ret);
    let conditional: Vec<&Rule> = rules.iter().filter(|r| !r.conds.is_empty()).collect();
    if conditional.is_empty() {
        Body::Ret(fallback)
    } else {
        Body::Chain(conditional, fallback)
    }
}

/// Splits [lo, u32::MAX] into ranges of like behaviour, in order.
fn segments(s: &Section, lo: u32, default: u32) -> Vec<Seg<'_>> {
    let last_named = s.syscalls.keys().next_back().copied();
    let mut segs: Vec<Seg> = Vec::new();
    // A range that behaves like the one before it extends it.
    fn push<'a>(start: u32, body: Body<'a>, segs: &mut Vec<Seg<'a>>) {
        if let (Some(prev), Body::Ret(v)) = (segs.last(), &body) {
            if prev.body == Body::Ret(*v) {
                return;
            }
        }
        segs.push(Seg { start, body });
    }
    // u64, so that the range after a syscall numbered u32::MAX can be empty.
    let mut cursor = u64::from(lo);
    for (&nr, rules) in s.syscalls.range(lo..) {
        if u64::from(nr) > cursor {
            push(cursor as u32, Body::Ret(default), &mut segs);
        }
        push(nr, body_of(rules, default), &mut segs);
        cursor = u64::from(nr) + 1;
    }
    if cursor > u64::from(u32::MAX) {
        return segs;
    }
    let tail = match (s.above_known, last_named) {
        (Some(ret), Some(_)) => ret,
        _ => default,
    };
    push(cursor as u32, Body::Ret(tail), &mut segs);
    segs
}

#[derive(Clone, Copy)]
struct Label(usize);

enum Item {
    Ins(sock_filter),
    Ja(Label),
    Bind(Label),
}

/// A tiny assembler: conditional jumps only ever skip one instruction (their far target is
/// an unconditional `ja`, which has 32 bits of offset), so no jump can be out of reach.
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

fn ins(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn bind(&mut self, l: Label) {
        self.items.push(Item::Bind(l));
    }
    fn push(&mut self, i: sock_filter) {
        self.items.push(Item::Ins(i));
    }
    fn ld(&mut self, off: u32) {
        self.push(ins(LD_W_ABS, off, 0, 0));
    }
    fn ret(&mut self, v: u32) {
        self.push(ins(RET_K, v, 0, 0));
    }
    /// If `A <op> k`, go to `yes`; else go on with what is emitted next.
    fn jump_if(&mut self, op: u16, k: u32, yes: Label) {
        self.push(ins(op, k, 0, 1));
        self.items.push(Item::Ja(yes));
    }
    fn finish(self) -> Result<Vec<sock_filter>> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for item in &self.items {
            match item {
                Item::Bind(l) => at[l.0] = pc,
                _ => pc += 1,
            }
        }
        let mut out = Vec::with_capacity(pc);
        for item in self.items {
            match item {
                Item::Ins(i) => out.push(i),
                Item::Ja(l) => {
                    let off = at[l.0]
                        .checked_sub(out.len() + 1)
                        .context("seccomp: backward jump")?;
                    out.push(ins(JA, off as u32, 0, 0));
                }
                Item::Bind(_) => {}
            }
        }
        Ok(out)
    }
}

/// A rule's conditions as seccompiler compiles them: on a match the code falls through to the
/// instruction after it (where the caller puts the action), else it skips that instruction.
fn conditions(conds: &[Cond], wide: bool) -> Result<BpfProgram> {
    let len = if wide {
        SeccompCmpArgLen::Qword
    } else {
        SeccompCmpArgLen::Dword
    };
    let conds = conds
        .iter()
        .map(|c| SeccompCondition::new(c.index, len.clone(), c.op.clone(), c.value))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("seccomp: {e}"))?;
    let rule = SeccompRule::new(conds).map_err(|e| anyhow::anyhow!("seccomp: {e}"))?;
    Ok(BpfProgram::from(rule))
}

fn emit_tree(a: &mut Asm, segs: &[Seg], wide: bool) -> Result<()> {
    if let [seg] = segs {
        match &seg.body {
            Body::Ret(v) => a.ret(*v),
            Body::Chain(rules, fallback) => {
                for r in rules {
                    for i in conditions(&r.conds, wide)? {
                        a.push(i);
                    }
                    a.ret(r.ret);
                }
                a.ret(*fallback);
            }
        }
        return Ok(());
    }
    let mid = segs.len() / 2;
    let right = a.label();
    a.jump_if(JGE, segs[mid].start, right);
    emit_tree(a, &segs[..mid], wide)?;
    a.bind(right);
    emit_tree(a, &segs[mid..], wide)
}

/// The whole program. `sections[0]` is the native ABI; any x32 section shares its audit arch.
pub fn build(sections: &[Section], default: u32) -> Result<Vec<sock_filter>> {
    let mut a = Asm::default();
    let kill = libc::SECCOMP_RET_KILL_PROCESS;
    a.ld(OFF_ARCH);
    let mut audits: Vec<u32> = sections.iter().map(|s| s.abi.audit).collect();
    audits.dedup();
    let entries: Vec<(u32, Label)> = audits.iter().map(|&au| (au, a.label())).collect();
    for &(audit, l) in &entries {
        a.jump_if(JEQ, audit, l);
    }
    // An ABI the profile does not list: no syscall of it may slip through.
    a.ret(kill);
    for (audit, l) in entries {
        a.bind(l);
        a.ld(OFF_NR);
        let mut here = sections.iter().filter(|s| s.abi.audit == audit);
        let main = here.next().context("seccomp: empty section")?;
        let x32 = here.next();
        if audit == AUDIT_ARCH_X86_64 {
            // x32 numbers have X32_SYSCALL_BIT set; -1 is no syscall (tracers use it to skip
            // one) and stays with the native ABI, as in libseccomp.
            let (native, hi) = (a.label(), a.label());
            a.jump_if(JEQ, u32::MAX, native);
            a.jump_if(JGE, X32_SYSCALL_BIT, hi);
            a.bind(native);
            emit_tree(&mut a, &segments(main, 0, default), main.abi.wide)?;
            a.bind(hi);
            match x32 {
                Some(s) => emit_tree(&mut a, &segments(s, X32_SYSCALL_BIT, default), s.abi.wide)?,
                None => a.ret(kill),
            }
        } else {
            emit_tree(&mut a, &segments(main, 0, default), main.abi.wide)?;
        }
    }
    let prog = a.finish()?;
    check(&prog)?;
    Ok(prog)
}

/// What the kernel's filter checker would refuse, refused here with a clear message.
pub fn check(prog: &[sock_filter]) -> Result<()> {
    if prog.len() > MAX_INSNS {
        bail!(
            "linux.seccomp: the filter needs {} BPF instructions, more than the kernel's {MAX_INSNS}",
            prog.len()
        );
    }
    for (pc, i) in prog.iter().enumerate() {
        let ok = match i.code {
            LD_W_ABS => i.k < SECCOMP_DATA_LEN && i.k % 4 == 0,
            JA => pc + 1 + (i.k as usize) < prog.len(),
            JEQ | JGE | JGT => pc + 1 + (i.jt.max(i.jf) as usize) < prog.len(),
            RET_K | ALU_AND_K => true,
            _ => false,
        };
        if !ok {
            bail!("seccomp: internal error: bad BPF instruction {pc}: {i:?}");
        }
    }
    match prog.last() {
        Some(i) if i.code == RET_K => Ok(()),
        _ => bail!("seccomp: internal error: the program does not end in a return"),
    }
}
