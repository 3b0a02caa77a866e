//! How long a revocation takes to reach a resource server: the figure the revocation feed
//! promises (one poll interval) checked from the outside, the way a user sees it. Each sample
//! takes a user token with the password grant, shows it accepted at `/users/me` (so the resource
//! server holds it in its token cache, where a refusal has to reach it too), revokes it, and
//! asks `/users/me` every 10 ms until it answers 401; the sample is the time from the revocation
//! to that first refusal.
//!
//! Two ways to revoke, the two the issue names: `POST /revoke` of the token (a `jti` entry in
//! the feed), or with `--disable` the operator's `auth-server user disable NAME` (a subject
//! entry), timed from the start of the CLI command, since that is when an operator acts. The
//! `--disable` mode makes its own users first with the CLI (`user add --password-stdin`), one
//! per sample, because a disabled user cannot be measured twice.
//!
//! Samples run `--parallel` at a time, each after a random pause of up to `--spread` seconds, so
//! that revocations fall at every phase of the resource server's poll: run back to back, each
//! would start just after a poll and all would measure the worst case. Secrets come from the
//! environment, never the command line. Prints a human summary on stderr and one
//! `RESULT samples=N p50_ms=… p99_ms=… max_ms=…` line on stdout for `bench/run`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(about = "Times revocations until a resource server refuses the token")]
struct Args {
    /// The auth-server's base URL.
    #[arg(long)]
    auth: url::Url,
    /// The resource server's base URL.
    #[arg(long)]
    rs: url::Url,
    /// A confidential client allowed the password grant.
    #[arg(long)]
    client_id: String,
    #[arg(long, env = "REACH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// The user whose tokens are revoked (POST /revoke mode).
    #[arg(long, required_unless_present = "disable")]
    username: Option<String>,
    #[arg(
        long,
        env = "REACH_PASSWORD",
        hide_env_values = true,
        required_unless_present = "disable"
    )]
    password: Option<String>,
    /// Revoke by disabling a user with the CLI at this path, against the same store (the `AUTH_*`
    /// settings of the environment), instead of `POST /revoke`.
    #[arg(long, value_name = "AUTH_SERVER_BINARY")]
    disable: Option<PathBuf>,
    /// The scope the users made for `--disable` may be granted.
    #[arg(long, default_value = "items:read")]
    scope: String,
    /// How many revocations to time.
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// How many samples run at once.
    #[arg(long, default_value_t = 10)]
    parallel: usize,
    /// The longest random pause before a sample, in seconds: the resource server's poll
    /// interval spreads the revocations over its whole cycle.
    #[arg(long, default_value_t = 5.0)]
    spread: f64,
    /// A sample fails when no refusal comes within this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// What one sample needs to log in and revoke.
struct Reach {
    http: reqwest::Client,
    args: Args,
}

const POLL_EVERY: Duration = Duration::from_millis(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.count == 0 || args.parallel == 0 {
        bail!("--count and --parallel must be at least 1");
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let context = Arc::new(Reach { http, args });

    // One user (and password) per sample for --disable; the same user for every POST /revoke.
    let accounts: Vec<(String, String)> = match &context.args.disable {
        Some(cli) => make_users(cli, &context.args).await?,
        None => {
            let user = context.args.username.clone().unwrap_or_default();
            let password = context.args.password.clone().unwrap_or_default();
            vec![(user, password); context.args.count]
        }
    };

    let slots = Arc::new(Semaphore::new(context.args.parallel));
    let mut samples = tokio::task::JoinSet::new();
    for (index, (user, password)) in accounts.into_iter().enumerate() {
        let (context, slots) = (Arc::clone(&context), Arc::clone(&slots));
        samples.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            let pause = rand::thread_rng().gen_range(0.0..context.args.spread.max(0.001));
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
            sample(&context, &user, &password)
                .await
                .with_context(|| format!("sample {index}"))
        });
    }
    let mut reach = Vec::with_capacity(context.args.count);
    while let Some(joined) = samples.join_next().await {
        reach.push(joined.context("a sample's task")??);
    }
    reach.sort();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = (
        percentile(&reach, 50.0),
        percentile(&reach, 99.0),
        reach.last().copied().unwrap_or_default(),
    );
    let how = if context.args.disable.is_some() {
        "auth-server user disable"
    } else {
        "POST /revoke"
    };
    eprintln!(
        "{how} to the first 401 at {}: {} samples, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        context.args.rs,
        reach.len(),
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "RESULT samples={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} min_ms={:.1}",
        reach.len(),
        ms(p50),
        ms(p99),
        ms(max),
        ms(reach.first().copied().unwrap_or_default())
    );
    Ok(())
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest sample with at least p% of the samples at or below it.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One revocation, timed: from just before it is made to the first 401 at the resource server.
async fn sample(context: &Reach, user: &str, password: &str) -> anyhow::Result<Duration> {
    let args = &context.args;
    let token = password_grant(context, user, password).await?;
    let status = users_me(context, &token).await?;
    if status != reqwest::StatusCode::OK {
        bail!("a fresh token of {user:?} got {status} at /users/me instead of 200");
    }
    let started = Instant::now();
    match &args.disable {
        Some(cli) => disable(cli, user).await?,
        None => revoke(context, &token).await?,
    }
    let deadline = started + Duration::from_secs(args.timeout);
    loop {
        let status = users_me(context, &token).await?;
        match status {
            reqwest::StatusCode::UNAUTHORIZED => return Ok(started.elapsed()),
            reqwest::StatusCode::OK => {}
            other => bail!("/users/me answered {other} while the revocation travelled"),
        }
        if Instant::now() >= deadline {
            bail!(
                "the resource server still accepts the token {} s after its revocation",
                args.timeout
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn password_grant(context: &Reach, user: &str, password: &str) -> anyhow::Result<String> {
    let args = &context.args;
    let answer = context
        .http
        .post(args.auth.join("token")?)
        .basic_auth(&args.client_id, Some(&args.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .context("POST /token")?;
    let status = answer.status();
    if !status.is_success() {
        bail!("the password grant for {user:?} answered {status}");
    }
    let body: serde_json::Value = answer.json().await.context("the token response")?;
    body.get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .context("a token response without access_token")
}

async fn users_me(context: &Reach, token: &str) -> anyhow::Result<reqwest::StatusCode> {
    let answer = context
        .http
        .get(context.args.rs.join("users/me")?)
        .bearer_auth(token)
        .send()
        .await
        .context("GET /users/me")?;
    Ok(answer.status())
}

async fn revoke(context: &Reach, token: &str) -> anyhow::Result<()> {
    let args = &context.args;
    let answer = context
        .http
        .post(args.auth.join("revoke")?)
        .basic_auth(&args.client_id, Some(&args.client_secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .context("POST /revoke")?;
    if answer.status() != reqwest::StatusCode::OK {
        bail!("POST /revoke answered {}", answer.status());
    }
    Ok(())
}

async fn disable(cli: &Path, user: &str) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(cli)
        .args(["user", "disable", user])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", cli.display()))?;
    if !out.status.success() {
        bail!(
            "user disable {user} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `count` new users for `--disable`, named `reach-<random>-<n>` (fresh in any store), each with
/// its own random password, added with the CLI a few at a time.
async fn make_users(cli: &Path, args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    use base64::Engine as _;
    let random = |bytes: usize| {
        let mut raw = vec![0_u8; bytes];
        rand::thread_rng().fill(raw.as_mut_slice());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    };
    let run = random(6);
    let accounts: Vec<(String, String)> = (0..args.count)
        .map(|n| (format!("reach-{run}-{n}"), random(18)))
        .collect();
    let slots = Arc::new(Semaphore::new(args.parallel.min(4)));
    let mut adds = tokio::task::JoinSet::new();
    for (user, password) in accounts.clone() {
        let (cli, scope, slots) = (cli.to_path_buf(), args.scope.clone(), Arc::clone(&slots));
        adds.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            let mut child = tokio::process::Command::new(&cli)
                .args(["user", "add", &user, "--password-stdin", "--scope", &scope])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("running {}", cli.display()))?;
            let mut stdin = child.stdin.take().context("the CLI's stdin")?;
            stdin.write_all(format!("{password}\n").as_bytes()).await?;
            drop(stdin);
            let out = child.wait_with_output().await?;
            if !out.status.success() {
                bail!(
                    "user add {user} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = adds.join_next().await {
        joined.context("a user add task")??;
    }
    Ok(accounts)
}
