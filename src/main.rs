//! hako: a low-level OCI container runtime with runc's command line.
// glibc calls `main` below directly: Rust's own start-up is left out (see there).
#![cfg_attr(not(test), no_main)]

mod bundle;
mod cgroups;
mod cli;
mod commands;
mod container;
mod hooks;
mod launch;
mod linux;
mod logging;
mod terminal;
mod trace;

use clap::Parser as _;

use cli::{Cli, Command, Global};

/// The C `main` that glibc's start calls. Rust's runtime start-up (std's `lang_start`) is
/// skipped: it installs a stack-overflow handler, and for the main thread's guard page glibc
/// reads /proc/self/maps, its rlimits and CPU affinity (~0.1 ms at every start, for a message
/// on stack overflow, which is a plain SIGSEGV without it). What hako relies on of it is done
/// here: no closed stdio, SIGPIPE ignored (the init resets it for the container). std's
/// arguments and environment need none of it (glibc hands them over before `main`).
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    linux::fds::fill_closed_stdio();
    // SAFETY: setting a disposition, before any thread or handler exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    hako_main()
}

#[cfg_attr(test, allow(dead_code))]
fn hako_main() -> ! {
    let t0 = trace::now_ns();
    no_error_backtraces();
    // Commands that put a process into a container run from a sealed copy of hako, first thing
    // (single-threaded, nothing opened yet, before the arguments are parsed): see
    // linux/exeseal.rs.
    if cli::may_seal(std::env::args_os().skip(1)) {
        if std::env::args_os().any(|a| a == "--trace") {
            trace::carry_start(t0);
        }
        if let Err(e) = linux::exeseal::ensure_sealed() {
            eprintln!("hako: {e:#}");
            std::process::exit(1);
        }
    }
    // Usage errors exit 1 like every other error (clap's default is 2); help and version 0.
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 })
    });
    trace::init(t0, cli.trace);
    let sealed = matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    );
    // `may_seal` decided from the raw arguments; should it ever miss, refuse rather than run a
    // container from the writable host binary.
    if sealed && !linux::exeseal::is_sealed_process() {
        eprintln!("hako: internal error: not running from a sealed copy of hako (exeseal)");
        std::process::exit(1);
    }
    let to_stderr = match logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(to_stderr) => to_stderr,
        Err(e) => {
            eprintln!("hako: {e:#}");
            std::process::exit(1);
        }
    };
    trace::phase(if sealed {
        "hako started, re-executed from its sealed copy, logging set up"
    } else {
        "hako started, logging set up"
    });
    let result = match &cli.command {
        // The two commands that need no state directory.
        Command::Spec { bundle, rootless } => commands::spec::run(bundle, *rootless).map(|()| 0),
        Command::Features => commands::features::run().map(|()| 0),
        _ => container::state_root(
            cli.root.as_deref(),
            linux::userns::rootless(),
            std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        )
        .and_then(|root| {
            let g = Global {
                root,
                default_root: cli.root.is_none(),
                systemd_cgroup: cli.systemd_cgroup,
            };
            dispatch(&cli, &g)
        }),
    };
    match result {
        Ok(code) => {
            trace::finish("done");
            std::process::exit(code)
        }
        Err(e) => {
            let msg = logging::error_line(&e);
            // The log gets the runc-shaped line (containerd shows it); a person gets one plain line.
            if !to_stderr {
                tracing::error!("{msg}");
            }
            eprintln!("hako: {msg}");
            trace::finish("error reported");
            // exec's own failures are 255, as runc's: 1..254 may be the process's exit code.
            std::process::exit(if matches!(cli.command, Command::Exec(_)) {
                255
            } else {
                1
            });
        }
    }
}

/// hako prints an error as the one line of its causes, never with a backtrace; yet with
/// RUST_BACKTRACE set, every anyhow error captures one (an unwind of the stack, ~10 µs; the init
/// makes and drops several while it mounts). std reads the environment once, at the first
/// capture: that first capture is made here with captures off, and the environment is left as
/// it was (hooks inherit it). Panics keep their backtraces (they go by RUST_BACKTRACE alone).
fn no_error_backtraces() {
    const LIB: &str = "RUST_LIB_BACKTRACE";
    if std::env::var_os(LIB).is_none() && std::env::var_os("RUST_BACKTRACE").is_some() {
        // Single-threaded: nothing else reads the environment yet.
        std::env::set_var(LIB, "0");
        let _ = std::backtrace::Backtrace::capture();
        std::env::remove_var(LIB);
    }
}

/// Runs a command that keeps state under `g.root`; returns the exit code.
fn dispatch(cli: &Cli, g: &Global) -> anyhow::Result<i32> {
    match &cli.command {
        Command::Create(a) => commands::create::run(g, a).map(|()| 0),
        Command::Start { id } => commands::start::run(g, id).map(|()| 0),
        Command::State { id } => commands::state::run(g, id).map(|()| 0),
        Command::Kill { all, id, signal } => commands::kill::run(g, id, signal, *all).map(|()| 0),
        Command::Delete { force, id } => commands::delete::run(g, id, *force).map(|()| 0),
        Command::Run(a) => commands::run::run(g, a),
        Command::Exec(a) => commands::exec::run(g, a),
        Command::List { format, quiet } => commands::list::run(g, *format, *quiet).map(|()| 0),
        Command::Pause { id } => commands::pause::run(g, id).map(|()| 0),
        Command::Resume { id } => commands::resume::run(g, id).map(|()| 0),
        Command::Update(a) => commands::update::run(g, a).map(|()| 0),
        Command::Events {
            stats,
            interval,
            id,
        } => commands::events::run(g, id, *stats, interval).map(|()| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => commands::ps::run(g, id, *format, ps_args).map(|()| 0),
        Command::Spec { .. } | Command::Features => unreachable!("handled without a root"),
    }
}
