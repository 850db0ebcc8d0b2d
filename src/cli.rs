//! Command-line definitions: runc's subcommands, flags and spellings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "hako",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.3.0"),
    about = "A low-level OCI container runtime (runc-compatible command line)"
)]
pub struct Cli {
    /// Directory for the containers' state
    #[arg(long, global = true, default_value = "/run/hako")]
    pub root: PathBuf,
    /// Log file (default: stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use the systemd cgroup driver
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Print the phases of create/start with their durations on stderr
    #[arg(long, global = true)]
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

#[derive(Subcommand, Debug)]
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

/// The global options the commands use.
pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}
