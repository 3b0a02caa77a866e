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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Ask the running server's /readyz (on the admin address when set): exit 0 when it
    /// answers 200 within the timeout, else 1. For container health checks: the image has no
    /// shell and no HTTP tool.
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3, value_name = "SECONDS")]
        timeout: u64,
    },
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            server_plumbing::telemetry::init_logging(settings.log_format == "json");
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Healthcheck { timeout } => {
            let addr = settings.health_addr();
            let timeout = std::time::Duration::from_secs(timeout);
            let status = server_plumbing::healthcheck::probe(addr, "/readyz", timeout)
                .await
                .map_err(anyhow::Error::msg)?;
            anyhow::ensure!(status == 200, "{addr}/readyz answered {status}");
        }
    }
    Ok(())
}
