//! The example services of `shared/examples` as built binaries against a real auth-server:
//! `orders` (axum) and `inventory` (poem) accept the issuer's tokens for their own audience and
//! scope, refuse the rest with the RFC 6750 answers, and call each other with their own
//! client_credentials tokens (RFC 6749 §4.4), one per service however many calls.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use system_tests::binaries::{examples, Server};
use system_tests::{challenge, http_client, metric_sample, TestAuth};
use test_kit::ports::free_port;

use crate::integrations::Issuer;

const ORDERS_SECRET: &str = "orders-example-secret-0123456789-abcdef";
const INVENTORY_SECRET: &str = "inventory-example-secret-0123456789-abcdef";

/// The variables the examples read their settings from, which a child must not take from the
/// caller's environment.
const SETTINGS: &[&str] = &["ORDERS_", "INVENTORY_", "RUST_LOG"];

/// A real auth-server with the README's registrations, and both examples running against it.
struct Services {
    issuer: Issuer,
    orders: Server,
    inventory: Server,
    _dir: tempfile::TempDir,
}

impl Services {
    async fn start() -> Self {
        let issuer = Issuer::start().await;
        let auth = &issuer.auth;
        auth.add_user("alice", "alice's password", "orders:read inventory:read")
            .await;
        // A public client for users' tokens, which may name either service as the audience.
        auth.add_client_with(
            "shop",
            "",
            &["password", "refresh_token"],
            "orders:read inventory:read",
            &["orders", "inventory"],
            |client| {
                client.public = true;
                client.secret_hash = String::new();
            },
        )
        .await;
        // Each service's own client: the peer's scope, for the peer's audience.
        auth.add_client(
            "orders",
            ORDERS_SECRET,
            &["client_credentials"],
            "inventory:read",
            &["inventory"],
        )
        .await;
        auth.add_client(
            "inventory",
            INVENTORY_SECRET,
            &["client_credentials"],
            "orders:read",
            &["orders"],
        )
        .await;

        let binaries = examples().await;
        let dir = tempfile::tempdir().unwrap();
        // orders' secret from a file (a mounted secret), inventory's from a variable.
        let secret_file = dir.path().join("orders-client-secret");
        std::fs::write(&secret_file, format!("{ORDERS_SECRET}\n")).unwrap();
        // Each must know the other's address before it starts: orders' port is picked first,
        // inventory started pointing at it, then orders started on it (again if it was taken).
        for _attempt in 0..5 {
            let orders_addr = format!("127.0.0.1:{}", free_port());
            let inventory = Server::start(dir.path().join("inventory.log"), "/readyz", |addr| {
                command(
                    &binaries.inventory,
                    &[
                        ("INVENTORY_LISTEN", addr.to_string()),
                        ("INVENTORY_ISSUER", auth.url.clone()),
                        ("INVENTORY_CLIENT_SECRET", INVENTORY_SECRET.to_owned()),
                        ("INVENTORY_ORDERS_URL", format!("http://{orders_addr}")),
                    ],
                )
            })
            .await;
            let orders = Server::try_start_on(
                orders_addr.parse().unwrap(),
                dir.path().join("orders.log"),
                "/readyz",
                command(
                    &binaries.orders,
                    &[
                        ("ORDERS_LISTEN", orders_addr.clone()),
                        ("ORDERS_ISSUER", auth.url.clone()),
                        (
                            "ORDERS_CLIENT_SECRET_FILE",
                            secret_file.display().to_string(),
                        ),
                        ("ORDERS_INVENTORY_URL", inventory.url("")),
                    ],
                ),
            )
            .await;
            if let Some(orders) = orders {
                return Self {
                    issuer,
                    orders,
                    inventory,
                    _dir: dir,
                };
            }
        }
        panic!("no free port for orders in 5 attempts");
    }

    fn auth(&self) -> &TestAuth {
        &self.issuer.auth
    }

    /// A token of `username` through the public client `shop` (RFC 6749 §4.3), for
    /// `audience` (RFC 8707 `resource`), granting `scope`.
    async fn user_token(&self, username: &str, scope: &str, audience: &str) -> String {
        let password = format!("{username}'s password");
        let response = self
            .auth()
            .token(&[
                ("grant_type", "password"),
                ("client_id", "shop"),
                ("username", username),
                ("password", &password),
                ("scope", scope),
                ("resource", audience),
            ])
            .await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// How many client_credentials tokens the auth-server has issued.
    async fn service_tokens_issued(&self) -> f64 {
        metric_sample(
            &self.auth().metrics().await,
            "auth_server_tokens_issued_total",
            &[("grant_type", "client_credentials")],
        )
        .unwrap_or(0.0)
    }

    /// Neither service logged a secret or a token (a JWT starts with `eyJ`).
    fn assert_logs_hold_no_secret(&self) {
        for (name, server) in [("orders", &self.orders), ("inventory", &self.inventory)] {
            let log = server.log_text();
            for secret in [ORDERS_SECRET, INVENTORY_SECRET, "eyJ"] {
                assert!(!log.contains(secret), "{name} logged {secret:?}:\n{log}");
            }
        }
    }
}

fn command(binary: &Path, env: &[(&str, String)]) -> std::process::Command {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect();
    test_kit::process::command(binary, SETTINGS, &env)
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = http_client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn orders_accepts_a_user_token_for_its_audience_and_reads_its_custom_claims_rfc6750_2_1() {
    let services = Services::start().await;
    let token = services.user_token("alice", "orders:read", "orders").await;

    let response = get(&services.orders.url("/orders"), Some(&token)).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "shop");
    assert_eq!(body["scope"], "orders:read");
    // Read through the service's own claims type, `Claims<Caller>::extra`.
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    // The same on the poem example, for its own audience.
    let token = services
        .user_token("alice", "inventory:read", "inventory")
        .await;
    let response = get(&services.inventory.url("/stock"), Some(&token)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["sub"], &body["username"], &body["scope"]),
        (&"alice".into(), &"alice".into(), &"inventory:read".into())
    );
    services.assert_logs_hold_no_secret();
}

#[tokio::test]
async fn each_forged_token_class_is_refused_as_invalid_token_by_both_examples_rfc6750_3_1() {
    let services = Services::start().await;
    for (service, server, path, audience, scope) in [
        (
            "orders",
            &services.orders,
            "/orders",
            "orders",
            "orders:read",
        ),
        (
            "inventory",
            &services.inventory,
            "/stock",
            "inventory",
            "inventory:read",
        ),
    ] {
        let url = server.url(path);
        let control = services.issuer.well_forged_for(audience, scope);
        let response = get(&url, Some(&control)).await;
        assert_eq!(response.status(), 200, "{service}: the control forgery");

        for (why, token) in services.issuer.forged_for(audience, scope) {
            let response = get(&url, Some(&token)).await;
            assert_eq!(response.status(), 401, "{service}: {why}");
            let www_authenticate = challenge(&response);
            let expected = format!(r#"Bearer realm="{service}", error="invalid_token""#);
            assert!(
                www_authenticate.starts_with(&expected),
                "{service}: {why}: {www_authenticate}"
            );
            assert_eq!(response.headers()["cache-control"], "no-store");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_token", "{service}: {why}");
        }

        // No token at all: the bare challenge, no error code (RFC 6750 §3.1).
        let response = get(&url, None).await;
        assert_eq!(response.status(), 401, "{service}");
        assert_eq!(challenge(&response), format!(r#"Bearer realm="{service}""#));
    }
}

#[tokio::test]
async fn another_audience_is_401_and_a_missing_scope_403_insufficient_scope_rfc6750_3_1() {
    let services = Services::start().await;
    let orders = services.orders.url("/orders");

    // A genuine token, for inventory: orders is not its audience (RFC 9068 §4).
    let for_inventory = services
        .user_token("alice", "orders:read inventory:read", "inventory")
        .await;
    let response = get(&orders, Some(&for_inventory)).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).starts_with(r#"Bearer realm="orders", error="invalid_token""#));

    // For orders, without orders:read: the layer's 403, naming the scope needed.
    let without_scope = services
        .user_token("alice", "inventory:read", "orders")
        .await;
    for url in [orders, services.orders.url("/orders/with-stock")] {
        let response = get(&url, Some(&without_scope)).await;
        assert_eq!(response.status(), 403, "{url}");
        let www_authenticate = challenge(&response);
        assert!(
            www_authenticate.starts_with(r#"Bearer realm="orders", error="insufficient_scope""#)
                && www_authenticate.contains(r#"scope="orders:read""#),
            "{www_authenticate}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }
    // The poem example's handler says the same through `require_scope(…)?`.
    let without_scope = services
        .user_token("alice", "orders:read", "inventory")
        .await;
    let response = get(&services.inventory.url("/stock"), Some(&without_scope)).await;
    assert_eq!(response.status(), 403);
    assert!(
        challenge(&response).starts_with(r#"Bearer realm="inventory", error="insufficient_scope""#)
    );
    assert!(services.service_tokens_issued().await == 0.0);
}

#[tokio::test]
async fn the_services_call_each_other_with_one_client_credentials_token_each_rfc6749_4_4() {
    let mut services = Services::start().await;
    let for_orders = services.user_token("alice", "orders:read", "orders").await;
    let for_inventory = services
        .user_token("alice", "inventory:read", "inventory")
        .await;
    assert_eq!(services.service_tokens_issued().await, 0.0, "none yet");

    for _ in 0..3 {
        let response = get(
            &services.orders.url("/orders/with-stock"),
            Some(&for_orders),
        )
        .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["caller"]["sub"], "alice");
        // inventory saw orders' own token, not alice's: the client is its subject (RFC 9068 §5).
        let seen = &body["inventory"];
        assert_eq!(seen["service"], "inventory");
        assert_eq!(seen["sub"], "orders");
        assert_eq!(seen["client_id"], "orders");
        assert_eq!(seen["scope"], "inventory:read");
        assert_eq!(seen["username"], Value::Null);
    }
    assert_eq!(
        services.service_tokens_issued().await,
        1.0,
        "one token for orders' three calls"
    );

    for _ in 0..3 {
        let response = get(
            &services.inventory.url("/stock/with-orders"),
            Some(&for_inventory),
        )
        .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["caller"]["sub"], "alice");
        let seen = &body["orders"];
        assert_eq!(seen["service"], "orders");
        assert_eq!(seen["sub"], "inventory");
        assert_eq!(seen["client_id"], "inventory");
        assert_eq!(seen["scope"], "orders:read");
    }
    assert_eq!(
        services.service_tokens_issued().await,
        2.0,
        "one token for inventory's three calls"
    );
    services.assert_logs_hold_no_secret();

    // Both stop cleanly on SIGTERM, as an orchestrator stops them; while inventory is down,
    // orders answers for it with a 502 of its own, not the peer's failure.
    services.inventory.signal("TERM");
    let stopped = services
        .inventory
        .exit_within(Duration::from_secs(15))
        .await;
    assert!(stopped.success(), "inventory: {stopped}");
    let response = get(
        &services.orders.url("/orders/with-stock"),
        Some(&for_orders),
    )
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "inventory_unreachable");
    services.orders.signal("TERM");
    let stopped = services.orders.exit_within(Duration::from_secs(15)).await;
    assert!(stopped.success(), "orders: {stopped}");
}

#[tokio::test]
async fn an_example_without_its_client_secret_stops_with_one_line_naming_where_it_looked() {
    let binaries = examples().await;
    let run = test_kit::process::run(
        &mut command(
            &binaries.orders,
            &[("ORDERS_LISTEN", "127.0.0.1:0".to_owned())],
        ),
        None,
    );
    assert_eq!(run.code(), Some(1));
    let stderr = run.one_error_line("orders without a secret");
    assert!(stderr.contains("ORDERS_CLIENT_SECRET"), "{stderr}");

    let missing = "/nonexistent/inventory-client-secret";
    let run = test_kit::process::run(
        &mut command(
            &binaries.inventory,
            &[("INVENTORY_CLIENT_SECRET_FILE", missing.to_owned())],
        ),
        None,
    );
    assert_eq!(run.code(), Some(1));
    let stderr = run.one_error_line("inventory with a missing secret file");
    assert!(stderr.contains(missing), "{stderr}");
}
