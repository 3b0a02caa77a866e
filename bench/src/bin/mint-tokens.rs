//! Distinct user access tokens for the benchmark's "fresh token per request" row, minted the way
//! the password and refresh grants mint them: auth-server's `TokenIssuer::mint_access` with the
//! server's own active signing key (read from its store with its key-encryption key, from the
//! same `AUTH_*` settings the server runs with), its issuer and audience, for a
//! user that exists in its store. The resource server cannot tell them from tokens the
//! auth-server handed out; minting them here spares the benchmark thousands of Argon2id logins
//! before the row starts. One token per line on stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use auth_server::keys::KeyRing;
use auth_server::tokens::{Subject, TokenIssuer, UserProfile};
use benchmarks::now;
use clap::Parser;
use oauth2_jwt_verifier::Scope;

#[derive(Parser)]
#[command(about = "Mints user access tokens with the auth-server's own key and code")]
struct Args {
    /// The auth-server's keys directory, where its key-encryption key is (default AUTH_KEYS_DIR).
    #[arg(long)]
    keys_dir: Option<PathBuf>,
    /// The auth-server's issuer (AUTH_ISSUER).
    #[arg(long)]
    issuer: url::Url,
    #[arg(long, default_value = "api")]
    audience: String,
    #[arg(long)]
    username: String,
    #[arg(long)]
    full_name: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long, default_value = "items:read")]
    scope: String,
    /// The `client_id` claim, as if the client had used the password grant.
    #[arg(long)]
    client_id: String,
    /// Seconds the tokens live.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ring = server_keys(args.keys_dir.clone()).context("loading the auth-server's keys")?;
    let issuer = TokenIssuer::new(
        args.issuer.as_str().trim_end_matches('/').to_owned(),
        args.ttl,
        ring,
    );
    let token_scope = Scope::parse(&args.scope).map_err(|err| anyhow!("--scope: {err}"))?;
    let subject = Subject {
        sub: &args.username,
        user: Some(UserProfile {
            username: &args.username,
            name: args.full_name.as_deref(),
            email: args.email.as_deref(),
        }),
    };
    let now = now();
    let n_threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = args.count.div_ceil(n_threads);
    let batches: Vec<anyhow::Result<Vec<String>>> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..n_threads)
            .map(|index| {
                let n = per_thread.min(args.count.saturating_sub(index * per_thread));
                let (issuer, subject, token_scope) = (&issuer, &subject, &token_scope);
                let (client_id, audience) = (&args.client_id, &args.audience);
                threads.spawn(move || {
                    (0..n)
                        .map(|_| {
                            issuer
                                .mint_access(subject, client_id, token_scope, audience, now)
                                .map(|(token, _)| token)
                                .map_err(anyhow::Error::new)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a minting thread panicked")))
            })
            .collect()
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for batch in batches {
        for token in batch? {
            writeln!(out, "{token}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The key ring the running auth-server signs with: its store and key-encryption key, found
/// through the same `AUTH_*` settings.
fn server_keys(keys_dir: Option<PathBuf>) -> anyhow::Result<KeyRing> {
    let mut settings = auth_server::Settings::load(None).map_err(|err| anyhow!("{err}"))?;
    if let Some(dir) = keys_dir {
        settings.keys_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = settings.open_store().await?;
        let lifecycle = settings.key_lifecycle(store)?;
        lifecycle.load(now()).await
    })
}
