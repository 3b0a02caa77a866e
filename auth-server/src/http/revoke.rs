//! `POST /revoke` (RFC 7009).

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::{Form, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use zeroize::Zeroize;

use super::error::{ClientErrorReply, NO_STORE};
use super::AppState;
use crate::oauth::{Credentials, TokenError};

/// A token and the client asking about it: the form of RFC 7009 §2.1 and RFC 7662 §2.1.
#[derive(Object, Deserialize)]
pub struct TokenParams {
    #[oai(write_only)]
    pub token: String,
    /// `access_token` or `refresh_token`.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    #[oai(write_only)]
    pub client_secret: Option<String>,
}

/// The token and the secret are wiped from memory when the form is dropped, whichever way the
/// request ends.
impl Drop for TokenParams {
    fn drop(&mut self) {
        self.token.zeroize();
        self.client_secret.zeroize();
    }
}

impl TokenParams {
    /// The client credentials of the request, in its Basic header or in these fields.
    pub fn credentials(&self, req: &Request) -> Result<Credentials, TokenError> {
        super::client_credentials(
            req,
            self.client_id.as_deref(),
            self.client_secret.as_deref(),
        )
    }
}

#[derive(ApiResponse)]
pub enum RevokeReply {
    /// Revoked, or unknown (RFC 7009 §2.2): the answer is the same.
    #[oai(status = 200)]
    Ok(PlainText<String>, #[oai(header = "Cache-Control")] String),
}

pub struct RevokeApi(pub Arc<AppState>);

#[OpenApi]
impl RevokeApi {
    /// Revoke a token
    ///
    /// A refresh token ends its whole family; an access token is recorded as revoked until it
    /// expires (introspection reports it inactive) and listed in the revocation feed
    /// (`/revocations`), which resource servers that verify locally poll. Confidential clients
    /// authenticate as at `/token`.
    #[oai(path = "/revoke", method = "post")]
    async fn revoke(
        &self,
        req: &Request,
        form: Form<TokenParams>,
    ) -> Result<RevokeReply, ClientErrorReply> {
        let state = &self.0;
        let credentials = form.credentials(req)?;
        // Absent is a 400 from the form's schema; empty is a token that matches nothing.
        state
            .authority
            .revoke(
                credentials,
                form.token.as_str(),
                form.token_type_hint.as_deref(),
                state.clock.now(),
            )
            .await?;
        Ok(RevokeReply::Ok(
            PlainText(String::new()),
            NO_STORE.to_owned(),
        ))
    }
}
