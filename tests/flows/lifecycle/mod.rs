//! The credential lifecycle: what an operator changes about a user or a client reaches every
//! token already issued. Each scenario is the README's commands, run with the real
//! `auth-server` binary on a running server's store, then the HTTP answers; each runs on the
//! embedded store and on Redis (`on_both_stores!`), and the replica scenario on two
//! auth-servers sharing one Redis.
//!
//! This file holds the deployment the scenarios share; the scenarios are in one file per kind
//! of change.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server_plumbing::wire::TokenResponse;
use system_tests::binaries::{binaries, cli_env, run_cli, CliRun};
use system_tests::{claims_of, error_of, reqwest, shared_redis, RedisNamespace, TestAuth};
pub(crate) use test_kit::unix_now;

const RS_SECRET: &str = "rs-secret-0123456789-0123456789-xxxx";
const WEB_SECRET: &str = "web-secret-0123456789-0123456789-xxx";
/// The grants of the confidential client `web` in most scenarios.
const WEB_GRANTS: &[&str] = &["--grant", "password", "--grant", "refresh_token"];

#[derive(Clone, Copy)]
enum Backend {
    Embedded,
    Redis,
}

/// An auth-server on `backend`, with a client `rs` registered to introspect any token.
struct Deployment {
    auth: TestAuth,
    /// Dropped last: deletes the test's Redis keys.
    _namespace: Option<RedisNamespace>,
}

/// How a request names its client.
#[derive(Clone, Copy)]
enum As<'a> {
    /// No client at all: the default public client.
    NoClient,
    /// `client_id` in the form, no secret.
    Named(&'a str),
    /// HTTP Basic with a secret.
    Basic(&'a str, &'a str),
}

async fn deploy(backend: Backend, adjust: impl FnOnce(&mut auth_server::Settings)) -> Deployment {
    let (auth, namespace) = match backend {
        Backend::Embedded => (TestAuth::spawn_with(adjust).await, None),
        Backend::Redis => {
            let namespace = shared_redis("lifecycle");
            let auth = TestAuth::spawn_on_redis(namespace.store_url(), adjust).await;
            (auth, Some(namespace))
        }
    };
    auth.add_introspecting_client("rs", RS_SECRET).await;
    Deployment {
        auth,
        _namespace: namespace,
    }
}

impl Deployment {
    /// `auth-server ARGS` on this server's store, with `stdin`.
    async fn cli(&self, args: &[&str], stdin: &str) -> CliRun {
        run_cli(
            &binaries().await.auth,
            &cli_env(&self.auth.settings),
            args,
            stdin,
        )
        .await
    }

    /// A command that must succeed; its standard output.
    async fn ok(&self, args: &[&str], stdin: &str) -> String {
        let run = self.cli(args, stdin).await;
        assert!(run.success(), "{args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// `auth-server user add NAME --password-stdin [--scope SCOPE]`, which must succeed.
    async fn add_user(&self, name: &str, password: &str, scope: &str) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if !scope.is_empty() {
            args.extend(["--scope", scope]);
        }
        self.ok(&args, password).await;
    }

    /// `auth-server client add web --secret-stdin FLAGS` with `secret`, which must succeed.
    async fn add_web(&self, secret: &str, flags: &[&str]) {
        let mut args = vec!["client", "add", "web", "--secret-stdin"];
        args.extend(flags);
        self.ok(&args, secret).await;
    }

    /// A command that must fail with exit status 1 and one line of error; that line.
    async fn fails(&self, args: &[&str], stdin: &str) -> String {
        let run = self.cli(args, stdin).await;
        assert!(!run.success(), "{args:?} succeeded: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        run.stderr
    }

    async fn token(&self, client: As<'_>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let request = self.auth.http.post(self.auth.url("/token"));
        let request = match client {
            As::NoClient => request,
            As::Named(id) => {
                form.push(("client_id", id));
                request
            }
            As::Basic(id, secret) => request.basic_auth(id, Some(secret)),
        };
        request.form(&form).send().await.unwrap()
    }

    async fn login_as(&self, client: As<'_>, username: &str, password: &str) -> reqwest::Response {
        self.token(
            client,
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// A password grant that must succeed.
    async fn login(&self, client: As<'_>, username: &str, password: &str) -> TokenResponse {
        let response = self.login_as(client, username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        response.json().await.unwrap()
    }

    async fn refresh(&self, client: As<'_>, refresh_token: &str) -> reqwest::Response {
        self.token(
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// RFC 7662 introspection by `rs`, which may introspect any token.
    async fn introspect(&self, token: &str) -> Value {
        self.auth.introspect("rs", RS_SECRET, token).await
    }

    /// The session of `tokens` (issued through the default public client) has ended: its
    /// refresh token answers `invalid_grant` and neither token is active at introspection.
    async fn assert_ended(&self, tokens: &TokenResponse, why: &str) {
        let refreshed = self.refresh(As::NoClient, refresh_token_of(tokens)).await;
        assert_eq!(
            status_and_error(refreshed).await,
            (400, "invalid_grant".to_owned()),
            "refresh: {why}"
        );
        assert_eq!(
            self.introspect(refresh_token_of(tokens)).await,
            inactive(),
            "refresh token: {why}"
        );
        assert_eq!(
            self.introspect(&tokens.access_token).await,
            inactive(),
            "access token: {why}"
        );
    }

    /// Both tokens of `tokens` are active at introspection; nothing is used up.
    async fn assert_active(&self, tokens: &TokenResponse, why: &str) {
        for token in [tokens.access_token.as_str(), refresh_token_of(tokens)] {
            assert_eq!(self.introspect(token).await["active"], true, "{why}");
        }
    }

    /// The session of `tokens` stands: both tokens are active and the refresh token refreshes
    /// (which uses it up).
    async fn assert_alive(&self, tokens: &TokenResponse, why: &str) {
        self.assert_active(tokens, why).await;
        let refreshed = self.refresh(As::NoClient, refresh_token_of(tokens)).await;
        assert_eq!(refreshed.status(), 200, "refresh: {why}");
    }

    async fn client_credentials(&self, id: &str, secret: &str) -> reqwest::Response {
        self.client_credentials_as(As::Basic(id, secret)).await
    }

    async fn client_credentials_as(&self, client: As<'_>) -> reqwest::Response {
        self.token(client, &[("grant_type", "client_credentials")])
            .await
    }
}

async fn status_and_error(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), error_of(response).await)
}

fn refresh_token_of(tokens: &TokenResponse) -> &str {
    tokens.refresh_token.as_deref().unwrap()
}

fn inactive() -> Value {
    json!({"active": false})
}

/// Users alice and bob, each logged in through the default public client.
async fn two_users_logged_in(deployment: &Deployment) -> (TokenResponse, TokenResponse) {
    deployment.add_user("alice", "alice-pw-1", "read").await;
    deployment
        .ok(
            &["user", "add", "bob", "--password-stdin", "--scope", "read"],
            "bob-pw-1",
        )
        .await;
    let alice = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    let bob = deployment.login(As::NoClient, "bob", "bob-pw-1").await;
    (alice, bob)
}

/// User alice, logged in through `web`, a confidential client with the password and
/// refresh_token grants and the secret [`WEB_SECRET`].
async fn alice_through_web(deployment: &Deployment) -> TokenResponse {
    deployment
        .ok(&["user", "add", "alice", "--password-stdin"], "alice-pw-1")
        .await;
    deployment.add_web(WEB_SECRET, WEB_GRANTS).await;
    deployment
        .login(As::Basic("web", WEB_SECRET), "alice", "alice-pw-1")
        .await
}

/// Makes `mod embedded` and `mod redis`, each with one test per scenario on its backend.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Backend::Embedded).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Backend::Redis).await;
                }
            )*
        }
    };
}

mod client_cache;
mod client_ids;
mod clients;
mod replicas;
mod users;
