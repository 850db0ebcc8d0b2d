//! `hako state ID`: the runtime-spec state JSON (runc's shape).

use anyhow::Result;

use crate::cli::Global;
use crate::container::Container;

pub fn run(g: &Global, id: &str) -> Result<()> {
    let c = Container::read(&g.root, id)?;
    let status = c.status();
    println!(
        "{}",
        serde_json::to_string_pretty(&c.record.public(status))?
    );
    Ok(())
}
