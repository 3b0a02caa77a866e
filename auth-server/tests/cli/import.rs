//! `user import` of a users file from an earlier server, and the bcrypt costs it refuses.

use crate::Env;

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
