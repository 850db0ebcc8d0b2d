//! `--log`/`--log-format`: runc-shaped log lines, so containerd's shim can show the last error.
//!
//! json: `{"level":"error","msg":"...","time":"2026-01-02T03:04:05.000000006Z"}`
//! text: `time="..." level=error msg="..."`

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::cli::LogFormat;

struct RuncLines {
    sink: Mutex<Sink>,
    format: LogFormat,
    max: Level,
}

enum Sink {
    Stderr,
    File(File),
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // Libraries' warnings (libcgroups lists the controllers this host lacks on every
        // create) are debug detail for a hako user.
        let ours = event.metadata().target().starts_with("hako");
        if level > self.max || (!ours && self.max < Level::DEBUG) {
            return;
        }
        let mut msg = Message::default();
        event.record(&mut msg);
        let line = format_line(self.format, level, &msg.0);
        if let Ok(mut sink) = self.sink.lock() {
            let _ = match &mut *sink {
                Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
                Sink::File(f) => f.write_all(line.as_bytes()),
            };
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// One log line, newline-terminated, in runc's shape.
/// An error as the one line hako prints: its causes joined with ": ", and any control character
/// a config value carried (a newline in a path, say) escaped, so it cannot start a new line.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for c in format!("{e:#}").chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

pub fn format_line(format: LogFormat, level: Level, msg: &str) -> String {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({"level": level_name(level), "msg": msg, "time": time});
            format!("{v}\n")
        }
        LogFormat::Text => format!(
            "time=\"{time}\" level={} msg={}\n",
            level_name(level),
            serde_json::Value::String(msg.to_string())
        ),
    }
}

/// Installs the global subscriber. Returns true when log lines go to stderr (so the caller does
/// not print an error twice).
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> anyhow::Result<bool> {
    let (sink, to_stderr) = match log {
        Some(path) => {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("--log: {}: {e}", path.display()))?;
            (Sink::File(f), false)
        }
        None => (Sink::Stderr, true),
    };
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let layer = RuncLines {
        sink: Mutex::new(sink),
        format,
        max,
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Ok(to_stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runc_fields() {
        let line = format_line(LogFormat::Json, Level::ERROR, "config.json: \"x\" bad");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "config.json: \"x\" bad");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn text_line_quotes_message() {
        let line = format_line(LogFormat::Text, Level::WARN, "a \"b\"");
        assert!(line.contains("level=warning msg=\"a \\\"b\\\"\""), "{line}");
    }
}
