//! RFC 6749 §4.4: a client obtains a token for itself. No refresh token (§4.4.3).

use oauth2_jwt_verifier::Scope;

use super::issued_at;
use crate::oauth::client_auth::Client;
use crate::oauth::{scope, Authority, IssuedTokens, TokenError};
use crate::store::GrantType;
use crate::tokens::Subject;

impl Authority {
    pub(crate) async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<Scope>,
        resource: Option<&str>,
        now: u64,
    ) -> Result<IssuedTokens, TokenError> {
        let Client::Confidential(record) = client else {
            return Err(TokenError::InvalidClient);
        };
        if !record.grants.contains(&GrantType::ClientCredentials) {
            return Err(TokenError::UnauthorizedClient);
        }
        let scope = scope::grant(scope, &record.scopes)?;
        let audience = self.audience(client, resource)?;
        let subject = Subject {
            sub: &record.client_id,
            user: None,
        };
        let iat = issued_at(now, None, client).await;
        let (access_token, claims) =
            self.tokens
                .mint_access(&subject, &record.client_id, &scope, &audience, iat)?;
        tracing::info!(jti = %claims.jti, client_id = %record.client_id, "access token issued");
        Ok(self.issued(access_token, None, &scope))
    }
}
