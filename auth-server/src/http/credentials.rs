//! Client credentials as a request carries them (RFC 6749 §2.3.1): the `Authorization: Basic`
//! header or the `client_id`/`client_secret` form fields, read into the core's [`Credentials`]
//! without leaving a copy of a secret behind. Whether they hold is the core's to decide.

use zeroize::Zeroizing;

use crate::oauth::{Credentials, TokenError};

/// Reads the `Authorization: Basic` header and the `client_id`/`client_secret` form fields.
/// Both methods at once is `invalid_request` (RFC 6749 §2.3).
pub fn read(
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
            // `Basic base64("id:")`: a public client naming itself the way some libraries (and
            // Swagger UI, with only its client_id field filled) send it.
            if secret.is_empty() {
                return Ok(Credentials::None {
                    client_id: Some(client_id),
                });
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
        let result = read(Some("Basic YTpi"), Some("a"), Some("b"));
        assert!(matches!(result, Err(TokenError::InvalidRequest(_))));
    }

    #[test]
    fn basic_with_an_empty_secret_names_a_public_client_rfc6749_2_3_1() {
        use base64::Engine;
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("spa:")
        );
        let result = read(Some(&header), None, None);
        assert!(matches!(result, Ok(Credentials::None { client_id: Some(ref id) }) if id == "spa"));
    }

    #[test]
    fn swagger_uis_empty_basic_header_counts_as_no_client() {
        let result = read(Some("Basic Og=="), None, None);
        assert!(matches!(result, Ok(Credentials::None { client_id: None })));
    }
}
