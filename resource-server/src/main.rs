//! Parses the command line and runs the server.

use std::path::PathBuf;

use clap::Parser;
use resource_server::{Application, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "resource-server",
    version,
    about = "API that verifies the auth-server's tokens locally"
)]
struct Cli {
    /// TOML settings file; RS_* environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: resource_server::settings::Overrides,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings =
        Settings::load_with(cli.config.as_deref(), &cli.overrides).map_err(anyhow::Error::msg)?;
    server_plumbing::telemetry::init_logging(settings.log_format == "json");
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}
