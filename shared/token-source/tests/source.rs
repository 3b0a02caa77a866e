//! The token source against a real token endpoint on an ephemeral port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Reply, TokenServer};
use oauth2_token_source::{ClientSecret, Config, Endpoint, Error, TokenRequest, TokenSource};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_callers_at_once_make_one_request() {
    let server = TokenServer::start().await;
    let source = TokenSource::new(server.config().build()).unwrap();
    server.hold.send_replace(true);
    let barrier = Arc::new(tokio::sync::Barrier::new(101));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (source, barrier) = (source.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                source.token().await
            })
        })
        .collect();
    barrier.wait().await;
    server
        .until("the first request arrives", |s| s.requests() >= 1)
        .await;
    server.hold.send_replace(false);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().secret(), "token-1");
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn tokens_are_cached_per_scope_and_resource_rfc6749_4_4_rfc8707() {
    let server = TokenServer::start().await;
    let source = TokenSource::new(server.config().build()).unwrap();
    let first = source.token().await.unwrap();
    assert_eq!(source.token().await.unwrap(), first);
    assert_eq!(server.requests(), 1);
    assert_eq!(
        *server.state.last_form.lock().unwrap(),
        "grant_type=client_credentials"
    );

    let write = TokenRequest::new()
        .scope("items:read items:write")
        .resource("https://items.test/");
    let other = source.token_for(&write).await.unwrap();
    assert_ne!(other, first);
    assert_eq!(source.token_for(&write).await.unwrap(), other);
    assert_eq!(server.requests(), 2);
    assert_eq!(
        *server.state.last_form.lock().unwrap(),
        "grant_type=client_credentials&scope=items%3Aread+items%3Awrite&resource=https%3A%2F%2Fitems.test%2F"
    );
}

#[tokio::test]
async fn client_secret_basic_form_encodes_id_and_secret_rfc6749_2_3_1() {
    let server = TokenServer::start().await;
    let config = Config::builder(
        Endpoint::Token(server.token_url().parse().unwrap()),
        "svc:a",
        ClientSecret::new("s p+c:é"),
    )
    .build();
    TokenSource::new(config).unwrap().token().await.unwrap();
    let header = server
        .state
        .last_authorization
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "svc%3Aa:s+p%2Bc%3A%C3%A9"
    );
}

#[tokio::test]
async fn retry_after_on_429_is_waited_for() {
    let server = TokenServer::start().await;
    server.script([Reply::busy(429, Some(1))]);
    let source = TokenSource::new(server.config().build()).unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    assert_eq!(server.requests(), 2);
    let arrivals = server.state.arrivals.lock().unwrap().clone();
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_secs(1),
        "the retry came {:?} after the 429 that asked for 1 s",
        arrivals[1] - arrivals[0]
    );
}

#[tokio::test]
async fn a_503_without_retry_after_is_retried_with_backoff_then_given_up() {
    let server = TokenServer::start().await;
    server.script([Reply::busy(503, None)]);
    let source = TokenSource::new(server.config().max_retries(1).build()).unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    assert_eq!(server.requests(), 2);

    let server = TokenServer::start().await;
    *server.state.always.lock().unwrap() = Some(Reply::busy(503, None));
    let source = TokenSource::new(server.config().max_retries(2).build()).unwrap();
    let error = source.token().await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests(), 3, "the first attempt and two retries");
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_fails_at_once_and_holds_callers_off() {
    let server = TokenServer::start().await;
    *server.state.always.lock().unwrap() = Some(Reply::busy(429, Some(120)));
    let source = TokenSource::new(server.config().build()).unwrap();
    let error = source.token().await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { status: 429, retry_after: Some(wait) } if wait == Duration::from_secs(120)),
        "{error:?}"
    );
    // Within the 120 s the issuer asked for, callers get the error without a request.
    assert!(source.token().await.is_err());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn invalid_client_is_returned_at_once_not_retried_rfc6749_5_2() {
    let server = TokenServer::start().await;
    server.script([Reply::oauth(401, "invalid_client", "unknown client")]);
    let source = TokenSource::new(server.config().build()).unwrap();
    match source.token().await.unwrap_err() {
        Error::OAuth {
            status,
            error,
            description,
        } => {
            assert_eq!((status, error.as_str()), (401, "invalid_client"));
            assert_eq!(description.as_deref(), Some("unknown client"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1);
    // The next call asks again (the client may have been registered since).
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_invalidations_of_one_token_makes_one_request() {
    let server = TokenServer::start().await;
    let config = server.config().min_invalidate_interval(Duration::ZERO);
    let source = TokenSource::new(config.build()).unwrap();
    let old = source.token().await.unwrap();
    let burst: Vec<_> = (0..50)
        .map(|_| {
            let (source, old) = (source.clone(), old.clone());
            tokio::spawn(async move {
                source.invalidate(&old);
                source.token().await.unwrap()
            })
        })
        .collect();
    for caller in burst {
        assert_eq!(caller.await.unwrap().secret(), "token-2");
    }
    assert_eq!(server.requests(), 2);
    assert!(!source.invalidate(&old), "a replaced token is left alone");
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
}

#[tokio::test]
async fn the_token_is_refreshed_in_the_background_before_it_expires() {
    let server = TokenServer::start().await;
    let lifetime = Duration::from_secs(6);
    server.expires_in(lifetime.as_secs());
    let config = server
        .config()
        .refresh_margin(Duration::from_secs(3))
        .refresh_jitter(Duration::ZERO)
        .expiry_skew(Duration::ZERO)
        .build();
    let source = TokenSource::new(config).unwrap();
    // token-1 was issued after this instant, so it is good until at least `asked + lifetime`.
    let asked = Instant::now();
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    let expiry = asked + lifetime;

    // From the refresh point (3 s before expiry) the next call starts a request; while the
    // issuer holds it, callers are answered with token-1 without waiting for it.
    server.hold.send_replace(true);
    while server.requests() < 2 {
        let token = tokio::time::timeout(Duration::from_secs(10), source.token())
            .await
            .expect("a caller waited for the refresh")
            .unwrap();
        assert_eq!(token.secret(), "token-1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refresh_sent = server.state.arrivals.lock().unwrap()[1];
    assert!(
        refresh_sent < expiry,
        "the refresh was asked for after token-1 expired"
    );
    for _ in 0..3 {
        assert_eq!(source.token().await.unwrap().secret(), "token-1");
    }
    server.hold.send_replace(false);

    let served = loop {
        let token = source.token().await.unwrap();
        if token.secret() == "token-2" {
            break Instant::now();
        }
        assert_eq!(token.secret(), "token-1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        served < expiry,
        "token-2 was first served {:?} after token-1 expired",
        served - expiry
    );
    assert_eq!(server.requests(), 2, "one background refresh");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_valid_token_in_service_until_it_expires() {
    let server = TokenServer::start().await;
    server.expires_in(6);
    let config = server
        .config()
        .refresh_margin(Duration::from_secs(3))
        .refresh_jitter(Duration::ZERO)
        .expiry_skew(Duration::ZERO)
        .max_retries(0)
        .build();
    let source = TokenSource::new(config).unwrap();
    let first = source.token().await.unwrap();
    *server.state.always.lock().unwrap() = Some(Reply::busy(503, None));
    // After 3 s each call starts a background refresh (one at a time, backing off) and is
    // answered with the old token.
    loop {
        assert_eq!(source.token().await.unwrap(), first);
        if server.requests() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(source.token().await.unwrap(), first, "still in service");
    // Once it expires the callers see the error.
    let error = loop {
        match source.token().await {
            Ok(token) => assert_eq!(token, first),
            Err(error) => break error,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(error, Error::Unavailable { status: 503, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_token_endpoint_is_discovered_rfc8414_3_with_the_openid_fallback() {
    for missing in [false, true] {
        let server = TokenServer::start().await;
        server
            .state
            .rfc8414_missing
            .store(missing, std::sync::atomic::Ordering::SeqCst);
        let config = Config::builder(
            Endpoint::Issuer(server.url.parse().unwrap()),
            "svc",
            ClientSecret::new("the-client-secret"),
        )
        .build();
        let source = TokenSource::new(config).unwrap();
        assert_eq!(source.token().await.unwrap().secret(), "token-1");
        assert_eq!(server.requests(), 1);
    }
}

#[tokio::test]
async fn a_request_to_a_closed_port_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::builder(
        Endpoint::Token(format!("http://127.0.0.1:{port}/token").parse().unwrap()),
        "svc",
        ClientSecret::new("the-client-secret"),
    )
    .timeout(Duration::from_secs(2))
    .build();
    let error = TokenSource::new(config).unwrap().token().await.unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn debug_output_masks_the_secret_and_the_tokens() {
    let server = TokenServer::start().await;
    let source = TokenSource::new(server.config().build()).unwrap();
    let token = source.token().await.unwrap();
    let printed = format!(
        "{:?} {:?} {:?} {}",
        source.config(),
        source,
        token,
        token.bearer().len()
    );
    assert!(!printed.contains("the-client-secret"), "{printed}");
    assert!(!printed.contains("token-1"), "{printed}");
    assert!(printed.contains("ClientSecret(***)") && printed.contains("AccessToken(***)"));
}

#[tokio::test]
async fn odd_token_answers_are_errors_or_read_without_overflow_rfc6749_5_1() {
    let server = TokenServer::start().await;
    let answer = |body: &str| Reply {
        status: 200,
        retry_after: None,
        body: body.to_owned(),
    };
    server.script([
        answer(r#"{"access_token":"mac","token_type":"mac","expires_in":60}"#),
        answer("not json"),
        answer(
            r#"{"access_token":"huge","token_type":"bearer","expires_in":18446744073709551615}"#,
        ),
    ]);
    let source = TokenSource::new(server.config().build()).unwrap();
    for _ in 0..2 {
        let error = source.token().await.unwrap_err();
        assert!(matches!(error, Error::InvalidResponse(_)), "{error:?}");
    }
    assert_eq!(source.token().await.unwrap().secret(), "huge");
    assert_eq!(source.token().await.unwrap().secret(), "huge", "cached");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn a_huge_retry_after_holds_callers_off_without_a_panic_rfc9110_10_2_3() {
    let server = TokenServer::start().await;
    *server.state.always.lock().unwrap() = Some(Reply::busy(429, Some(u64::MAX)));
    let source = TokenSource::new(server.config().build()).unwrap();
    for _ in 0..5 {
        let error = source.token().await.unwrap_err();
        // Read as the one-hour cap, beyond `max_retry_wait`: no retry within the request.
        assert!(
            matches!(error, Error::Unavailable { status: 429, retry_after: Some(wait) } if wait == Duration::from_secs(3600)),
            "{error:?}"
        );
    }
    // The hold-off was recorded: one request, not one per call.
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn invalidations_of_a_fresh_token_are_ignored_within_the_interval_rfc6750_3_1() {
    // An API refusing every token: each call invalidates, and asks again.
    let server = TokenServer::start().await;
    let source = TokenSource::new(server.config().build()).unwrap();
    let first = source.token().await.unwrap();
    for _ in 0..20 {
        assert!(!source.invalidate(&first), "younger than the default 5 s");
        assert_eq!(source.token().await.unwrap(), first);
    }
    assert_eq!(server.requests(), 1);

    // Once the token is older than the interval, invalidating drops it.
    let interval = Duration::from_millis(300);
    let config = server.config().min_invalidate_interval(interval);
    let source = TokenSource::new(config.build()).unwrap();
    let fetched = Instant::now();
    let old = source.token().await.unwrap();
    while !source.invalidate(&old) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fetched.elapsed() >= interval);
    assert_ne!(source.token().await.unwrap(), old);
    assert_eq!(server.requests(), 3);
}
