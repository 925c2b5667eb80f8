//! One tracing setup for every binary: JSON lines when stdout is not a terminal (containers,
//! log shippers), human-readable text otherwise. `FACECRAFT_LOG_FORMAT=json|text` overrides,
//! `RUST_LOG` (or `FACECRAFT_LOG`) sets the filter, default `info`.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("FACECRAFT_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("FACECRAFT_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    // try_init: tests may call this more than once in one process.
    let _ = if json {
        fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_writer(std::io::stdout)
            .try_init()
    } else {
        fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .try_init()
    };
}
