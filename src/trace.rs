//! `--trace`: the phases of a command with the time since hako started, on stderr, so a user can
//! see where create/start spend their time. With `--debug` each phase is also a debug log line.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Turns tracing on (called once, from main, when --trace is given).
pub fn enable() {
    let _ = START.set(Instant::now());
}

/// Prints one phase line when tracing is on; logs it at debug level.
pub fn phase(name: &str) {
    tracing::debug!("{name}");
    if let Some(start) = START.get() {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        eprintln!("hako: trace: {ms:8.3} ms  {name}");
    }
}
