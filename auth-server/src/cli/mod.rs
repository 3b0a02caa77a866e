//! The command line: `serve` (the default), `healthcheck`, and the administration commands, which work on the
//! configured store while the server runs. Secrets are read from stdin only, never arguments.

pub mod client;
pub mod keys;
pub mod user;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

#[derive(Parser, Debug)]
#[command(
    name = "auth-server",
    version,
    about = "OAuth 2.0 authorization server"
)]
pub struct Cli {
    /// TOML settings file; AUTH_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: crate::settings::Overrides,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective settings, secrets masked.
    Config,
    /// Manage users.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage registered clients.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Ask the running server's /readyz (on the admin address when set): exit 0 when it
    /// answers 200 within the timeout, else 1. For container health checks: the image has no
    /// shell and no HTTP tool.
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3, value_name = "SECONDS")]
        timeout: u64,
    },
}

/// `auth-server healthcheck`: `Ok` when `/readyz` answers 200 within `timeout`.
pub async fn healthcheck(
    settings: &crate::settings::Settings,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let addr = settings.health_addr();
    let status = server_plumbing::healthcheck::probe(addr, "/readyz", timeout)
        .await
        .map_err(anyhow::Error::msg)?;
    if status != 200 {
        bail!("{addr}/readyz answered {status}");
    }
    Ok(())
}

/// One secret from stdin: everything up to the end, without the final line break.
pub fn read_secret_from_stdin(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        bail!("empty {what} on stdin");
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Parses `--scope` values, each of which may hold several space-separated scopes.
pub fn scopes(values: &[String]) -> anyhow::Result<oauth2_jwt_verifier::Scope> {
    let joined = values.join(" ");
    oauth2_jwt_verifier::Scope::parse(&joined)
        .map_err(|err| anyhow::anyhow!("invalid scope {joined:?}: {err}"))
}
