//! A token request as the grant it names, and the tokens a grant issues: what passes between
//! `http/` and the core.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::GrantType;

/// A token request as the grant it names, with only the fields that grant reads; made once from
/// the form by `http/`. The secrets are `Zeroizing`, so they are wiped on drop whichever way the
/// request ends. The scope is the text sent: it is parsed after the client is authenticated, as
/// the order of the answers requires. An absent username, password or refresh token is empty
/// here and refused by its grant, after client authentication and the scope.
pub enum TokenRequest {
    /// RFC 6749 §4.3.2.
    Password {
        username: String,
        password: Zeroizing<String>,
        scope: Option<String>,
        /// The audience wanted (RFC 8707).
        resource: Option<String>,
    },
    /// RFC 6749 §4.4.2.
    ClientCredentials {
        scope: Option<String>,
        resource: Option<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: Zeroizing<String>,
        scope: Option<String>,
    },
}

impl TokenRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::Password { .. } => GrantType::Password,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
        }
    }
}

/// What a grant issues (RFC 6749 §5.1, the token type being always `Bearer`). It is also what a
/// refresh keeps sealed for a retry within the grace window, in the token response's own JSON
/// (`token_type` included), so that replicas of this version and of earlier ones, sharing one
/// store during an upgrade, open each other's.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedTokens {
    pub access_token: String,
    /// Always `Bearer`; kept in the sealed JSON for the replicas that require it.
    #[serde(skip_deserializing, default = "bearer")]
    token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: String,
}

fn bearer() -> &'static str {
    "Bearer"
}

impl IssuedTokens {
    pub fn new(
        access_token: String,
        expires_in: u64,
        refresh_token: Option<String>,
        scope: String,
    ) -> Self {
        Self {
            access_token,
            token_type: bearer(),
            expires_in,
            refresh_token,
            scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sealed pair of a refresh retry is the token response's JSON, read by replicas of
    /// every version during an upgrade.
    #[test]
    fn issued_tokens_keep_the_token_response_json() {
        let issued = IssuedTokens::new("at".into(), 60, Some("rt".into()), "read".into());
        let json: serde_json::Value = serde_json::to_value(&issued).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "access_token": "at", "token_type": "Bearer", "expires_in": 60,
                "refresh_token": "rt", "scope": "read"
            })
        );
        let back: IssuedTokens = serde_json::from_value(json).unwrap();
        assert_eq!((back.access_token.as_str(), back.expires_in), ("at", 60));
    }
}
