//! The revocation feed: entries round trip in the order recorded, the cursor counts them, a
//! cursor answers only what came after it, and anything else a cursor may be (absent, garbage,
//! another store's, ahead of the store, behind the purge floor) gets the whole set.

use super::*;

use crate::store::{parse_cursor, RevocationEntry, RevocationFeed};

fn seq_of(feed: &RevocationFeed) -> u64 {
    parse_cursor(&feed.cursor)
        .unwrap_or_else(|| panic!("the cursor {:?} is not epoch.seq", feed.cursor))
        .1
}

fn epoch_of(feed: &RevocationFeed) -> String {
    parse_cursor(&feed.cursor).unwrap().0.to_owned()
}

pub async fn revocation_feed_round_trips_in_order_and_counts(store: &dyn Store) {
    let now = 1_700_000_000;
    let empty = store.revocations_since(None, now).await.unwrap();
    assert!(empty.complete && empty.entries.is_empty(), "{empty:?}");
    assert_eq!(seq_of(&empty), 0);

    let token = RevocationEntry::token("jti-1", now + 960);
    let subject = RevocationEntry::subject("alice", now + 1, now + 1200);
    let client = RevocationEntry::client("web", now + 1, now + 1200);
    for entry in [&token, &subject, &client] {
        store.record_revocation(entry).await.unwrap();
    }
    let whole = store.revocations_since(None, now).await.unwrap();
    assert!(whole.complete);
    assert_eq!(
        whole.entries,
        vec![token.clone(), subject.clone(), client.clone()]
    );
    assert_eq!(seq_of(&whole), 3);
    assert_eq!(epoch_of(&whole), epoch_of(&empty), "the epoch is made once");

    let unchanged = store
        .revocations_since(Some(&whole.cursor), now)
        .await
        .unwrap();
    assert_eq!(
        unchanged,
        RevocationFeed {
            cursor: whole.cursor.clone(),
            complete: false,
            entries: Vec::new()
        },
        "the current cursor has nothing after it"
    );

    let later = RevocationEntry::token("jti-2", now + 900);
    store.record_revocation(&later).await.unwrap();
    let delta = store
        .revocations_since(Some(&whole.cursor), now)
        .await
        .unwrap();
    assert!(!delta.complete);
    assert_eq!(delta.entries, vec![later.clone()]);
    assert_eq!(seq_of(&delta), 4);

    // A second change of the same subject replaces its entry with a later seq, keeping the
    // later cut-off and end; an earlier one cannot lower them.
    let again = RevocationEntry::subject("alice", now + 50, now + 1250);
    store.record_revocation(&again).await.unwrap();
    let older = RevocationEntry::subject("alice", now + 2, now + 1000);
    store.record_revocation(&older).await.unwrap();
    let delta = store
        .revocations_since(Some(&delta.cursor), now)
        .await
        .unwrap();
    assert_eq!(delta.entries, vec![again.clone()]);
    assert_eq!(seq_of(&delta), 6);
    let whole = store.revocations_since(None, now).await.unwrap();
    assert_eq!(whole.entries, vec![token, client, later, again]);
    assert_eq!(whole.entries[3].key, crate::store::name_digest("alice"));
    assert_ne!(whole.entries[3].key, "alice", "names are stored as digests");
}

pub async fn revocation_feed_answers_any_other_cursor_with_the_whole_set(store: &dyn Store) {
    let now = 1_700_000_000;
    let first = RevocationEntry::token("a", now + 100);
    let second = RevocationEntry::client("c", now + 1, now + 100);
    store.record_revocation(&first).await.unwrap();
    store.record_revocation(&second).await.unwrap();
    let whole = store.revocations_since(None, now).await.unwrap();
    let epoch = epoch_of(&whole);
    for since in [
        "".to_owned(),
        "garbage".to_owned(),
        format!("{epoch}."),
        format!("{epoch}.-1"),
        format!("{epoch}.x1"),
        "other-epoch.1".to_owned(),
        format!("{epoch}.99"),
        format!("{epoch}.18446744073709551616"),
    ] {
        let feed = store.revocations_since(Some(&since), now).await.unwrap();
        assert!(feed.complete, "{since:?} gets the whole set");
        assert_eq!(
            feed.entries,
            vec![first.clone(), second.clone()],
            "{since:?}"
        );
        assert_eq!(feed.cursor, whole.cursor);
    }
    let partial = store
        .revocations_since(Some(&format!("{epoch}.1")), now)
        .await
        .unwrap();
    assert!(!partial.complete);
    assert_eq!(partial.entries, vec![second]);
}

pub async fn revocation_feed_purge_drops_ended_entries_and_raises_the_floor(store: &dyn Store) {
    let now = 1_700_000_000;
    let short = RevocationEntry::token("short", now + 10);
    let long = RevocationEntry::token("long", now + 1000);
    store.record_revocation(&short).await.unwrap();
    let after_short = store.revocations_since(None, now).await.unwrap();
    store.record_revocation(&long).await.unwrap();
    let before = store.revocations_since(None, now).await.unwrap();
    assert_eq!(before.entries, vec![short.clone(), long.clone()]);

    // Past its end an entry is no longer answered, purged or not.
    let later = store.revocations_since(None, now + 11).await.unwrap();
    assert_eq!(later.entries, vec![long.clone()]);
    let at_end = store.revocations_since(None, now + 10).await.unwrap();
    assert_eq!(
        at_end.entries,
        vec![short, long.clone()],
        "until is inclusive"
    );

    store.purge_expired(now + 11).await.unwrap();
    let purged = store.revocations_since(None, now).await.unwrap();
    assert_eq!(purged.entries, vec![long.clone()], "purged for good");
    assert_eq!(purged.cursor, before.cursor, "a purge records nothing");

    // The floor is the purged entry's seq: a cursor before it may have missed it, one at it
    // has seen it.
    let behind = format!("{}.0", epoch_of(&before));
    let feed = store.revocations_since(Some(&behind), now).await.unwrap();
    assert!(
        feed.complete,
        "a cursor behind the floor gets the whole set"
    );
    assert_eq!(feed.entries, vec![long.clone()]);
    let at_floor = store
        .revocations_since(Some(&after_short.cursor), now)
        .await
        .unwrap();
    assert!(!at_floor.complete);
    assert_eq!(at_floor.entries, vec![long.clone()]);
    let current = store
        .revocations_since(Some(&before.cursor), now)
        .await
        .unwrap();
    assert!(!current.complete && current.entries.is_empty());

    let next = RevocationEntry::token("next", now + 1000);
    store.record_revocation(&next).await.unwrap();
    let delta = store
        .revocations_since(Some(&before.cursor), now)
        .await
        .unwrap();
    assert!(!delta.complete);
    assert_eq!(delta.entries, vec![next]);
    assert_eq!(seq_of(&delta), 3, "a seq is never handed out twice");
}
