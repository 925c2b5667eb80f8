use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facecraft_worker::config::ServeSettings;
use facecraft_worker::process::ProcessArgs;

/// Facecraft worker: turns photos into clean head-and-shoulders portraits.
#[derive(Parser)]
#[command(name = "facecraft-worker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume jobs from the Redis stream and store results in S3.
    Serve(Box<ServeSettings>),
    /// Run the pipeline on local files; no Redis, no S3.
    Process(Box<ProcessArgs>),
    /// Rename the Redis keys of the untagged layout of earlier versions (`facecraft:jobs`) to
    /// the hash-tagged one (`{facecraft}:jobs`). Once, with the api and workers stopped.
    MigrateKeys(Box<facecraft_shared::config::RedisSettings>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(settings) => {
            facecraft_shared::telemetry::init();
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: starting the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(?settings, "starting facecraft-worker serve");
            match rt.block_on(facecraft_worker::serve(
                *settings,
                facecraft_worker::shutdown_signal(),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "worker failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Process(args) => {
            facecraft_shared::telemetry::init_stderr();
            facecraft_worker::process::run(&args)
        }
        Command::MigrateKeys(redis) => {
            facecraft_shared::telemetry::init();
            match facecraft_worker::migrate_keys(&redis) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "migrate-keys failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
