//! Clients: secrets checked or generated, and grant types spelled as the token request spells
//! them.

use crate::Env;

#[test]
fn client_add_checks_the_secret_and_can_generate_one() {
    let env = Env::new();
    assert!(env
        .fails(&["client", "add", "svc", "--secret-stdin"], Some("short"))
        .contains("at least 32"));
    assert!(env
        .fails(&["client", "add", "svc", "--grant", "implicit"], None)
        .contains("unknown grant"));
    env.ok(
        &[
            "client",
            "add",
            "svc",
            "--secret-stdin",
            "--scope",
            "items:read",
            "--audience",
            "billing",
        ],
        Some("0123456789abcdef0123456789abcdef"),
    );
    let generated = env.ok(
        &[
            "client",
            "add",
            "gen",
            "--grant",
            "client_credentials",
            "--grant",
            "refresh_token",
        ],
        None,
    );
    let secret = generated
        .lines()
        .find_map(|l| l.strip_prefix("client_secret="))
        .unwrap();
    assert!(secret.len() >= 43, "256 random bits");
    let listed = env.ok(&["client", "list"], None);
    assert!(
        listed.contains("svc\tgrants=client_credentials\tscope=items:read\taudience=billing"),
        "{listed}"
    );
    assert!(listed.contains("gen\tgrants=client_credentials,refresh_token"));
    assert!(
        !listed.contains(secret) && !listed.contains("0123456789abcdef"),
        "secrets are never listed"
    );
    assert!(env
        .fails(
            &["client", "add", "svc", "--secret-stdin"],
            Some("0123456789abcdef0123456789abcdef")
        )
        .contains("already exists"));
    env.ok(&["client", "remove", "svc"], None);
}

/// `--grant` takes exactly the `grant_type` words of the token request (RFC 6749 §4.3.2, §4.4.2,
/// §6); anything else, or a grant that needs a secret on a public client, is one line, exit 1.
#[test]
fn client_grants_are_the_token_request_words() {
    let env = Env::new();
    for word in ["implicit", "Password", ""] {
        let refused = env.fails(&["client", "add", "svc", "--grant", word], None);
        assert!(
            refused.contains(&format!("unknown grant {word:?}"))
                && refused.contains("password, client_credentials, refresh_token"),
            "{refused}"
        );
    }
    let refused = env.fails(
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant",
            "client_credentials",
        ],
        None,
    );
    assert!(
        refused.contains("may not use \"client_credentials\"; only password, refresh_token"),
        "{refused}"
    );
    env.ok(&["client", "add", "spa", "--public"], None);
    env.ok(&["client", "add", "svc"], None);
    let refused = env.fails(&["client", "update", "svc", "--grant", "implicit"], None);
    assert!(refused.contains("unknown grant"), "{refused}");
    let updated = env.ok(
        &[
            "client",
            "update",
            "svc",
            "--grant",
            "refresh_token",
            "--grant",
            "password",
        ],
        None,
    );
    assert!(
        updated.contains("grants=refresh_token,password"),
        "{updated}"
    );
    let listed = env.ok(&["client", "list"], None);
    assert!(
        listed.contains("spa\tgrants=password,refresh_token\t"),
        "{listed}"
    );
    assert!(
        listed.contains("svc\tgrants=refresh_token,password\t"),
        "{listed}"
    );
}
