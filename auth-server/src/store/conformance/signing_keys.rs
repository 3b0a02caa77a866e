//! Signing keys: at most one next and one active key, whatever races, and the lifecycle steps.

use super::*;

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

/// Exactly one of the racers won, and no racer failed.
fn assert_one_winner<E: std::fmt::Debug>(outcomes: &[Result<bool, E>]) {
    let winners = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(true)))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
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
    assert_one_winner(&outcomes);
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
    assert_one_winner(&outcomes);

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
