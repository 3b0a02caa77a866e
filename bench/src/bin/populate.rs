//! Fills the auth-server's store with a population, for the benchmark's flat-cost rows
//! (`bench/population`): users and live refresh-token families, and expired families for the
//! purge to delete. A million logins through HTTP would take hours of Argon2id alone, so records
//! go straight to the store, through its own `Store::insert_many`: the records and keys are those
//! a login writes. The store is found through the same `AUTH_*` settings the server runs with.
//!
//! - Users are `user-0000000`, `user-0000001`, … with distinct full names and e-mail addresses
//!   and a mix of scopes (every one has `items:read`). All share one password, hashed once with
//!   the server's own Argon2id parameters (so a login needs no rehash): hashing a million would
//!   take hours and a different salt per user changes nothing a login costs.
//! - A family is the first refresh token of one login by user `i mod --spread` at the client
//!   `--client-id`: live (it expires a refresh lifetime from now) and unused, with the user's
//!   and the client's current stamps, so that the refresh grant accepts it.
//! - An expired family is the same, expired a moment to an hour ago.
//!
//! Users' stamps are derived from `--seed` (the hex SHA-256 of seed and name, cut), so that a
//! later run adding families knows them without reading a million users back.
//!
//! Families are written in the order of their token ids (and family ids), live and expired
//! mixed: the ids are random, and written at random places in indexes of millions, each batch
//! dirtied thousands of pages, so that the embedded store took in 7,000 families a second;
//! in id order each batch appends. Only the `--tokens` families whose tokens the benchmark
//! presents have a plaintext token (their id is its SHA-256, as always); the others' ids are
//! random 256-bit values that no token hashes to, which costs the store nothing different.
//! Indexes filled in order are fuller than grown by traffic: the bytes per family it gives are
//! a floor.
//!
//! Prints `LOADED users=N families=N expired=N seconds=S` on stdout; with `--tokens-out`, the
//! plaintext refresh tokens of `--tokens` live families spread over the population, one a line.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use auth_server::store::{RefreshRecord, Store, UserRecord};
use auth_server::tokens::{new_refresh_token, refresh_token_id};
use benchmarks::now;
use clap::Parser;
use oauth2_jwt_verifier::Scope;

#[derive(Parser)]
#[command(about = "Writes users and refresh-token families straight to the auth-server's store")]
struct Args {
    /// Users to add (`user-0000000` on); their password is read from stdin.
    #[arg(long, default_value_t = 0)]
    users: u64,
    /// Live refresh families to add.
    #[arg(long, default_value_t = 0)]
    families: u64,
    /// Expired refresh families to add (for the purge).
    #[arg(long, default_value_t = 0)]
    expired: u64,
    /// The families belong to users `0..spread` (added by an earlier run with the same seed).
    #[arg(long)]
    spread: Option<u64>,
    /// The client of every family; it must exist.
    #[arg(long, default_value = "bench-client")]
    client_id: String,
    /// Derives the users' stamps; a run adding families must use the users' run's seed.
    #[arg(long)]
    seed: String,
    /// Writes the plaintext refresh tokens of `--tokens` live families here.
    #[arg(long)]
    tokens_out: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0)]
    tokens: u64,
    /// Records per `insert_many` call.
    #[arg(long, default_value_t = 4000)]
    batch: u64,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
}

const FIRST_NAMES: [&str; 16] = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Donald",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "John",
    "Katherine",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
];
const LAST_NAMES: [&str; 16] = [
    "Allen",
    "Backus",
    "Codd",
    "Dijkstra",
    "Engelbart",
    "Floyd",
    "Goldberg",
    "Hamilton",
    "Hopper",
    "Johnson",
    "Knuth",
    "Lamport",
    "Liskov",
    "Perlman",
    "Ritchie",
    "Wirth",
];

fn username(index: u64) -> String {
    format!("user-{index:07}")
}

/// The stamp of user `name` in a population loaded with `seed`.
fn stamp(seed: &str, name: &str) -> String {
    let mut digest = refresh_token_id(&format!("{seed}:{name}"));
    digest.truncate(22);
    digest
}

fn user(index: u64, seed: &str, password_hash: &str, now: u64) -> UserRecord {
    let name = username(index);
    let first = FIRST_NAMES[(index % 16) as usize];
    let last = LAST_NAMES[(index / 16 % 16) as usize];
    let mut scopes = vec!["items:read"];
    if index % 2 == 0 {
        scopes.push("profile");
    }
    if index % 3 == 0 {
        scopes.push("email");
    }
    if index % 5 == 0 {
        scopes.push("items:write");
    }
    UserRecord {
        full_name: Some(format!("{first} {last} {}", index / 256)),
        email: Some(format!("{name}@example.com")),
        password_hash: password_hash.to_owned(),
        disabled: false,
        scopes: Scope::from_tokens(scopes),
        stamp: stamp(seed, &name),
        not_before: now,
        username: name,
    }
}

/// What every family shares.
struct Family<'a> {
    seed: &'a str,
    spread: u64,
    client_id: &'a str,
    client_stamp: &'a str,
    audience: &'a str,
    scope: Scope,
}

impl Family<'_> {
    /// Family `index` with token id `id` and family id `family_id`, ending at `expires_at`.
    fn record(
        &self,
        index: u64,
        id: String,
        family_id: String,
        issued_at: u64,
        expires_at: u64,
    ) -> RefreshRecord {
        let name = username(index % self.spread);
        RefreshRecord {
            id,
            family_id,
            client_id: self.client_id.to_owned(),
            user_stamp: stamp(self.seed, &name),
            username: name,
            scope: self.scope.clone(),
            audience: self.audience.to_owned(),
            client_stamp: self.client_stamp.to_owned(),
            issued_at,
            expires_at,
            used_at: None,
            sealed_successor: None,
            successor_id: None,
        }
    }
}

/// What a family slot is: live, expired, or live with plaintext token number N.
const LIVE: u32 = u32::MAX;
const EXPIRED: u32 = u32::MAX - 1;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

fn unhex(text: &str) -> [u8; 32] {
    let mut bytes = [0; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).unwrap_or(0);
    }
    bytes
}

/// The families' token ids, sorted, each with what it is (see [`LIVE`]); and the plaintext
/// tokens by number.
fn family_slots(live: u64, expired: u64, tokens: u64) -> (Vec<([u8; 32], u32)>, Vec<String>) {
    use rand::RngCore as _;
    let mut rng = rand::thread_rng();
    let total = usize::try_from(live + expired).unwrap_or(usize::MAX);
    let mut slots = Vec::with_capacity(total);
    let mut plaintext = Vec::new();
    for number in 0..tokens {
        let token = new_refresh_token();
        slots.push((unhex(&refresh_token_id(&token)), number as u32));
        plaintext.push(token);
    }
    for index in tokens..live + expired {
        let mut id = [0; 32];
        rng.fill_bytes(&mut id);
        slots.push((id, if index < live { LIVE } else { EXPIRED }));
    }
    slots.sort_unstable();
    (slots, plaintext)
}

/// `count` random family ids (16 bytes, base64url as `random_token(16)` makes them), sorted.
fn family_ids(count: usize) -> Vec<String> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut rng = rand::thread_rng();
    let mut ids: Vec<[u8; 16]> = (0..count)
        .map(|_| {
            let mut id = [0; 16];
            rng.fill_bytes(&mut id);
            id
        })
        .collect();
    ids.sort_unstable();
    ids.iter()
        .map(|id| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id))
        .collect()
}

/// Runs `insert_many` on batches from `make` (one batch per index range), `parallel` at once.
async fn load(
    store: &Arc<dyn Store>,
    count: u64,
    args: &Args,
    mut make: impl FnMut(std::ops::Range<u64>) -> (Vec<UserRecord>, Vec<RefreshRecord>),
) -> anyhow::Result<()> {
    let mut writes = tokio::task::JoinSet::new();
    let mut start = 0;
    while start < count {
        let end = (start + args.batch).min(count);
        if writes.len() >= args.parallel {
            if let Some(done) = writes.join_next().await {
                done??;
            }
        }
        let (users, tokens) = make(start..end);
        let store = Arc::clone(store);
        writes.spawn(async move { store.insert_many(&users, &tokens).await });
        start = end;
    }
    while let Some(done) = writes.join_next().await {
        done??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.batch == 0 || args.parallel == 0 {
        bail!("--batch and --parallel must be at least 1");
    }
    let spread = args.spread.unwrap_or(args.users);
    if (args.families > 0 || args.expired > 0) && spread == 0 {
        bail!("families need users: give --users or --spread");
    }
    if args.tokens > args.families {
        bail!("--tokens must not exceed --families");
    }
    let settings = auth_server::Settings::load(None).map_err(|err| anyhow!("{err}"))?;
    let store: Arc<dyn Store> = settings
        .open_store()
        .await
        .context("opening the auth-server's store")?;
    let now = now();
    let started = Instant::now();

    if args.users > 0 {
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .context("reading the users' password from stdin")?;
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            bail!("the users' password (stdin) is empty");
        }
        let hash = auth_server::passwords::hash_blocking(password)
            .map_err(|err| anyhow!("hashing the password: {err}"))?;
        load(&store, args.users, &args, |range| {
            let users = range.map(|index| user(index, &args.seed, &hash, now));
            (users.collect(), Vec::new())
        })
        .await
        .context("adding users")?;
        eprintln!("{} users added", args.users);
    }

    if args.families > 0 || args.expired > 0 {
        let client = store
            .client(&args.client_id)
            .await?
            .ok_or_else(|| anyhow!("no client {:?} in the store", args.client_id))?;
        let family = Family {
            seed: &args.seed,
            spread,
            client_id: &client.client_id,
            client_stamp: &client.stamp,
            audience: &settings.audience,
            scope: Scope::from_tokens(["items:read"]),
        };
        let (slots, plaintext) = family_slots(args.families, args.expired, args.tokens);
        let family_ids = family_ids(slots.len());
        load(&store, slots.len() as u64, &args, |range| {
            let tokens = range.map(|index| {
                let (id, what) = slots[index as usize];
                let family_id = family_ids[index as usize].clone();
                let (issued_at, expires_at) = if what == EXPIRED {
                    let age = 1 + index % 3600;
                    (now - age - 3600, now - age)
                } else {
                    (now - index % 3600, now + settings.refresh_token_ttl)
                };
                family.record(index, hex(&id), family_id, issued_at, expires_at)
            });
            (Vec::new(), tokens.collect())
        })
        .await
        .context("adding families")?;
        if let Some(path) = &args.tokens_out {
            let mut text = plaintext.join("\n");
            text.push('\n');
            std::fs::write(path, text).with_context(|| format!("writing {path:?}"))?;
        }
        eprintln!(
            "{} live and {} expired families added over {spread} users",
            args.families, args.expired
        );
    }
    store.close().await;
    println!(
        "LOADED users={} families={} expired={} seconds={:.1}",
        args.users,
        args.families,
        args.expired,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
