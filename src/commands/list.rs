//! `hako list [-f table|json] [-q]`.

use anyhow::{Context, Result};

use crate::cli::{Global, ListFormat};
use crate::container::Container;

pub fn run(g: &Global, format: ListFormat, quiet: bool) -> Result<()> {
    // As runc: a missing default root only means no container was made yet, but a --root that
    // does not exist is an error (a mistyped root would otherwise list nothing, successfully).
    if !g.default_root {
        std::fs::metadata(&g.root).with_context(|| format!("--root {}", g.root.display()))?;
    }
    let containers: Vec<Container> = crate::container::list_ids(&g.root)?
        .iter()
        .filter_map(|id| Container::read(&g.root, id).ok())
        .collect();
    if quiet {
        for c in &containers {
            println!("{}", c.record.id);
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => {
            let list: Vec<_> = containers
                .iter()
                .map(|c| c.record.public(c.status()))
                .collect();
            println!("{}", serde_json::to_string(&list)?);
        }
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = containers
                .iter()
                .map(|c| {
                    let status = c.status();
                    let s = c.record.public(status);
                    [
                        s.id.to_string(),
                        s.pid.to_string(),
                        status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.to_string(),
                        s.owner.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

/// Columns padded to their widest cell, separated by three spaces.
fn table(header: &[&str; 6], rows: &[[String; 6]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   ", w = *w));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns() {
        let rows = [[
            "a".into(),
            "12".into(),
            "running".into(),
            "/b".into(),
            "t".into(),
            "".into(),
        ]];
        let t = super::table(
            &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
            &rows,
        );
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines[0], "ID   PID   STATUS    BUNDLE   CREATED   OWNER");
        assert_eq!(lines[1], "a    12    running   /b       t");
    }
}
