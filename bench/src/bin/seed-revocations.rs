//! Fills the revocation feed with live entries, for the benchmark's rows on what a large feed
//! costs a resource server (throughput with the feed on against off, and memory). Thousands of
//! real revocations would take thousands of logins and `POST /revoke` calls; entries written
//! straight to the auth-server's store, through its own `record_revocation`, are what a verifier
//! polls either way. The store is found through the same `AUTH_*` settings the server runs with.
//!
//! The mix stands for a busy issuer: mostly single tokens (random `jti`s), one entry in ten a
//! user's cut-off and one in a hundred a client's (digests of random names), so that a verifier
//! checks every token against non-empty subject and client maps too. Every entry lives an hour.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use auth_server::store::{RevocationEntry, Store};
use base64::Engine as _;
use benchmarks::now;
use clap::Parser;
use rand::Rng;

#[derive(Parser)]
#[command(about = "Writes random live revocation entries to the auth-server's store")]
struct Args {
    /// How many entries to add.
    #[arg(long)]
    count: usize,
    /// Seconds the entries stay live.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
}

fn random_key() -> String {
    let mut raw = [0_u8; 16];
    rand::thread_rng().fill(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Entry `index` of the mix described above.
fn entry(index: usize, now: u64, until: u64) -> RevocationEntry {
    match index % 100 {
        1 => RevocationEntry::client(&random_key(), now, until),
        n if n % 10 == 0 => RevocationEntry::subject(&random_key(), now, until),
        _ => RevocationEntry::token(&random_key(), until),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let settings = auth_server::Settings::load(None).map_err(|err| anyhow!("{err}"))?;
    let store: Arc<dyn Store> = settings
        .open_store()
        .await
        .context("opening the auth-server's store")?;
    let now = now();
    let until = now + args.ttl;
    let mut writes = tokio::task::JoinSet::new();
    for index in 0..args.count {
        if writes.len() >= args.parallel {
            if let Some(done) = writes.join_next().await {
                done??;
            }
        }
        let store = Arc::clone(&store);
        let entry = entry(index, now, until);
        writes.spawn(async move { store.record_revocation(&entry).await });
    }
    while let Some(done) = writes.join_next().await {
        done??;
    }
    store.close().await;
    eprintln!("{} revocation entries recorded", args.count);
    Ok(())
}
