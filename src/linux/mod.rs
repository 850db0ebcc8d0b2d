//! One module per kernel facility: a pure plan from the spec, and a thin apply.

pub mod capabilities;
pub mod console;
pub mod devices;
pub mod exec;
pub mod fds;
pub mod idmap;
pub mod lsm;
pub mod mounts;
pub mod namespaces;
pub mod netdev;
pub mod rlimits;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod sysctl;
pub mod user;
