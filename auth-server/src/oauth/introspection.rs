//! RFC 7662 introspection: what this server knows about a token it issued, for the
//! authenticated clients (resource servers) that ask.
//!
//! A token is active only while everything it speaks for still stands: not expired or revoked,
//! its client still registered (the same registration, for a refresh token), its user still
//! there and enabled, and issued after the last change that ended their sessions. Following
//! RFC 7662 §4, a client learns about the tokens issued to itself, and a client registered to
//! introspect (`client add --introspect`) about any token; every other answer is exactly
//! `{"active": false}`, the same as for a token that does not exist.

use oauth2_jwt_verifier::{AccessClaims, Audience};

use super::client_auth::Client;
use super::{scope, Authority, TokenError};
use crate::store::{GrantType, RefreshContext};
use crate::tokens;

/// The fields of RFC 7662 §2.2 for an active token.
#[derive(Debug, Default)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub token_type: Option<&'static str>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    pub sub: Option<String>,
    pub aud: Option<Audience>,
    pub iss: Option<String>,
    pub jti: Option<String>,
}

/// May `caller` learn about a token issued to `client_id` (RFC 7662 §4)?
fn may_see(caller: &Client, client_id: &str) -> bool {
    caller.id() == client_id || caller.record().is_some_and(|record| record.introspect)
}

impl Authority {
    /// Inactive, with no other field, for expired, revoked, foreign or malformed tokens, and
    /// for tokens the caller may not learn about.
    pub(super) async fn introspect_for(
        &self,
        caller: &Client,
        token: &str,
        hint: Option<&str>,
        now: u64,
    ) -> Result<Introspection, TokenError> {
        if hint == Some("refresh_token") {
            if let Some(found) = self.introspect_refresh(caller, token, now).await? {
                return Ok(found);
            }
        }
        if let Some(claims) = self.tokens.decode_own(token, now) {
            return self.introspect_access(caller, claims, now).await;
        }
        if hint != Some("refresh_token") {
            if let Some(found) = self.introspect_refresh(caller, token, now).await? {
                return Ok(found);
            }
        }
        Ok(Introspection::default())
    }

    async fn introspect_access(
        &self,
        caller: &Client,
        claims: AccessClaims,
        now: u64,
    ) -> Result<Introspection, TokenError> {
        if !may_see(caller, &claims.client_id)
            || claims.exp <= now
            || self.store.access_token_revoked(&claims.jti, now).await?
            || self
                .current_client(&claims.client_id)
                .await?
                .is_none_or(|client| claims.iat < client.not_before())
        {
            return Ok(Introspection::default());
        }
        // A user's token: the user must still exist, be enabled, and not have had its
        // sessions ended since the token was issued.
        if claims.preferred_username.is_some() {
            let user_stands = self
                .store
                .user(&claims.sub)
                .await?
                .is_some_and(|user| !user.disabled && claims.iat >= user.not_before);
            if !user_stands {
                return Ok(Introspection::default());
            }
        }
        Ok(Introspection {
            active: true,
            scope: Some(claims.scope.to_string()),
            client_id: Some(claims.client_id),
            username: claims.preferred_username,
            token_type: Some("Bearer"),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            jti: Some(claims.jti),
        })
    }

    async fn introspect_refresh(
        &self,
        caller: &Client,
        token: &str,
        now: u64,
    ) -> Result<Option<Introspection>, TokenError> {
        let Some(RefreshContext {
            record,
            family_revoked,
            user,
        }) = self
            .store
            .refresh_context(&tokens::refresh_token_id(token))
            .await?
        else {
            return Ok(None);
        };
        let inactive = Ok(Some(Introspection::default()));
        if !may_see(caller, &record.client_id)
            || record.used_at.is_some()
            || now >= record.expires_at
            || family_revoked
        {
            return inactive;
        }
        let Some(user) = user.filter(|user| !user.disabled && user.stamp == record.user_stamp)
        else {
            return inactive;
        };
        // Active only while it would refresh: the same registration of its client, which may
        // still use the grant; the scope is what the next refresh would grant.
        let Some(client) = self
            .current_client(&record.client_id)
            .await?
            .filter(|client| {
                client.stamp() == record.client_stamp && client.may_use(GrantType::RefreshToken)
            })
        else {
            return inactive;
        };
        let scope = scope::intersect(&record.scope, &scope::of_user(&user, &client));
        Ok(Some(Introspection {
            active: true,
            scope: Some(scope.to_string()),
            client_id: Some(record.client_id),
            username: Some(record.username.clone()),
            token_type: Some("refresh_token"),
            exp: Some(record.expires_at),
            iat: Some(record.issued_at),
            sub: Some(record.username),
            aud: Some(Audience::One(record.audience)),
            iss: Some(self.tokens.issuer().to_owned()),
            jti: None,
        }))
    }
}
