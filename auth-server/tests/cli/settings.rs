//! Settings: an unreachable store, a bad or out-of-range value, and `config` printing what is
//! in effect.

use test_kit::process::assert_setting_refused;

use crate::{auth_server, Env};

#[test]
fn an_unreachable_store_is_one_clear_line() {
    for store in [
        "sqlite:///proc/no-such-dir/auth.db",
        "redis://127.0.0.1:1/0",
    ] {
        let output = auth_server()
            .args(["user", "list"])
            .env("AUTH_STORE", store)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let output = auth_server()
        .args(["user", "list"])
        .env("AUTH_STORE", "postgres://localhost/x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH_STORE"));
}

#[test]
fn a_bad_setting_fails_naming_the_variable() {
    let output = auth_server()
        .arg("config")
        .env("AUTH_ACCESS_TOKEN_TTL", "soon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH_ACCESS_TOKEN_TTL"));
}

#[test]
fn an_out_of_range_setting_stops_the_start_with_one_line_naming_it() {
    let env = Env::new();
    for (variable, value, says) in [
        (
            "AUTH_ACCESS_TOKEN_TTL",
            "0",
            "0 is out of range; must be from 1 to 31536000",
        ),
        (
            "AUTH_ACCESS_TOKEN_TTL",
            "31536001",
            "31536001 is out of range; must be from 1 to 31536000",
        ),
        ("AUTH_KEY_SYNC_INTERVAL", "86400", "86400 is out of range"),
        ("AUTH_PASSWORD_WORKERS", "100000", "100000 is out of range"),
        ("AUTH_MAX_BODY_BYTES", "100", "100 is out of range"),
        // Beyond what the setting's type holds: refused as well, never wrapped.
        ("AUTH_REFRESH_TOKEN_TTL", "18446744073709551616", ""),
        ("AUTH_SHUTDOWN_TIMEOUT", "-1", ""),
    ] {
        for args in [&["config"][..], &["serve"][..]] {
            assert_setting_refused(
                env.command(args).env("AUTH_LISTEN", "127.0.0.1:0"),
                variable,
                value,
                says,
            );
        }
    }
    assert!(
        !env.path("auth.db").exists(),
        "nothing was started, not even the store"
    );
}

#[test]
fn config_prints_effective_settings_env_over_file() {
    let env = Env::new();
    let file = env.path("auth.toml");
    std::fs::write(&file, "audience = \"from-file\"\naccess_token_ttl = 60\n").unwrap();
    let output = auth_server()
        .args(["--config", file.to_str().unwrap(), "config"])
        .env("AUTH_ACCESS_TOKEN_TTL", "120")
        .env("AUTH_STORE", "redis://user:hunter2@127.0.0.1:6379/0")
        .output()
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("audience = \"from-file\""), "{printed}");
    assert!(
        printed.contains("access_token_ttl = 120"),
        "the environment wins: {printed}"
    );
    assert!(
        !printed.contains("hunter2"),
        "secrets are masked: {printed}"
    );
    let kek = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let output = auth_server()
        .arg("config")
        .env("AUTH_KEY_ENCRYPTION_KEY", kek)
        .output()
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("key_encryption_key = \"[redacted]\"") && !printed.contains(kek),
        "the key-encryption key is masked: {printed}"
    );
    assert!(printed.contains("key_publish_ahead = 3600"), "{printed}");

    let output = auth_server()
        .args([
            "--config",
            file.to_str().unwrap(),
            "config",
            "--listen",
            "127.0.0.1:9999",
        ])
        .env("AUTH_LISTEN", "127.0.0.1:7777")
        .output()
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("listen = \"127.0.0.1:9999\""),
        "flags win over the environment: {printed}"
    );

    std::fs::write(&file, "audiense = \"typo\"\n").unwrap();
    let output = auth_server()
        .args(["--config", file.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("audiense"),
        "unknown keys are rejected"
    );
}
