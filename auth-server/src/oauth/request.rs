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
/// refresh keeps sealed for a retry within the grace window, so its field names are those of
/// the token response.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedTokens {
    pub access_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: String,
}
