//! RFC 7009 token revocation. Revoking a refresh token ends its family; revoking an access
//! token records its `jti` until it expires, which introspection honours. Resource servers that
//! verify locally keep accepting a revoked access token until its `exp`: that is the price of
//! not calling the auth-server per request, and why access tokens live minutes, not hours.

use super::client_auth::Client;
use super::{Authority, TokenError};
use crate::tokens;

impl Authority {
    /// Unknown and malformed tokens are fine (§2.2): the answer is the same 200.
    pub(super) async fn revoke_for(
        &self,
        client: &Client,
        token: &str,
        hint: Option<&str>,
        now: u64,
    ) -> Result<(), TokenError> {
        let try_refresh_first = hint != Some("access_token");
        if try_refresh_first && self.revoke_refresh(client, token).await? {
            return Ok(());
        }
        if let Some(claims) = self.tokens.decode_own(token, now) {
            if claims.client_id != client.id() {
                return Err(TokenError::UnauthorizedClient);
            }
            if claims.exp > now {
                self.store
                    .revoke_access_token(&claims.jti, claims.exp)
                    .await?;
                tracing::info!(jti = %claims.jti, "access token revoked");
            }
            return Ok(());
        }
        if !try_refresh_first {
            self.revoke_refresh(client, token).await?;
        }
        Ok(())
    }

    async fn revoke_refresh(&self, client: &Client, token: &str) -> Result<bool, TokenError> {
        let Some(record) = self.store.refresh(&tokens::refresh_token_id(token)).await? else {
            return Ok(false);
        };
        if record.client_id != client.id() {
            return Err(TokenError::UnauthorizedClient);
        }
        self.store
            .revoke_family(&record.family_id, record.expires_at)
            .await?;
        tracing::info!(client_id = %record.client_id, "refresh token family revoked");
        Ok(true)
    }
}
