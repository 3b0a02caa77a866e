//! `POST /token` as the handler reads it: the form body through serde_urlencoded into
//! `TokenForm` (poem-openapi's `Form` does exactly this), the `Authorization` header through
//! `http::credentials::read`, the scope through `oauth::scope::requested`, and
//! `X-Forwarded-For` through `http::address::client_address` behind a trusted proxy.
//!
//! Input: `authorization "\n" x-forwarded-for "\n" body`; a missing part is a missing header.
//! Properties: no panic; Basic and form secret together are `invalid_request`; an accepted
//! secret names a non-empty client; a blank Basic header (`Basic Og==`, as Swagger UI sends)
//! counts as none; a granted scope prints and parses back to itself; the client address is
//! always known.
#![no_main]

use std::net::IpAddr;

use auth_server::http::address::client_address;
use auth_server::http::credentials::read as credentials;
use auth_server::http::token::TokenForm;
use auth_server::oauth::scope::requested as requested_scope;
use auth_server::oauth::{Credentials, TokenError};
use libfuzzer_sys::fuzz_target;
use poem::http::HeaderValue;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let authorization = parts.next().filter(|p| !p.is_empty());
    let forwarded_for = parts.next().filter(|p| !p.is_empty());
    let body = parts.next().unwrap_or_default();

    // Bytes no HTTP parser would pass as a header value never reach the handler.
    let header = |bytes: Option<&[u8]>| match bytes.map(HeaderValue::from_bytes) {
        None => Ok(None),
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(_)) => Err(()),
    };
    let (Ok(authorization), Ok(forwarded_for)) = (header(authorization), header(forwarded_for))
    else {
        return;
    };
    // As `TokenApi::token` reads them.
    let authorization = authorization
        .as_ref()
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let forwarded_for = forwarded_for.as_ref().and_then(|v| v.to_str().ok());

    let peer: IpAddr = [10, 0, 0, 2].into();
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
    let address = client_address(Some(peer), forwarded_for, &trusted);
    assert!(
        address.is_some(),
        "no client address behind a trusted proxy"
    );

    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(body) else {
        return;
    };
    let form_secret = form.client_secret.as_deref().filter(|s| !s.is_empty());
    // Swagger UI's `Basic base64(":")` names no client and counts as no header at all.
    let basic = authorization.filter(|header| !is_blank_basic(header));
    match credentials(
        authorization,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    ) {
        Ok(Credentials::Secret { client_id, .. }) => assert!(!client_id.is_empty()),
        Ok(Credentials::None { client_id }) => {
            // No secret anywhere: no Basic header, or one with an empty secret, which is a
            // public client naming itself (and so names an id).
            assert!(form_secret.is_none());
            assert!(basic.is_none() || client_id.is_some());
            assert!(client_id.as_deref().is_none_or(|id| !id.is_empty()));
        }
        Err(TokenError::InvalidRequest(_) | TokenError::InvalidClient) => {}
        Err(other) => panic!("credentials answered {other:?}"),
    }
    if basic.is_some() && form_secret.is_some() {
        let result = credentials(
            authorization,
            form.client_id.as_deref(),
            form.client_secret.as_deref(),
        );
        assert!(
            matches!(result, Err(TokenError::InvalidRequest(_))),
            "two methods at once"
        );
    }
    match requested_scope(form.scope.as_deref()) {
        Ok(Some(scope)) => {
            assert!(!scope.is_empty());
            let printed = scope.to_string();
            assert_eq!(
                oauth2_jwt_verifier::Scope::parse(&printed).ok().as_ref(),
                Some(&scope),
                "{printed:?}"
            );
        }
        Ok(None) | Err(TokenError::InvalidScope) => {}
        Err(other) => panic!("requested_scope answered {other:?}"),
    }
});

/// `Basic` and base64 of a lone colon, whatever the case and blanks: an empty id and secret.
fn is_blank_basic(header: &str) -> bool {
    use base64::Engine;
    let Some((scheme, encoded)) = header.trim().split_once(' ') else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim());
    scheme.eq_ignore_ascii_case("basic") && decoded.is_ok_and(|bytes| bytes == b":")
}
