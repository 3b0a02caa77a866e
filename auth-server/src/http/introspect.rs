//! `POST /introspect` (RFC 7662), for authenticated clients only.

use std::sync::Arc;

use oauth2_jwt_verifier::Audience;
use poem::Request;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::{ClientErrorReply, NO_STORE};
use super::revoke::TokenParams;
use super::AppState;
use crate::oauth::Introspection;

/// RFC 7662 §2.2. Only `active` is present for an inactive token.
#[derive(Object, Debug)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<u64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<u64>,
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// A string or an array of strings.
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<serde_json::Value>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
}

impl From<Introspection> for IntrospectionResponse {
    fn from(found: Introspection) -> Self {
        Self {
            active: found.active,
            scope: found.scope,
            client_id: found.client_id,
            username: found.username,
            token_type: found.token_type.map(str::to_owned),
            exp: found.exp,
            iat: found.iat,
            sub: found.sub,
            aud: found.aud.map(|aud| match aud {
                Audience::One(one) => serde_json::Value::String(one),
                Audience::Many(many) => many.into_iter().map(serde_json::Value::String).collect(),
            }),
            iss: found.iss,
            jti: found.jti,
        }
    }
}

#[derive(ApiResponse)]
pub enum IntrospectReply {
    /// What the server knows of the token.
    #[oai(status = 200)]
    Ok(
        Json<IntrospectionResponse>,
        #[oai(header = "Cache-Control")] String,
    ),
}

pub struct IntrospectApi(pub Arc<AppState>);

#[OpenApi]
impl IntrospectApi {
    /// Introspect a token
    ///
    /// For registered clients, authenticated with HTTP Basic or the form. Expired, revoked,
    /// foreign and malformed tokens are all `{"active": false}`.
    #[oai(path = "/introspect", method = "post")]
    async fn introspect(
        &self,
        req: &Request,
        form: Form<TokenParams>,
    ) -> Result<IntrospectReply, ClientErrorReply> {
        let state = &self.0;
        let credentials = form.credentials(req)?;
        // Absent is a 400 from the form's schema; empty is a token that matches nothing.
        let found = state
            .authority
            .introspect(
                credentials,
                form.token.as_str(),
                form.token_type_hint.as_deref(),
                state.clock.now(),
            )
            .await?;
        Ok(IntrospectReply::Ok(Json(found.into()), NO_STORE.to_owned()))
    }
}
