//! The real auth-server binary and its command line on a Redis that speaks TLS only and asks for
//! client certificates: `AUTH_STORE=rediss://…` with `AUTH_REDIS_CA_FILE`,
//! `AUTH_REDIS_CLIENT_CERT` and `AUTH_REDIS_CLIENT_KEY`, as the README's "Running several
//! replicas" shows. A login (RFC 6749 §4.3) and a refresh (RFC 6749 §6) go through it.

use server_plumbing::wire::TokenResponse;
use system_tests::binaries::{auth_env, binaries, cli, start_server};
use system_tests::reqwest;
use test_kit::redis::{ClientCerts, RedisServer};
use test_kit::tls::TestPki;

const PASSWORD: &str = "tls-user-password-1";

#[tokio::test]
async fn login_and_refresh_over_mutual_tls_to_redis_rfc6749_4_3_and_6() {
    let pki = TestPki::new();
    let redis = RedisServer::start_tls(&pki, ClientCerts::Required);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("{}?prefix=tls-flow:", redis.url());
    let files = [pki.ca_file(), pki.client_cert_file(), pki.client_key_file()]
        .map(|path| path.display().to_string());
    let env = auth_env(
        dir.path(),
        &[
            ("AUTH_STORE", &store),
            ("AUTH_REDIS_CA_FILE", &files[0]),
            ("AUTH_REDIS_CLIENT_CERT", &files[1]),
            ("AUTH_REDIS_CLIENT_KEY", &files[2]),
            ("RUST_LOG", "info"),
        ],
    );
    let binaries = binaries().await;
    cli(
        &binaries.auth,
        &env,
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--scope",
            "read",
        ],
        PASSWORD,
    )
    .await;
    let server = start_server(
        &binaries.auth,
        dir.path().join("auth.log"),
        "AUTH_LISTEN",
        |addr| {
            let mut env = env.clone();
            env.push(("AUTH_ISSUER".to_owned(), format!("http://{addr}")));
            env
        },
    )
    .await;
    let http = reqwest::Client::new();
    let login = http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let tokens: TokenResponse = login.json().await.unwrap();
    let refresh = http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);
    let rotated: TokenResponse = refresh.json().await.unwrap();
    assert_ne!(rotated.refresh_token, tokens.refresh_token);
    assert_eq!(rotated.scope, "read");

    // Without the client certificate the same store is refused, and the start says so.
    let mut without = env.clone();
    without.retain(|(name, _)| !name.starts_with("AUTH_REDIS_CLIENT_"));
    let run =
        system_tests::binaries::run_cli(&binaries.auth, &without, &["user", "list"], "").await;
    assert!(!run.success(), "{}{}", run.stdout, run.stderr);
    let error = run.one_error_line("user list without a client certificate");
    assert!(
        error.contains("rediss://127.0.0.1"),
        "names the store: {error}"
    );
    let log = server.log_text();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

/// Settings that would weaken TLS or cannot work stop the start with one line: a client
/// certificate without its key, a URL fragment (`#insecure` would skip the certificate check),
/// TLS files for a plain store. The store's password never shows.
#[tokio::test]
async fn tls_settings_that_cannot_work_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries().await;
    let url = "rediss://:store-password-x@127.0.0.1:1/0";
    for (extra, says) in [
        (
            vec![
                ("AUTH_STORE", url),
                ("AUTH_REDIS_CLIENT_CERT", "client.pem"),
            ],
            "AUTH_REDIS_CLIENT_CERT and AUTH_REDIS_CLIENT_KEY go together",
        ),
        (
            vec![(
                "AUTH_STORE",
                "rediss://:store-password-x@127.0.0.1:1/0#insecure",
            )],
            "#insecure is refused",
        ),
        (
            vec![("AUTH_REDIS_CA_FILE", "ca.pem")],
            "need AUTH_STORE=rediss://",
        ),
    ] {
        let env = auth_env(dir.path(), &extra);
        let run =
            system_tests::binaries::run_cli(&binaries.auth, &env, &["user", "list"], "").await;
        let error = run.one_error_line(says);
        assert!(error.contains(says), "{error}");
        assert!(!error.contains("store-password-x"), "{error}");
    }
}
