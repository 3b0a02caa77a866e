//! Client authentication (RFC 6749 §2.3.1): `client_secret_basic` and `client_secret_post`.
//!
//! Every client a token names is registered: a confidential client proves itself with one of
//! its secrets (two during a rotation's overlap), a registered public client names itself with
//! `client_id`, and a request that names no client at all speaks for the one default public
//! client, [`PUBLIC_CLIENT_ID`]. An unknown id and a confidential client without its secret get
//! the same `invalid_client`, so that ids cannot be enumerated.
//!
//! Client secrets are high-entropy, so they are stored as HMAC-SHA256 under a server key (kept
//! in the keys directory) with a per-client salt: checking one costs microseconds, not an
//! Argon2 run, and a copy of the store alone does not allow testing guesses.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::client_cache::ClientCache;
use super::error::TokenError;
use crate::store::{ClientRecord, GrantType, Store};

/// Secrets shorter than this are refused at registration.
pub const MIN_SECRET_LEN: usize = 32;
const HASH_SCHEME: &str = "hmac-sha256";

/// What the request said about the client, before any check.
pub enum Credentials {
    /// No secret: a public client, perhaps naming itself with `client_id`.
    None { client_id: Option<String> },
    Secret {
        client_id: String,
        secret: Zeroizing<String>,
    },
}

/// A client as established by the request.
#[derive(Clone, Debug)]
pub enum Client {
    /// Authenticated with its secret.
    Confidential(ClientRecord),
    /// A registered public client, named by its `client_id`; it has no secret to prove.
    Public(ClientRecord),
    /// No client named: the default public client, [`PUBLIC_CLIENT_ID`], which exists while
    /// `AUTH_PASSWORD_GRANT_WITHOUT_CLIENT` is on.
    DefaultPublic,
}

impl Client {
    /// A registered client as its record says: public, or confidential (and then only once it
    /// has proved itself).
    pub fn registered(record: ClientRecord) -> Self {
        if record.public {
            Client::Public(record)
        } else {
            Client::Confidential(record)
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Client::Confidential(record) | Client::Public(record) => &record.client_id,
            Client::DefaultPublic => PUBLIC_CLIENT_ID,
        }
    }

    /// The registration, for every client but the default public one.
    pub fn record(&self) -> Option<&ClientRecord> {
        match self {
            Client::Confidential(record) | Client::Public(record) => Some(record),
            Client::DefaultPublic => None,
        }
    }

    /// Whether it may use `grant_type`. The default public client has the grants a public
    /// client may have.
    pub fn may_use(&self, grant_type: GrantType) -> bool {
        match self.record() {
            Some(record) => record.grants.contains(&grant_type),
            None => PUBLIC_GRANT_TYPES.contains(&grant_type),
        }
    }

    /// The scopes it may be granted; `None` for the default public client, which narrows
    /// nothing (the user's own scopes apply).
    pub fn scopes(&self) -> Option<&oauth2_jwt_verifier::Scope> {
        self.record().map(|record| &record.scopes)
    }

    /// Its stamp (see `ClientRecord::stamp`); empty for the default public client.
    pub fn stamp(&self) -> &str {
        self.record().map_or("", |record| record.stamp.as_str())
    }

    /// Its cut-off for access tokens (see `ClientRecord::not_before`).
    pub fn not_before(&self) -> u64 {
        self.record().map_or(0, |record| record.not_before)
    }
}

/// The id of the default public client: what a request that names no client speaks for.
pub const PUBLIC_CLIENT_ID: &str = "public";

/// The grants a public client may be registered for: those that need no client secret.
pub const PUBLIC_GRANT_TYPES: &[GrantType] = &[GrantType::Password, GrantType::RefreshToken];

/// The longest client id accepted, in bytes; the same bound as usernames.
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// Whether `id` can be a client id at all: 1 to [`MAX_CLIENT_ID_BYTES`] bytes, no control
/// character. Checked before any store access.
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID_BYTES && !id.chars().any(char::is_control)
}

/// Checks the credentials at `now` against the client as `clients` holds it or the store has it.
/// An unknown client, a wrong secret and a confidential client that sends none all look the
/// same: `invalid_client`.
///
/// A secret that matches neither secret of a held record is checked again against the store's
/// record, so that a new secret works at once; every refusal of a secret costs the same (one
/// store read, two rounds of two checks), whether the client exists and whether its record was
/// held, so that the time taken does not tell which.
pub async fn authenticate(
    store: &dyn Store,
    clients: &ClientCache,
    hash_key: &[u8],
    credentials: Credentials,
    now: u64,
) -> Result<Client, TokenError> {
    match credentials {
        Credentials::None { client_id: None } => Ok(Client::DefaultPublic),
        Credentials::None {
            client_id: Some(client_id),
        } => {
            if client_id == PUBLIC_CLIENT_ID {
                return Ok(Client::DefaultPublic);
            }
            if !is_valid_client_id(&client_id) {
                return Err(TokenError::InvalidClient);
            }
            match clients.client(store, &client_id).await?.0 {
                Some(record) if record.public => Ok(Client::Public(record)),
                // Unregistered, or confidential and so bound to prove itself.
                _ => Err(TokenError::InvalidClient),
            }
        }
        Credentials::Secret { client_id, secret } => {
            if !is_valid_client_id(&client_id) {
                return Err(TokenError::InvalidClient);
            }
            let (record, held) = clients.client(store, &client_id).await?;
            if matches(hash_key, &secret, record.as_ref(), now) {
                if let Some(record) = record {
                    return Ok(Client::Confidential(record));
                }
            }
            // Refused by the record held: ask the store (the secret may be new). Refused by the
            // store's record already: check it once more, for the same work either way.
            let record = if held {
                clients.read_through(store, &client_id).await?
            } else {
                record
            };
            // Checked before the match, so that an unknown id costs the checks a known one does.
            let accepted = matches(hash_key, &secret, record.as_ref(), now);
            match record {
                Some(record) if accepted => Ok(Client::Confidential(record)),
                _ => Err(TokenError::InvalidClient),
            }
        }
    }
}

/// Whether `secret` is the confidential client's current secret, or its previous one while that
/// still works at `now`. Both checks run whichever matches, so that the time taken says nothing.
fn matches(hash_key: &[u8], secret: &str, record: Option<&ClientRecord>, now: u64) -> bool {
    let (current, previous) = match record {
        Some(record) if !record.public => (
            record.secret_hash.as_str(),
            record
                .previous_secret
                .as_ref()
                .filter(|previous| now < previous.expires_at)
                .map_or("", |previous| previous.hash.as_str()),
        ),
        _ => ("", ""),
    };
    let matches_current = verify_secret(hash_key, secret, current);
    let matches_previous = verify_secret(hash_key, secret, previous);
    matches_current | matches_previous
}

/// `hmac-sha256$salt$mac`, with `mac = HMAC(key, salt ‖ secret)`.
pub fn hash_secret(key: &[u8], secret: &str) -> String {
    use base64::Engine;
    let salt = crate::tokens::random_token(16);
    let mac = mac(key, &salt, secret);
    format!(
        "{HASH_SCHEME}${salt}${}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    )
}

fn mac(key: &[u8], salt: &str, secret: &str) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(salt.as_bytes());
    mac.update(b"$");
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time check of `secret` against a stored hash. An unknown client is checked against
/// an empty hash so that it takes the same work.
pub fn verify_secret(key: &[u8], secret: &str, stored: &str) -> bool {
    use base64::Engine;
    let mut parts = stored.splitn(3, '$');
    let (scheme, salt, expected) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(expected)
        .unwrap_or_default();
    let actual = mac(key, salt, secret);
    let equal: bool = actual.ct_eq(&expected).into();
    equal && scheme == HASH_SCHEME && !expected.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_verifies_only_the_right_secret_under_the_right_key() {
        let key = [7u8; 32];
        let stored = hash_secret(&key, "s3cret-s3cret-s3cret-s3cret-s3cret");
        assert!(verify_secret(
            &key,
            "s3cret-s3cret-s3cret-s3cret-s3cret",
            &stored
        ));
        assert!(!verify_secret(
            &key,
            "s3cret-s3cret-s3cret-s3cret-s3creT",
            &stored
        ));
        assert!(!verify_secret(
            &[8u8; 32],
            "s3cret-s3cret-s3cret-s3cret-s3cret",
            &stored
        ));
        assert!(!verify_secret(&key, "", ""));
    }
}
