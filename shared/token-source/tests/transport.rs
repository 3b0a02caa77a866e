//! Where the client secret may go: `https`, or plain `http` to a loopback host, or anywhere
//! when the caller allows plain `http` explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TokenServer;
use oauth2_token_source::{ClientSecret, Config, Endpoint, Error, TokenSource};

fn source(endpoint: Endpoint, allow_http: bool) -> Result<TokenSource, Error> {
    let config = Config::builder(endpoint, "svc", ClientSecret::new("the-client-secret"))
        .allow_http(allow_http)
        .build();
    TokenSource::new(config)
}

#[tokio::test]
async fn a_plain_http_endpoint_off_loopback_is_refused_at_build() {
    for endpoint in [
        Endpoint::Token("http://user:pw@tokens.test/token".parse().unwrap()),
        Endpoint::Issuer("http://user:pw@issuer.test".parse().unwrap()),
    ] {
        match source(endpoint, false).unwrap_err() {
            Error::Config(message) => {
                assert!(message.contains("tokens.test") || message.contains("issuer.test"));
                assert!(message.contains("http"), "{message}");
                assert!(!message.contains("pw"), "no credentials: {message}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Allowed explicitly, for a private network; https always.
    for endpoint in [
        Endpoint::Token("http://tokens.test/token".parse().unwrap()),
        Endpoint::Issuer("http://issuer.test".parse().unwrap()),
    ] {
        source(endpoint, true).unwrap();
    }
    source(
        Endpoint::Token("https://tokens.test/token".parse().unwrap()),
        false,
    )
    .unwrap();
}

#[tokio::test]
async fn plain_http_to_loopback_is_accepted() {
    let server = TokenServer::start().await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{port}/token");
        let source = source(Endpoint::Token(url.parse().unwrap()), false).unwrap();
        assert!(source.token().await.is_ok(), "{url}");
    }
    source(
        Endpoint::Token("http://[::1]:9/token".parse().unwrap()),
        false,
    )
    .unwrap();
    source(
        Endpoint::Token("http://127.0.0.2:9/token".parse().unwrap()),
        false,
    )
    .unwrap();
}

#[tokio::test]
async fn a_discovered_plain_http_token_endpoint_is_refused_rfc8414_3() {
    let server = TokenServer::start().await;
    *server.state.token_endpoint.lock().unwrap() = Some("http://tokens.test/token".into());
    let issuer = Endpoint::Issuer(server.url.parse().unwrap());
    let source = source(issuer, false).unwrap();
    match source.token().await.unwrap_err() {
        Error::Discovery(message) => {
            assert!(message.contains("http://tokens.test/token"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 0, "no token request was sent");
}
