//! berth's own lines on stderr (progress, warnings, the final error): plain text,
//! or with `--log-format json` one JSON object per line in the shape of the
//! tracing JSON logs beside them, so a log collector can read every line.

use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// Chosen once in `main`, before anything is said.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether lines are JSON (progress bars, meant for eyes, are then off).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// A progress line.
pub fn info(text: &str) {
    emit("INFO", text);
}

/// A line about something the user may want to fix.
pub fn warn(text: &str) {
    emit("WARN", text);
}

/// The one report of a failed command.
pub fn error(text: &str) {
    emit("ERROR", text);
}

/// The JSON object of one line; a text of several lines stays one object.
pub fn object(level: &str, text: &str) -> serde_json::Value {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    serde_json::json!({
        "timestamp": now,
        "level": level,
        "fields": { "message": text },
        "target": "berth",
    })
}

fn emit(level: &str, text: &str) {
    if json() {
        eprintln!("{}", object(level, text));
    } else {
        eprintln!("{text}");
    }
}
