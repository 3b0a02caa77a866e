//! Client authentication (RFC 6749 §2.3.1): `client_secret_basic` and `client_secret_post`.
//!
//! Client secrets are high-entropy, so they are stored as HMAC-SHA256 under a server key (kept
//! in the keys directory) with a per-client salt: checking one costs microseconds, not an
//! Argon2 run, and a copy of the store alone does not allow testing guesses.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::grants::TokenError;
use crate::store::{ClientRecord, Store};

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
    /// Did not authenticate. Tokens name it by the `client_id` it gave, or `public`.
    Public { client_id: String },
}

impl Client {
    pub fn id(&self) -> &str {
        match self {
            Client::Confidential(record) => &record.client_id,
            Client::Public { client_id } => client_id,
        }
    }
}

/// The id public requests are recorded under when they name no client.
pub const PUBLIC_CLIENT_ID: &str = "public";

/// Reads the `Authorization: Basic` header and the `client_id`/`client_secret` form fields.
/// Both methods at once is `invalid_request` (RFC 6749 §2.3).
pub fn credentials(
    authorization: Option<&str>,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Credentials, TokenError> {
    let form_id = form_id.filter(|id| !id.is_empty());
    let form_secret = form_secret.filter(|secret| !secret.is_empty());
    let authorization = authorization.filter(|header| !is_blank_basic(header));
    match authorization {
        Some(header) => {
            if form_secret.is_some() {
                return Err(TokenError::InvalidRequest(
                    "use one client authentication method, not two",
                ));
            }
            let (client_id, secret) = parse_basic(header).ok_or(TokenError::InvalidClient)?;
            if form_id.is_some_and(|id| id != client_id) {
                return Err(TokenError::InvalidRequest(
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(Credentials::Secret { client_id, secret })
        }
        None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => Ok(Credentials::Secret {
                client_id: id.to_owned(),
                secret: Zeroizing::new(secret.to_owned()),
            }),
            (None, Some(_)) => Err(TokenError::InvalidRequest(
                "client_secret without client_id",
            )),
            (id, None) => Ok(Credentials::None {
                client_id: id.map(str::to_owned),
            }),
        },
    }
}

/// `Basic base64(":")`: what Swagger UI sends when its client fields are left empty. It names no
/// client, so it counts as no client authentication at all.
fn is_blank_basic(header: &str) -> bool {
    use base64::Engine;
    header
        .trim()
        .split_once(' ')
        .is_some_and(|(scheme, encoded)| {
            scheme.eq_ignore_ascii_case("basic")
                && base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .is_ok_and(|decoded| decoded == b":")
        })
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`; `None` when malformed.
pub fn parse_basic(header: &str) -> Option<(String, Zeroizing<String>)> {
    use base64::Engine;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = form_decode(id)?.to_string();
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space, then `%XX`) that leaves no
/// copy of a secret behind: every buffer is sized up front, so none is reallocated and left
/// holding part of it, and each is wiped when dropped, a refused one included.
fn form_decode(part: &str) -> Option<Zeroizing<String>> {
    let plus_as_space: Zeroizing<Vec<u8>> = Zeroizing::new(
        part.bytes()
            .map(|b| if b == b'+' { b' ' } else { b })
            .collect(),
    );
    let mut decoded = Zeroizing::new(Vec::with_capacity(plus_as_space.len()));
    decoded.extend(percent_encoding::percent_decode(&plus_as_space));
    match String::from_utf8(std::mem::take(&mut *decoded)) {
        Ok(text) => Some(Zeroizing::new(text)),
        Err(err) => {
            zeroize::Zeroize::zeroize(&mut err.into_bytes());
            None
        }
    }
}

/// Checks the credentials against the store. Unknown client and wrong secret look the same.
pub async fn authenticate(
    store: &dyn Store,
    hash_key: &[u8],
    credentials: Credentials,
) -> Result<Client, TokenError> {
    match credentials {
        Credentials::None { client_id } => {
            let client_id = client_id.unwrap_or_else(|| PUBLIC_CLIENT_ID.to_owned());
            // A registered client has a secret and must use it.
            if store.client(&client_id).await?.is_some() {
                return Err(TokenError::InvalidClient);
            }
            Ok(Client::Public { client_id })
        }
        Credentials::Secret { client_id, secret } => {
            let record = store.client(&client_id).await?;
            let stored = record.as_ref().map_or("", |r| r.secret_hash.as_str());
            if verify_secret(hash_key, &secret, stored) {
                record
                    .map(Client::Confidential)
                    .ok_or(TokenError::InvalidClient)
            } else {
                Err(TokenError::InvalidClient)
            }
        }
    }
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
    fn basic_header_is_form_decoded_rfc6749_2_3_1() {
        use base64::Engine;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("my%3Aclient:s%C3%A9cret+with%25");
        let (id, secret) = parse_basic(&format!("Basic {encoded}")).unwrap();
        assert_eq!(id, "my:client");
        assert_eq!(secret.as_str(), "sécret with%");
    }

    #[test]
    fn malformed_basic_headers_are_rejected() {
        for header in [
            "Basic",
            "Basic !!!",
            "Bearer abc",
            "Basic Zm9v",
            "Basic OnNlY3JldA==",
        ] {
            assert!(parse_basic(header).is_none(), "{header}");
        }
    }

    #[test]
    fn both_methods_at_once_is_invalid_request_rfc6749_2_3() {
        let result = credentials(Some("Basic YTpi"), Some("a"), Some("b"));
        assert!(matches!(result, Err(TokenError::InvalidRequest(_))));
    }

    #[test]
    fn swagger_uis_empty_basic_header_counts_as_no_client() {
        let result = credentials(Some("Basic Og=="), None, None);
        assert!(matches!(result, Ok(Credentials::None { client_id: None })));
    }

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
