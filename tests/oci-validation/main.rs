//! hako's conformance suite, written from the runtime-spec's MUST clauses. Each test runs real
//! containers as root, with a unique id and a `--root` of its own.

mod cgroups;
mod cgroups_update;
mod common;
mod console;
mod escapes;
mod exec;
mod hooks;
mod lifecycle;
mod namespaces;
mod process;
mod rootfs;
mod rootless;
mod runc_compat;
mod seccomp;
mod security_host;
mod trace;
