//! One tracing setup for every binary: JSON lines when stdout is not a terminal (containers,
//! log shippers), human-readable text otherwise. `FACECRAFT_LOG_FORMAT=json|text` overrides,
//! `RUST_LOG` (or `FACECRAFT_LOG`) sets the filter, default `info`.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let json = match std::env::var("FACECRAFT_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    install(filter("info"), json, std::io::stdout);
}

/// For a command whose stdout is its output (`facecraft-worker process`): logs go to stderr,
/// as text unless `FACECRAFT_LOG_FORMAT=json`, and only warnings and errors by default (an
/// engine that fell back to the CPU, a model file with random weights), so the results stay
/// readable; `RUST_LOG` (or `FACECRAFT_LOG`) shows more.
pub fn init_stderr() {
    let json = std::env::var("FACECRAFT_LOG_FORMAT").as_deref() == Ok("json");
    install(filter("warn"), json, std::io::stderr);
}

fn filter(default: &str) -> EnvFilter {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("FACECRAFT_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default))
}

fn install<W>(filter: EnvFilter, json: bool, writer: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // try_init: tests may call this more than once in one process.
    let _ = if json {
        fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_writer(writer)
            .try_init()
    } else {
        fmt().with_env_filter(filter).with_writer(writer).try_init()
    };
}
