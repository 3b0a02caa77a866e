//! A service's own claims read through `verify_claims`: on a fresh verification and on a
//! cache hit, nothing more with `NoExtra`, a refusal when a required claim is missing, and
//! never from a token that did not verify.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::json;
use test_kit::signer::TestSigner;

use super::super::jws::extra_claims;
use super::super::{Verifier, VerifierConfig, VerifyError};
use super::issuer::{Publishes, TestIssuer};
use crate::{Claims, NoExtra};

#[derive(Debug, Deserialize, PartialEq)]
struct Tenanted {
    tenant: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn started() -> (TestIssuer, Verifier) {
    let issuer = TestIssuer::start(Publishes::Rfc8414, None).await;
    let verifier = Verifier::new(VerifierConfig::new(issuer.base.clone(), "api")).unwrap();
    verifier.refresh_now().await.unwrap();
    (issuer, verifier)
}

#[tokio::test]
async fn custom_claims_are_read_on_a_fresh_verification_and_on_a_cache_hit() {
    let (issuer, verifier) = started().await;
    let token = issuer.token(
        json!("api"),
        json!({"tenant": "acme", "roles": ["admin", "billing"]}),
    );
    let expected = Tenanted {
        tenant: "acme".into(),
        roles: vec!["admin".into(), "billing".into()],
    };
    let fresh: Claims<Tenanted> = verifier.verify_claims(&token).await.unwrap();
    assert_eq!(fresh.extra, expected);
    assert_eq!(verifier.inner.counters.cache_hits(), 0);

    let cached = verifier.verify_claims::<Tenanted>(&token).await.unwrap();
    assert_eq!(verifier.inner.counters.cache_hits(), 1, "a cache hit");
    assert_eq!(cached.extra, expected);
    // Deref to the registered claims.
    assert_eq!(
        (cached.sub.as_str(), cached.client_id.as_str()),
        ("alice", "web")
    );
    assert!(cached.require_scope("read").is_ok());
    assert_eq!(cached.access, verifier.verify(&token).await.unwrap());
}

#[tokio::test]
async fn no_extra_reads_nothing_more_than_the_access_claims() {
    let (issuer, verifier) = started().await;
    let token = issuer.token(json!("api"), json!({"tenant": "acme"}));
    let claims = verifier.verify_claims::<NoExtra>(&token).await.unwrap();
    assert_eq!(claims.extra, NoExtra {});
    assert_eq!(claims.access, verifier.verify(&token).await.unwrap());
    // NoExtra never looks at the payload: not even a token that is no JWT is decoded again.
    assert_eq!(extra_claims::<NoExtra>("not-a-token"), Ok(NoExtra {}));
    assert_eq!(
        extra_claims::<serde_json::Value>("not-a-token").err(),
        Some(VerifyError::Malformed)
    );
}

#[tokio::test]
async fn a_required_custom_claim_the_token_lacks_is_missing_claim() {
    let (issuer, verifier) = started().await;
    for extra in [json!({"roles": ["admin"]}), json!({"tenant": 42})] {
        let token = issuer.token(json!("api"), extra.clone());
        for _ in 0..2 {
            assert_eq!(
                verifier.verify_claims::<Tenanted>(&token).await,
                Err(VerifyError::MissingClaim),
                "{extra}"
            );
        }
        // The token itself is good: a service that needs no tenant accepts it.
        assert!(verifier.verify(&token).await.is_ok());
    }
}

/// Counts every time it is read from a payload.
struct Counted;

static READS: AtomicUsize = AtomicUsize::new(0);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        READS.fetch_add(1, Ordering::SeqCst);
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Counted)
    }
}

#[tokio::test]
async fn a_token_that_does_not_verify_never_reaches_the_services_type_rfc7515_5_2() {
    let (issuer, verifier) = started().await;
    let forger = TestSigner::generate();
    let forged = forger.sign(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
        &json!({"iss": issuer.base.as_str().trim_end_matches('/'), "sub": "mallory",
                "aud": "api", "exp": u64::MAX / 2, "iat": 0, "jti": "f", "client_id": "web"}),
    );
    assert_eq!(
        verifier.verify_claims::<Counted>(&forged).await.err(),
        Some(VerifyError::BadSignature)
    );
    let elsewhere = issuer.token(json!("another-api"), json!({}));
    assert_eq!(
        verifier.verify_claims::<Counted>(&elsewhere).await.err(),
        Some(VerifyError::WrongAudience)
    );
    assert_eq!(READS.load(Ordering::SeqCst), 0, "never read");

    let good = issuer.token(json!("api"), json!({}));
    assert!(verifier.verify_claims::<Counted>(&good).await.is_ok());
    assert_eq!(READS.load(Ordering::SeqCst), 1);
}
