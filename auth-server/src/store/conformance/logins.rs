//! The login throttle's slots: fixed windows, refusals, releases, and no overbooking under races.

use super::*;

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
