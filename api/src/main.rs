use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    facecraft_shared::telemetry::init();
    let settings = facecraft_api::Settings::parse();
    tracing::info!(?settings, "starting facecraft-api");
    let app = facecraft_api::Application::build(settings).await?;
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run_until(facecraft_api::shutdown_signal()).await
}
