//! `POST /token` (RFC 6749 §3.2): reads the form and client credentials, runs the grant.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;
use server_plumbing::wire::TokenResponse;
use zeroize::{Zeroize, Zeroizing};

use super::error::{ErrorReply, NO_STORE};
use super::AppState;
use crate::oauth::TokenRequest;
use crate::store::GrantType;

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

impl TokenForm {
    /// The request of `grant`, its fields moved out of the form (the secrets into `Zeroizing`).
    fn into_request(mut self, grant: GrantType) -> TokenRequest {
        let scope = self.scope.take();
        match grant {
            GrantType::Password => TokenRequest::Password {
                username: self.username.take().unwrap_or_default(),
                password: Zeroizing::new(self.password.take().unwrap_or_default()),
                scope,
                resource: self.resource.take(),
            },
            GrantType::ClientCredentials => TokenRequest::ClientCredentials {
                scope,
                resource: self.resource.take(),
            },
            GrantType::RefreshToken => TokenRequest::RefreshToken {
                refresh_token: Zeroizing::new(self.refresh_token.take().unwrap_or_default()),
                scope,
            },
        }
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
        let state = &self.0;
        let form = form.0;
        // The grant type is checked first, then (in the core) the client, then the fields: the
        // order in which errors are answered.
        let Some(grant) = GrantType::parse(&form.grant_type) else {
            return Err(state.authority.unsupported_grant(&form.grant_type).into());
        };
        let credentials = super::client_credentials(
            req,
            form.client_id.as_deref(),
            form.client_secret.as_deref(),
        );
        let credentials = match credentials {
            Ok(credentials) => credentials,
            Err(err) => return Err(state.authority.refuse(grant, err).into()),
        };
        let address = super::address::of_request(req, &state.settings.trusted_proxies);
        let issued = state
            .authority
            .token(
                credentials,
                form.into_request(grant),
                address,
                state.clock.now(),
            )
            .await?;
        Ok(TokenReply::Ok(
            Json(TokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
                refresh_token: issued.refresh_token,
                scope: issued.scope,
            }),
            NO_STORE.to_owned(),
            "no-cache".to_owned(),
        ))
    }
}
