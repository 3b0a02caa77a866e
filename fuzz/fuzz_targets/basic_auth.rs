//! `Authorization: Basic` as `http::credentials::parse_basic` reads it (RFC 6749 §2.3.1: the id and
//! the secret are form-urlencoded before base64).
//!
//! The first byte chooses the mode:
//!   even  the rest is the header value as sent;
//!   odd   the rest is `id NUL secret`, encoded as a client should; it must parse back.
//! Properties: no panic; an accepted id is not empty; what a conforming client encodes comes
//! back unchanged whatever the scheme's case and the surrounding blanks.
#![no_main]

use auth_server::http::credentials::parse_basic;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let header = String::from_utf8_lossy(rest);
        if let Some((id, _secret)) = parse_basic(&header) {
            assert!(!id.is_empty());
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (id, secret) = text.split_once('\0').unwrap_or((text, ""));
    let encode = |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    let credentials = STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
    let scheme = ["Basic", "basic", "BASIC"][usize::from(mode / 2) % 3];
    let header = format!(" {scheme} {credentials} ");
    match parse_basic(&header) {
        Some((parsed_id, parsed_secret)) => {
            assert_eq!(parsed_id, id);
            assert_eq!(parsed_secret.as_str(), secret);
        }
        None => assert!(
            id.is_empty(),
            "a well-encoded header was refused: {header:?}"
        ),
    }
});
