//! `--trace`: where a command spends its time, on stderr. Each line is one phase — the work
//! done since the previous line, named by the step that ended it — with its own duration and
//! the time since hako started; the last line is the total, which the durations add up to.
//! The init (and `exec`'s child) record their phases in memory shared with the parent, which
//! prints them in order at its next phase, so the container's stdio never sees a trace line.
//! With `--debug` each of the parent's phases is also a debug log line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that carries the start time across the sealed re-exec.
pub const T0_VAR: &str = "_HAKO_TRACE_T0";
/// Phases a child can record, and the bytes of each phase's name kept (8 per word).
const SLOTS: usize = 128;
const NAME_WORDS: usize = 7;
const SLOT_WORDS: usize = 1 + NAME_WORDS;

struct Tracer {
    /// CLOCK_MONOTONIC at hako's start, ns.
    t0: u64,
    /// [count, then SLOTS × (time, name bytes)], shared with the children.
    shared: Option<&'static [AtomicU64]>,
}

struct Printer {
    last: u64,
    /// Children's records printed so far.
    seen: usize,
    phases: usize,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();
/// Set in the init and exec's child right after clone: they record, hako prints.
static CHILD: AtomicBool = AtomicBool::new(false);
static PRINTER: std::sync::Mutex<Printer> = std::sync::Mutex::new(Printer {
    last: 0,
    seen: 0,
    phases: 0,
});

pub fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always there");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// Before the sealed re-exec (main, when `--trace` may be among the arguments): the
/// re-executed hako takes this process's start time as its own.
pub fn carry_start(t0: u64) {
    if std::env::var_os(T0_VAR).is_none() {
        std::env::set_var(T0_VAR, t0.to_string());
    }
}

/// Called once from main after the arguments are parsed; turns tracing on when --trace is
/// given. `t0` is when this process started main; a process re-executed from the sealed copy
/// takes its first image's instead. The variable is removed either way (hooks may inherit
/// hako's environment).
pub fn init(t0: u64, on: bool) {
    let first = std::env::var_os(T0_VAR).map(|v| v.to_str().and_then(|v| v.parse().ok()));
    if first.is_some() {
        // Single-threaded (main, before any command runs).
        std::env::remove_var(T0_VAR);
    }
    if !on {
        return;
    }
    let t0 = first.flatten().unwrap_or(t0);
    let shared = crate::linux::shared::words(1 + SLOTS * SLOT_WORDS);
    let _ = TRACER.set(Tracer { t0, shared });
    if let Ok(mut p) = PRINTER.lock() {
        p.last = t0;
    }
}

/// Whether --trace is on.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// Called in a child right after clone: its phases are recorded for the parent from now on.
pub fn in_child() {
    CHILD.store(true, Ordering::Relaxed);
}

/// Ends a phase named `name`: printed by hako, recorded by a child for hako to print. A child
/// makes no system call here (the clock is the vDSO's), so that it can trace with a seccomp
/// filter in place.
pub fn phase(name: &str) {
    if CHILD.load(Ordering::Relaxed) {
        if let Some(t) = TRACER.get() {
            record(t, now_ns(), name);
        }
        return;
    }
    let Some(t) = TRACER.get() else {
        tracing::debug!("{name}");
        return;
    };
    let now = now_ns();
    tracing::debug!("{name}");
    if let Ok(mut p) = PRINTER.lock() {
        drain(t, &mut p, now);
        print(t, &mut p, now, name);
    }
}

/// The last phase (hako is about to exit), then the total.
pub fn finish(name: &str) {
    let Some(t) = TRACER.get() else { return };
    if CHILD.load(Ordering::Relaxed) {
        return;
    }
    phase(name);
    if let Ok(p) = PRINTER.lock() {
        eprintln!(
            "hako: trace: total {:.3} ms in {} phases",
            ms(p.last - t.t0),
            p.phases
        );
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn print(t: &Tracer, p: &mut Printer, at: u64, name: &str) {
    // A child's clock reading can precede the parent's last one by a hair: never negative.
    let at = at.max(p.last);
    // One write per line: eprintln! writes each piece of the format on its own (stderr is
    // unbuffered), ~14 system calls a line, which the next phase was charged with.
    let line = format!(
        "hako: trace: +{:8.3} ms  at {:8.3} ms  {name}\n",
        ms(at - p.last),
        ms(at - t.t0)
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    p.last = at;
    p.phases += 1;
}

/// Prints the children's phases recorded up to `now`, in time order.
fn drain(t: &Tracer, p: &mut Printer, now: u64) {
    let Some(w) = t.shared else { return };
    let count = (w[0].load(Ordering::Acquire) as usize).min(SLOTS);
    let mut pending = Vec::new();
    for i in p.seen..count {
        let slot = &w[1 + i * SLOT_WORDS..1 + (i + 1) * SLOT_WORDS];
        let at = slot[0].load(Ordering::Relaxed);
        let bytes: Vec<u8> = slot[1..]
            .iter()
            .flat_map(|x| x.load(Ordering::Relaxed).to_le_bytes())
            .take_while(|&b| b != 0)
            .collect();
        pending.push((at.min(now), String::from_utf8_lossy(&bytes).into_owned()));
    }
    p.seen = count;
    pending.sort_by_key(|(at, _)| *at);
    for (at, name) in pending {
        print(t, p, at, &format!("init: {name}"));
    }
}

fn record(t: &Tracer, now: u64, name: &str) {
    let Some(w) = t.shared else { return };
    let i = w[0].load(Ordering::Acquire) as usize;
    if i >= SLOTS {
        return;
    }
    let slot = &w[1 + i * SLOT_WORDS..1 + (i + 1) * SLOT_WORDS];
    slot[0].store(now, Ordering::Relaxed);
    let mut bytes = [0u8; NAME_WORDS * 8];
    let n = name.len().min(bytes.len());
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    for (word, chunk) in slot[1..].iter().zip(bytes.chunks(8)) {
        word.store(
            u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
            Ordering::Relaxed,
        );
    }
    // Published: the parent reads the slot only after seeing the count (Acquire).
    w[0].store(i as u64 + 1, Ordering::Release);
}
