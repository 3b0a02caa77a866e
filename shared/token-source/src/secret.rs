//! The client secret is the one value here that opens the client's account at the issuer, so it
//! lives in a zeroized buffer, prints as `***` and leaves this type only inside the
//! Authorization header it builds.

use std::fmt;
use std::path::Path;

use base64::Engine;
use zeroize::Zeroizing;

use crate::error::Error;

/// A client secret (RFC 6749 §2.3.1), from a value, an environment variable or a file.
///
/// Its `Debug` prints `ClientSecret(***)`; the memory holding the value is zeroized on drop.
/// Copies made for each token request (the `Authorization` header value, or the form body
/// with `client_secret_post`) are ordinary buffers inside the HTTP client and are not.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// The secret `value` as given.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The value of the environment variable `name`, with a trailing newline trimmed.
    pub fn from_env(name: &str) -> Result<Self, Error> {
        let value = std::env::var(name).map_err(|_| Error::Config(format!("{name} is not set")))?;
        Self::checked(Zeroizing::new(value), name)
    }

    /// The content of the file at `path` (as a mounted secret is), with a trailing newline
    /// trimmed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let value = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::checked(Zeroizing::new(value), &path.display().to_string())
    }

    fn checked(mut value: Zeroizing<String>, origin: &str) -> Result<Self, Error> {
        let kept = value.trim_end_matches(['\n', '\r']).len();
        value.truncate(kept);
        if value.is_empty() {
            return Err(Error::Config(format!(
                "the client secret in {origin} is empty"
            )));
        }
        Ok(Self(value))
    }

    /// RFC 6749 §2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))`, the encoding being
    /// `application/x-www-form-urlencoded` (Appendix B), so that a `:` or a non-ASCII character
    /// in either survives.
    pub(crate) fn basic_header(&self, client_id: &str) -> Zeroizing<String> {
        let mut joined = Zeroizing::new(String::new());
        joined.extend(form_urlencoded::byte_serialize(client_id.as_bytes()));
        joined.push(':');
        joined.extend(form_urlencoded::byte_serialize(self.0.as_bytes()));
        let mut header = Zeroizing::new(String::from("Basic "));
        base64::engine::general_purpose::STANDARD.encode_string(joined.as_bytes(), &mut header);
        header
    }

    /// The secret itself, for the `client_secret_post` form.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn basic_header_form_encodes_before_base64_rfc6749_2_3_1() {
        let secret = ClientSecret::new("a b:c/é");
        let header = secret.basic_header("svc:1");
        let encoded = header.strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "svc%3A1:a+b%3Ac%2F%C3%A9"
        );
    }

    #[test]
    fn file_secret_loses_its_trailing_newline_and_debug_hides_it() {
        let dir = std::env::temp_dir().join(format!("token-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "s3cret-value\r\n").unwrap();
        let secret = ClientSecret::from_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(secret.expose(), "s3cret-value");
        assert_eq!(format!("{secret:?}"), "ClientSecret(***)");
        assert!(ClientSecret::from_env("TOKEN_SOURCE_TEST_SURELY_UNSET").is_err());
    }
}
