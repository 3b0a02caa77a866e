//! The binary's start: a bad setting stops it before it binds, with one line naming the setting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::Path;

use test_kit::process::{assert_setting_refused, command};

#[test]
fn an_out_of_range_setting_stops_the_start_with_one_line_naming_it() {
    for (variable, value, says) in [
        (
            "RS_JWKS_MAX_STALE",
            "31536001",
            "31536001 is out of range; must be from 0 to 31536000",
        ),
        ("RS_UNKNOWN_KID_COOLDOWN", "0", "0 is out of range"),
        ("RS_JWKS_MIN_REFRESH", "0", "0 is out of range"),
        (
            "RS_TOKEN_CACHE_CAPACITY",
            "99999999",
            "99999999 is out of range",
        ),
        (
            "RS_MAX_TOKEN_BYTES",
            "20000",
            "must not exceed RS_MAX_HEADER_BYTES",
        ),
        (
            "RS_REVOCATION_POLL",
            "3601",
            "3601 is out of range; must be from 0 to 3600",
        ),
        (
            "RS_REVOCATION_MAX_STALE",
            "9",
            "must be at least twice RS_REVOCATION_POLL",
        ),
        ("RS_REVOCATION_FAIL_CLOSED", "maybe", ""),
        // Beyond what the setting's type holds: refused as well, never wrapped.
        ("RS_JWKS_MAX_STALE", "18446744073709551616", ""),
        ("RS_SHUTDOWN_TIMEOUT", "-1", ""),
    ] {
        assert_setting_refused(
            command(
                Path::new(env!("CARGO_BIN_EXE_resource-server")),
                &["RS_", "RUST_LOG"],
                &[],
            )
            .env("RS_LISTEN", "127.0.0.1:0"),
            variable,
            value,
            says,
        );
    }
}
