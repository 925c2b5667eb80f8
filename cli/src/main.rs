use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    facecraft_cli::run(facecraft_cli::Cli::parse()).await
}
