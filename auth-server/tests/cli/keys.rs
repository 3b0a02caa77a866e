//! Signing keys: list, rotate and revoke, and a key-encryption key that does not open the store.

use crate::{auth_server, Env};

/// `kid`, state and the `name=RFC 3339 time` fields of one `keys list` line.
fn key_line(line: &str) -> (String, String, Vec<(String, String)>) {
    let mut fields = line.split('\t');
    let kid = fields.next().unwrap().to_owned();
    let state = fields.next().unwrap().to_owned();
    let dates: Vec<(String, String)> = fields
        .map(|field| {
            let (name, time) = field.split_once('=').unwrap();
            let shape: String = time
                .chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect();
            assert_eq!(shape, "0000-00-00T00:00:00Z", "{line}");
            (name.to_owned(), time.to_owned())
        })
        .collect();
    (kid, state, dates)
}

fn date_names(dates: &[(String, String)]) -> Vec<&str> {
    dates.iter().map(|(name, _)| name.as_str()).collect()
}

#[test]
fn keys_list_rotate_and_revoke() {
    let env = Env::new();
    let first = env.ok(&["keys", "list"], None);
    assert_eq!(first.lines().count(), 1, "{first}");
    let (active, state, dates) = key_line(first.lines().next().unwrap());
    assert_eq!(state, "active");
    assert_eq!(date_names(&dates), ["created", "activated"]);

    let rotated = env.ok(&["keys", "rotate"], None);
    assert!(rotated.starts_with("staged signing key "), "{rotated}");
    assert!(
        env.ok(&["keys", "rotate"], None).contains("staged already"),
        "a second rotation waits for the first"
    );
    let listed = env.ok(&["keys", "list"], None);
    let lines: Vec<_> = listed.lines().map(key_line).collect();
    assert_eq!(lines.len(), 2, "{listed}");
    let (next, state, dates) = &lines[0];
    assert_eq!(state, "next", "newest first: {listed}");
    assert_eq!(date_names(dates), ["created", "activates"]);
    assert!(
        dates[1].1 > dates[0].1,
        "it signs later than it is published"
    );
    assert_eq!((&lines[1].0, lines[1].1.as_str()), (&active, "active"));

    let revoked = env.ok(&["keys", "revoke", &active], None);
    assert!(
        revoked.contains(&format!("revoked signing key {active}")),
        "{revoked}"
    );
    assert!(revoked.contains(&format!("{next} signs now")), "{revoked}");
    let listed = env.ok(&["keys", "list"], None);
    let lines: Vec<_> = listed.lines().map(key_line).collect();
    let line_of = |kid: &str| lines.iter().find(|line| line.0 == kid).unwrap();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(line_of(next).1, "active", "the next key took over");
    let (_, state, dates) = line_of(&active);
    assert_eq!(state, "revoked");
    assert_eq!(date_names(dates), ["created", "activated", "revoked"]);

    assert!(env
        .ok(&["keys", "revoke", &active], None)
        .contains("revoked already"));
    assert!(env
        .fails(&["keys", "revoke", "no-such-kid"], None)
        .contains("no signing key no-such-kid"));
    assert!(
        env.fails(&["keys", "revoke", "-Z8Vc-kid"], None)
            .contains("no signing key -Z8Vc-kid"),
        "a kid may start with a hyphen (base64url)"
    );
}

#[test]
fn a_wrong_key_encryption_key_is_one_clear_line() {
    let env = Env::new();
    env.ok(&["keys", "list"], None);
    let output = auth_server()
        .args(["keys", "rotate"])
        .env(
            "AUTH_STORE",
            format!("sqlite://{}", env.path("auth.db").display()),
        )
        .env("AUTH_KEYS_DIR", env.path("keys"))
        .env(
            "AUTH_KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("another key-encryption key"), "{stderr}");
    assert_eq!(
        env.ok(&["keys", "list"], None).lines().count(),
        1,
        "nothing was staged under the wrong key"
    );
}
