//! RFC 7662 introspection: what this server knows about a token it issued, for the
//! authenticated clients (resource servers) that ask.

use shared::{AccessClaims, Audience};

use crate::grants::{Grants, TokenError};
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

impl Grants {
    /// Inactive, with no other field, for expired, revoked, foreign or malformed tokens.
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<&str>,
        now: u64,
    ) -> Result<Introspection, TokenError> {
        if hint == Some("refresh_token") {
            if let Some(found) = self.introspect_refresh(token, now).await? {
                return Ok(found);
            }
        }
        if let Some(claims) = self.tokens.decode_own(token) {
            return self.introspect_access(claims, now).await;
        }
        if hint != Some("refresh_token") {
            if let Some(found) = self.introspect_refresh(token, now).await? {
                return Ok(found);
            }
        }
        Ok(Introspection::default())
    }

    async fn introspect_access(
        &self,
        claims: AccessClaims,
        now: u64,
    ) -> Result<Introspection, TokenError> {
        if claims.exp <= now || self.store.access_token_revoked(&claims.jti, now).await? {
            return Ok(Introspection::default());
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
        token: &str,
        now: u64,
    ) -> Result<Option<Introspection>, TokenError> {
        let Some(record) = self.store.refresh(&tokens::refresh_token_id(token)).await? else {
            return Ok(None);
        };
        let active = record.used_at.is_none()
            && now < record.expires_at
            && !self.store.family_revoked(&record.family_id).await?;
        if !active {
            return Ok(Some(Introspection::default()));
        }
        Ok(Some(Introspection {
            active: true,
            scope: Some(record.scope.to_string()),
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
