//! RFC 6749 §4.4: a client obtains a token for itself. No refresh token (§4.4.3).

use shared::wire::TokenResponse;
use shared::Scope;

use super::{grant_scope, issued_at, Grants, TokenError};
use crate::client_auth::Client;
use crate::store::GrantType;
use crate::tokens::Subject;

impl Grants {
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<Scope>,
        resource: Option<&str>,
        now: u64,
    ) -> Result<TokenResponse, TokenError> {
        let Client::Confidential(record) = client else {
            return Err(TokenError::InvalidClient);
        };
        if !record.grants.contains(&GrantType::ClientCredentials) {
            return Err(TokenError::UnauthorizedClient);
        }
        let scope = grant_scope(scope, &record.scopes)?;
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
        Ok(self.response(access_token, None, &scope))
    }
}
