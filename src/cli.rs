//! Command-line definitions: runc's subcommands, flags and spellings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_ROOT: &str = "/run/hako";

/// The subcommands that put a process into a container, so run from hako's sealed copy.
pub const SEALED: [&str; 3] = ["create", "run", "exec"];

/// Whether these arguments may name a command that runs from hako's sealed copy, decided
/// before clap parses them (the re-exec comes first). Clap takes a subcommand only as a whole
/// argument spelled exactly (these three have no alias, and abbreviations are off), so any
/// argument equal to one of the names counts: never a miss, and a false hit (an id called
/// `run`) only costs a re-exec.
pub fn may_seal(mut args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.any(|a| SEALED.iter().any(|s| a == *s))
}

// The global flags go before the subcommand only, as runc's do: clap's `global = true` would
// copy each into every subcommand it builds, half of the parse (0.1 ms at every start).
#[derive(Parser, Debug)]
#[command(
    name = "hako",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.3.0"),
    about = "A low-level OCI container runtime (runc-compatible command line)"
)]
pub struct Cli {
    /// Directory for the containers' state (default: /run/hako; as non-root
    /// $XDG_RUNTIME_DIR/hako)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr)
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long)]
    pub debug: bool,
    /// Use the systemd cgroup driver
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Print the phases of create/start with their durations on stderr
    #[arg(long)]
    pub trace: bool,
    /// Accepted for runc compatibility; hako is always root or rootless by its euid
    #[arg(long, hide = true)]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility (criu binary)
    #[arg(long, hide = true)]
    pub criu: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Each subcommand's arguments are defined only when it is the one given (clap's `defer`): all
/// of them took 0.1 ms of every hako's start. (So an args struct's doc comment would become
/// its subcommand's about: those are plain comments.)
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`
    Create(CreateArgs),
    /// Start the user process of a created container
    Start { id: String },
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to the container's init process
    Kill {
        /// Signal all processes of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a container and the resources it holds
    Delete {
        /// Kill the container if it is still running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, then wait for it
    Run(RunArgs),
    /// Run another process in a container (its namespaces, cgroup, capabilities, seccomp)
    Exec(Box<ExecArgs>),
    /// List the containers
    #[command(alias = "ps-all")]
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a container run by an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
    /// Print the runtime's features as JSON (runtime-spec features.md)
    Features,
    /// Suspend all processes of a container (cgroup freezer)
    Pause { id: String },
    /// Resume the processes of a paused container
    Resume { id: String },
    /// Change the resource limits of a running container
    Update(Box<UpdateArgs>),
    /// Print the container's resource statistics and OOM events as JSON lines
    Events {
        /// Print the statistics once and exit
        #[arg(long)]
        stats: bool,
        /// Time between statistics lines (e.g. 5s, 500ms, 1m)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// List the processes of a container: `ps` output filtered to them, or their pids as JSON
    Ps {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        /// Arguments for ps(1) (default: -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's host pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on) into the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use chroot(2)-like move of the rootfs instead of pivot_root(2)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Do not wait for the container: return once it is started
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's record after it exits
    #[arg(long = "keep")]
    pub keep: bool,
}

// runc's exec flags. Without --process, the process is config.json's with ARGS and the
// flags' changes; with it, that file's runtime-spec `process` as is (runc ignores the flags).
#[derive(Args, Debug, Default)]
pub struct ExecArgs {
    /// A JSON file holding the runtime-spec `process` to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Do not wait for the process: return once it runs
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's host pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (with -t)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (K=V); may be repeated
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Supplementary group; may be repeated
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NET_ADMIN); may be repeated
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Pass this many extra fds (from 3 on) into the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec into a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container's: [CONTROLLER:]PATH; may be repeated
    #[arg(long)]
    pub cgroup: Vec<String>,
    pub id: String,
    /// The program and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

// runc's update flags. Sizes take bytes or units (`64M`, `1g`); `-1` means unlimited.
#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// A JSON file of linux.resources to apply, or `-` for stdin (the other flags are then
    /// ignored, as with runc)
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Block I/O weight (10 to 1000)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: none)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds per period
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to run on (e.g. 0-1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (e.g. 0)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Kernel memory limit (deprecated; most kernels ignore it)
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (0 or -1: no limit)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

/// The global options the commands use.
pub struct Global {
    pub root: PathBuf,
    /// `--root` was not given: `root` is the default.
    pub default_root: bool,
    pub systemd_cgroup: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sealed_names_are_the_subcommands_without_aliases() {
        let cli = Cli::command();
        for name in SEALED {
            let sub = cli.find_subcommand(name).expect(name);
            assert_eq!(sub.get_all_aliases().count(), 0, "{name}");
            assert_eq!(sub.get_all_short_flag_aliases().count(), 0, "{name}");
            assert_eq!(sub.get_all_long_flag_aliases().count(), 0, "{name}");
        }
        // No abbreviation names them either.
        for abbrev in ["cr", "ru", "exe"] {
            assert!(
                Cli::try_parse_from(["hako", abbrev, "x"]).is_err(),
                "{abbrev}"
            );
        }
    }

    /// runc's global flags precede the command; after it they are an error, as in runc.
    #[test]
    fn global_flags_go_before_the_subcommand() {
        let cli = Cli::try_parse_from(["hako", "--root", "/r", "--debug", "--trace", "state", "c"])
            .expect("flags before the subcommand");
        assert_eq!(cli.root.as_deref(), Some(std::path::Path::new("/r")));
        assert!(cli.debug && cli.trace);
        for flag in [
            "--root=/r",
            "--debug",
            "--trace",
            "--systemd-cgroup",
            "--log=/l",
        ] {
            let err = Cli::try_parse_from(["hako", "state", flag, "c"]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{flag}"
            );
        }
    }

    /// Each subcommand's help begins with its own one-line description, as listed by
    /// `hako --help` (its arguments are deferred: an args struct must not bring another).
    #[test]
    fn each_subcommand_help_starts_with_its_about() {
        use clap::CommandFactory;
        for sc in Cli::command().get_subcommands() {
            let about = sc
                .get_about()
                .expect("every subcommand has an about")
                .to_string();
            let help = Cli::try_parse_from(["hako", sc.get_name(), "--help"])
                .unwrap_err()
                .to_string();
            assert!(help.starts_with(&about), "{}: {help}", sc.get_name());
        }
    }

    /// Every spelling clap parses as create/run/exec is seen by `may_seal`.
    #[test]
    fn may_seal_sees_every_sealed_command() {
        let cases: &[&[&str]] = &[
            &["run", "x"],
            &["--root", "/r", "run", "x"],
            &["--root=/r", "--debug", "create", "--bundle=b", "x"],
            &["--log", "run", "exec", "x", "true"],
            &["--trace", "exec", "-t", "x", "sh"],
        ];
        for args in cases {
            let parsed = Cli::try_parse_from(std::iter::once("hako").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(matches!(
                parsed.command,
                Command::Create(_) | Command::Run(_) | Command::Exec(_)
            ));
            assert!(may_seal(args.iter().map(Into::into)), "{args:?}");
        }
        for args in [
            &["state", "x"][..],
            &["--root", "/run", "delete", "x"],
            &["ps", "x"],
        ] {
            assert!(!may_seal(args.iter().map(Into::into)), "{args:?}");
        }
    }
}
