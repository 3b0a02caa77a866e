//! RFC 6749 §6 with the rotation and reuse detection of RFC 9700 §4.14.
//!
//! Every use rotates the token. Presenting a token that was already exchanged revokes its whole
//! family, the newest member included, unless it comes from the same client within the grace
//! window (`AUTH_REFRESH_REUSE_GRACE`): then the client most likely lost the response, and gets
//! the very same pair back. That pair is kept only sealed (AES-256-GCM) under a key derived from
//! the presented token, which the store never holds, so nothing in the store is a usable token.
//! However many requests race on one token, the store's atomic rotation lets exactly one mint.
//!
//! A family lives only as long as the accounts it speaks for: it carries the user's and the
//! client's stamps from when it began, and refreshes only while both are still current (a new
//! password, disabling or removing the user, or removing the client, writes or drops them). Its
//! scope narrows at every refresh to what the user and the client may have now.

use oauth2_jwt_verifier::Scope;

use super::issued_at;
use crate::oauth::client_auth::Client;
use crate::oauth::{require_grant, scope, Authority, IssuedTokens, TokenError};
use crate::store::{GrantType, RefreshContext, RefreshRecord, Rotation};
use crate::tokens::{self, Subject};

impl Authority {
    pub(crate) async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<Scope>,
        now: u64,
    ) -> Result<IssuedTokens, TokenError> {
        if refresh_token.is_empty() {
            return Err(TokenError::InvalidRequest("refresh_token is required"));
        }
        self.check_default_public(client)?;
        require_grant(client, GrantType::RefreshToken)?;
        let id = tokens::refresh_token_id(refresh_token);
        // One read for the token, its family and its user (one query on the embedded store).
        let RefreshContext {
            record,
            family_revoked,
            user,
        } = self
            .store
            .refresh_context(&id)
            .await?
            .ok_or(TokenError::InvalidGrant("unknown refresh token"))?;
        // Bound to the client it was issued to (RFC 6749 §6). A caller that did not prove
        // itself has not authenticated as that client: `invalid_client` (RFC 6749 §5.2).
        if record.client_id != client.id() {
            return Err(match client {
                Client::Confidential(_) => {
                    TokenError::InvalidGrant("the refresh token was issued to another client")
                }
                _ => TokenError::InvalidClient,
            });
        }
        // A client removed and registered again under the same id is another client.
        if record.client_stamp != client.stamp() {
            return Err(TokenError::InvalidGrant(
                "the client of this refresh token was removed",
            ));
        }
        if now >= record.expires_at {
            return Err(TokenError::InvalidGrant("the refresh token has expired"));
        }
        if family_revoked {
            return Err(TokenError::InvalidGrant(
                "the refresh token has been revoked",
            ));
        }
        // A new password, disabling and removal each end the user's families: the stamp the
        // family began under is no longer the user's (a user added again has a new one).
        let user = user
            .filter(|user| !user.disabled && user.stamp == record.user_stamp)
            .ok_or(TokenError::InvalidGrant(
                "the refresh token's session has ended",
            ))?;
        if record.used_at.is_some() {
            return self.reuse(refresh_token, record, now).await;
        }
        // The new access token may narrow the scope, never widen it, and gets no more than the
        // user and the client may have now; the refresh token keeps the original scope
        // (RFC 6749 §6).
        let allowed = scope::intersect(&record.scope, &scope::of_user(&user, client));
        let scope = scope::grant(scope, &allowed)?;
        let subject = Subject::user(&user);
        let iat = issued_at(now, Some(&user), client).await;
        let (access_token, claims) =
            self.tokens
                .mint_access(&subject, &record.client_id, &scope, &record.audience, iat)?;
        let next_token = tokens::new_refresh_token();
        let successor = RefreshRecord {
            id: tokens::refresh_token_id(&next_token),
            issued_at: iat,
            used_at: None,
            sealed_successor: None,
            successor_id: None,
            ..record.clone()
        };
        let response = self.issued(access_token, Some(next_token), &scope);
        let plaintext =
            zeroize::Zeroizing::new(serde_json::to_vec(&response).map_err(anyhow::Error::new)?);
        let sealed = tokens::seal(refresh_token, &id, &plaintext).map_err(anyhow::Error::new)?;
        match self
            .store
            .rotate_refresh(&id, now, &sealed, &successor)
            .await?
        {
            Rotation::Rotated => {
                tracing::info!(jti = %claims.jti, client_id = %record.client_id, "refresh token rotated");
                Ok(response)
            }
            Rotation::Lost(Some(current)) => self.reuse(refresh_token, *current, now).await,
            Rotation::Lost(None) => Err(TokenError::InvalidGrant("unknown refresh token")),
        }
    }

    /// A token that was already exchanged: the same pair again within the grace window while
    /// its successor is unused, else the family dies.
    async fn reuse(
        &self,
        refresh_token: &str,
        record: RefreshRecord,
        now: u64,
    ) -> Result<IssuedTokens, TokenError> {
        let grace = self.policy.refresh_reuse_grace;
        let within_grace =
            grace > 0 && record.used_at.is_some_and(|used_at| now <= used_at + grace);
        if within_grace {
            if let Some(response) = self.replay(refresh_token, &record).await? {
                tracing::info!(client_id = %record.client_id, "refresh retried within the grace window");
                return Ok(response);
            }
        }
        self.store
            .revoke_family(&record.family_id, record.expires_at)
            .await?;
        tracing::warn!(client_id = %record.client_id, "refresh token reused; family revoked");
        Err(TokenError::InvalidGrant(
            "the refresh token was already used; its family is revoked",
        ))
    }

    async fn replay(
        &self,
        refresh_token: &str,
        record: &RefreshRecord,
    ) -> Result<Option<IssuedTokens>, TokenError> {
        let (Some(sealed), Some(successor_id)) = (&record.sealed_successor, &record.successor_id)
        else {
            return Ok(None);
        };
        let successor_unused = self
            .store
            .refresh(successor_id)
            .await?
            .is_some_and(|s| s.used_at.is_none());
        if !successor_unused {
            return Ok(None);
        }
        let Ok(plaintext) = tokens::open(refresh_token, &record.id, sealed) else {
            return Ok(None);
        };
        let plaintext = zeroize::Zeroizing::new(plaintext);
        Ok(serde_json::from_slice(&plaintext).ok())
    }
}
