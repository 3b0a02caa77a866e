//! `GET /users/me`: the profile carried by a user's access token.

use oauth2_jwt_verifier::poem::{BearerError, BearerRefusal};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::UserToken;

/// The user the token was issued to, as the tutorial's `/users/me` returns it.
#[derive(Object, Debug)]
pub struct Me {
    pub username: String,
    #[oai(skip_serializing_if_is_none)]
    pub full_name: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// The scope granted to the token, space-delimited.
    pub scope: String,
}

#[derive(ApiResponse)]
pub enum MeReply {
    #[oai(status = 200)]
    Ok(Json<Me>),
}

pub struct UsersApi;

#[OpenApi]
impl UsersApi {
    /// The current user
    ///
    /// Needs a token issued to a user (password or refresh grant); a client's own token
    /// (client_credentials) is refused with 403 `insufficient_scope`.
    #[oai(path = "/users/me", method = "get")]
    async fn me(&self, token: UserToken) -> Result<MeReply, BearerRefusal> {
        let claims = token.0;
        let username = claims.preferred_username.ok_or(BearerError::NotAUser)?;
        Ok(MeReply::Ok(Json(Me {
            username,
            full_name: claims.name,
            email: claims.email,
            scope: claims.scope.to_string(),
        })))
    }
}
