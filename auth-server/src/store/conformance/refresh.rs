//! Refresh-token families, their single-use rotation under races, revocations and the purge.

use super::*;

pub async fn refresh_token_round_trip(store: &dyn Store) {
    let token = refresh_token(&unique("family"), unix_now() + 3600);
    store.insert_refresh(&token).await.unwrap();
    assert_eq!(store.refresh(&token.id).await.unwrap(), Some(token.clone()));
    assert_eq!(store.refresh(&unique("unknown")).await.unwrap(), None);

    // The same insert again (a resent request) is no error; another record under the id is.
    store.insert_refresh(&token).await.unwrap();
    let mut other = token.clone();
    other.family_id = unique("other-family");
    let taken = store.insert_refresh(&other).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(store.refresh(&token.id).await.unwrap(), Some(token));
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

/// The bulk insert of the population loader writes what the single inserts write: every user
/// and token reads back through the usual methods, the refresh grant's one read included, and a
/// user whose name is taken (by a user or a client) is a `Conflict`, as one by one.
pub async fn insert_many_writes_what_single_inserts_write(store: &dyn Store) {
    let users: Vec<UserRecord> = (0..5).map(|_| user(&unique("many"))).collect();
    let tokens: Vec<RefreshRecord> = (0..20)
        .map(|index| {
            let mut token = refresh_token(&unique("family"), unix_now() + 3600);
            token.username = users[index % users.len()].username.clone();
            token
        })
        .collect();
    store.insert_many(&users, &tokens).await.unwrap();
    for user in &users {
        assert_eq!(
            store.user(&user.username).await.unwrap().as_ref(),
            Some(user)
        );
    }
    for token in &tokens {
        let context = store.refresh_context(&token.id).await.unwrap().unwrap();
        assert_eq!(&context.record, token);
        assert!(!context.family_revoked);
        let owner = users.iter().find(|user| user.username == token.username);
        assert_eq!(context.user.as_ref(), owner);
    }
    let listed = store.list_users().await.unwrap();
    assert!(users.iter().all(|user| listed.contains(user)));

    let again = store.insert_many(&users[..1], &[]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let client_name = unique("many-client");
    store.insert_client(&client(&client_name)).await.unwrap();
    let clash = store.insert_many(&[user(&client_name)], &[]).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(store.user(&client_name).await.unwrap(), None);
    let mut other = tokens[0].clone();
    other.family_id = unique("other-family");
    let taken = store.insert_many(&[], &[other]).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
}
