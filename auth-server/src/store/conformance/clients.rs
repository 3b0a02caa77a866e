//! Clients: round trips, the names users and clients share, updates and secret rotation.

use super::*;

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
