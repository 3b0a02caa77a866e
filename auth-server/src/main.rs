//! Parses the command line and dispatches; everything else lives in the library.

use clap::Parser;

use auth_server::cli::{self, Cli, Command};
use auth_server::settings::LogFormat;
use auth_server::{Application, Settings};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load_with(cli.config.as_deref(), &cli.overrides)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            server_plumbing::telemetry::init_logging(settings.log_format == LogFormat::Json);
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Config => print!("{}", settings.to_masked_toml()),
        Command::User(command) => cli::user::run(&settings, command).await?,
        Command::Client(command) => cli::client::run(&settings, command).await?,
        Command::Keys(command) => cli::keys::run(&settings, command).await?,
        Command::Healthcheck { timeout } => {
            cli::healthcheck(&settings, std::time::Duration::from_secs(timeout)).await?
        }
    }
    Ok(())
}
