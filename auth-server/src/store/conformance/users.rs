//! Users: round trips, updates, and changes that end a user's sessions in one step.

use super::*;

pub async fn store_answers_ping(store: &dyn Store) {
    store.ping().await.expect("ping");
}

pub async fn user_round_trip(store: &dyn Store) {
    let full = user(&unique("alice"));
    store.insert_user(&full).await.unwrap();
    assert_eq!(
        store.user(&full.username).await.unwrap(),
        Some(full.clone())
    );

    let bare = UserRecord {
        full_name: None,
        email: None,
        disabled: true,
        scopes: Scope::default(),
        ..user(&unique("bob"))
    };
    store.insert_user(&bare).await.unwrap();
    assert_eq!(
        store.user(&bare.username).await.unwrap(),
        Some(bare),
        "absent fields stay absent"
    );

    assert_eq!(store.user(&unique("nobody")).await.unwrap(), None);
}

pub async fn user_updates_apply_to_existing_users_only(store: &dyn Store) {
    let original = user(&unique("carol"));
    let name = original.username.clone();
    store.insert_user(&original).await.unwrap();

    assert!(store
        .set_password_hash(&name, "$argon2id$new", &cut(1))
        .await
        .unwrap());
    assert!(store.set_user_disabled(&name, true, None).await.unwrap());
    let updated = store.user(&name).await.unwrap().expect("user still there");
    assert_eq!(
        updated,
        UserRecord {
            password_hash: "$argon2id$new".into(),
            disabled: true,
            stamp: cut(1).stamp,
            not_before: original.not_before + 1,
            ..original.clone()
        }
    );
    assert!(store.set_user_disabled(&name, false, None).await.unwrap());
    assert!(!store.user(&name).await.unwrap().expect("user").disabled);

    let missing = unique("nobody");
    assert!(!store
        .set_password_hash(&missing, "$argon2id$x", &cut(2))
        .await
        .unwrap());
    assert!(!store
        .set_user_disabled(&missing, true, Some(&cut(2)))
        .await
        .unwrap());
    assert!(!store
        .set_user_scopes(&missing, &Scope::default())
        .await
        .unwrap());
    assert_eq!(
        store.user(&missing).await.unwrap(),
        None,
        "an update never creates a user"
    );

    assert!(store.remove_user(&name, removal()).await.unwrap());
    assert_eq!(store.user(&name).await.unwrap(), None);
    assert!(
        !store.remove_user(&name, removal()).await.unwrap(),
        "a second removal finds nothing"
    );
    assert!(!store
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|listed| listed.username == name));
}

pub async fn users_are_listed_in_order(store: &dyn Store) {
    let tag = unique("list");
    let names = [
        format!("{tag}-m"),
        format!("{tag}-B"),
        format!("{tag}-z"),
        format!("{tag}-a"),
        format!("{tag}-m2"),
    ];
    for name in &names {
        store.insert_user(&user(name)).await.unwrap();
    }
    store.remove_user(&names[4], removal()).await.unwrap();

    let listed = store.list_users().await.unwrap();
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].username < pair[1].username),
        "sorted by username"
    );
    let ours: Vec<UserRecord> = listed
        .into_iter()
        .filter(|listed| listed.username.starts_with(&tag))
        .collect();
    let mut expected: Vec<UserRecord> = names[..4].iter().map(|name| user(name)).collect();
    expected.sort_by(|a, b| a.username.cmp(&b.username));
    assert_eq!(ours, expected);
}

pub async fn duplicate_user_is_conflict(store: &dyn Store) {
    let first = user(&unique("dave"));
    store.insert_user(&first).await.unwrap();
    let second = UserRecord {
        password_hash: "$argon2id$other".into(),
        ..first.clone()
    };
    let outcome = store.insert_user(&second).await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "got {outcome:?}"
    );
    assert_eq!(
        store.user(&first.username).await.unwrap(),
        Some(first),
        "the first user is untouched"
    );
}

/// The stored password hash of `username`, who must exist.
async fn password_hash_of(store: &dyn Store, username: &str) -> String {
    store
        .user(username)
        .await
        .unwrap()
        .expect("user")
        .password_hash
}

pub async fn password_hash_replacement_is_compare_and_set(store: &dyn Store) {
    let original = user(&unique("erin"));
    let name = original.username.clone();
    store.insert_user(&original).await.unwrap();

    assert!(!store
        .replace_password_hash(&name, "$argon2id$stale", "$argon2id$rehash")
        .await
        .unwrap());
    assert_eq!(password_hash_of(store, &name).await, original.password_hash);

    assert!(store
        .replace_password_hash(&name, &original.password_hash, "$argon2id$rehash")
        .await
        .unwrap());
    assert_eq!(password_hash_of(store, &name).await, "$argon2id$rehash");

    assert!(
        !store
            .replace_password_hash(&name, &original.password_hash, "$argon2id$again")
            .await
            .unwrap(),
        "a replacement based on the old hash must not undo the new one"
    );
    assert_eq!(password_hash_of(store, &name).await, "$argon2id$rehash");

    let missing = unique("nobody");
    assert!(!store
        .replace_password_hash(&missing, "", "$argon2id$x")
        .await
        .unwrap());
    assert_eq!(
        store.user(&missing).await.unwrap(),
        None,
        "a replacement never creates a user"
    );
}

/// A change that ends a user's sessions writes the new stamp and cut-off in the same step as
/// the change; the cut-off only grows, past the one held at each change (so that two changes
/// within one second still cut off a token minted between them); enabling keeps the stamp that
/// disabling wrote, so old families stay ended; a user added again under a removed name gets a
/// cut-off past the removed one's.
pub async fn ending_a_users_sessions_is_one_step_with_the_change(store: &dyn Store) {
    let original = user(&unique("dave"));
    let name = original.username.clone();
    store.insert_user(&original).await.unwrap();
    let held = original.not_before;

    let disabled = cut(100);
    assert!(store
        .set_user_disabled(&name, true, Some(&disabled))
        .await
        .unwrap());
    let now = store.user(&name).await.unwrap().unwrap();
    assert!(now.disabled);
    assert_eq!(now.stamp, disabled.stamp);
    assert_eq!(now.not_before, held + 1, "past the one held, never back");

    assert!(store.set_user_disabled(&name, false, None).await.unwrap());
    let now = store.user(&name).await.unwrap().unwrap();
    assert!(!now.disabled);
    assert_eq!(
        (now.stamp.as_str(), now.not_before),
        (disabled.stamp.as_str(), held + 1),
        "enabling does not bring back the stamp of the old families"
    );
    assert_ne!(now.stamp, original.stamp);

    let new_password = cut(held + 1000);
    assert!(store
        .set_password_hash(&name, "$argon2id$other", &new_password)
        .await
        .unwrap());
    let now = store.user(&name).await.unwrap().unwrap();
    assert_eq!(now.password_hash, "$argon2id$other");
    assert_eq!(
        (now.stamp.as_str(), now.not_before),
        (new_password.stamp.as_str(), held + 1000)
    );
    assert!(store
        .set_password_hash(&name, "$argon2id$third", &cut(held + 1000))
        .await
        .unwrap());
    assert_eq!(
        store.user(&name).await.unwrap().unwrap().not_before,
        held + 1001,
        "a second change in the same second still moves the cut-off"
    );

    let narrower = Scope::from_tokens(["profile"]);
    assert!(store.set_user_scopes(&name, &narrower).await.unwrap());
    let now = store.user(&name).await.unwrap().unwrap();
    assert_eq!(now.scopes, narrower);
    assert_eq!(
        (now.stamp.as_str(), now.not_before),
        (new_password.stamp.as_str(), held + 1001),
        "a scope change ends nothing"
    );

    assert!(store
        .remove_user(
            &name,
            Removal {
                not_before: 5,
                keep_until: unix_now() + 3600
            }
        )
        .await
        .unwrap());
    let again = UserRecord {
        stamp: unique("stamp"),
        not_before: 300,
        ..original.clone()
    };
    store.insert_user(&again).await.unwrap();
    assert_eq!(
        store.user(&name).await.unwrap(),
        Some(UserRecord {
            not_before: held + 1002,
            ..again
        }),
        "the new account's cut-off lies past every token of the removed one"
    );
}
