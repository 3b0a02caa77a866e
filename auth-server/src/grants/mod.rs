//! The decisions of the token endpoint, one module per grant. Nothing here sees an HTTP type:
//! `http::token` parses the request, calls a grant and turns the result or error into a response.

pub mod client_credentials;
pub mod password;
pub mod refresh;

use std::sync::Arc;

use shared::wire::TokenResponse;
use shared::Scope;

pub use crate::error::TokenError;
pub use crate::store::GrantType;

use crate::client_auth::Client;
use crate::passwords::Passwords;
use crate::store::{Store, UserRecord};
use crate::tokens::TokenIssuer;

/// Limits that apply to every grant.
#[derive(Clone, Debug)]
pub struct Policy {
    pub refresh_ttl: u64,
    /// Seconds during which a retried refresh gets its pair back; 0 turns it off.
    pub refresh_reuse_grace: u64,
    pub default_audience: String,
    pub password_grant_without_client: bool,
    pub throttle: crate::throttle::ThrottlePolicy,
}

/// Everything the grants need, shared by all requests.
pub struct Grants {
    pub store: Arc<dyn Store>,
    pub passwords: Arc<Passwords>,
    pub tokens: Arc<TokenIssuer>,
    pub policy: Policy,
}

/// Parses an optional requested scope; an empty one counts as none (Swagger UI sends `scope=`).
pub fn requested_scope(scope: Option<&str>) -> Result<Option<Scope>, TokenError> {
    match scope.map(Scope::parse) {
        None => Ok(None),
        Some(Ok(scope)) if scope.is_empty() => Ok(None),
        Some(Ok(scope)) => Ok(Some(scope)),
        Some(Err(_)) => Err(TokenError::InvalidScope),
    }
}

/// The scope to grant: the requested one if within `allowed`, else `allowed` itself.
fn grant_scope(requested: Option<Scope>, allowed: &Scope) -> Result<Scope, TokenError> {
    match requested {
        Some(scope) if scope.is_subset_of(allowed) => Ok(scope),
        Some(_) => Err(TokenError::InvalidScope),
        None => Ok(allowed.clone()),
    }
}

/// The scope tokens of `a` that are also in `b`.
pub(crate) fn intersect(a: &Scope, b: &Scope) -> Scope {
    Scope::from_tokens(a.iter().filter(|t| b.contains(t)))
}

/// What a user may be granted through a client now: the user's scopes, narrowed by the
/// client's own unless it is the default public client.
pub(crate) fn user_scope(user: &UserRecord, client: &Client) -> Scope {
    match client.scopes() {
        Some(client_scopes) => intersect(&user.scopes, client_scopes),
        None => user.scopes.clone(),
    }
}

/// The `iat` of a token minted at `now` for `user` through `client`: never before either's
/// cut-off. A change sets its cut-off one second past the second it was made in, so that a
/// token minted earlier in that second falls below it; a token minted after the change within
/// that same second waits for the cut-off's second to begin (at most a second, and only just
/// after a change to that user or client) rather than carry an `iat` in the future, which many
/// verifiers refuse. A cut-off further ahead, from a clock that runs ahead of this one, is taken
/// as `iat` without waiting.
async fn issued_at(now: u64, user: Option<&UserRecord>, client: &Client) -> u64 {
    let cut_off = user
        .map_or(0, |user| user.not_before)
        .max(client.not_before());
    if cut_off == now.saturating_add(1) {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let wait = std::time::Duration::from_secs(cut_off).saturating_sub(since_epoch);
        tokio::time::sleep(wait.min(std::time::Duration::from_secs(1))).await;
    }
    now.max(cut_off)
}

/// The default public client exists only while the password grant may be used without
/// client authentication; otherwise a request that names no client is unauthenticated.
fn check_default_public(client: &Client, policy: &Policy) -> Result<(), TokenError> {
    match client {
        Client::DefaultPublic if !policy.password_grant_without_client => {
            Err(TokenError::InvalidClient)
        }
        _ => Ok(()),
    }
}

impl Grants {
    /// The audience: one the client asked for (RFC 8707 `resource`) among those it may have,
    /// else its first allowed one. A client with no audiences of its own may have the default.
    fn audience(&self, client: &Client, requested: Option<&str>) -> Result<String, TokenError> {
        let allowed = match client.record() {
            Some(record) if !record.audiences.is_empty() => record.audiences.as_slice(),
            _ => std::slice::from_ref(&self.policy.default_audience),
        };
        match requested.filter(|r| !r.is_empty()) {
            Some(resource) => allowed
                .iter()
                .find(|a| *a == resource)
                .cloned()
                .ok_or(TokenError::InvalidTarget),
            None => allowed.first().cloned().ok_or(TokenError::InvalidTarget),
        }
    }

    fn response(
        &self,
        access_token: String,
        refresh_token: Option<String>,
        scope: &Scope,
    ) -> TokenResponse {
        TokenResponse {
            access_token,
            token_type: "Bearer".to_owned(),
            expires_in: self.tokens.access_ttl(),
            refresh_token,
            scope: scope.to_string(),
        }
    }
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_scope_counts_as_none_as_swagger_ui_sends_it() {
        assert!(requested_scope(Some("")).unwrap().is_none());
        assert!(requested_scope(None).unwrap().is_none());
        assert!(matches!(
            requested_scope(Some("a\"b")),
            Err(TokenError::InvalidScope)
        ));
    }

    #[test]
    fn requested_scope_must_lie_within_the_allowed_rfc6749_3_3() {
        let allowed = Scope::parse("read write").unwrap();
        assert_eq!(
            grant_scope(Scope::parse("read").ok(), &allowed)
                .unwrap()
                .to_string(),
            "read"
        );
        assert_eq!(grant_scope(None, &allowed).unwrap(), allowed);
        assert!(matches!(
            grant_scope(Scope::parse("admin").ok(), &allowed),
            Err(TokenError::InvalidScope)
        ));
    }
}
