//! The one place that turns errors into responses on the OAuth endpoints: RFC 6749 §5.2 JSON
//! with `Cache-Control: no-store`, 401 plus `WWW-Authenticate: Basic` for `invalid_client`.
//! Framework rejections (a form that does not parse, a wrong content type, a body too large)
//! get the same JSON shape from [`OAuthErrorShape`] instead of poem's plain text.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::ApiResponse;
use server_plumbing::wire::ErrorResponse;

use crate::oauth::TokenError;

pub const NO_STORE: &str = "no-store";
const BASIC_CHALLENGE: &str = r#"Basic realm="auth-server", charset="UTF-8""#;

/// Every error status `/token` answers with, as its OpenAPI operation documents them.
#[derive(ApiResponse, Debug)]
pub enum ErrorReply {
    /// The request is malformed or the grant is refused (RFC 6749 §5.2).
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// Client authentication failed (RFC 6749 §5.2).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The request body did not arrive within the body read timeout.
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The body is not `application/x-www-form-urlencoded`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// Too many failed logins for this user (RFC 6585 §4).
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorResponse>,
        #[oai(header = "Retry-After")] u64,
        #[oai(header = "Cache-Control")] String,
    ),
    /// An internal error; the cause is logged, not sent.
    #[oai(status = 500)]
    Internal(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The store or the password pool cannot take the request now.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorResponse>,
        #[oai(header = "Retry-After")] u64,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// The error statuses of `/revocations`, which takes no credentials and refuses no input.
#[derive(ApiResponse, Debug)]
pub enum FeedErrorReply {
    /// An unexpected failure; details are in the server's log.
    #[oai(status = 500)]
    Internal(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The store is unreachable; retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorResponse>,
        #[oai(header = "Retry-After")] u64,
        #[oai(header = "Cache-Control")] String,
    ),
}

impl From<TokenError> for FeedErrorReply {
    fn from(err: TokenError) -> Self {
        match ErrorReply::from(err) {
            ErrorReply::TooManyRequests(json, retry_after, cache)
            | ErrorReply::Unavailable(json, retry_after, cache) => {
                Self::Unavailable(json, retry_after, cache)
            }
            // The feed's one operation fails only when the store does; anything else would be
            // a bug, answered as one.
            ErrorReply::BadRequest(json, cache)
            | ErrorReply::Unauthorized(json, _, cache)
            | ErrorReply::RequestTimeout(json, cache)
            | ErrorReply::PayloadTooLarge(json, cache)
            | ErrorReply::UnsupportedMediaType(json, cache)
            | ErrorReply::Internal(json, cache) => Self::Internal(json, cache),
        }
    }
}

/// The error statuses of `/revoke` and `/introspect`: those of `/token` but `429`, as only
/// logins are throttled. A separate type so that each OpenAPI operation lists only statuses it
/// can answer with.
#[derive(ApiResponse, Debug)]
pub enum ClientErrorReply {
    /// The request is malformed (RFC 6749 §5.2).
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// Client authentication failed (RFC 6749 §5.2).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The request body did not arrive within the body read timeout.
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The body is not `application/x-www-form-urlencoded`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// An unexpected failure; details are in the server's log.
    #[oai(status = 500)]
    Internal(Json<ErrorResponse>, #[oai(header = "Cache-Control")] String),
    /// The store is unreachable; retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorResponse>,
        #[oai(header = "Retry-After")] u64,
        #[oai(header = "Cache-Control")] String,
    ),
}

impl From<TokenError> for ClientErrorReply {
    fn from(err: TokenError) -> Self {
        match ErrorReply::from(err) {
            ErrorReply::BadRequest(json, cache) => Self::BadRequest(json, cache),
            ErrorReply::Unauthorized(json, challenge, cache) => {
                Self::Unauthorized(json, challenge, cache)
            }
            ErrorReply::RequestTimeout(json, cache) => Self::RequestTimeout(json, cache),
            ErrorReply::PayloadTooLarge(json, cache) => Self::PayloadTooLarge(json, cache),
            ErrorReply::UnsupportedMediaType(json, cache) => {
                Self::UnsupportedMediaType(json, cache)
            }
            ErrorReply::Internal(json, cache) => Self::Internal(json, cache),
            // Not produced by these endpoints; a refusal to retry later is the closest.
            ErrorReply::TooManyRequests(json, retry_after, cache)
            | ErrorReply::Unavailable(json, retry_after, cache) => {
                Self::Unavailable(json, retry_after, cache)
            }
        }
    }
}

fn body(code: &str, description: &str) -> Json<ErrorResponse> {
    Json(ErrorResponse {
        error: code.to_owned(),
        error_description: Some(description.to_owned()),
    })
}

/// An `invalid_request` refusal with the status of `reply`, for middleware that answers before
/// an endpoint runs (the body limits).
pub fn refusal(
    reply: fn(Json<ErrorResponse>, String) -> ErrorReply,
    description: &str,
) -> poem::Error {
    poem::Error::from_response(
        reply(body("invalid_request", description), NO_STORE.to_owned()).into_response(),
    )
}

impl From<TokenError> for ErrorReply {
    fn from(err: TokenError) -> Self {
        let json = body(&err.to_string(), err.description());
        let no_store = || NO_STORE.to_owned();
        match err {
            TokenError::InvalidClient => {
                Self::Unauthorized(json, BASIC_CHALLENGE.to_owned(), no_store())
            }
            TokenError::Throttled { retry_after } => {
                Self::TooManyRequests(json, retry_after, no_store())
            }
            TokenError::TemporarilyUnavailable { retry_after } => {
                Self::Unavailable(json, retry_after, no_store())
            }
            TokenError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                Self::Internal(json, no_store())
            }
            _ => Self::BadRequest(json, no_store()),
        }
    }
}

/// Gives framework rejections on the OAuth endpoints the RFC 6749 JSON shape.
pub struct OAuthErrorShape;

impl<E: Endpoint> Middleware<E> for OAuthErrorShape {
    type Output = OAuthErrorShapeEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        OAuthErrorShapeEndpoint { inner: ep }
    }
}

pub struct OAuthErrorShapeEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for OAuthErrorShapeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let allow = super::allowed_methods(req.uri().path());
        let err = match self.inner.call(req).await {
            Ok(output) => return Ok(output.into_response()),
            Err(err) => err,
        };
        let response = err.into_response();
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return Ok(response);
        }
        let status = response.status();
        let (code, description) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request", "the request body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ),
            StatusCode::METHOD_NOT_ALLOWED => ("invalid_request", "method not allowed"),
            StatusCode::NOT_FOUND => return Ok(response),
            s if s.is_server_error() => ("server_error", "internal error"),
            _ => ("invalid_request", "the request could not be parsed"),
        };
        let mut reply = body(code, description).with_status(status).into_response();
        reply
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        if status == StatusCode::METHOD_NOT_ALLOWED {
            reply
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        Ok(reply)
    }
}
