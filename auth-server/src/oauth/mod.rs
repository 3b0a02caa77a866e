//! The OAuth decisions, with no HTTP in sight: who the client is, whether a login may be tried,
//! what a grant issues, what introspection says and what revocation ends.
//!
//! [`Authority`] is the one door. `http/` parses a request into [`Credentials`], a
//! [`TokenRequest`] or a token to look at, reads the client's address and the time, calls one
//! operation and renders what comes back; outside its tests nothing here names poem, hyper or
//! a store backend, so every rule can be read (and tested) apart from the wire and the storage.
//! The operations take the time as an argument: `http/` reads it from a [`Clock`] that a test
//! can move forward.
//!
//! This file holds the `Authority` and the helpers its operations share; the operations live in
//! `grants/`, `introspection` and `revocation`, which use those helpers and the floors below,
//! top to bottom: `scope`; `client_auth` and `throttle`; `request`, `clock` and `metrics`;
//! `error`, which names nothing above it. (`.ci/layers` counts `oauth/` as one room; these
//! inner floors are kept by review.)

pub mod client_auth;
pub mod client_cache;
pub mod clock;
pub mod error;
pub mod grants;
pub mod introspection;
pub mod metrics;
pub mod request;
pub mod revocation;
pub mod scope;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use client_auth::{Client, Credentials};
pub use client_cache::ClientCache;
pub use clock::Clock;
pub use error::TokenError;
pub use introspection::Introspection;
pub use metrics::Recorder;
pub use request::{IssuedTokens, TokenRequest};

use crate::passwords::Passwords;
use crate::store::{GrantType, Store};
use crate::tokens::TokenIssuer;

/// Limits that apply to every grant.
#[derive(Clone, Debug)]
pub struct Policy {
    pub refresh_ttl: u64,
    /// Seconds during which a retried refresh gets its pair back; 0 turns it off.
    pub refresh_reuse_grace: u64,
    pub default_audience: String,
    pub password_grant_without_client: bool,
    pub throttle: throttle::ThrottlePolicy,
}

/// What decides: the store, the password workers, the token issuer, the policy and the key of
/// the client-secret hash, shared by every request.
pub struct Authority {
    store: Arc<dyn Store>,
    passwords: Arc<Passwords>,
    tokens: Arc<TokenIssuer>,
    policy: Policy,
    /// Key of the keyed hash over client secrets.
    client_secret_key: Zeroizing<Vec<u8>>,
    recorder: Arc<dyn Recorder>,
    /// The registered clients held in memory (see `client_cache`); holds nothing when off.
    clients: Arc<ClientCache>,
}

impl Authority {
    pub fn new(
        store: Arc<dyn Store>,
        passwords: Arc<Passwords>,
        tokens: Arc<TokenIssuer>,
        policy: Policy,
        client_secret_key: Zeroizing<Vec<u8>>,
        recorder: Arc<dyn Recorder>,
    ) -> Self {
        Self {
            store,
            passwords,
            tokens,
            policy,
            client_secret_key,
            recorder,
            clients: Arc::new(ClientCache::new(std::time::Duration::ZERO)),
        }
    }

    /// Looks clients up in `clients` first (see `client_cache`); its owner reloads it.
    pub fn with_client_cache(mut self, clients: Arc<ClientCache>) -> Self {
        self.clients = clients;
        self
    }

    /// RFC 6749 §3.2: authenticates the client, then runs the grant `request` names. Errors come
    /// in this order: client authentication, then the request's fields, then the grant's own.
    /// Each answer is counted through the [`Recorder`].
    pub async fn token(
        &self,
        credentials: Credentials,
        request: TokenRequest,
        address: Option<IpAddr>,
        now: u64,
    ) -> Result<IssuedTokens, TokenError> {
        let grant = request.grant_type();
        let issued = self.grant(credentials, request, address, now).await;
        match &issued {
            Ok(_) => self.recorder.issued(grant),
            Err(err) => self.recorder.refused(Some(grant), err),
        }
        issued
    }

    /// A token request whose `grant_type` is missing or unknown, answered before anything else
    /// is looked at (RFC 6749 §5.2), and counted like every other refusal.
    pub fn unsupported_grant(&self, grant_type: &str) -> TokenError {
        let err = if grant_type.is_empty() {
            TokenError::InvalidRequest("grant_type is required")
        } else {
            TokenError::UnsupportedGrantType
        };
        self.recorder.refused(None, &err);
        err
    }

    /// A token request refused before it reached the core (its client credentials could not be
    /// read), counted like every other refusal.
    pub fn refuse(&self, grant: GrantType, err: TokenError) -> TokenError {
        self.recorder.refused(Some(grant), &err);
        err
    }

    async fn grant(
        &self,
        credentials: Credentials,
        request: TokenRequest,
        address: Option<IpAddr>,
        now: u64,
    ) -> Result<IssuedTokens, TokenError> {
        let client = self.authenticate(credentials, now).await?;
        match request {
            TokenRequest::Password {
                username,
                password,
                scope,
                resource,
            } => {
                let scope = scope::requested(scope.as_deref())?;
                self.password(
                    &client,
                    grants::password::PasswordRequest {
                        username: &username,
                        password,
                        scope,
                        resource: resource.as_deref(),
                        address,
                        now,
                    },
                )
                .await
            }
            TokenRequest::ClientCredentials { scope, resource } => {
                let scope = scope::requested(scope.as_deref())?;
                self.client_credentials(&client, scope, resource.as_deref(), now)
                    .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                let scope = scope::requested(scope.as_deref())?;
                self.refresh(&client, &refresh_token, scope, now).await
            }
        }
    }

    /// RFC 7662: for confidential clients only. See [`introspection`].
    pub async fn introspect(
        &self,
        credentials: Credentials,
        token: &str,
        hint: Option<&str>,
        now: u64,
    ) -> Result<Introspection, TokenError> {
        let caller = self.authenticate(credentials, now).await?;
        if !matches!(caller, Client::Confidential(_)) {
            return Err(TokenError::InvalidClient);
        }
        self.introspect_for(&caller, token, hint, now).await
    }

    /// RFC 7009: a client ends a token issued to itself. See [`revocation`].
    pub async fn revoke(
        &self,
        credentials: Credentials,
        token: &str,
        hint: Option<&str>,
        now: u64,
    ) -> Result<(), TokenError> {
        let client = self.authenticate(credentials, now).await?;
        self.revoke_for(&client, token, hint, now).await
    }

    /// The client the credentials establish at `now` (see [`client_auth::authenticate`]).
    async fn authenticate(&self, credentials: Credentials, now: u64) -> Result<Client, TokenError> {
        client_auth::authenticate(
            self.store.as_ref(),
            &self.clients,
            &self.client_secret_key,
            credentials,
            now,
        )
        .await
    }

    /// The client that `client_id` names as it stands now: `None` when it is not registered
    /// (or is the default public client while that is turned off).
    async fn current_client(&self, client_id: &str) -> Result<Option<Client>, TokenError> {
        if client_id == client_auth::PUBLIC_CLIENT_ID {
            return Ok(self
                .policy
                .password_grant_without_client
                .then_some(Client::DefaultPublic));
        }
        Ok(self.store.client(client_id).await?.map(Client::registered))
    }

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

    /// The default public client exists only while the password grant may be used without
    /// client authentication; otherwise a request that names no client is unauthenticated.
    fn check_default_public(&self, client: &Client) -> Result<(), TokenError> {
        match client {
            Client::DefaultPublic if !self.policy.password_grant_without_client => {
                Err(TokenError::InvalidClient)
            }
            _ => Ok(()),
        }
    }

    fn issued(
        &self,
        access_token: String,
        refresh_token: Option<String>,
        scope: &oauth2_jwt_verifier::Scope,
    ) -> IssuedTokens {
        IssuedTokens::new(
            access_token,
            self.tokens.access_ttl(),
            refresh_token,
            scope.to_string(),
        )
    }
}

/// Whether `client` may use `grant`, as a refusal.
fn require_grant(client: &Client, grant: GrantType) -> Result<(), TokenError> {
    if client.may_use(grant) {
        Ok(())
    } else {
        Err(TokenError::UnauthorizedClient)
    }
}

#[cfg(test)]
mod tests;
