//! `POST /token` (RFC 6749 §3.2): reads the form and client credentials, runs the grant.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use shared::wire::TokenResponse;
use shared::Scope;
use zeroize::{Zeroize, Zeroizing};

use super::error::{ErrorReply, NO_STORE};
use super::AppState;
use crate::grants::password::PasswordRequest;
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

/// A token request as the grant it names, with only the fields that grant reads; made once
/// from the form. The secrets move out of the form into `Zeroizing`, so they are wiped on drop
/// whichever way the request ends, as the form's own fields are.
enum TokenRequest {
    /// RFC 6749 §4.3.2.
    Password {
        username: String,
        password: Zeroizing<String>,
        scope: Option<Scope>,
        resource: Option<String>,
    },
    /// RFC 6749 §4.4.2.
    ClientCredentials {
        scope: Option<Scope>,
        resource: Option<String>,
    },
    /// RFC 6749 §6.
    RefreshToken {
        refresh_token: Zeroizing<String>,
        scope: Option<Scope>,
    },
}

impl TokenRequest {
    /// The fields of `grant` taken from `form`. An absent username, password or refresh token
    /// is empty here and refused by its grant, after client authentication and the scope.
    fn new(grant: GrantType, form: &mut TokenForm) -> Result<Self, TokenError> {
        let scope = grants::requested_scope(form.scope.as_deref())?;
        Ok(match grant {
            GrantType::Password => TokenRequest::Password {
                username: std::mem::take(&mut form.username).unwrap_or_default(),
                password: Zeroizing::new(std::mem::take(&mut form.password).unwrap_or_default()),
                scope,
                resource: form.resource.take(),
            },
            GrantType::ClientCredentials => TokenRequest::ClientCredentials {
                scope,
                resource: form.resource.take(),
            },
            GrantType::RefreshToken => TokenRequest::RefreshToken {
                refresh_token: Zeroizing::new(
                    std::mem::take(&mut form.refresh_token).unwrap_or_default(),
                ),
                scope,
            },
        })
    }
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
        let grant = GrantType::parse(&form.0.grant_type);
        let label = grant.map_or("other", GrantType::as_str);
        let metrics = &self.0.metrics;
        match self.issue(req, grant, form.0).await {
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
    /// The grant type is checked first, then the client authenticated, then the request's
    /// fields (its scope) parsed, and one grant runs: the order in which errors are answered.
    async fn issue(
        &self,
        req: &Request,
        grant: Option<GrantType>,
        mut form: TokenForm,
    ) -> Result<TokenResponse, TokenError> {
        let state = &self.0;
        let grants = &state.grants;
        let Some(grant) = grant else {
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
        let request = TokenRequest::new(grant, &mut form)?;
        let now = grants::now();
        match request {
            TokenRequest::Password {
                username,
                password,
                scope,
                resource,
            } => {
                grants
                    .password(
                        &client,
                        PasswordRequest {
                            username: &username,
                            password,
                            scope,
                            resource: resource.as_deref(),
                            address: self.client_address(req),
                            now,
                        },
                    )
                    .await
            }
            TokenRequest::ClientCredentials { scope, resource } => {
                grants
                    .client_credentials(&client, scope, resource.as_deref(), now)
                    .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
            } => grants.refresh(&client, &refresh_token, scope, now).await,
        }
    }

    /// The client's network address, for the login throttle: the peer, or what trusted
    /// proxies say in `X-Forwarded-For`.
    fn client_address(&self, req: &Request) -> Option<std::net::IpAddr> {
        let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
        // Every field line, in order: a proxy may add its own line after the client's.
        let forwarded_for = throttle::forwarded_for_list(
            req.headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(|line| line.to_str().ok()),
        );
        throttle::client_address(
            peer,
            forwarded_for.as_deref(),
            &self.0.settings.trusted_proxies,
        )
    }
}
