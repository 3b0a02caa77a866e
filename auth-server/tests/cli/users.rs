//! Users: the lifecycle of an account, the one-line errors, and concurrent runs on one store.

use std::path::Path;

use crate::{auth_server, Env};

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
fn store_changes_are_safe_while_files_are_shared() {
    // The CLI and a running server share the SQLite file in WAL mode.
    let env = Env::new();
    env.ok(&["user", "add", "u1", "--password-stdin"], Some("pw"));
    assert!(Path::new(&env.path("auth.db")).exists());
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let dir = env.dir.path().to_owned();
            std::thread::spawn(move || {
                auth_server()
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
