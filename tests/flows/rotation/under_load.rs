//! Keys rotated by command and by schedule while two replicas serve a steady load.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_rotate_by_command_and_schedule_across_replicas_with_no_valid_token_refused() {
    let namespace = shared_redis("rotation");
    let kek = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
    let timings = move |settings: &mut auth_server::Settings| {
        settings.access_token_ttl = ACCESS_TTL;
        settings.key_publish_ahead = PUBLISH_AHEAD;
        settings.key_sync_interval = SYNC;
        settings.key_rotation_interval = ROTATION_INTERVAL;
        settings.key_removal_leeway = REMOVAL_LEEWAY;
        settings.key_encryption_key = Some(auth_server::settings::Secret(kek.clone()));
    };
    let a = TestAuth::spawn_on_redis(namespace.store_url(), &timings).await;
    let b = a.spawn_replica(&timings).await;
    let jwks = a.get("/.well-known/jwks.json").await;
    let max_age = jwks.headers()["cache-control"].to_str().unwrap().to_owned();
    assert_eq!(
        max_age,
        format!("public, max-age={}", PUBLISH_AHEAD - 2 * SYNC),
        "derived from the schedule"
    );
    a.add_client("svc", SECRET, &["client_credentials"], "items:read", &[])
        .await;

    let (jwks_url, served) = jwks_round_robin([a.url.clone(), b.url.clone()]).await;
    let api = TestResource::spawn_with(&a.url, true, |config| {
        config.jwks_url = Some(jwks_url);
        config.min_refresh = Duration::from_secs(1);
        config.max_refresh = Duration::from_secs(1);
        config.leeway = Duration::from_secs(REMOVAL_LEEWAY);
        config.unknown_kid_cooldown = Duration::from_millis(500);
    })
    .await;
    let (a, b, api) = (Arc::new(a), Arc::new(b), Arc::new(api));
    let lifecycle = a.key_lifecycle();
    let initial = a.active_kid().await;

    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = (0..WORKERS)
        .map(|seed| {
            tokio::spawn(load(
                [a.clone(), b.clone()],
                api.clone(),
                tally.clone(),
                seed,
            ))
        })
        .collect();

    // Phase 1: rotations, alternately by command and by schedule, while the load runs.
    let started = Instant::now();
    let mut actives = vec![initial.clone()];
    let mut by_command: HashSet<String> = HashSet::new();
    let mut records_of_initial: Option<SigningKeyRecord> = None;
    let mut initial_left_jwks_at: Option<f64> = None;
    let mut disagreeing_since: Option<Instant> = None;
    let mut longest_disagreement = Duration::ZERO;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rotations did not happen in time: {actives:?}"
        );
        let keys = lifecycle.list().await.unwrap();
        *tally.retired.lock().unwrap() = keys
            .iter()
            .filter(|key| key.state == KeyState::Retired)
            .map(|key| key.kid.clone())
            .collect();
        if let Some(record) = keys
            .iter()
            .find(|key| key.kid == initial && key.state == KeyState::Retired)
        {
            records_of_initial = Some(record.clone());
        }
        let active = find(&keys, KeyState::Active).unwrap().kid.clone();
        if actives.last() != Some(&active) {
            actives.push(active.clone());
        }
        let last_was_scheduled = !by_command.contains(actives.last().unwrap());
        if find(&keys, KeyState::Next).is_none() && last_was_scheduled && by_command.len() < 2 {
            match lifecycle.rotate(unix_now()).await.unwrap() {
                Rotation::Staged { kid, .. } => {
                    by_command.insert(kid);
                }
                Rotation::AlreadyStaged { .. } => {}
            }
        }

        let (kids_a, kids_b) = (kids_of(&a).await, kids_of(&b).await);
        if kids_a == kids_b {
            disagreeing_since = None;
        } else {
            let since = *disagreeing_since.get_or_insert_with(Instant::now);
            longest_disagreement = longest_disagreement.max(since.elapsed());
        }
        if kids_a.contains(&initial) || kids_b.contains(&initial) {
            initial_left_jwks_at = None;
        } else if initial_left_jwks_at.is_none() {
            initial_left_jwks_at = Some(unix_now_f64());
        }

        let commanded = actives
            .iter()
            .filter(|kid| by_command.contains(*kid))
            .count();
        let scheduled = actives.len() - 1 - commanded;
        if commanded >= 2 && scheduled >= 2 && initial_left_jwks_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        longest_disagreement < Duration::from_secs(3 * SYNC + 3),
        "the replicas published different key sets for {longest_disagreement:?}"
    );

    // The first key left the JWKS, and only after every token it signed had expired.
    let retired = records_of_initial.expect("the first key was seen retired");
    let (retired_at, expires_at) = (retired.retired_at.unwrap(), retired.expires_at.unwrap());
    assert_eq!(
        expires_at,
        retired_at + ACCESS_TTL + SYNC + REMOVAL_LEEWAY,
        "published for its tokens' lifetime, one sync interval and the leeway"
    );
    let left_at = initial_left_jwks_at.unwrap();
    let last_token_exp = tally.last_exp.lock().unwrap()[&initial];
    assert!(
        left_at >= last_token_exp as f64,
        "the first key left the JWKS at {left_at}, before its last token expired at {last_token_exp}"
    );
    assert!(
        left_at <= (expires_at + 3 * SYNC + 3) as f64,
        "the first key stayed in the JWKS until {left_at}, long after {expires_at}"
    );
    assert!(
        lifecycle
            .list()
            .await
            .unwrap()
            .iter()
            .all(|key| key.kid != initial),
        "and its record is gone"
    );

    // Phase 2: revoke the active key once a next key has been published long enough; the next
    // key takes over at once and the revoked key's tokens are refused, while the load runs.
    let (revoked_kid, revoked_token) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no next key was staged"
        );
        let keys = lifecycle.list().await.unwrap();
        let (Some(active), Some(next)) =
            (find(&keys, KeyState::Active), find(&keys, KeyState::Next))
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if unix_now() + 1 < next.activates_at {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let kid = active.kid.clone();
        // A token the key signed, valid long after the revocation has spread.
        let token = loop {
            let token = a
                .client_credentials("svc", SECRET, "items:read")
                .await
                .access_token;
            if kid_and_exp(&token).0 == kid {
                break token;
            }
            assert!(started.elapsed() < Duration::from_secs(180));
        };
        tally.revoked.lock().unwrap().insert(kid.clone());
        let outcome = lifecycle.revoke(&kid, unix_now()).await.unwrap();
        assert_eq!(
            outcome,
            KeyRevocation::Revoked {
                now_active: Some(next.kid.clone())
            },
            "the published next key signs at once"
        );
        break (kid, token);
    };
    let revoked_at = Instant::now();
    let refused = loop {
        let response = api.get("/items", &revoked_token).await;
        if response.status() == 401 {
            break system_tests::challenge(&response);
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(ACCESS_TTL - 1),
            "the revoked key's token was still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused.contains(r#"error="invalid_token""#),
        "RFC 6750 §3.1: {refused}"
    );
    let refused_after = revoked_at.elapsed();
    // Every replica stops publishing the key within its key-sync interval; the resource server
    // may have fetched from the replica that revoked it before the other synced, so this is
    // awaited, within the same bound as the refusal.
    loop {
        if !kids_of(&a).await.contains(&revoked_kid) && !kids_of(&b).await.contains(&revoked_kid) {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(ACCESS_TTL - 1 + 2 * SYNC),
            "a replica still published the revoked key after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The load runs on with the key that took over.
    tokio::time::sleep(Duration::from_secs(2 * SYNC + 1)).await;

    tally.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    // Phase 3, the cost of revoking without a published next key: a new key signs at once, and
    // its first tokens may be refused until the resource server has fetched it.
    let keys = lifecycle.list().await.unwrap();
    let active = find(&keys, KeyState::Active).unwrap().kid.clone();
    let KeyRevocation::Revoked {
        now_active: Some(fresh),
    } = lifecycle.revoke(&active, unix_now()).await.unwrap()
    else {
        panic!("revoking the active key names its successor");
    };
    let cost_started = Instant::now();
    let mut refused_fresh = 0;
    loop {
        let token = b
            .client_credentials("svc", SECRET, "items:read")
            .await
            .access_token;
        if kid_and_exp(&token).0 == fresh {
            if api.get("/items", &token).await.status() == 200 {
                break;
            }
            refused_fresh += 1;
        }
        assert!(
            cost_started.elapsed() < Duration::from_secs(4 * SYNC + 6),
            "tokens of the fresh key were still refused after {:?}",
            cost_started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each replica counts the key changes it followed and shows the keys it publishes.
    for replica in [&a, &b] {
        let metrics = replica.metrics().await;
        let rotations = metric_value(&metrics, "auth_server_signing_key_rotations_total", &[]);
        assert!(rotations >= (actives.len() - 1) as f64);
        assert_eq!(
            metric_value(&metrics, "auth_server_signing_keys", &[("state", "active")]),
            1.0
        );
        assert_eq!(
            metric_value(&metrics, "auth_server_signing_key_sync_failures_total", &[]),
            0.0
        );
    }

    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let refusals = tally.refusals.lock().unwrap().clone();
    println!(
        "rotation: {} rotations ({} by command, {} by schedule) in {:?}; tokens issued {}, \
         token failures {}, verified fresh {}, re-used {} (of them while their key was retired {}), \
         refused valid {}, refused after revocation {}, transport errors {}; JWKS fetches from \
         replica a {}, b {}; longest JWKS disagreement {:?}; revoked key refused after {:?}; \
         fresh key's tokens refused {} times before its first acceptance after {:?}",
        actives.len() - 1,
        by_command.len(),
        actives.len() - 1 - by_command.len(),
        started.elapsed(),
        count(&tally.issued),
        count(&tally.token_failures),
        count(&tally.fresh_ok),
        count(&tally.reused_ok),
        count(&tally.reused_retired_ok),
        count(&tally.refused_valid),
        count(&tally.refused_revoked),
        count(&tally.transport_errors),
        served[0].load(Ordering::Relaxed),
        served[1].load(Ordering::Relaxed),
        longest_disagreement,
        refused_after,
        refused_fresh,
        cost_started.elapsed(),
    );
    assert_eq!(
        count(&tally.refused_valid),
        0,
        "refused valid tokens: {refusals:#?}"
    );
    assert_eq!(count(&tally.transport_errors), 0, "{refusals:#?}");
    assert_eq!(
        count(&tally.token_failures),
        0,
        "every token request succeeded"
    );
    assert!(count(&tally.issued) >= 100, "the load ran");
    assert!(
        count(&tally.reused_retired_ok) > 0,
        "tokens signed before a rotation were accepted after it"
    );
    assert!(
        served[0].load(Ordering::Relaxed) > 0 && served[1].load(Ordering::Relaxed) > 0,
        "the resource server fetched keys from both replicas"
    );
}
