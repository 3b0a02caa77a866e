//! poem glue: turning a bearer token into verified claims, and refusals into RFC 6750 answers.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::ApiResponse;

use crate::claims::AccessClaims;
use crate::verifier::{Verifier, VerifyError};

/// The JSON body of every refusal (RFC 6750 §3, in the RFC 6749 §5.2 error shape).
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, poem_openapi::Object,
)]
pub struct ErrorResponse {
    /// The error code: `invalid_request`, `invalid_token`, `insufficient_scope` or
    /// `temporarily_unavailable`.
    pub error: String,
    /// What went wrong, for a developer to read.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The realm named in every challenge.
const REALM: &str = "api";

/// Why a request to a protected resource is refused (RFC 6750 §3).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BearerError {
    /// No bearer token at all: a bare challenge, no error code (§3.1).
    #[error("a bearer token is required")]
    Missing,
    /// The Authorization header is there but is not a usable bearer credential.
    #[error("the Authorization header is malformed")]
    InvalidRequest,
    #[error("{0}")]
    Invalid(VerifyError),
    #[error("the token lacks the scope {needed}")]
    InsufficientScope { needed: String },
    /// No user stands behind the token (for example a client_credentials token on /users/me).
    #[error("this resource needs a token issued to a user")]
    NotAUser,
}

/// A missing scope is RFC 6750 §3.1 `insufficient_scope`.
impl From<crate::claims::MissingScope> for BearerError {
    fn from(missing: crate::claims::MissingScope) -> Self {
        Self::InsufficientScope {
            needed: missing.needed,
        }
    }
}

impl From<crate::claims::MissingScope> for BearerRefusal {
    fn from(missing: crate::claims::MissingScope) -> Self {
        Self::from(BearerError::from(missing))
    }
}

impl BearerError {
    /// The one `WWW-Authenticate` value for this refusal.
    pub fn challenge(&self) -> String {
        let quoted = |text: &str| text.replace(['"', '\\'], "");
        match self {
            Self::Missing => format!(r#"Bearer realm="{REALM}""#),
            Self::InvalidRequest => format!(
                r#"Bearer realm="{REALM}", error="invalid_request", error_description="{}""#,
                quoted(&self.to_string())
            ),
            Self::Invalid(VerifyError::KeysUnavailable | VerifyError::RevocationsUnavailable) => {
                format!(r#"Bearer realm="{REALM}""#)
            }
            Self::Invalid(err) => format!(
                r#"Bearer realm="{REALM}", error="invalid_token", error_description="{}""#,
                quoted(&err.to_string())
            ),
            Self::InsufficientScope { needed } => format!(
                r#"Bearer realm="{REALM}", error="insufficient_scope", error_description="{}", scope="{}""#,
                quoted(&self.to_string()),
                quoted(needed)
            ),
            Self::NotAUser => format!(
                r#"Bearer realm="{REALM}", error="insufficient_scope", error_description="{}""#,
                quoted(&self.to_string())
            ),
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            Self::InvalidRequest => Some("invalid_request"),
            Self::Invalid(VerifyError::KeysUnavailable | VerifyError::RevocationsUnavailable) => {
                Some("temporarily_unavailable")
            }
            Self::Invalid(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } | Self::NotAUser => Some("insufficient_scope"),
        }
    }

    /// For handlers that return `poem::Result`.
    pub fn into_poem(self) -> poem::Error {
        poem::Error::from(self)
    }
}

impl poem::error::ResponseError for BearerError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(VerifyError::KeysUnavailable | VerifyError::RevocationsUnavailable) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Missing | Self::Invalid(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } | Self::NotAUser => StatusCode::FORBIDDEN,
        }
    }

    fn as_response(&self) -> Response {
        let mut response = BearerRefusal::from(self.clone()).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The refusals of a protected route as the OpenAPI document shows them; handlers return
/// `Result<_, BearerRefusal>` so that the document lists them.
#[derive(ApiResponse, Debug)]
pub enum BearerRefusal {
    /// The Authorization header is malformed (RFC 6750 §3.1 `invalid_request`).
    #[oai(status = 400)]
    BadRequest(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// No token, or a bad, expired, revoked or foreign one (RFC 6750 §3.1 `invalid_token`).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The token lacks the scope, or no user stands behind it (`insufficient_scope`).
    #[oai(status = 403)]
    Forbidden(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The signing keys (or, failing closed, a current revocation list) could not be fetched;
    /// not the client's fault.
    #[oai(status = 503)]
    Unavailable(Json<ErrorResponse>, #[oai(header = "Retry-After")] u64),
}

impl From<BearerError> for BearerRefusal {
    fn from(err: BearerError) -> Self {
        let body = Json(ErrorResponse {
            error: err.code().unwrap_or("invalid_request").to_owned(),
            error_description: Some(err.to_string()),
        });
        let challenge = err.challenge();
        match err {
            BearerError::Invalid(
                VerifyError::KeysUnavailable | VerifyError::RevocationsUnavailable,
            ) => Self::Unavailable(body, 5),
            BearerError::InvalidRequest => Self::BadRequest(body, challenge),
            BearerError::Missing | BearerError::Invalid(_) => Self::Unauthorized(body, challenge),
            BearerError::InsufficientScope { .. } | BearerError::NotAUser => {
                Self::Forbidden(body, challenge)
            }
        }
    }
}

/// A poem-openapi security scheme checker: verifies the bearer token with the [`Verifier`]
/// found in the request data and hands the handler its claims.
///
/// ```ignore
/// #[derive(SecurityScheme)]
/// #[oai(ty = "bearer", checker = "oauth2_jwt_verifier::poem::check_bearer")]
/// struct Token(oauth2_jwt_verifier::AccessClaims);
/// ```
pub async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AccessClaims> {
    let verifier = req.data::<Verifier>().ok_or_else(|| {
        poem::Error::from_string(
            "verifier missing from request data",
            StatusCode::INTERNAL_SERVER_ERROR,
        )
    })?;
    verifier
        .verify(&bearer.token)
        .await
        .map_err(|err| BearerError::Invalid(err).into())
}

/// Gives poem-openapi's own rejection of a missing or unparsable `Authorization` header the
/// RFC 6750 §3 challenge it lacks.
#[derive(Clone, Copy, Debug, Default)]
pub struct BearerChallenge;

impl<E: Endpoint> Middleware<E> for BearerChallenge {
    type Output = BearerChallengeEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BearerChallengeEndpoint { inner: ep }
    }
}

pub struct BearerChallengeEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for BearerChallengeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let has_authorization = req.headers().contains_key(header::AUTHORIZATION);
        match self.inner.call(req).await {
            Ok(output) => Ok(output.into_response()),
            Err(err) if err.is::<poem_openapi::error::AuthorizationError>() => {
                let refusal = if has_authorization {
                    BearerError::InvalidRequest
                } else {
                    BearerError::Missing
                };
                Err(refusal.into())
            }
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc6750_3() {
        assert_eq!(BearerError::Missing.challenge(), r#"Bearer realm="api""#);
        let invalid = BearerError::Invalid(VerifyError::Expired).challenge();
        assert!(invalid.contains(r#"error="invalid_token""#), "{invalid}");
        let revoked = BearerError::Invalid(VerifyError::Revoked);
        assert!(revoked.challenge().contains(r#"error="invalid_token""#));
        assert_eq!(
            poem::error::ResponseError::status(&revoked),
            StatusCode::UNAUTHORIZED
        );
        let unknown = BearerError::Invalid(VerifyError::RevocationsUnavailable);
        assert_eq!(unknown.challenge(), r#"Bearer realm="api""#);
        assert_eq!(unknown.code(), Some("temporarily_unavailable"));
        assert_eq!(
            poem::error::ResponseError::status(&unknown),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(matches!(
            BearerRefusal::from(unknown),
            BearerRefusal::Unavailable(_, 5)
        ));
        let scope = BearerError::InsufficientScope {
            needed: "items:read".into(),
        }
        .challenge();
        assert!(
            scope.contains(r#"error="insufficient_scope""#)
                && scope.contains(r#"scope="items:read""#)
        );
    }
}
