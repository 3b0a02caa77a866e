//! RFC 7009 token revocation. Revoking a refresh token ends its family; revoking an access
//! token records its `jti` until it expires, which introspection honours. Resource servers
//! verify locally, so they learn of it from the revocation feed (`GET /revocations`), within
//! one poll: the `jti` goes into the feed first, so that should the store fail between the
//! two writes, verifiers refuse a token introspection still accepts, never the reverse.

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
            // Resource servers accept a token up to their leeway past `exp`: one that has just
            // expired is still worth listing in the feed until then.
            let entry = tokens::token_revocation(&claims.jti, claims.exp);
            if entry.until > now {
                self.store.record_revocation(&entry).await?;
                if claims.exp > now {
                    self.store
                        .revoke_access_token(&claims.jti, claims.exp)
                        .await?;
                }
                tracing::info!(jti = %claims.jti, "access token revoked");
            }
            return Ok(());
        }
        if !try_refresh_first {
            self.revoke_refresh(client, token).await?;
        }
        Ok(())
    }

    /// The revocation feed after the cursor `since` (see `Store::revocations_since`): public,
    /// it holds `jti`s and digests of names only.
    pub async fn revocation_feed(
        &self,
        since: Option<&str>,
        now: u64,
    ) -> Result<crate::store::RevocationFeed, TokenError> {
        Ok(self.store.revocations_since(since, now).await?)
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
