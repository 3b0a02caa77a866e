//! What a service needs to adopt the verifier: an issuer behind a private CA (a CA file, or
//! the service's own client), an issuer that publishes only OpenID Connect Discovery, and
//! the builder's checks.

use std::time::Duration;

use serde_json::json;

use super::super::{ConfigError, FeedPoll, FetchError, Verifier, VerifierConfig, VerifyError};
use super::issuer::{Publishes, TestCa, TestIssuer};

const RFC8414: &str = "/.well-known/oauth-authorization-server";
const OPENID: &str = "/.well-known/openid-configuration";

/// A verifier over `config` that fetches only when told to.
fn verifier(config: VerifierConfig) -> Verifier {
    Verifier::new(config).unwrap()
}

#[tokio::test]
async fn an_issuer_behind_a_private_ca_is_trusted_through_the_ca_file_and_only_then() {
    let ca = TestCa::generate();
    let issuer = TestIssuer::start(Publishes::Rfc8414, Some(&ca)).await;
    let token = issuer.token(json!("api"), json!({}));

    let untrusting = verifier(
        VerifierConfig::builder(issuer.base.clone(), "api")
            .build()
            .unwrap(),
    );
    let refused = untrusting.refresh_now().await;
    assert!(
        matches!(refused, Err(FetchError::Http { .. })),
        "{refused:?}"
    );
    assert_eq!(
        untrusting.verify(&token).await,
        Err(VerifyError::KeysUnavailable)
    );
    assert!(
        issuer.requests().is_empty(),
        "no request passed the handshake"
    );

    let path = ca.write_pem("trusted");
    let config = VerifierConfig::builder(issuer.base.clone(), "api")
        .ca_file(&path)
        .build()
        .unwrap();
    let trusting = verifier(config);
    trusting.refresh_now().await.unwrap();
    let claims = trusting.verify(&token).await.unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(issuer.requests(), [RFC8414, "/jwks.json"]);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn the_services_own_client_reaches_an_issuer_its_roots_trust() {
    let ca = TestCa::generate();
    let issuer = TestIssuer::start(Publishes::Rfc8414, Some(&ca)).await;
    let token = issuer.token(json!("api"), json!({}));

    let plain = reqwest::Client::new();
    let config = VerifierConfig::builder(issuer.base.clone(), "api")
        .http_client(plain)
        .build()
        .unwrap();
    assert!(matches!(
        verifier(config).refresh_now().await,
        Err(FetchError::Http { .. })
    ));

    let root = reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let config = VerifierConfig::builder(issuer.base.clone(), "api")
        .http_client(client)
        .fetch_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let verifier = verifier(config);
    verifier.refresh_now().await.unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "alice");
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration_on_404_rfc8414_3_oidc_discovery_4() {
    let issuer = TestIssuer::start(Publishes::OpenIdOnly, None).await;
    let verifier = verifier(VerifierConfig::new(issuer.base.clone(), "api"));
    verifier.refresh_now().await.unwrap();
    let token = issuer.token(json!("api"), json!({}));
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "alice");
    assert_eq!(issuer.requests(), [RFC8414, OPENID, "/jwks.json"]);

    // The revocation feed is found the same way.
    assert_eq!(
        verifier.poll_revocations_now().await.unwrap(),
        FeedPoll::Complete
    );
    assert_eq!(issuer.requests()[3..], [RFC8414, OPENID, "/revocations"]);
}

#[tokio::test]
async fn discovery_does_not_fall_back_when_rfc8414_metadata_fails_otherwise() {
    let issuer = TestIssuer::start(Publishes::Rfc8414Failing(503), None).await;
    let verifier = verifier(VerifierConfig::new(issuer.base.clone(), "api"));
    let keys = verifier.refresh_now().await;
    assert!(
        matches!(&keys, Err(FetchError::Status { status, .. }) if status.as_u16() == 503),
        "{keys:?}"
    );
    let feed = verifier.poll_revocations_now().await;
    assert!(matches!(feed, Err(FetchError::Status { .. })), "{feed:?}");
    assert_eq!(issuer.requests(), [RFC8414, RFC8414], "no OpenID request");
}

#[tokio::test]
async fn the_rfc8414_document_is_used_when_present_rfc8414_3() {
    let issuer = TestIssuer::start(Publishes::Rfc8414, None).await;
    let verifier = verifier(VerifierConfig::new(issuer.base.clone(), "api"));
    verifier.refresh_now().await.unwrap();
    assert_eq!(issuer.requests(), [RFC8414, "/jwks.json"]);
}

#[tokio::test]
async fn openid_metadata_naming_another_issuer_is_refused_oidc_discovery_4_3() {
    let issuer =
        TestIssuer::start(Publishes::OpenIdOnlyNaming("http://elsewhere.test"), None).await;
    let verifier = verifier(VerifierConfig::new(issuer.base.clone(), "api"));
    let refused = verifier.refresh_now().await;
    assert!(
        matches!(&refused, Err(FetchError::IssuerMismatch { found, .. }) if found == "http://elsewhere.test"),
        "{refused:?}"
    );
    assert_eq!(issuer.requests(), [RFC8414, OPENID], "no JWKS fetched");
}

#[tokio::test]
async fn several_audiences_accept_a_token_naming_any_one_of_them_rfc7519_4_1_3() {
    let issuer = TestIssuer::start(Publishes::Rfc8414, None).await;
    let config = VerifierConfig::builder(issuer.base.clone(), "unused")
        .audiences(["orders", "billing"])
        .build()
        .unwrap();
    assert_eq!(config.audiences, ["orders", "billing"]);
    let verifier = verifier(config);
    verifier.refresh_now().await.unwrap();
    for aud in [json!("billing"), json!(["other", "orders"])] {
        let token = issuer.token(aud.clone(), json!({}));
        assert!(verifier.verify(&token).await.is_ok(), "{aud}");
    }
    for aud in [json!("unused"), json!(["other", "api"])] {
        let token = issuer.token(aud.clone(), json!({}));
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::WrongAudience),
            "{aud}"
        );
    }
}

#[test]
fn the_builder_sets_each_setting_and_defaults_to_new() {
    let issuer: url::Url = "https://issuer.test/".parse().unwrap();
    let short = VerifierConfig::new(issuer.clone(), "api");
    let built = VerifierConfig::builder(issuer.clone(), "api")
        .build()
        .unwrap();
    assert_eq!(format!("{short:?}"), format!("{built:?}"));

    let jwks: url::Url = "https://keys.test/jwks.json".parse().unwrap();
    let seconds = Duration::from_secs;
    let config = VerifierConfig::builder(issuer, "api")
        .jwks_url(jwks.clone())
        .leeway(seconds(5))
        .min_refresh(seconds(10))
        .max_refresh(seconds(20))
        .unknown_kid_cooldown(seconds(3))
        .retry_interval(seconds(4))
        .max_token_bytes(1000)
        .fetch_timeout(seconds(6))
        .token_cache_capacity(7)
        .max_stale(None)
        .revocation_poll(seconds(8))
        .revocation_max_stale(seconds(16))
        .revocation_fail_closed(true)
        .build()
        .unwrap();
    assert_eq!(config.jwks_url, Some(jwks));
    assert_eq!(
        (config.leeway, config.min_refresh, config.max_refresh),
        (seconds(5), seconds(10), seconds(20))
    );
    assert_eq!(
        (
            config.unknown_kid_cooldown,
            config.retry_interval,
            config.fetch_timeout
        ),
        (seconds(3), seconds(4), seconds(6))
    );
    assert_eq!(
        (config.max_token_bytes, config.token_cache_capacity),
        (1000, 7)
    );
    assert_eq!(config.max_stale, None);
    assert_eq!(
        (
            config.revocation_poll,
            config.revocation_max_stale,
            config.revocation_fail_closed
        ),
        (seconds(8), seconds(16), true)
    );
}

#[test]
fn the_builder_refuses_settings_that_disagree_with_a_clear_error() {
    let builder = || VerifierConfig::builder("https://issuer.test".parse().unwrap(), "api");
    let seconds = Duration::from_secs;
    let error = |result: Result<VerifierConfig, ConfigError>| result.unwrap_err();
    assert!(matches!(
        error(builder().audiences(Vec::<String>::new()).build()),
        ConfigError::NoAudience
    ));
    assert!(matches!(
        error(builder().audiences(["api", " "]).build()),
        ConfigError::NoAudience
    ));
    assert!(matches!(
        error(VerifierConfig::builder("ftp://issuer.test".parse().unwrap(), "api").build()),
        ConfigError::IssuerNotHttp(_)
    ));
    assert!(matches!(
        error(builder().leeway(seconds(61)).build()),
        ConfigError::LeewayTooLong(_)
    ));
    assert!(builder().leeway(seconds(60)).build().is_ok());
    assert!(matches!(
        error(
            builder()
                .min_refresh(seconds(60))
                .max_refresh(seconds(59))
                .build()
        ),
        ConfigError::RefreshBounds { .. }
    ));
    assert!(matches!(
        error(builder().max_token_bytes(0).build()),
        ConfigError::NoTokenBytes
    ));
    let stale = builder()
        .revocation_poll(seconds(30))
        .revocation_max_stale(seconds(59))
        .build();
    assert!(matches!(
        error(stale),
        ConfigError::RevocationMaxStale { .. }
    ));
    assert!(builder()
        .revocation_poll(Duration::ZERO)
        .revocation_max_stale(Duration::ZERO)
        .build()
        .is_ok());
    let message = error(builder().leeway(seconds(120)).build()).to_string();
    assert!(message.contains("leeway"), "{message}");
}

#[test]
fn a_ca_file_that_is_missing_empty_or_not_pem_is_refused_and_named() {
    let builder = || VerifierConfig::builder("https://issuer.test".parse().unwrap(), "api");
    let dir = std::env::temp_dir();
    let missing = dir.join(format!("verifier-no-such-ca-{}.pem", std::process::id()));
    let refused = builder().ca_file(&missing).build().unwrap_err();
    assert!(matches!(refused, ConfigError::CaFileUnreadable { .. }));
    assert!(
        refused.to_string().contains("verifier-no-such-ca"),
        "{refused}"
    );

    let empty = dir.join(format!("verifier-empty-ca-{}.pem", std::process::id()));
    std::fs::write(&empty, "no certificate here\n").unwrap();
    assert!(matches!(
        builder().ca_file(&empty).build().unwrap_err(),
        ConfigError::CaFileEmpty { .. }
    ));
    let broken = dir.join(format!("verifier-broken-ca-{}.pem", std::process::id()));
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(matches!(
        builder().ca_file(&broken).build().unwrap_err(),
        ConfigError::CaFileInvalid { .. }
    ));

    let ca = TestCa::generate();
    let good = ca.write_pem("with-client");
    assert!(matches!(
        builder()
            .ca_file(&good)
            .http_client(reqwest::Client::new())
            .build()
            .unwrap_err(),
        ConfigError::CaFileWithHttpClient
    ));
    assert!(builder().ca_file(&good).build().is_ok());
    for path in [empty, broken, good] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn fetch_timeout_bounds_each_request_of_the_services_own_client() {
    // An issuer that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base: url::Url = format!("http://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    // A client with no timeout of its own.
    let config = VerifierConfig::builder(base, "api")
        .http_client(reqwest::Client::new())
        .fetch_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let verifier = verifier(config);
    // The guard only turns a hang into a failure; it is not what is tested.
    let fetched = tokio::time::timeout(Duration::from_secs(60), verifier.refresh_now())
        .await
        .expect("the per-request timeout ended the fetch");
    assert!(
        matches!(&fetched, Err(FetchError::Http { source, .. }) if source.is_timeout()),
        "{fetched:?}"
    );
}
