//! Rules every backend must keep, one `pub async fn` per rule taking `&dyn Store`, so that the
//! embedded and the Redis backend are held to the same behaviour. Each rule panics when the
//! backend breaks it; [`conformance_tests!`] turns them into one named test per backend.
//!
//! Rules use fresh names and ids on every call, so that tests may share one backend; the
//! signing-key rules speak about every key a store holds, so each test opens its own backend. Data that
//! a backend may expire by the wall clock (Redis TTLs) is written with times around the real
//! present, and everything else passes explicit `now` values, so that no rule sleeps.
//!
//! [`TestBackend`] opens the stores the rules run on: for Redis, `REDIS_URL` when it is set,
//! else a private `redis-server` from `PATH`; with neither, the test fails and says how to get
//! one. It never skips.

// This module exists to fail loudly: a broken rule or an unreachable test backend must panic
// the test that found it, so the workspace's bans on `unwrap`, `expect` and `panic` do not apply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared::Scope;

use super::redis::RedisStore;
use super::{
    ClientRecord, ClientUpdate, GrantType, KeyRevocation, KeyState, LoginSubject, PreviousSecret,
    RefreshRecord, Removal, Rotation, SessionCut, SigningKeyRecord, SlotRelease, Store, StoreError,
    UserRecord,
};

/// How many callers race to rotate one refresh token.
pub const RACERS: usize = 32;

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

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

pub async fn client_round_trip(store: &dyn Store) {
    let tag = unique("client");
    let ids = [
        format!("{tag}-web"),
        format!("{tag}-cli"),
        format!("{tag}-api"),
    ];
    for id in &ids {
        store.insert_client(&client(id)).await.unwrap();
    }
    assert_eq!(store.client(&ids[0]).await.unwrap(), Some(client(&ids[0])));
    assert_eq!(store.client(&unique("nobody")).await.unwrap(), None);

    let public = ClientRecord {
        secret_hash: String::new(),
        previous_secret: None,
        public: true,
        introspect: false,
        ..client(&unique("public-client"))
    };
    store.insert_client(&public).await.unwrap();
    assert_eq!(
        store.client(&public.client_id).await.unwrap(),
        Some(public.clone()),
        "a public client: no secret, no previous one, no rights"
    );

    let listed = store.list_clients().await.unwrap();
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].client_id < pair[1].client_id),
        "sorted by client id"
    );
    let ours: Vec<String> = listed
        .into_iter()
        .map(|listed| listed.client_id)
        .filter(|id| id.starts_with(&tag))
        .collect();
    assert_eq!(ours, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    assert!(store.remove_client(&ids[1], removal()).await.unwrap());
    assert!(
        !store.remove_client(&ids[1], removal()).await.unwrap(),
        "a second removal finds nothing"
    );
    assert_eq!(store.client(&ids[1]).await.unwrap(), None);
    let left: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|listed| listed.client_id)
        .filter(|id| id.starts_with(&tag))
        .collect();
    assert_eq!(left, [ids[2].clone(), ids[0].clone()]);
}

pub async fn duplicate_client_is_conflict(store: &dyn Store) {
    let first = client(&unique("dup"));
    store.insert_client(&first).await.unwrap();
    let second = ClientRecord {
        secret_hash: "other".into(),
        ..first.clone()
    };
    let outcome = store.insert_client(&second).await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "got {outcome:?}"
    );
    assert_eq!(
        store.client(&first.client_id).await.unwrap(),
        Some(first),
        "the first client is untouched"
    );
}

pub async fn password_hash_replacement_is_compare_and_set(store: &dyn Store) {
    let original = user(&unique("erin"));
    let name = original.username.clone();
    store.insert_user(&original).await.unwrap();

    assert!(!store
        .replace_password_hash(&name, "$argon2id$stale", "$argon2id$rehash")
        .await
        .unwrap());
    assert_eq!(
        store
            .user(&name)
            .await
            .unwrap()
            .expect("user")
            .password_hash,
        original.password_hash
    );

    assert!(store
        .replace_password_hash(&name, &original.password_hash, "$argon2id$rehash")
        .await
        .unwrap());
    assert_eq!(
        store
            .user(&name)
            .await
            .unwrap()
            .expect("user")
            .password_hash,
        "$argon2id$rehash"
    );

    assert!(
        !store
            .replace_password_hash(&name, &original.password_hash, "$argon2id$again")
            .await
            .unwrap(),
        "a replacement based on the old hash must not undo the new one"
    );
    assert_eq!(
        store
            .user(&name)
            .await
            .unwrap()
            .expect("user")
            .password_hash,
        "$argon2id$rehash"
    );

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

pub async fn refresh_token_round_trip(store: &dyn Store) {
    let token = refresh_token(&unique("family"), unix_now() + 3600);
    store.insert_refresh(&token).await.unwrap();
    assert_eq!(store.refresh(&token.id).await.unwrap(), Some(token));
    assert_eq!(store.refresh(&unique("unknown")).await.unwrap(), None);
}

/// The refresh grant's one read: the token, its family's revocation and its user as they are
/// now (a disabled user shows as disabled, a removed one as absent).
pub async fn refresh_context_reads_token_family_and_user(store: &dyn Store) {
    assert_eq!(
        store.refresh_context(&unique("unknown")).await.unwrap(),
        None
    );
    let username = unique("ctx-user");
    let mut token = refresh_token(&unique("family"), unix_now() + 3600);
    token.username = username.clone();
    store.insert_refresh(&token).await.unwrap();

    let context = store.refresh_context(&token.id).await.unwrap().unwrap();
    assert_eq!(context.record, token);
    assert!(!context.family_revoked);
    assert_eq!(context.user, None, "no such user yet");

    store.insert_user(&user(&username)).await.unwrap();
    store
        .set_user_disabled(&username, true, None)
        .await
        .unwrap();
    let context = store.refresh_context(&token.id).await.unwrap().unwrap();
    let mut disabled = user(&username);
    disabled.disabled = true;
    assert_eq!(context.user, Some(disabled));

    store
        .revoke_family(&token.family_id, token.expires_at)
        .await
        .unwrap();
    let context = store.refresh_context(&token.id).await.unwrap().unwrap();
    assert!(context.family_revoked);

    store.remove_user(&username, removal()).await.unwrap();
    let context = store.refresh_context(&token.id).await.unwrap().unwrap();
    assert_eq!(context.user, None);
    assert_eq!(context.record, token);
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

/// Users and clients share one namespace: a client's tokens carry its id as `sub` (RFC 9068
/// §5), so a name taken by one kind is refused to the other.
pub async fn usernames_and_client_ids_never_collide(store: &dyn Store) {
    let name = unique("shared-name");
    store.insert_client(&client(&name)).await.unwrap();
    assert!(matches!(
        store.insert_user(&user(&name)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user(&name).await.unwrap(), None);

    let other = unique("shared-name");
    store.insert_user(&user(&other)).await.unwrap();
    assert!(matches!(
        store.insert_client(&client(&other)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.client(&other).await.unwrap(), None);

    // While the tokens of a removed account can live, the other kind may not take its name;
    // the same kind may (as a new account, past the old cut-off).
    store.remove_client(&name, removal()).await.unwrap();
    assert!(matches!(
        store.insert_user(&user(&name)).await,
        Err(StoreError::Conflict(_))
    ));
    store.insert_client(&client(&name)).await.unwrap();
    store.remove_user(&other, removal()).await.unwrap();
    assert!(matches!(
        store.insert_client(&client(&other)).await,
        Err(StoreError::Conflict(_))
    ));
    store.insert_user(&user(&other)).await.unwrap();

    // Once the removal is past its keep_until, the name is free for either kind.
    let expired = unique("shared-name");
    store.insert_client(&client(&expired)).await.unwrap();
    store
        .remove_client(
            &expired,
            Removal {
                not_before: 1,
                keep_until: unix_now() - 10,
            },
        )
        .await
        .unwrap();
    store.insert_user(&user(&expired)).await.unwrap();
}

/// `client update` changes the grants, scopes, audiences and introspection right it names, in
/// place, and nothing else: the secret, the kind and the stamp stay, and a field it does not
/// name keeps the value another update gave it.
pub async fn client_update_changes_only_what_it_names(store: &dyn Store) {
    let original = client(&unique("svc"));
    let id = original.client_id.clone();
    store.insert_client(&original).await.unwrap();
    let grants_only = ClientUpdate {
        grants: Some(vec![GrantType::ClientCredentials]),
        ..ClientUpdate::default()
    };
    let the_rest = ClientUpdate {
        scopes: Some(Scope::from_tokens(["api:write"])),
        audiences: Some(Vec::new()),
        introspect: Some(false),
        ..ClientUpdate::default()
    };
    assert!(store.update_client(&id, &grants_only).await.unwrap());
    assert!(store.update_client(&id, &the_rest).await.unwrap());
    assert!(store
        .update_client(&id, &ClientUpdate::default())
        .await
        .unwrap());
    assert_eq!(
        store.client(&id).await.unwrap(),
        Some(ClientRecord {
            grants: vec![GrantType::ClientCredentials],
            scopes: Scope::from_tokens(["api:write"]),
            audiences: Vec::new(),
            introspect: false,
            ..original.clone()
        })
    );
    let nobody = unique("nobody");
    assert!(!store.update_client(&nobody, &the_rest).await.unwrap());
    assert!(!store
        .update_client(&nobody, &ClientUpdate::default())
        .await
        .unwrap());
    assert_eq!(store.client(&nobody).await.unwrap(), None);
}

/// Grant types are stored as their words and read back as the same list, in the order given,
/// whether a client is added with them or updated to them.
pub async fn grant_types_round_trip_in_order(store: &dyn Store) {
    let mut every = GrantType::ALL.to_vec();
    every.reverse();
    let original = ClientRecord {
        grants: every.clone(),
        ..client(&unique("grants"))
    };
    let id = original.client_id.clone();
    store.insert_client(&original).await.unwrap();
    assert_eq!(store.client(&id).await.unwrap().unwrap().grants, every);
    for grants in [
        vec![GrantType::RefreshToken, GrantType::Password],
        vec![GrantType::ClientCredentials],
        Vec::new(),
    ] {
        let update = ClientUpdate {
            grants: Some(grants.clone()),
            ..ClientUpdate::default()
        };
        assert!(store.update_client(&id, &update).await.unwrap());
        assert_eq!(store.client(&id).await.unwrap().unwrap().grants, grants);
    }
}

/// A secret rotation keeps at most one previous secret: with an overlap the replaced hash
/// becomes the previous one (an older previous one is dropped); without, none is kept and the
/// cut-off for access tokens moves. All in one step, for existing clients only.
pub async fn secret_rotation_keeps_at_most_one_previous_secret(store: &dyn Store) {
    let original = ClientRecord {
        previous_secret: None,
        not_before: 10,
        ..client(&unique("rotating"))
    };
    let id = original.client_id.clone();
    store.insert_client(&original).await.unwrap();

    assert!(store
        .rotate_client_secret(&id, "hash-2", Some(5_000), None)
        .await
        .unwrap());
    let now = store.client(&id).await.unwrap().unwrap();
    assert_eq!(now.secret_hash, "hash-2");
    assert_eq!(
        now.previous_secret,
        Some(PreviousSecret {
            hash: original.secret_hash.clone(),
            expires_at: 5_000
        })
    );
    assert_eq!(
        now.not_before, 10,
        "an overlapping rotation cuts nothing off"
    );

    assert!(store
        .rotate_client_secret(&id, "hash-3", Some(6_000), None)
        .await
        .unwrap());
    let now = store.client(&id).await.unwrap().unwrap();
    assert_eq!(now.secret_hash, "hash-3");
    assert_eq!(
        now.previous_secret,
        Some(PreviousSecret {
            hash: "hash-2".to_owned(),
            expires_at: 6_000
        }),
        "two secrets at most: the oldest is gone"
    );

    assert!(store
        .rotate_client_secret(&id, "hash-4", None, Some(7_000))
        .await
        .unwrap());
    let now = store.client(&id).await.unwrap().unwrap();
    assert_eq!(now.secret_hash, "hash-4");
    assert_eq!(now.previous_secret, None);
    assert_eq!(now.not_before, 7_000);
    assert_eq!(
        (&now.stamp, &now.grants, now.public),
        (&original.stamp, &original.grants, original.public),
        "a rotation ends no refresh family"
    );

    assert!(!store
        .rotate_client_secret(&unique("nobody"), "hash", Some(1), None)
        .await
        .unwrap());

    assert!(store
        .remove_client(
            &id,
            Removal {
                not_before: 5,
                keep_until: unix_now() + 3600
            }
        )
        .await
        .unwrap());
    store.insert_client(&original).await.unwrap();
    assert_eq!(
        store.client(&id).await.unwrap().unwrap().not_before,
        7_001,
        "a client added again gets a cut-off past the removed one's"
    );
}

/// Of [`RACERS`] concurrent rotations of one token, exactly one wins, and the stored record
/// names that winner's successor.
pub async fn refresh_rotation_is_single_use_under_race(store: &dyn Store) {
    let now = unix_now();
    let family = unique("family");
    let token = refresh_token(&family, now + 3600);
    store.insert_refresh(&token).await.unwrap();

    let successors: Vec<RefreshRecord> = (0..RACERS)
        .map(|_| RefreshRecord {
            issued_at: now,
            ..refresh_token(&family, token.expires_at)
        })
        .collect();
    let sealed: Vec<Vec<u8>> = (0..RACERS)
        .map(|racer| format!("sealed pair {racer}").into_bytes())
        .collect();
    let outcomes = join_all(
        successors
            .iter()
            .zip(&sealed)
            .map(|(successor, sealed)| store.rotate_refresh(&token.id, now, sealed, successor))
            .collect(),
    )
    .await;

    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| matches!(outcome, Ok(Rotation::Rotated)))
        .map(|(racer, _)| racer)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation wins: {outcomes:?}");
    let winner = winners[0];

    let expected = RefreshRecord {
        used_at: Some(now),
        sealed_successor: Some(sealed[winner].clone()),
        successor_id: Some(successors[winner].id.clone()),
        ..token.clone()
    };
    for (racer, outcome) in outcomes
        .into_iter()
        .enumerate()
        .filter(|(racer, _)| *racer != winner)
    {
        match outcome {
            Ok(Rotation::Lost(Some(current))) => {
                assert_eq!(*current, expected, "racer {racer} sees the winner's record")
            }
            other => {
                panic!("racer {racer} should have lost with the current record, got {other:?}")
            }
        }
    }
    assert_eq!(store.refresh(&token.id).await.unwrap(), Some(expected));
    assert_eq!(
        store.refresh(&successors[winner].id).await.unwrap(),
        Some(successors[winner].clone())
    );
    for (racer, successor) in successors
        .iter()
        .enumerate()
        .filter(|(racer, _)| *racer != winner)
    {
        assert_eq!(
            store.refresh(&successor.id).await.unwrap(),
            None,
            "loser {racer} stored no successor"
        );
    }
}

pub async fn rotating_unknown_refresh_token_is_lost(store: &dyn Store) {
    let now = unix_now();
    let successor = refresh_token(&unique("family"), now + 3600);
    let outcome = store
        .rotate_refresh(&unique("unknown"), now, b"sealed", &successor)
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::Lost(None));
    assert_eq!(
        store.refresh(&successor.id).await.unwrap(),
        None,
        "no successor without a token"
    );
}

pub async fn rotating_used_refresh_token_returns_current_record(store: &dyn Store) {
    let now = unix_now();
    let family = unique("family");
    let token = refresh_token(&family, now + 3600);
    store.insert_refresh(&token).await.unwrap();
    let first = refresh_token(&family, token.expires_at);
    let second = refresh_token(&family, token.expires_at);

    assert_eq!(
        store
            .rotate_refresh(&token.id, now, b"first", &first)
            .await
            .unwrap(),
        Rotation::Rotated
    );
    let later = store
        .rotate_refresh(&token.id, now + 5, b"second", &second)
        .await
        .unwrap();
    let expected = RefreshRecord {
        used_at: Some(now),
        sealed_successor: Some(b"first".to_vec()),
        successor_id: Some(first.id.clone()),
        ..token
    };
    assert_eq!(later, Rotation::Lost(Some(Box::new(expected))));
    assert_eq!(store.refresh(&second.id).await.unwrap(), None);

    // The successor rotates in its turn.
    let third = refresh_token(&family, first.expires_at);
    assert_eq!(
        store
            .rotate_refresh(&first.id, now + 10, b"third", &third)
            .await
            .unwrap(),
        Rotation::Rotated
    );
    assert_eq!(store.refresh(&third.id).await.unwrap(), Some(third));
}

pub async fn revoked_family_stays_revoked(store: &dyn Store) {
    let now = unix_now();
    let family = unique("family");
    assert!(!store.family_revoked(&family).await.unwrap());
    store.revoke_family(&family, now + 3600).await.unwrap();
    assert!(store.family_revoked(&family).await.unwrap());
    store.revoke_family(&family, now + 1800).await.unwrap();
    assert!(
        store.family_revoked(&family).await.unwrap(),
        "revoking again never un-revokes"
    );
    assert!(
        !store.family_revoked(&unique("family")).await.unwrap(),
        "other families are untouched"
    );
}

pub async fn access_token_revocation_ends_at_expiry(store: &dyn Store) {
    let now = unix_now();
    let jti = unique("jti");
    let expires_at = now + 600;
    assert!(!store.access_token_revoked(&jti, now).await.unwrap());

    store.revoke_access_token(&jti, expires_at).await.unwrap();
    assert!(store.access_token_revoked(&jti, now).await.unwrap());
    assert!(
        store.access_token_revoked(&jti, expires_at).await.unwrap(),
        "revoked up to its last second"
    );
    assert!(
        !store
            .access_token_revoked(&jti, expires_at + 1)
            .await
            .unwrap(),
        "expired tokens need no revocation"
    );

    store.revoke_access_token(&jti, now + 10).await.unwrap();
    assert!(
        store.access_token_revoked(&jti, now + 300).await.unwrap(),
        "a second revocation never shortens the first"
    );
    assert!(
        !store
            .access_token_revoked(&unique("jti"), now)
            .await
            .unwrap(),
        "other tokens are untouched"
    );
}

pub async fn login_slots_count_in_fixed_windows(store: &dyn Store) {
    let start = unix_now();
    let window = 60;
    let subject = login_subject();
    let user = [("user", 3)];
    for offset in [0, 10, 59] {
        assert_eq!(
            store
                .reserve_login_slots(&subject, &user, start + offset, window)
                .await
                .unwrap(),
            None,
            "slot at +{offset}"
        );
    }
    assert_eq!(
        store
            .reserve_login_slots(&subject, &user, start + 30, window)
            .await
            .unwrap(),
        Some(start + window),
        "the window is fixed: full until it ends"
    );

    let restart = start + window;
    assert_eq!(
        store
            .reserve_login_slots(&subject, &user, restart, window)
            .await
            .unwrap(),
        None,
        "a new window opens once the old one ended"
    );
    for _ in 0..2 {
        assert_eq!(
            store
                .reserve_login_slots(&subject, &user, restart + 1, window)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store
            .reserve_login_slots(&subject, &user, restart + 1, window)
            .await
            .unwrap(),
        Some(restart + window)
    );

    assert_eq!(
        store
            .reserve_login_slots(&login_subject(), &user, restart + 1, window)
            .await
            .unwrap(),
        None,
        "another subject's counter of the same name is its own"
    );
}

pub async fn a_refused_reservation_counts_nothing_and_names_the_latest_full_window(
    store: &dyn Store,
) {
    let start = unix_now();
    let window = 60;
    let subject = login_subject();
    for (counter, at) in [("early", start), ("late", start + 20)] {
        assert_eq!(
            store
                .reserve_login_slots(&subject, &[(counter, 1)], at, window)
                .await
                .unwrap(),
            None
        );
    }

    let all = [("early", 1), ("late", 1), ("spare", 5)];
    assert_eq!(
        store
            .reserve_login_slots(&subject, &all, start + 30, window)
            .await
            .unwrap(),
        Some(start + 20 + window),
        "refused until the last full window ends"
    );
    assert_eq!(
        store
            .reserve_login_slots(&subject, &all[..1], start + 30, window)
            .await
            .unwrap(),
        Some(start + window)
    );
    for n in 0..5 {
        assert_eq!(
            store
                .reserve_login_slots(&subject, &[("spare", 5)], start + 30, window)
                .await
                .unwrap(),
            None,
            "slot {n} of 5: the refused reservations counted nothing on this counter"
        );
    }
    assert!(store
        .reserve_login_slots(&subject, &[("spare", 5)], start + 30, window)
        .await
        .unwrap()
        .is_some());
}

pub async fn released_slots_are_given_back_or_forgotten_in_their_own_window(store: &dyn Store) {
    let start = unix_now();
    let window = 60;
    let subject = login_subject();
    const BOTH: &[(&str, u64)] = &[("address:x", 3), ("user", 3)];
    const USER: &[(&str, u64)] = &[("user", 3)];
    const ADDRESS: &[(&str, u64)] = &[("address:x", 3)];
    let reserve = |counters: &'static [(&'static str, u64)], at: u64| {
        store.reserve_login_slots(&subject, counters, at, window)
    };
    for _ in 0..3 {
        assert_eq!(reserve(BOTH, start).await.unwrap(), None);
    }
    assert!(reserve(BOTH, start).await.unwrap().is_some());

    store
        .release_login_slots(
            &subject,
            &[
                ("address:x", SlotRelease::Forget),
                ("user", SlotRelease::GiveBack),
            ],
            start,
            window,
        )
        .await
        .unwrap();
    assert_eq!(
        reserve(BOTH, start + 1).await.unwrap(),
        None,
        "one slot back on the user, none left counted on the address"
    );
    assert!(
        reserve(USER, start + 1).await.unwrap().is_some(),
        "only one slot was given back on the user"
    );
    for n in 0..2 {
        assert_eq!(
            reserve(ADDRESS, start + 1).await.unwrap(),
            None,
            "address slot {n}: forgotten means zero, then the one taken since"
        );
    }
    assert!(reserve(ADDRESS, start + 1).await.unwrap().is_some());

    for _ in 0..5 {
        store
            .release_login_slots(&subject, &[("user", SlotRelease::GiveBack)], start, window)
            .await
            .unwrap();
    }
    for n in 0..3 {
        assert_eq!(
            reserve(USER, start + 2).await.unwrap(),
            None,
            "user slot {n}: given back down to zero"
        );
    }
    assert!(
        reserve(USER, start + 2).await.unwrap().is_some(),
        "never below zero: extra give-backs free nothing"
    );

    let later = start + window + 1;
    for _ in 0..3 {
        assert_eq!(reserve(USER, later).await.unwrap(), None);
    }
    store
        .release_login_slots(
            &subject,
            &[
                ("user", SlotRelease::GiveBack),
                ("address:x", SlotRelease::Forget),
            ],
            start,
            window,
        )
        .await
        .unwrap();
    assert_eq!(
        reserve(USER, later).await.unwrap(),
        Some(later + window),
        "a slot of the ended window is not given back to the next one"
    );
    store
        .release_login_slots(&subject, &[("user", SlotRelease::GiveBack)], later, window)
        .await
        .unwrap();
    assert_eq!(reserve(USER, later).await.unwrap(), None);
}

pub async fn login_slots_are_never_overbooked_under_race(store: &dyn Store) {
    let now = unix_now();
    let window = 60;
    let subject = login_subject();
    let limit = 5;
    let counters = [("address:x", limit), ("user", 1_000)];
    let outcomes = join_all(
        (0..RACERS)
            .map(|_| store.reserve_login_slots(&subject, &counters, now, window))
            .collect(),
    )
    .await;
    let granted = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(None)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(Some(end)) if *end == now + window))
        .count();
    assert_eq!(
        (granted, refused),
        (5, RACERS - 5),
        "exactly the limit of {RACERS} racers get a slot: {outcomes:?}"
    );
    for n in 0..2 {
        assert_eq!(
            store
                .reserve_login_slots(&subject, &[("user", limit + 2)], now, window)
                .await
                .unwrap(),
            None,
            "user slot {n} beyond the racers'"
        );
    }
    assert!(
        store
            .reserve_login_slots(&subject, &[("user", limit + 2)], now, window)
            .await
            .unwrap()
            .is_some(),
        "the other counter counted exactly the granted racers"
    );
}

pub async fn purge_drops_only_expired_data(store: &dyn Store) {
    let now = unix_now();
    let live = refresh_token(&unique("family"), now + 3600);
    let expired = RefreshRecord {
        issued_at: now - 7200,
        ..refresh_token(&unique("family"), now - 3600)
    };
    store.insert_refresh(&live).await.unwrap();
    store.insert_refresh(&expired).await.unwrap();
    let live_family = unique("family");
    let expired_family = unique("family");
    store.revoke_family(&live_family, now + 3600).await.unwrap();
    store
        .revoke_family(&expired_family, now - 3600)
        .await
        .unwrap();
    let jti = unique("jti");
    store.revoke_access_token(&jti, now + 3600).await.unwrap();

    store.purge_expired(now).await.unwrap();

    assert_eq!(store.refresh(&live.id).await.unwrap(), Some(live));
    assert_eq!(store.refresh(&expired.id).await.unwrap(), None);
    assert!(store.family_revoked(&live_family).await.unwrap());
    assert!(!store.family_revoked(&expired_family).await.unwrap());
    assert!(store.access_token_revoked(&jti, now).await.unwrap());
}

pub async fn signing_keys_round_trip_newest_first(store: &dyn Store) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let active = signing_key(KeyState::Active, 1000);
    let retired = SigningKeyRecord {
        retired_at: Some(1500),
        expires_at: Some(2000),
        ..signing_key(KeyState::Retired, 900)
    };
    assert!(store.insert_signing_key(&retired).await.unwrap());
    assert!(store.insert_signing_key(&active).await.unwrap());
    assert_eq!(
        store.signing_keys().await.unwrap(),
        vec![active.clone(), retired.clone()],
        "every field kept, newest first"
    );
    assert!(
        !store
            .insert_signing_key(&signing_key(KeyState::Active, 1100))
            .await
            .unwrap(),
        "at most one active key"
    );
    assert!(
        !store
            .insert_signing_key(&SigningKeyRecord {
                state: KeyState::Retired,
                ..active.clone()
            })
            .await
            .unwrap(),
        "a kid is taken once"
    );
    assert!(store
        .insert_signing_key(&signing_key(KeyState::Next, 1200))
        .await
        .unwrap());
    assert!(
        !store
            .insert_signing_key(&signing_key(KeyState::Next, 1300))
            .await
            .unwrap(),
        "at most one next key"
    );
    assert_eq!(store.signing_keys().await.unwrap().len(), 3);

    let staged_in_the_same_second = SigningKeyRecord {
        activates_at: 2000,
        ..signing_key(KeyState::Retired, 1200)
    };
    let older_in_the_same_second = signing_key(KeyState::Retired, 1200);
    store
        .insert_signing_key(&older_in_the_same_second)
        .await
        .unwrap();
    store
        .insert_signing_key(&staged_in_the_same_second)
        .await
        .unwrap();
    let order: Vec<(u64, u64)> = store
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .map(|key| (key.created_at, key.activates_at))
        .collect();
    assert_eq!(
        order,
        [
            (1200, 2000),
            (1200, 1200),
            (1200, 1200),
            (1000, 1000),
            (900, 900)
        ],
        "by creation, then by activation"
    );
}

/// Replicas starting on an empty store at once: exactly one first key becomes active.
pub async fn first_active_key_is_single_under_race(store: &dyn Store) {
    let candidates: Vec<SigningKeyRecord> = (0..RACERS)
        .map(|_| signing_key(KeyState::Active, 1000))
        .collect();
    let outcomes = join_all(
        candidates
            .iter()
            .map(|key| store.insert_signing_key(key))
            .collect(),
    )
    .await;
    let winners = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(true)))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
}

/// Replicas running the schedule at once stage exactly one next key; a caller whose view of
/// the active key is stale stages nothing.
pub async fn staging_is_single_under_race_and_checks_the_active_key(store: &dyn Store) {
    let active = signing_key(KeyState::Active, 1000);
    store.insert_signing_key(&active).await.unwrap();
    assert!(!store
        .stage_signing_key(&signing_key(KeyState::Next, 1100), "some-other-kid")
        .await
        .unwrap());

    let candidates: Vec<SigningKeyRecord> = (0..RACERS)
        .map(|_| signing_key(KeyState::Next, 1100))
        .collect();
    let outcomes = join_all(
        candidates
            .iter()
            .map(|key| store.stage_signing_key(key, &active.kid))
            .collect(),
    )
    .await;
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| matches!(outcome, Ok(true)))
        .map(|(racer, _)| racer)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let keys = store.signing_keys().await.unwrap();
    let next: Vec<&SigningKeyRecord> = keys.iter().filter(|k| k.state == KeyState::Next).collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0], &candidates[winners[0]]);
}

/// Of concurrent promotions of one next key exactly one wins; it retires the active key with the
/// given removal time, all at once.
pub async fn promotion_is_single_under_race_and_retires_the_active_key(store: &dyn Store) {
    let active = signing_key(KeyState::Active, 1000);
    let next = SigningKeyRecord {
        activates_at: 1100,
        ..signing_key(KeyState::Next, 1050)
    };
    store.insert_signing_key(&active).await.unwrap();
    assert!(store.stage_signing_key(&next, &active.kid).await.unwrap());
    assert!(
        !store
            .promote_signing_key(&next.kid, 1099, 2000)
            .await
            .unwrap(),
        "not before activates_at"
    );
    assert!(!store
        .promote_signing_key(&active.kid, 1100, 2000)
        .await
        .unwrap());
    assert!(!store
        .promote_signing_key("unknown-kid", 1100, 2000)
        .await
        .unwrap());

    let outcomes = join_all(
        (0..RACERS)
            .map(|_| store.promote_signing_key(&next.kid, 1105, 2000))
            .collect(),
    )
    .await;
    let winners = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(true)))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    let keys = store.signing_keys().await.unwrap();
    assert_eq!(
        keys,
        vec![
            SigningKeyRecord {
                state: KeyState::Active,
                activates_at: 1105,
                ..next.clone()
            },
            SigningKeyRecord {
                state: KeyState::Retired,
                retired_at: Some(1105),
                expires_at: Some(2000),
                ..active.clone()
            },
        ]
    );
    assert!(
        !store
            .stage_signing_key(&signing_key(KeyState::Next, 1200), &active.kid)
            .await
            .unwrap(),
        "a staging decided before the promotion stages nothing"
    );
    assert!(store
        .stage_signing_key(&signing_key(KeyState::Next, 1200), &next.kid)
        .await
        .unwrap());
}

pub async fn revocation_withdraws_a_key_and_never_leaves_none_active(store: &dyn Store) {
    let active = signing_key(KeyState::Active, 1000);
    let next = signing_key(KeyState::Next, 1100);
    let retired = SigningKeyRecord {
        retired_at: Some(900),
        expires_at: Some(5000),
        ..signing_key(KeyState::Retired, 800)
    };
    store.insert_signing_key(&active).await.unwrap();
    store.insert_signing_key(&next).await.unwrap();
    store.insert_signing_key(&retired).await.unwrap();
    let unused = signing_key(KeyState::Active, 1200);

    assert_eq!(
        store
            .revoke_signing_key(&retired.kid, 1200, &unused)
            .await
            .unwrap(),
        KeyRevocation::Revoked { now_active: None }
    );
    assert_eq!(
        store
            .revoke_signing_key(&active.kid, 1300, &unused)
            .await
            .unwrap(),
        KeyRevocation::Revoked {
            now_active: Some(next.kid.clone())
        },
        "the next key takes over"
    );
    let replacement = signing_key(KeyState::Active, 1400);
    assert_eq!(
        store
            .revoke_signing_key(&next.kid, 1400, &replacement)
            .await
            .unwrap(),
        KeyRevocation::Revoked {
            now_active: Some(replacement.kid.clone())
        },
        "without a next key the replacement takes over"
    );
    assert_eq!(
        store
            .revoke_signing_key(&next.kid, 1500, &signing_key(KeyState::Active, 1500))
            .await
            .unwrap(),
        KeyRevocation::AlreadyRevoked
    );
    assert_eq!(
        store
            .revoke_signing_key("unknown-kid", 1500, &signing_key(KeyState::Active, 1500))
            .await
            .unwrap(),
        KeyRevocation::Unknown
    );

    let keys = store.signing_keys().await.unwrap();
    let find = |kid: &str| keys.iter().find(|k| k.kid == kid).cloned();
    assert_eq!(find(&replacement.kid), Some(replacement.clone()));
    assert_eq!(
        find(&unused.kid),
        None,
        "an unneeded replacement is not stored"
    );
    assert_eq!(
        find(&active.kid),
        Some(SigningKeyRecord {
            state: KeyState::Revoked,
            retired_at: Some(1300),
            expires_at: None,
            sealed_private_key: Vec::new(),
            ..active.clone()
        }),
        "a revoked key is a tombstone without its private key"
    );
    assert_eq!(
        find(&next.kid).map(|k| (k.state, k.activates_at, k.retired_at)),
        Some((KeyState::Revoked, 1300, Some(1400)))
    );
    assert_eq!(
        find(&retired.kid).map(|k| (k.state, k.retired_at, k.expires_at)),
        Some((KeyState::Revoked, Some(900), None)),
        "it keeps when it stopped signing"
    );
    assert_eq!(
        keys.iter().filter(|k| k.state == KeyState::Active).count(),
        1
    );
}

pub async fn expired_signing_keys_are_removed_and_tombstones_kept(store: &dyn Store) {
    let active = signing_key(KeyState::Active, 1000);
    let expired = SigningKeyRecord {
        retired_at: Some(900),
        expires_at: Some(1500),
        ..signing_key(KeyState::Retired, 800)
    };
    let live = SigningKeyRecord {
        retired_at: Some(950),
        expires_at: Some(1501),
        ..signing_key(KeyState::Retired, 850)
    };
    let revoked = signing_key(KeyState::Retired, 700);
    for key in [&active, &expired, &live, &revoked] {
        store.insert_signing_key(key).await.unwrap();
    }
    store
        .revoke_signing_key(&revoked.kid, 900, &signing_key(KeyState::Active, 900))
        .await
        .unwrap();

    assert_eq!(store.remove_expired_signing_keys(1500).await.unwrap(), 1);
    assert_eq!(store.remove_expired_signing_keys(1500).await.unwrap(), 0);
    let kids: Vec<String> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec![active.kid, live.kid, revoked.kid]);
}

// ---------------------------------------------------------------------------------------------
// Tests per backend
// ---------------------------------------------------------------------------------------------

/// `conformance_tests!(name, backend)` makes a module `name` with one `#[tokio::test]` per rule;
/// `backend` is an expression, evaluated afresh in each test, that yields a [`TestBackend`].
#[cfg(test)]
macro_rules! conformance_tests {
    ($backend:ident, $open:expr) => {
        $crate::store::conformance::conformance_tests!(@rules $backend, $open;
            store_answers_ping,
            user_round_trip,
            user_updates_apply_to_existing_users_only,
            users_are_listed_in_order,
            duplicate_user_is_conflict,
            client_round_trip,
            duplicate_client_is_conflict,
            ending_a_users_sessions_is_one_step_with_the_change,
            usernames_and_client_ids_never_collide,
            client_update_changes_only_what_it_names,
            grant_types_round_trip_in_order,
            secret_rotation_keeps_at_most_one_previous_secret,
            password_hash_replacement_is_compare_and_set,
            refresh_token_round_trip,
            refresh_context_reads_token_family_and_user,
            refresh_rotation_is_single_use_under_race,
            rotating_unknown_refresh_token_is_lost,
            rotating_used_refresh_token_returns_current_record,
            revoked_family_stays_revoked,
            access_token_revocation_ends_at_expiry,
            login_slots_count_in_fixed_windows,
            a_refused_reservation_counts_nothing_and_names_the_latest_full_window,
            released_slots_are_given_back_or_forgotten_in_their_own_window,
            login_slots_are_never_overbooked_under_race,
            purge_drops_only_expired_data,
            signing_keys_round_trip_newest_first,
            first_active_key_is_single_under_race,
            staging_is_single_under_race_and_checks_the_active_key,
            promotion_is_single_under_race_and_retires_the_active_key,
            revocation_withdraws_a_key_and_never_leaves_none_active,
            expired_signing_keys_are_removed_and_tombstones_kept,
        );
    };
    (@rules $backend:ident, $open:expr; $($rule:ident),* $(,)?) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $rule() {
                    let backend = $open;
                    $crate::store::conformance::$rule(backend.store()).await;
                    backend.finish().await;
                }
            )*
        }
    };
}
#[cfg(test)]
pub(crate) use conformance_tests;

/// A store for one test, with what must outlive it (a temporary directory) and what to clean
/// up after it (a Redis key prefix).
pub struct TestBackend {
    store: Arc<dyn Store>,
    redis_namespace: Option<(String, String)>,
    _keep_alive: Box<dyn Any + Send + Sync>,
}

impl TestBackend {
    /// Wraps `store`; `keep_alive` (say, its `TempDir`) is dropped with the backend.
    pub fn new(store: impl Store + 'static, keep_alive: impl Any + Send + Sync) -> Self {
        Self {
            store: Arc::new(store),
            redis_namespace: None,
            _keep_alive: Box::new(keep_alive),
        }
    }

    /// A [`RedisStore`] on the test Redis ([`redis_test_url`]) under a fresh key prefix, so that
    /// tests run in parallel on one server. Panics, naming the (redacted) URL, when Redis cannot
    /// be reached.
    pub async fn redis() -> Self {
        let url = redis_test_url();
        let prefix = fresh_test_prefix();
        let store = RedisStore::open_with_prefix(&url, &prefix)
            .await
            .unwrap_or_else(|err| panic!("no Redis for the tests: {err}; set REDIS_URL to a reachable server, or unset it to start redis-server from PATH"));
        Self {
            store: Arc::new(store),
            redis_namespace: Some((url, prefix)),
            _keep_alive: Box::new(()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// A handle to share with servers under test.
    pub fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Ends the test: deletes the Redis keys under its prefix, or the temporary files.
    pub async fn finish(self) {
        if let Some((url, prefix)) = &self.redis_namespace {
            delete_redis_namespace(url, prefix).await;
        }
    }
}

/// A key prefix no other test uses.
pub fn fresh_test_prefix() -> String {
    format!("conformance-{:016x}:", rand::random::<u64>())
}

async fn delete_redis_namespace(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("test Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the test Redis");
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .expect("scanning the test namespace");
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .expect("deleting test keys");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

// ---------------------------------------------------------------------------------------------
// The test Redis
// ---------------------------------------------------------------------------------------------

/// The Redis that tests use: `REDIS_URL` when it is set, else a private `redis-server` from
/// `PATH`, started once per test process on a free port without persistence, and stopped when
/// the process exits. With neither, panics with a message that says how to get one.
pub fn redis_test_url() -> String {
    if let Some(url) = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        return url;
    }
    static PRIVATE: OnceLock<Result<PrivateRedis, String>> = OnceLock::new();
    match PRIVATE.get_or_init(PrivateRedis::start) {
        Ok(server) => server.url.clone(),
        Err(reason) => panic!("no Redis for the tests: {reason}"),
    }
}

/// A `redis-server` child of this process, run under `sh` that holds our end of a pipe: when
/// this process exits, however it exits, the pipe closes and `sh` stops the server.
struct PrivateRedis {
    url: String,
    /// Never waited for; its stdin (the pipe) stays open as long as this process lives.
    _supervisor: Child,
}

/// Starts `redis-server "$@"`, stops it when stdin reaches end of file, and exits when it exits.
const SUPERVISOR: &str = r#"
exec 3<&0
redis-server "$@" </dev/null 3<&- &
server=$!
( read -r _ <&3; kill "$server" 2>/dev/null ) &
watcher=$!
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

impl PrivateRedis {
    fn start() -> Result<Self, String> {
        let how = "set REDIS_URL (for example REDIS_URL=redis://127.0.0.1:6379/0) or put redis-server on PATH \
                   (for example `apt-get install redis-server`)";
        let Some(binary) = find_on_path("redis-server") else {
            return Err(format!(
                "REDIS_URL is not set and redis-server is not on PATH; {how}"
            ));
        };
        let mut last_problem = String::new();
        // A free port can be taken between our probe and the server's bind; try a few.
        for _attempt in 0..3 {
            let port = free_port().map_err(|err| format!("finding a free port: {err}"))?;
            let mut supervisor = Command::new("sh")
                .arg("-c")
                .arg(SUPERVISOR)
                .arg("redis-test-supervisor")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(std::env::temp_dir())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| format!("starting {}: {err}", binary.display()))?;
            match wait_until_ready(port, &mut supervisor) {
                Ok(()) => {
                    return Ok(Self {
                        url: format!("redis://127.0.0.1:{port}/0"),
                        _supervisor: supervisor,
                    })
                }
                Err(problem) => {
                    let _ = supervisor.kill();
                    let _ = supervisor.wait();
                    last_problem = problem;
                }
            }
        }
        Err(format!(
            "{} did not start ({last_problem}); {how}",
            binary.display()
        ))
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_until_ready(port: u16, supervisor: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = supervisor.try_wait() {
            return Err(format!("redis-server on port {port} exited with {status}"));
        }
        if answers_ping(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "redis-server on port {port} did not answer within 10 s"
    ))
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A login subject no other rule uses.
fn login_subject() -> LoginSubject {
    LoginSubject(rand::random())
}

/// `base` with a random suffix, so that rules never collide on a shared backend.
fn unique(base: &str) -> String {
    format!("{base}-{:016x}", rand::random::<u64>())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn user(username: &str) -> UserRecord {
    UserRecord {
        username: username.to_owned(),
        full_name: Some("Test User Ünicode".to_owned()),
        email: Some(format!("{username}@example.com")),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        disabled: false,
        scopes: Scope::from_tokens(["profile", "email", "api:read"]),
        stamp: format!("stamp-of-{username}"),
        not_before: 1_700_000_000,
    }
}

/// A removal whose record Redis keeps for an hour.
fn removal() -> Removal {
    Removal {
        not_before: unix_now() + 1,
        keep_until: unix_now() + 3600,
    }
}

/// A session cut with a stamp of its own for `not_before`.
fn cut(not_before: u64) -> SessionCut {
    SessionCut {
        stamp: format!("stamp-{not_before}"),
        not_before,
    }
}

fn client(client_id: &str) -> ClientRecord {
    ClientRecord {
        client_id: client_id.to_owned(),
        secret_hash: "keyed-hash-of-the-secret".to_owned(),
        previous_secret: Some(PreviousSecret {
            hash: "keyed-hash-of-the-old-secret".to_owned(),
            expires_at: 1_800_000_000,
        }),
        public: false,
        introspect: true,
        grants: vec![GrantType::Password, GrantType::RefreshToken],
        scopes: Scope::from_tokens(["profile", "api:read"]),
        audiences: vec!["https://api.example.com".to_owned(), "other-api".to_owned()],
        stamp: format!("stamp-of-{client_id}"),
        not_before: 1_700_000_001,
    }
}

/// An unused token of `family_id` with a random id.
fn refresh_token(family_id: &str, expires_at: u64) -> RefreshRecord {
    RefreshRecord {
        id: format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        ),
        family_id: family_id.to_owned(),
        client_id: "web".to_owned(),
        username: "alice".to_owned(),
        scope: Scope::from_tokens(["profile", "offline_access"]),
        audience: "https://api.example.com".to_owned(),
        user_stamp: unique("user-stamp"),
        client_stamp: unique("client-stamp"),
        issued_at: expires_at.saturating_sub(3600),
        expires_at,
        used_at: None,
        sealed_successor: None,
        successor_id: None,
    }
}

/// A signing-key record with a random kid and key material that is not UTF-8 (the backends
/// must keep bytes as bytes).
fn signing_key(state: KeyState, created_at: u64) -> SigningKeyRecord {
    let kid = format!("kid-{:016x}", rand::random::<u64>());
    let mut sealed: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
    sealed.extend_from_slice(&[0, 0xff, b'"', b'\\']);
    SigningKeyRecord {
        public_jwk: format!(r#"{{"kty":"RSA","kid":"{kid}","n":"AQAB","e":"AQAB"}}"#),
        kid,
        state,
        created_at,
        activates_at: created_at,
        retired_at: None,
        expires_at: None,
        sealed_private_key: sealed,
    }
}

/// Polls every future until all are done, so that their requests are in flight together.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished"))
        .collect()
}
