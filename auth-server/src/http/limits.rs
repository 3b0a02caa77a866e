//! Bounds on request bodies: size, read time and form field count.
//!
//! The body is read here, whole, before any handler sees it, so that the bounds hold however
//! the body arrives: poem's own `SizeLimit` trusts `Content-Length` and refuses requests that
//! lack it (GETs included), and nothing in poem limits how slowly a body may trickle in. A
//! client that sends its head quickly and then a byte of body every few seconds would hold a
//! connection for hours; here it gets `408` once the read timeout passes. The head itself is
//! bounded by the accept loop (`server_plumbing::serve`).

use std::time::Duration;

use poem::http::header;
use poem::{Endpoint, Error, Middleware, Request};

use super::error::{refusal as refuse, ErrorReply};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    /// Largest body, bytes.
    pub max_bytes: usize,
    /// Most `name=value` pairs in a form body.
    pub max_form_fields: usize,
    /// Time allowed for the whole body to arrive.
    pub read_timeout: Duration,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: *self,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: BodyLimit,
}

fn too_large() -> Error {
    refuse(ErrorReply::PayloadTooLarge, "the request body is too large")
}

/// Fields in an `application/x-www-form-urlencoded` body, counted as the parser will see
/// them: `&`-separated, empty pieces skipped.
pub fn form_field_count(body: &[u8]) -> usize {
    body.split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .count()
}

fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let has_body = match declared {
            Some(length) if length > self.limit.max_bytes as u64 => return Err(too_large()),
            Some(length) => length > 0,
            None => req.headers().contains_key(header::TRANSFER_ENCODING),
        };
        if has_body {
            let read = req.take_body().into_bytes_limit(self.limit.max_bytes);
            let body = match tokio::time::timeout(self.limit.read_timeout, read).await {
                Ok(Ok(body)) => body,
                Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => return Err(too_large()),
                Ok(Err(_)) => {
                    return Err(refuse(
                        ErrorReply::BadRequest,
                        "the request body could not be read",
                    ))
                }
                Err(_) => {
                    return Err(refuse(
                        ErrorReply::RequestTimeout,
                        "the request body did not arrive in time",
                    ))
                }
            };
            if is_form(&req) && form_field_count(&body) > self.limit.max_form_fields {
                return Err(refuse(
                    ErrorReply::BadRequest,
                    "the form has too many fields",
                ));
            }
            req.set_body(body);
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_counted_as_the_parser_splits_them() {
        assert_eq!(form_field_count(b""), 0);
        assert_eq!(form_field_count(b"a=1"), 1);
        assert_eq!(form_field_count(b"a=1&b=2&&c"), 3);
        assert_eq!(form_field_count(b"&&&"), 0);
        assert_eq!(form_field_count("a=1&".repeat(40).as_bytes()), 40);
    }
}
