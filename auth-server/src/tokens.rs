//! Minting tokens: RFC 9068 access tokens signed with the active key, and opaque refresh tokens
//! that are stored only as their SHA-256.

use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oauth2_jwt_verifier::{verify_with, AudiencePolicy, Expiry, TokenRules};
use oauth2_jwt_verifier::{AccessClaims, Audience, Scope};
use sha2::{Digest, Sha256};

use crate::keys::{KeyError, KeyRing};

/// Who a token speaks for.
pub struct Subject<'a> {
    pub sub: &'a str,
    /// Profile claims, present for users only.
    pub user: Option<UserProfile<'a>>,
}

pub struct UserProfile<'a> {
    pub username: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// A user speaking for itself: `sub` is the username, with the profile claims.
    pub fn user(user: &'a crate::store::UserRecord) -> Self {
        Self {
            sub: &user.username,
            user: Some(UserProfile {
                username: &user.username,
                name: user.full_name.as_deref(),
                email: user.email.as_deref(),
            }),
        }
    }
}

pub struct TokenIssuer {
    issuer: String,
    access_ttl: u64,
    keys: ArcSwap<KeyRing>,
    /// What [`TokenIssuer::decode_own`] asks of a token: our issuer, any audience (we mint for
    /// many), `exp` left to the caller (revocation still answers for an expired token, and
    /// introspection calls it inactive by its own clock).
    own_tokens: TokenRules,
}

/// Longest token [`TokenIssuer::decode_own`] parses; those this server mints are a few hundred
/// bytes to a couple of kilobytes.
const MAX_OWN_TOKEN_BYTES: usize = 16 * 1024;

impl TokenIssuer {
    pub fn new(issuer: String, access_ttl: u64, keys: KeyRing) -> Self {
        let own_tokens = TokenRules::new(&issuer, AudiencePolicy::Any)
            .with_expiry(Expiry::LeftToCaller)
            .with_max_token_bytes(MAX_OWN_TOKEN_BYTES);
        Self {
            issuer,
            access_ttl,
            keys: ArcSwap::from_pointee(keys),
            own_tokens,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn access_ttl(&self) -> u64 {
        self.access_ttl
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.load_full()
    }

    /// Swaps in a new key ring; tokens being signed finish with the old one.
    pub fn replace_keys(&self, keys: KeyRing) {
        self.keys.store(Arc::new(keys));
    }

    /// Signs an access token; returns it with its claims.
    pub fn mint_access(
        &self,
        subject: &Subject<'_>,
        client_id: &str,
        scope: &Scope,
        audience: &str,
        now: u64,
    ) -> Result<(String, AccessClaims), KeyError> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.sub.to_owned(),
            aud: Audience::One(audience.to_owned()),
            exp: now + self.access_ttl,
            iat: now,
            nbf: None,
            jti: random_token(16),
            client_id: client_id.to_owned(),
            scope: scope.clone(),
            preferred_username: subject.user.as_ref().map(|u| u.username.to_owned()),
            name: subject
                .user
                .as_ref()
                .and_then(|u| u.name.map(str::to_owned)),
            email: subject
                .user
                .as_ref()
                .and_then(|u| u.email.map(str::to_owned)),
        };
        let json = serde_json::to_vec(&claims).map_err(|_| KeyError::Signing)?;
        let token = self.keys.load().active().sign_jwt(&json)?;
        Ok((token, claims))
    }
}

impl TokenIssuer {
    /// The claims of an access token this server signed with a key it still publishes, whatever
    /// its audience and expiry (the caller judges those). `None` for anything else: checked by
    /// the resource servers' own rules ([`oauth2_jwt_verifier::verify_with`]) over the keys of the
    /// JWKS, so that introspection and revocation accept no token a resource server refuses
    /// for its header, signature or issuer.
    pub fn decode_own(&self, token: &str, now: u64) -> Option<AccessClaims> {
        verify_with(token, self.keys.load().key_set(), &self.own_tokens, now).ok()
    }
}

/// `bytes` random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = [0u8; 64];
    let buffer = &mut buffer[..bytes.min(64)];
    aws_lc_rs::rand::fill(buffer).unwrap_or_else(|_| {
        // aws-lc's generator does not fail on supported platforms; fall back to the OS one.
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, buffer)
    });
    URL_SAFE_NO_PAD.encode(buffer)
}

/// The stamp and access-token cut-off written by a change at `now` that ends every session of a
/// user or a client (see `store::UserRecord::stamp`). The cut-off is the next second, so that a
/// token issued within this second before the change falls below it.
pub fn session_cut(now: u64) -> crate::store::SessionCut {
    crate::store::SessionCut {
        stamp: new_stamp(),
        not_before: now.saturating_add(1),
    }
}

/// A new session stamp: 128 random bits.
pub fn new_stamp() -> String {
    random_token(16)
}

/// How long past the access-token lifetime a removed user's or client's cut-off is kept: room
/// for clocks that disagree and for verifiers' leeway on `exp`.
pub const REMOVAL_LEEWAY: u64 = 300;

/// What the removal at `now` of a user or client leaves behind (see `store::Removal`): its
/// cut-off, kept while an access token issued before it can live.
pub fn removal(now: u64, access_ttl: u64) -> crate::store::Removal {
    crate::store::Removal {
        not_before: now.saturating_add(1),
        keep_until: now
            .saturating_add(access_ttl)
            .saturating_add(REMOVAL_LEEWAY),
    }
}

/// How long past its `exp` a revoked access token stays in the revocation feed: the most
/// leeway the `oauth2-jwt-verifier` gives `exp`, so that no verifier still accepts it once dropped.
pub const VERIFIER_MAX_LEEWAY: u64 = 60;

/// The feed entry that refuses the access token `jti`, until it has expired for every verifier.
pub fn token_revocation(jti: &str, exp: u64) -> crate::store::RevocationEntry {
    crate::store::RevocationEntry::token(jti, exp.saturating_add(VERIFIER_MAX_LEEWAY))
}

/// How long a subject's or client's cut-off at `not_before` stays in the feed: as long as a
/// token issued before it can live, with the same room as a removal's.
fn cut_until(not_before: u64, access_ttl: u64) -> u64 {
    not_before
        .saturating_add(access_ttl)
        .saturating_add(REMOVAL_LEEWAY)
}

/// The feed entry that refuses tokens of the subject `sub` issued before `not_before`.
pub fn subject_revocation(
    sub: &str,
    not_before: u64,
    access_ttl: u64,
) -> crate::store::RevocationEntry {
    crate::store::RevocationEntry::subject(sub, not_before, cut_until(not_before, access_ttl))
}

/// The feed entry that refuses tokens of the client `client_id` issued before `not_before`.
pub fn client_revocation(
    client_id: &str,
    not_before: u64,
    access_ttl: u64,
) -> crate::store::RevocationEntry {
    crate::store::RevocationEntry::client(client_id, not_before, cut_until(not_before, access_ttl))
}

/// The cut-off a store writes for a change proposing `proposed` to an account whose cut-off is
/// `current`: a cut-off only grows, and each change moves it past the last one.
pub fn next_cut_off(proposed: u64, current: u64) -> u64 {
    proposed.max(current.saturating_add(1))
}

/// A new refresh token: 256 random bits.
pub fn new_refresh_token() -> String {
    random_token(32)
}

/// The stored id of a refresh token: hex SHA-256, so a leaked store yields no usable token.
pub fn refresh_token_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A key only the holder of `token` can derive; it seals the response a refresh returned.
fn sealing_key(token: &str) -> Result<LessSafeKey, SealError> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"auth-server refresh retry v1");
    let prk = salt.extract(token.as_bytes());
    let mut key = [0u8; 32];
    prk.expand(&[b"aes-256-gcm"], &AES_256_GCM)
        .and_then(|okm| okm.fill(&mut key))
        .map_err(|_| SealError)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| SealError)?;
    Ok(LessSafeKey::new(unbound))
}

#[derive(Debug, thiserror::Error)]
#[error("sealing or opening a refresh response failed")]
pub struct SealError;

/// Encrypts `plaintext` under a key derived from `token`, bound to `id`: nonce ‖ ciphertext ‖ tag.
pub fn seal(token: &str, id: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let key = sealing_key(token)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    sealed.extend_from_slice(&nonce);
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(id.as_bytes()),
        &mut in_out,
    )
    .map_err(|_| SealError)?;
    sealed.extend_from_slice(&in_out);
    Ok(sealed)
}

pub fn open(token: &str, id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let key = sealing_key(token)?;
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or(SealError)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
    let mut in_out = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(nonce, Aad::from(id.as_bytes()), &mut in_out)
        .map_err(|_| SealError)?;
    Ok(plaintext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{PublishedKey, SigningKey};
    use crate::store::KeyState;
    use serde_json::{json, Value};
    use test_kit::{unix_now, TestSigner};

    const ISSUER: &str = "https://auth.example";

    /// An issuer signing with a new key, and a signer holding that key, to forge tokens with
    /// as an attacker holding the server's key (or a bug in minting) would.
    fn issuer_and_its_key() -> (TokenIssuer, TestSigner, String) {
        let signer = TestSigner::generate();
        let key = SigningKey::from_pkcs8(&signer.pkcs8_der()).unwrap();
        let kid = key.kid().to_owned();
        (
            TokenIssuer::new(ISSUER.into(), 900, KeyRing::single(key)),
            signer,
            kid,
        )
    }

    fn claims_now() -> Value {
        let now = unix_now();
        json!({
            "iss": ISSUER, "sub": "alice", "aud": "api", "exp": now + 300, "iat": now,
            "jti": "j", "client_id": "public", "scope": "read", "preferred_username": "alice"
        })
    }

    #[test]
    fn decode_own_reads_its_tokens_for_any_audience_and_leaves_expiry_to_the_caller() {
        let (issuer, _, _) = issuer_and_its_key();
        let subject = Subject {
            sub: "svc",
            user: None,
        };
        let long_ago = unix_now() - 86_400;
        let (token, minted) = issuer
            .mint_access(&subject, "svc", &Scope::default(), "reports", long_ago)
            .unwrap();
        let decoded = issuer.decode_own(&token, unix_now()).unwrap();
        assert_eq!(decoded, minted);
        assert!(decoded.exp < unix_now(), "expired, and still decoded");
        assert!(decoded.aud.contains("reports"));
    }

    /// What a resource server refuses, the issuer refuses for itself, even signed with its own
    /// key: the forgery without a defect is the control.
    #[test]
    fn decode_own_refuses_headers_and_issuers_a_resource_server_refuses() {
        let (issuer, signer, kid) = issuer_and_its_key();
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
        assert!(issuer
            .decode_own(&signer.sign(&header, &claims_now()), unix_now())
            .is_some());

        let mut attacks = Vec::new();
        for (member, value) in [
            ("alg", json!("RS384")),
            ("alg", json!("none")),
            ("typ", json!("JWT")),
            ("typ", Value::Null),
            ("crit", json!(["exp"])),
            ("kid", json!("not-ours")),
            ("kid", Value::Null),
        ] {
            let mut bad = header.clone();
            bad[member] = value.clone();
            attacks.push((
                format!("{member}: {value}"),
                signer.sign(&bad, &claims_now()),
            ));
        }
        let mut foreign = claims_now();
        foreign["iss"] = json!("https://other.example");
        attacks.push(("iss".into(), signer.sign(&header, &foreign)));
        let stranger = TestSigner::generate();
        attacks.push(("another key".into(), stranger.sign(&header, &claims_now())));
        attacks.push(("oversized".into(), "a".repeat(MAX_OWN_TOKEN_BYTES + 1)));
        for (what, token) in attacks {
            assert_eq!(issuer.decode_own(&token, unix_now()), None, "{what}");
        }
    }

    #[test]
    fn decode_own_honours_a_key_while_it_is_published_and_no_longer() {
        let (issuer, signer, old_kid) = issuer_and_its_key();
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": old_kid});
        let token = signer.sign(&header, &claims_now());
        let old = SigningKey::from_pkcs8(&signer.pkcs8_der()).unwrap();
        let retired =
            PublishedKey::from_jwk(&old_kid, KeyState::Retired, &old.jwk().to_string()).unwrap();
        let (new, _) = SigningKey::generate().unwrap();
        let new = Arc::new(new);

        issuer.replace_keys(KeyRing::new(Arc::clone(&new), vec![retired]));
        assert!(
            issuer.decode_own(&token, unix_now()).is_some(),
            "retired, still published"
        );
        issuer.replace_keys(KeyRing::new(new, Vec::new()));
        assert_eq!(issuer.decode_own(&token, unix_now()), None, "removed");
    }

    #[test]
    fn sealed_response_opens_only_with_the_presented_token() {
        let token = new_refresh_token();
        let id = refresh_token_id(&token);
        let sealed = seal(&token, &id, b"pair").unwrap();
        assert_eq!(open(&token, &id, &sealed).unwrap(), b"pair");
        assert!(open(&new_refresh_token(), &id, &sealed).is_err());
        assert!(open(&token, "other id", &sealed).is_err());
        assert!(open(&token, &id, &sealed[..5]).is_err());
    }

    #[test]
    fn refresh_tokens_carry_256_bits_and_are_stored_hashed() {
        let token = new_refresh_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_eq!(refresh_token_id(&token).len(), 64);
        assert!(!refresh_token_id(&token).contains(&token));
    }
}
