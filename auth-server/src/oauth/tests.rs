//! The core on its own: an `Authority` over the embedded store, called as `http/` calls it but
//! with no server, no request and the time given.

use std::sync::{Arc, Mutex};

use oauth2_jwt_verifier::Scope;
use zeroize::Zeroizing;

use super::*;
use crate::keys::{KeyRing, SigningKey};
use crate::store::ClientRecord;

const SECRET: &str = "a-client-secret-of-more-than-32-bytes";
const KEY: [u8; 32] = [7; 32];

/// What the core reported, in order.
#[derive(Default)]
struct Counted(Mutex<Vec<String>>);

impl Recorder for Counted {
    fn issued(&self, grant: GrantType) {
        self.0.lock().unwrap().push(format!("issued {grant}"));
    }
    fn refused(&self, grant: Option<GrantType>, error: &TokenError) {
        let grant = grant.map_or("other", GrantType::as_str);
        self.0
            .lock()
            .unwrap()
            .push(format!("refused {grant} {error}"));
    }
}

struct Core {
    authority: Authority,
    tokens: Arc<TokenIssuer>,
    counted: Arc<Counted>,
    _dir: tempfile::TempDir,
}

async fn core() -> Core {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("core.db").display());
    let store = crate::store::open(&url).await.unwrap();
    for (client_id, introspect) in [("svc", false), ("rs", true)] {
        store
            .insert_client(&ClientRecord {
                client_id: client_id.to_owned(),
                secret_hash: client_auth::hash_secret(&KEY, SECRET),
                previous_secret: None,
                public: false,
                introspect,
                grants: vec![GrantType::ClientCredentials],
                scopes: Scope::parse("read write").unwrap(),
                audiences: Vec::new(),
                stamp: crate::tokens::new_stamp(),
                not_before: 0,
            })
            .await
            .unwrap();
    }
    let (key, _) = SigningKey::generate().unwrap();
    let tokens = Arc::new(TokenIssuer::new(
        "https://issuer.test".to_owned(),
        60,
        KeyRing::single(key),
    ));
    let passwords = tokio::task::spawn_blocking(|| Passwords::new(1, 4, None))
        .await
        .unwrap()
        .unwrap();
    let counted = Arc::new(Counted::default());
    let policy = Policy {
        refresh_ttl: 3600,
        refresh_reuse_grace: 0,
        default_audience: "api".to_owned(),
        password_grant_without_client: true,
        throttle: throttle::ThrottlePolicy {
            window: 60,
            per_address: 10,
            per_user: 100,
        },
    };
    let authority = Authority::new(
        store,
        Arc::new(passwords),
        tokens.clone(),
        policy,
        Zeroizing::new(KEY.to_vec()),
        counted.clone(),
    );
    Core {
        authority,
        tokens,
        counted,
        _dir: dir,
    }
}

impl Core {
    /// A client_credentials request of `client_id` with `secret`, at `now`.
    async fn client_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: Option<&str>,
        now: u64,
    ) -> Result<IssuedTokens, TokenError> {
        self.authority
            .token(
                secret_of(client_id, secret),
                client_credentials(scope),
                None,
                now,
            )
            .await
    }

    /// Whether the introspecting client `rs` is told `token` is active at `now`.
    async fn active(&self, token: &str, now: u64) -> bool {
        let found = self
            .authority
            .introspect(secret_of("rs", SECRET), token, None, now)
            .await
            .unwrap();
        found.active
    }
}

fn secret_of(client_id: &str, secret: &str) -> Credentials {
    Credentials::Secret {
        client_id: client_id.to_owned(),
        secret: Zeroizing::new(secret.to_owned()),
    }
}

fn client_credentials(scope: Option<&str>) -> TokenRequest {
    TokenRequest::ClientCredentials {
        scope: scope.map(str::to_owned),
        resource: None,
    }
}

#[tokio::test]
async fn client_credentials_issue_a_signed_token_and_are_counted_rfc6749_4_4() {
    let core = core().await;
    let now = clock::unix_now();
    let issued = core
        .client_token("svc", SECRET, Some("read"), now)
        .await
        .unwrap();
    assert_eq!(issued.scope, "read");
    assert_eq!(issued.expires_in, 60);
    assert!(issued.refresh_token.is_none(), "RFC 6749 §4.4.3");
    let claims = core.tokens.decode_own(&issued.access_token, now).unwrap();
    assert_eq!((claims.sub.as_str(), claims.iat), ("svc", now));
    assert_eq!(
        *core.counted.0.lock().unwrap(),
        ["issued client_credentials"]
    );
}

#[tokio::test]
async fn the_client_is_judged_before_the_scope_rfc6749_5_2() {
    let core = core().await;
    let now = clock::unix_now();
    let wrong_secret = core
        .client_token(
            "svc",
            "not-the-secret-not-the-secret-not-the",
            Some("a\"b"),
            now,
        )
        .await;
    assert!(matches!(wrong_secret, Err(TokenError::InvalidClient)));
    let bad_scope = core.client_token("svc", SECRET, Some("a\"b"), now).await;
    assert!(matches!(bad_scope, Err(TokenError::InvalidScope)));
    let too_wide = core.client_token("svc", SECRET, Some("admin"), now).await;
    assert!(matches!(too_wide, Err(TokenError::InvalidScope)));
    assert_eq!(
        *core.counted.0.lock().unwrap(),
        [
            "refused client_credentials invalid_client",
            "refused client_credentials invalid_scope",
            "refused client_credentials invalid_scope",
        ]
    );
}

#[tokio::test]
async fn a_token_is_active_until_the_time_given_passes_its_exp_rfc7662_2_2() {
    let core = core().await;
    let now = clock::unix_now();
    let token = core
        .client_token("svc", SECRET, None, now)
        .await
        .unwrap()
        .access_token;
    let at = |time| {
        core.authority
            .introspect(secret_of("rs", SECRET), &token, None, time)
    };
    let active = at(now + 59).await.unwrap();
    assert!(active.active);
    assert_eq!(active.client_id.as_deref(), Some("svc"));
    assert_eq!(active.scope.as_deref(), Some("read write"));
    let expired = at(now + 60).await.unwrap();
    assert!(!expired.active);
    assert!(
        expired.client_id.is_none(),
        "an inactive answer says nothing more"
    );
}

#[tokio::test]
async fn only_the_token_s_own_client_may_revoke_it_rfc7009_2_1() {
    let core = core().await;
    let now = clock::unix_now();
    let token = core
        .client_token("svc", SECRET, None, now)
        .await
        .unwrap()
        .access_token;
    let by_another = core
        .authority
        .revoke(secret_of("rs", SECRET), &token, None, now)
        .await;
    assert!(matches!(by_another, Err(TokenError::UnauthorizedClient)));
    assert!(core.active(&token, now).await);
    core.authority
        .revoke(secret_of("svc", SECRET), &token, None, now)
        .await
        .unwrap();
    assert!(!core.active(&token, now).await);
}

/// Resource servers accept a token up to their leeway past `exp` (RFC 7519 §4.1.4), so a token
/// revoked just after it expired is still listed in the revocation feed; one past the leeway is
/// not, since no verifier accepts it any more.
#[tokio::test]
async fn a_token_revoked_within_the_verifiers_leeway_is_still_listed_rfc7009_2() {
    let core = core().await;
    let now = clock::unix_now();
    let listed = |feed: crate::store::RevocationFeed| -> usize { feed.entries.len() };
    let within = core
        .client_token("svc", SECRET, None, now)
        .await
        .unwrap()
        .access_token;
    let past = core
        .client_token("svc", SECRET, None, now)
        .await
        .unwrap()
        .access_token;
    let exp = core.tokens.decode_own(&within, now).unwrap().exp;
    core.authority
        .revoke(secret_of("svc", SECRET), &past, None, exp + 61)
        .await
        .unwrap();
    let feed = core.authority.revocation_feed(None, now).await.unwrap();
    assert_eq!(listed(feed), 0, "past every verifier's leeway");
    core.authority
        .revoke(secret_of("svc", SECRET), &within, None, exp + 30)
        .await
        .unwrap();
    let feed = core.authority.revocation_feed(None, now).await.unwrap();
    assert_eq!(listed(feed), 1, "within the leeway");
}
