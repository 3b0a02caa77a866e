//! The credential lifecycle: what an operator changes about a user or a client reaches every
//! token already issued. Each scenario is the README's commands, run with the real
//! `auth-server` binary on a running server's store, then the HTTP answers; each runs on the
//! embedded store and on Redis (`on_both_stores!`), and the replica scenario on two
//! auth-servers sharing one Redis.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::wire::TokenResponse;
use system_tests::binaries::{binaries, cli_env, run_cli, CliRun};
use system_tests::{reqwest, shared_redis, RedisNamespace, TestAuth};

const RS_SECRET: &str = "rs-secret-0123456789-0123456789-xxxx";
const WEB_SECRET: &str = "web-secret-0123456789-0123456789-xxx";

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
        self.introspect_as("rs", RS_SECRET, token).await
    }

    async fn introspect_as(&self, id: &str, secret: &str, token: &str) -> Value {
        let response = self
            .auth
            .http
            .post(self.auth.url("/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
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

/// The RFC 6749 §5.2 error code of a refusal.
async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

async fn status_and_error(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), error_of(response).await)
}

fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn refresh_token_of(tokens: &TokenResponse) -> &str {
    tokens.refresh_token.as_deref().unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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
    deployment
        .ok(
            &[
                "client",
                "add",
                "web",
                "--secret-stdin",
                "--grant",
                "password",
                "--grant",
                "refresh_token",
            ],
            WEB_SECRET,
        )
        .await;
    deployment
        .login(As::Basic("web", WEB_SECRET), "alice", "alice-pw-1")
        .await
}

// ---------------------------------------------------------------------------------------------
// 1. User changes end sessions

async fn a_new_password_ends_every_session_of_the_user(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (alice, bob) = two_users_logged_in(&deployment).await;
    deployment.assert_active(&alice, "before the change").await;

    deployment
        .ok(
            &["user", "passwd", "alice", "--password-stdin"],
            "alice-pw-2",
        )
        .await;
    deployment
        .assert_ended(&alice, "issued before the new password (RFC 7662 §2.2)")
        .await;
    deployment
        .assert_alive(&bob, "another user's session is untouched")
        .await;

    assert_eq!(
        deployment
            .login_as(As::NoClient, "alice", "alice-pw-1")
            .await
            .status(),
        400
    );
    let fresh = deployment.login(As::NoClient, "alice", "alice-pw-2").await;
    assert!(
        claims_of(&fresh.access_token)["iat"].as_u64().unwrap() <= unix_now(),
        "no iat in the future, which verifiers refuse (RFC 7519 §4.1.6)"
    );
    deployment
        .assert_alive(
            &fresh,
            "issued after the change, even within the same second",
        )
        .await;
}

async fn disabling_ends_sessions_and_enabling_does_not_revive_them(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (alice, bob) = two_users_logged_in(&deployment).await;

    deployment.ok(&["user", "disable", "alice"], "").await;
    deployment
        .assert_ended(&alice, "the user is disabled")
        .await;
    deployment.ok(&["user", "enable", "alice"], "").await;
    deployment
        .assert_ended(&alice, "enable does not bring back what disable ended")
        .await;

    let again = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    deployment
        .assert_alive(&again, "a login after enable")
        .await;
    deployment
        .assert_alive(&bob, "another user's session is untouched")
        .await;
}

async fn a_username_removed_and_added_again_is_a_new_account(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (alice, _) = two_users_logged_in(&deployment).await;

    deployment.ok(&["user", "remove", "alice"], "").await;
    assert_eq!(
        deployment
            .refresh(As::NoClient, refresh_token_of(&alice))
            .await
            .status(),
        400
    );
    deployment.add_user("alice", "alice-pw-1", "read").await;
    deployment
        .assert_ended(
            &alice,
            "the old account's tokens never speak for the new one",
        )
        .await;
    let new_account = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    deployment
        .assert_alive(&new_account, "the new account's own tokens")
        .await;
}

async fn narrowed_scopes_take_effect_at_the_next_refresh(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    deployment
        .add_user("alice", "alice-pw-1", "read write admin")
        .await;
    deployment
        .ok(
            &[
                "client",
                "add",
                "web",
                "--secret-stdin",
                "--grant",
                "password",
                "--grant",
                "refresh_token",
                "--scope",
                "read write admin",
            ],
            WEB_SECRET,
        )
        .await;
    let web = As::Basic("web", WEB_SECRET);
    let tokens = deployment.login(web, "alice", "alice-pw-1").await;
    assert_eq!(tokens.scope, "admin read write", "scopes come sorted");

    deployment
        .ok(&["user", "update", "alice", "--scope", "read write"], "")
        .await;
    let after_user: TokenResponse = deployment
        .refresh(web, refresh_token_of(&tokens))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after_user.scope, "read write", "the user's scope narrowed");
    assert_eq!(
        deployment.introspect(refresh_token_of(&after_user)).await["scope"],
        "read write",
        "introspection tells the scope the next refresh would grant"
    );

    deployment
        .ok(&["client", "update", "web", "--scope", "read"], "")
        .await;
    let after_client: TokenResponse = deployment
        .refresh(web, refresh_token_of(&after_user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after_client.scope, "read", "the client's scope narrowed");
    assert_eq!(
        deployment.introspect(refresh_token_of(&after_client)).await["scope"],
        "read"
    );
    assert_eq!(claims_of(&after_client.access_token)["scope"], "read");

    let wider = deployment
        .token(
            web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token_of(&after_client)),
                ("scope", "write"),
            ],
        )
        .await;
    assert_eq!(
        status_and_error(wider).await,
        (400, "invalid_scope".to_owned()),
        "no more than the user and the client may have now (RFC 6749 §6)"
    );

    deployment
        .ok(&["client", "update", "web", "--grant", "password"], "")
        .await;
    let refused = deployment
        .refresh(web, refresh_token_of(&after_client))
        .await;
    assert_eq!(
        status_and_error(refused).await,
        (400, "unauthorized_client".to_owned()),
        "a grant taken away in place"
    );
    assert_eq!(
        deployment.introspect(refresh_token_of(&after_client)).await,
        inactive(),
        "a refresh token that can no longer refresh is not active"
    );
    // Nothing to replace the scopes with is a usage error, not "no scope at all".
    let no_scope = deployment.cli(&["user", "update", "alice"], "").await;
    assert!(
        !no_scope.success() && no_scope.stderr.contains("--scope"),
        "{}",
        no_scope.stderr
    );
    deployment
        .ok(&["user", "update", "alice", "--no-scope"], "")
        .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Client changes end the client's tokens

async fn removing_a_client_ends_its_families_even_when_added_again(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let tokens = alice_through_web(&deployment).await;
    assert_eq!(
        status_and_error(
            deployment
                .refresh(As::Named("web"), refresh_token_of(&tokens))
                .await
        )
        .await,
        (401, "invalid_client".to_owned()),
        "a confidential client's family refreshes only with its authentication"
    );
    assert_eq!(
        status_and_error(
            deployment
                .refresh(As::NoClient, refresh_token_of(&tokens))
                .await
        )
        .await,
        (401, "invalid_client".to_owned())
    );

    deployment.ok(&["client", "remove", "web"], "").await;
    for client in [As::Named("web"), As::Basic("web", WEB_SECRET), As::NoClient] {
        assert_eq!(
            status_and_error(deployment.refresh(client, refresh_token_of(&tokens)).await).await,
            (401, "invalid_client".to_owned()),
            "no client named web any more"
        );
    }
    assert_eq!(
        deployment.introspect(&tokens.access_token).await,
        inactive()
    );
    assert_eq!(
        deployment.introspect(refresh_token_of(&tokens)).await,
        inactive()
    );

    let new_secret = "another-web-secret-0123456789-abcdefgh";
    deployment
        .ok(
            &[
                "client",
                "add",
                "web",
                "--secret-stdin",
                "--grant",
                "password",
                "--grant",
                "refresh_token",
            ],
            new_secret,
        )
        .await;
    assert_eq!(
        status_and_error(
            deployment
                .refresh(As::Basic("web", new_secret), refresh_token_of(&tokens))
                .await
        )
        .await,
        (400, "invalid_grant".to_owned()),
        "a client added again under the same id is another client"
    );
    assert_eq!(
        deployment.introspect(&tokens.access_token).await,
        inactive()
    );
    let fresh = deployment
        .login(As::Basic("web", new_secret), "alice", "alice-pw-1")
        .await;
    assert_eq!(
        deployment
            .refresh(As::Basic("web", new_secret), refresh_token_of(&fresh))
            .await
            .status(),
        200
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Secret rotation without an outage

async fn a_rotated_secret_overlaps_then_stops(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let old = "svc-old-secret-0123456789-0123456789";
    let new = "svc-new-secret-0123456789-0123456789";
    deployment
        .ok(&["client", "add", "svc", "--secret-stdin"], old)
        .await;
    let before = deployment.client_credentials("svc", old).await;
    assert_eq!(before.status(), 200);
    let before: TokenResponse = before.json().await.unwrap();

    let rotated = deployment
        .cli(
            &[
                "client",
                "rotate-secret",
                "svc",
                "--secret-stdin",
                "--overlap",
                "3",
            ],
            new,
        )
        .await;
    assert!(rotated.success(), "{}", rotated.stderr);
    assert!(
        !rotated.stdout.contains(new),
        "a secret read from stdin is not printed"
    );
    let listed = deployment.ok(&["client", "list"], "").await;
    assert!(listed.contains("old-secret-ends="), "{listed}");
    assert!(!listed.contains(old) && !listed.contains(new));
    let again = deployment
        .fails(&["client", "rotate-secret", "svc", "--secret-stdin"], new)
        .await;
    assert!(
        again.contains("--force"),
        "a second rotation would end a secret still in use: {again}"
    );

    assert_eq!(
        deployment.client_credentials("svc", new).await.status(),
        200
    );
    assert_eq!(
        deployment.client_credentials("svc", old).await.status(),
        200,
        "the old secret works during the overlap"
    );
    assert_eq!(
        deployment.introspect(&before.access_token).await["active"],
        true
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = deployment.client_credentials("svc", old).await;
        if response.status() == 401 {
            assert_eq!(error_of(response).await, "invalid_client");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old secret still works after its overlap"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        deployment.client_credentials("svc", new).await.status(),
        200
    );
    assert!(!deployment
        .ok(&["client", "list"], "")
        .await
        .contains("old-secret-ends="));

    // A secret given out: --overlap 0 stops it at once and cuts off its access tokens.
    let generated = deployment
        .ok(&["client", "rotate-secret", "svc", "--overlap", "0"], "")
        .await;
    let newest = generated
        .lines()
        .find_map(|line| line.strip_prefix("client_secret="))
        .unwrap()
        .to_owned();
    assert!(newest.len() >= 43, "256 random bits");
    assert_eq!(
        status_and_error(deployment.client_credentials("svc", new).await).await,
        (401, "invalid_client".to_owned())
    );
    assert_eq!(
        deployment.introspect(&before.access_token).await,
        inactive(),
        "access tokens issued before a rotation without overlap are inactive"
    );
    let after = deployment.client_credentials("svc", &newest).await;
    assert_eq!(after.status(), 200);
    let after: TokenResponse = after.json().await.unwrap();
    assert_eq!(
        deployment.introspect(&after.access_token).await["active"],
        true
    );

    let short = deployment
        .fails(
            &["client", "rotate-secret", "svc", "--secret-stdin"],
            "too-short",
        )
        .await;
    assert!(short.contains("at least 32 characters"), "{short}");
    deployment
        .ok(&["client", "add", "spa", "--public"], "")
        .await;
    let public = deployment
        .fails(&["client", "rotate-secret", "spa"], "")
        .await;
    assert!(public.contains("public"), "{public}");
    let unknown = deployment
        .fails(&["client", "rotate-secret", "nobody"], "")
        .await;
    assert!(unknown.contains("unknown client"), "{unknown}");
}

// ---------------------------------------------------------------------------------------------
// 4. Every client_id is a registered client

async fn every_client_id_names_a_registered_client(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    deployment.add_user("alice", "alice-pw-1", "read").await;
    deployment
        .ok(
            &[
                "client",
                "add",
                "web",
                "--secret-stdin",
                "--grant",
                "password",
            ],
            WEB_SECRET,
        )
        .await;

    let unregistered = deployment
        .login_as(As::Named("made-up"), "alice", "alice-pw-1")
        .await;
    assert_eq!(unregistered.status(), 401);
    assert!(system_tests::challenge(&unregistered).starts_with("Basic"));
    let unregistered: Value = unregistered.json().await.unwrap();
    let unauthenticated: Value = deployment
        .login_as(As::Named("web"), "alice", "alice-pw-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unregistered["error"], "invalid_client");
    assert_eq!(
        unregistered, unauthenticated,
        "an unknown id and a confidential client without its secret answer alike (RFC 6749 §5.2)"
    );

    let added = deployment
        .ok(&["client", "add", "spa", "--public", "--scope", "read"], "")
        .await;
    assert!(!added.contains("client_secret"), "{added}");
    let listed = deployment.ok(&["client", "list"], "").await;
    assert!(
        listed.contains("spa\tgrants=password,refresh_token\tscope=read\taudience=\tpublic"),
        "{listed}"
    );
    let spa = deployment
        .login(As::Named("spa"), "alice", "alice-pw-1")
        .await;
    assert_eq!(claims_of(&spa.access_token)["client_id"], "spa");
    assert_eq!(
        deployment
            .refresh(As::Named("spa"), refresh_token_of(&spa))
            .await
            .status(),
        200
    );
    let refused = deployment
        .fails(
            &[
                "client",
                "add",
                "cli-tool",
                "--public",
                "--grant",
                "client_credentials",
            ],
            "",
        )
        .await;
    assert!(refused.contains("public client"), "{refused}");

    // A public client may also name itself in Basic with an empty secret (RFC 6749 §2.3.1).
    let basic = deployment
        .auth
        .http
        .post(deployment.auth.url("/token"))
        .basic_auth("spa", Some(""))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-pw-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let basic: TokenResponse = basic.json().await.unwrap();
    assert_eq!(claims_of(&basic.access_token)["client_id"], "spa");

    let default = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    assert_eq!(claims_of(&default.access_token)["client_id"], "public");
    // Swagger UI's empty Basic credentials name no client either.
    let swagger = deployment
        .auth
        .http
        .post(deployment.auth.url("/token"))
        .header("Authorization", "Basic Og==")
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-pw-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(swagger.status(), 200);
    let swagger: TokenResponse = swagger.json().await.unwrap();
    assert_eq!(claims_of(&swagger.access_token)["client_id"], "public");
}

async fn without_the_default_public_client_a_request_must_name_one(backend: Backend) {
    let deployment = deploy(backend, |settings| {
        settings.password_grant_without_client = false
    })
    .await;
    deployment
        .ok(&["user", "add", "alice", "--password-stdin"], "alice-pw-1")
        .await;
    assert_eq!(
        status_and_error(
            deployment
                .login_as(As::NoClient, "alice", "alice-pw-1")
                .await
        )
        .await,
        (401, "invalid_client".to_owned())
    );
    assert_eq!(
        deployment
            .login_as(As::Named("public"), "alice", "alice-pw-1")
            .await
            .status(),
        401
    );
    deployment
        .ok(&["client", "add", "spa", "--public"], "")
        .await;
    let spa = deployment
        .login(As::Named("spa"), "alice", "alice-pw-1")
        .await;
    assert_eq!(claims_of(&spa.access_token)["client_id"], "spa");
}

// ---------------------------------------------------------------------------------------------
// 5. Names cannot collide

async fn usernames_and_client_ids_never_collide_rfc9068_5(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    deployment
        .ok(&["user", "add", "alice", "--password-stdin"], "alice-pw-1")
        .await;
    let client = deployment
        .fails(&["client", "add", "alice", "--secret-stdin"], WEB_SECRET)
        .await;
    assert!(client.contains("username"), "{client}");
    deployment
        .ok(&["client", "add", "svc", "--secret-stdin"], WEB_SECRET)
        .await;
    let user = deployment
        .fails(&["user", "add", "svc", "--password-stdin"], "svc-pw-1")
        .await;
    assert!(user.contains("client id"), "{user}");
    let reserved = deployment
        .fails(&["client", "add", "public", "--public"], "")
        .await;
    assert!(reserved.contains("default public client"), "{reserved}");
    let reserved = deployment
        .fails(
            &["user", "add", "public", "--password-stdin"],
            "public-pw-1",
        )
        .await;
    assert!(reserved.contains("default public client"), "{reserved}");

    let tokens: TokenResponse = deployment
        .client_credentials("svc", WEB_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims_of(&tokens.access_token)["sub"], "svc");
    // A removed client's tokens (sub = its id) live on until they expire: meanwhile no user
    // may take the name, while a client added again may.
    deployment.ok(&["client", "remove", "svc"], "").await;
    let taken = deployment
        .fails(&["user", "add", "svc", "--password-stdin"], "svc-pw-1")
        .await;
    assert!(taken.contains("was one"), "{taken}");
    deployment
        .ok(&["client", "add", "svc", "--secret-stdin"], WEB_SECRET)
        .await;
}

// ---------------------------------------------------------------------------------------------
// 9. Introspection follows RFC 7662 §4

async fn a_client_learns_only_about_its_own_tokens_rfc7662_4(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (a_secret, b_secret) = (
        "client-a-secret-0123456789-0123456789",
        "client-b-secret-0123456789-0123456789",
    );
    deployment
        .ok(&["client", "add", "a", "--secret-stdin"], a_secret)
        .await;
    deployment
        .ok(&["client", "add", "b", "--secret-stdin"], b_secret)
        .await;
    let token: TokenResponse = deployment
        .client_credentials("a", a_secret)
        .await
        .json()
        .await
        .unwrap();

    let own = deployment
        .introspect_as("a", a_secret, &token.access_token)
        .await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], "a");
    assert_eq!(
        deployment
            .introspect_as("b", b_secret, &token.access_token)
            .await,
        inactive(),
        "another client's token: exactly {{\"active\": false}}"
    );
    assert_eq!(
        deployment.introspect(&token.access_token).await["active"],
        true,
        "a client registered with --introspect learns about any token"
    );

    deployment
        .ok(&["client", "update", "b", "--introspect", "true"], "")
        .await;
    assert_eq!(
        deployment
            .introspect_as("b", b_secret, &token.access_token)
            .await["active"],
        true
    );

    // A user's tokens through a confidential client: that client may see them.
    let user_tokens = alice_through_web(&deployment).await;
    for token in [
        user_tokens.access_token.as_str(),
        refresh_token_of(&user_tokens),
    ] {
        assert_eq!(
            deployment.introspect_as("web", WEB_SECRET, token).await["active"],
            true
        );
        assert_eq!(
            deployment.introspect_as("a", a_secret, token).await,
            inactive()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Bounded client ids

/// A client id over 256 bytes or with a control character is refused as `invalid_client`
/// before the store is asked, in every place a client can name itself (RFC 6749 §5.2).
async fn oversized_and_control_character_client_ids_are_invalid_client(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let long = "c".repeat(257);
    for id in [long.as_str(), "web\nforged log line", "tab\there"] {
        for client in [As::Named(id), As::Basic(id, WEB_SECRET)] {
            let started = Instant::now();
            let response = deployment.client_credentials_as(client).await;
            assert_eq!(
                status_and_error(response).await,
                (401, "invalid_client".to_owned()),
                "{id:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        let introspected = deployment
            .auth
            .http
            .post(deployment.auth.url("/introspect"))
            .basic_auth(id, Some(WEB_SECRET))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(introspected.status(), 401);
    }
    let refused = deployment.fails(&["client", "add", &long], "").await;
    assert!(refused.contains("256 bytes"), "{refused}");
}

/// The proof that nothing asks the store: with Redis frozen, a request that reached the store
/// would wait out its deadline and answer 503; an id or a name that cannot exist is refused at
/// once, as an unknown client or user is (RFC 6749 §5.2).
#[tokio::test]
async fn impossible_client_ids_and_usernames_are_refused_without_the_store() {
    let mut redis = system_tests::private_redis();
    let namespace = redis.namespace("lifecycle-frozen");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    let deployment = Deployment {
        auth,
        _namespace: None,
    };
    redis.pause();
    let long = "c".repeat(257);
    for client in [
        As::Named(&long),
        As::Basic(&long, WEB_SECRET),
        As::Named("a\u{7}b"),
    ] {
        let started = Instant::now();
        let response = deployment.client_credentials_as(client).await;
        assert_eq!(
            status_and_error(response).await,
            (401, "invalid_client".to_owned())
        );
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
    let long_name = "u".repeat(257);
    let started = Instant::now();
    let response = deployment
        .login_as(As::NoClient, &long_name, "whatever-pw")
        .await;
    assert_eq!(
        status_and_error(response).await,
        (400, "invalid_grant".to_owned())
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    // A possible id does reach the store, and the frozen store answers 503.
    let reached = deployment.client_credentials_as(As::Named("svc")).await;
    assert_eq!(reached.status(), 503);
    redis.resume();
}

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

on_both_stores!(
    a_new_password_ends_every_session_of_the_user,
    disabling_ends_sessions_and_enabling_does_not_revive_them,
    a_username_removed_and_added_again_is_a_new_account,
    narrowed_scopes_take_effect_at_the_next_refresh,
    removing_a_client_ends_its_families_even_when_added_again,
    a_rotated_secret_overlaps_then_stops,
    every_client_id_names_a_registered_client,
    without_the_default_public_client_a_request_must_name_one,
    usernames_and_client_ids_never_collide_rfc9068_5,
    a_client_learns_only_about_its_own_tokens_rfc7662_4,
    oversized_and_control_character_client_ids_are_invalid_client,
);

// ---------------------------------------------------------------------------------------------
// Replicas

/// A change made by the command line reaches every replica at its next request: the store is
/// the only place either looks.
#[tokio::test]
async fn changes_made_by_the_cli_reach_every_replica() {
    let a = deploy(Backend::Redis, |_| {}).await;
    let store_url = a.auth.settings.store.0.clone();
    let (keys_dir, issuer) = (
        a.auth.settings.keys_dir.clone(),
        a.auth.settings.issuer.clone(),
    );
    let b = Deployment {
        auth: TestAuth::spawn_on_redis(&store_url, |settings| {
            settings.keys_dir = keys_dir;
            settings.issuer = issuer;
        })
        .await,
        _namespace: None,
    };

    let (alice, bob) = two_users_logged_in(&a).await;
    a.ok(
        &["user", "passwd", "alice", "--password-stdin"],
        "alice-pw-2",
    )
    .await;
    assert_eq!(
        b.refresh(As::NoClient, refresh_token_of(&alice))
            .await
            .status(),
        400
    );
    assert_eq!(b.introspect(&alice.access_token).await, inactive());
    assert_eq!(
        b.refresh(As::NoClient, refresh_token_of(&bob))
            .await
            .status(),
        200
    );

    let (old, new) = (
        "svc-old-secret-0123456789-0123456789",
        "svc-new-secret-0123456789-0123456789",
    );
    a.ok(&["client", "add", "svc", "--secret-stdin"], old).await;
    assert_eq!(b.client_credentials("svc", old).await.status(), 200);
    a.ok(
        &[
            "client",
            "rotate-secret",
            "svc",
            "--secret-stdin",
            "--overlap",
            "0",
        ],
        new,
    )
    .await;
    for replica in [&a, &b] {
        assert_eq!(replica.client_credentials("svc", old).await.status(), 401);
        assert_eq!(replica.client_credentials("svc", new).await.status(), 200);
    }
    a.ok(&["client", "remove", "svc"], "").await;
    assert_eq!(b.client_credentials("svc", new).await.status(), 401);
}
