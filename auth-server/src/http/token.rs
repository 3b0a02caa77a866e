//! `POST /token` (RFC 6749 §3.2): reads the form and client credentials, runs the grant.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use shared::wire::TokenResponse;
use zeroize::{Zeroize, Zeroizing};

use super::error::{ErrorReply, NO_STORE};
use super::AppState;
use crate::grants::{self, GrantType, TokenError};
use crate::throttle;

/// The token request, form-encoded as RFC 6749 §4.3.2, §4.4.2 and §6 define it.
#[derive(Object, Deserialize)]
pub struct TokenForm {
    /// `password`, `client_credentials` or `refresh_token`.
    pub grant_type: String,
    /// Password grant.
    pub username: Option<String>,
    /// Password grant.
    #[oai(write_only)]
    pub password: Option<String>,
    /// Space-delimited; empty means the default scope.
    pub scope: Option<String>,
    /// Refresh grant.
    #[oai(write_only)]
    pub refresh_token: Option<String>,
    /// `client_secret_post`, or a public client naming itself.
    pub client_id: Option<String>,
    /// `client_secret_post`.
    #[oai(write_only)]
    pub client_secret: Option<String>,
    /// The audience wanted (RFC 8707); one of the client's allowed audiences.
    pub resource: Option<String>,
}

/// The password, the refresh token and the client secret are wiped from memory when the form
/// is dropped, whichever way the request ends.
impl Drop for TokenForm {
    fn drop(&mut self) {
        self.password.zeroize();
        self.refresh_token.zeroize();
        self.client_secret.zeroize();
    }
}

#[derive(ApiResponse)]
pub enum TokenReply {
    /// Tokens issued (RFC 6749 §5.1).
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

pub struct TokenApi(pub Arc<AppState>);

#[OpenApi]
impl TokenApi {
    /// Issue tokens
    ///
    /// Password, client_credentials and refresh_token grants. Clients authenticate with HTTP
    /// Basic (`client_secret_basic`) or with `client_id` and `client_secret` in the form.
    #[oai(path = "/token", method = "post")]
    async fn token(&self, req: &Request, form: Form<TokenForm>) -> Result<TokenReply, ErrorReply> {
        let grant_type = form.0.grant_type.clone();
        let grant = GrantType::parse(&grant_type);
        let label = grant.map_or("other", GrantType::as_str);
        let metrics = &self.0.metrics;
        match self.issue(req, form.0).await {
            Ok(response) => {
                metrics.tokens_issued.with_label_values(&[label]).inc();
                Ok(TokenReply::Ok(
                    Json(response),
                    NO_STORE.to_owned(),
                    "no-cache".to_owned(),
                ))
            }
            Err(err) => {
                metrics
                    .token_errors
                    .with_label_values(&[label, &err.to_string()])
                    .inc();
                match &err {
                    TokenError::InvalidGrant(_) if grant == Some(GrantType::Password) => {
                        metrics.login_failures.inc()
                    }
                    TokenError::TemporarilyUnavailable { .. } => metrics.store_errors.inc(),
                    TokenError::Throttled { .. } => metrics.throttled.inc(),
                    _ => {}
                }
                Err(err.into())
            }
        }
    }
}

impl TokenApi {
    async fn issue(&self, req: &Request, mut form: TokenForm) -> Result<TokenResponse, TokenError> {
        let state = &self.0;
        let grants = &state.grants;
        let Some(grant) = GrantType::parse(&form.grant_type) else {
            return Err(if form.grant_type.is_empty() {
                TokenError::InvalidRequest("grant_type is required")
            } else {
                TokenError::UnsupportedGrantType
            });
        };
        let client = state
            .client(
                req,
                form.client_id.as_deref(),
                form.client_secret.as_deref(),
            )
            .await?;
        let scope = grants::requested_scope(form.scope.as_deref())?;
        let now = grants::now();
        match grant {
            GrantType::Password => {
                let password =
                    Zeroizing::new(std::mem::take(&mut form.password).unwrap_or_default());
                let username = std::mem::take(&mut form.username).unwrap_or_default();
                let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
                // Every field line, in order: a proxy may add its own line after the client's.
                let forwarded_for = throttle::forwarded_for_list(
                    req.headers()
                        .get_all("x-forwarded-for")
                        .iter()
                        .map(|line| line.to_str().ok()),
                );
                let address = throttle::client_address(
                    peer,
                    forwarded_for.as_deref(),
                    &state.settings.trusted_proxies,
                );
                grants
                    .password(
                        &client,
                        &username,
                        password,
                        scope,
                        form.resource.as_deref(),
                        address,
                        now,
                    )
                    .await
            }
            GrantType::ClientCredentials => {
                grants
                    .client_credentials(&client, scope, form.resource.as_deref(), now)
                    .await
            }
            GrantType::RefreshToken => {
                let refresh_token =
                    Zeroizing::new(std::mem::take(&mut form.refresh_token).unwrap_or_default());
                grants.refresh(&client, &refresh_token, scope, now).await
            }
        }
    }
}
