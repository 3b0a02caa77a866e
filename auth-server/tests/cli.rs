//! The command line, run as the built binary against a temporary store and keys directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_auth-server"))
            .args(args)
            .env(
                "AUTH_STORE",
                format!("sqlite://{}", self.dir.path().join("auth.db").display()),
            )
            .env("AUTH_KEYS_DIR", self.dir.path().join("keys"))
            .env_remove("AUTH_LISTEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Fails with exit status 1 and one line on stderr; returns that line.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        assert_eq!(output.status.code(), Some(1), "{args:?} should fail");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        stderr
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn user_lifecycle_add_list_disable_enable_passwd_remove() {
    let env = Env::new();
    env.ok(
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--full-name",
            "Alice A",
            "--email",
            "a@example.com",
            "--scope",
            "read",
            "--scope",
            "write",
        ],
        Some("pw-alice-1\n"),
    );
    let listed = env.ok(&["user", "list"], None);
    assert!(
        listed.contains("alice\tenabled\tscope=read write\tname=Alice A\temail=a@example.com"),
        "{listed}"
    );
    assert!(
        !listed.contains("pw-alice-1") && !listed.contains("argon2"),
        "no secret is printed"
    );
    env.ok(&["user", "disable", "alice"], None);
    assert!(env.ok(&["user", "list"], None).contains("alice\tdisabled"));
    env.ok(&["user", "enable", "alice"], None);
    env.ok(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("new-pw-2"),
    );
    env.ok(&["user", "remove", "alice"], None);
    assert!(!env.ok(&["user", "list"], None).contains("alice"));
}

#[test]
fn cli_errors_are_one_line_and_exit_1() {
    let env = Env::new();
    env.ok(&["user", "add", "bob", "--password-stdin"], Some("pw"));
    assert!(env
        .fails(&["user", "add", "bob", "--password-stdin"], Some("pw"))
        .contains("already exists"));
    assert!(env
        .fails(&["user", "add", "carol", "--password-stdin"], Some(""))
        .contains("empty password"));
    assert!(env
        .fails(&["user", "add", "carol", "--password-stdin"], Some("\n"))
        .contains("empty password"));
    assert!(env
        .fails(&["user", "disable", "nobody"], None)
        .contains("unknown user"));
    assert!(env
        .fails(&["user", "passwd", "nobody", "--password-stdin"], Some("x"))
        .contains("unknown user"));
    assert!(env
        .fails(&["client", "remove", "nobody"], None)
        .contains("unknown client"));
}

#[test]
fn an_unreachable_store_is_one_clear_line() {
    for store in [
        "sqlite:///proc/no-such-dir/auth.db",
        "redis://127.0.0.1:1/0",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
            .args(["user", "list"])
            .env("AUTH_STORE", store)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .args(["user", "list"])
        .env("AUTH_STORE", "postgres://localhost/x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH_STORE"));
}

#[test]
fn a_bad_setting_fails_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
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
            let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
                .args(args)
                .env(
                    "AUTH_STORE",
                    format!("sqlite://{}", env.path("auth.db").display()),
                )
                .env("AUTH_KEYS_DIR", env.path("keys"))
                .env("AUTH_LISTEN", "127.0.0.1:0")
                .env(variable, value)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{variable}={value}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(
                stderr.starts_with(&format!("error: {variable}")) && stderr.contains(says),
                "{variable}={value}: {stderr}"
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
    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
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
    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
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

    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
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
    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .args(["--config", file.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("audiense"),
        "unknown keys are rejected"
    );
}

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
    let output = Command::new(env!("CARGO_BIN_EXE_auth-server"))
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

#[test]
fn import_of_the_tutorial_users_file() {
    let env = Env::new();
    let file = env.path("users.json");
    std::fs::write(
        &file,
        r#"{
          "johndoe": {"username": "johndoe", "full_name": "John Doe", "email": "johndoe@example.com",
                      "hashed_password": "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW", "disabled": false},
          "alice": {"username": "alice", "full_name": "Alice Wonderson", "email": "alice@example.com",
                    "hashed_password": "$2b$12$gSvqqUPvlXP2tfVFaWK1Be7DlH.PKZbv5H8KnzzVgXXbVxpva.pFm", "disabled": true}
        }"#,
    )
    .unwrap();
    let printed = env.ok(
        &["user", "import", file.to_str().unwrap(), "--scope", "read"],
        None,
    );
    assert!(printed.contains("imported 2 users"), "{printed}");
    let listed = env.ok(&["user", "list"], None);
    assert!(listed.contains("johndoe\tenabled\tscope=read\tname=John Doe"));
    assert!(listed.contains("alice\tdisabled"));
    assert!(env
        .ok(&["user", "import", file.to_str().unwrap()], None)
        .contains("skipped 2"));

    std::fs::write(
        &file,
        r#"{"user1": {"username": "user1", "hashed_password": "fakehashedsecret"}}"#,
    )
    .unwrap();
    assert!(env
        .fails(&["user", "import", file.to_str().unwrap()], None)
        .contains("user1"));
    assert!(env
        .fails(&["user", "import", "/nonexistent.json"], None)
        .contains("nonexistent"));
}

/// A bcrypt hash costlier than the server runs at login (cost 14 and up) refuses the whole
/// file, naming the user, and writes nothing.
#[test]
fn import_refuses_a_bcrypt_cost_above_13_naming_the_user() {
    let env = Env::new();
    let file = env.path("users.json");
    let tail = "EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
    for (cost, said) in [
        ("14", "cost 14 is above 13"),
        ("31", "cost 31 is above 13"),
        ("9x", "cost is not two digits"),
    ] {
        std::fs::write(
            &file,
            format!(
                r#"[{{"username": "fine", "hashed_password": "$2b$12${tail}"}},
                    {{"username": "costly", "hashed_password": "$2b${cost}${tail}"}}]"#
            ),
        )
        .unwrap();
        let refused = env.fails(&["user", "import", file.to_str().unwrap()], None);
        assert!(
            refused.contains("\"costly\"") && refused.contains(said),
            "cost {cost}: {refused}"
        );
        assert_eq!(
            env.ok(&["user", "list"], None),
            "",
            "cost {cost}: nothing imported"
        );
    }

    std::fs::write(
        &file,
        format!(r#"[{{"username": "fine", "hashed_password": "$2b$13${tail}"}}]"#),
    )
    .unwrap();
    assert!(env
        .ok(&["user", "import", file.to_str().unwrap()], None)
        .contains("imported 1 users"));
}

#[test]
fn store_changes_are_safe_while_files_are_shared() {
    // The CLI and a running server share the SQLite file in WAL mode.
    let env = Env::new();
    env.ok(&["user", "add", "u1", "--password-stdin"], Some("pw"));
    assert!(Path::new(&env.path("auth.db")).exists());
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let dir = env.dir.path().to_owned();
            std::thread::spawn(move || {
                Command::new(env!("CARGO_BIN_EXE_auth-server"))
                    .args(["user", "disable", "u1"])
                    .env(
                        "AUTH_STORE",
                        format!("sqlite://{}", dir.join("auth.db").display()),
                    )
                    .env("AUTH_KEYS_DIR", dir.join("keys"))
                    .output()
                    .map(|o| (n, o.status.success()))
                    .unwrap()
            })
        })
        .collect();
    for handle in handles {
        let (n, ok) = handle.join().unwrap();
        assert!(ok, "concurrent CLI run {n} failed");
    }
}
