//! One file per subcommand; each is thin glue over container, launch, linux and cgroups.

pub mod create;
pub mod delete;
pub mod features;
pub mod kill;
pub mod list;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
