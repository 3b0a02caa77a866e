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
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use oauth2_jwt_verifier::Scope;
use test_kit::unix_now;

use super::redis::RedisStore;
use super::{
    ClientRecord, ClientUpdate, GrantType, KeyRevocation, KeyState, LoginSubject, PreviousSecret,
    RefreshRecord, Removal, Rotation, SessionCut, SigningKeyRecord, SlotRelease, Store, StoreError,
    UserRecord,
};

/// How many callers race to rotate one refresh token.
pub const RACERS: usize = 32;

mod backend;
mod clients;
mod logins;
mod refresh;
mod revocations;
mod signing_keys;
mod users;

pub use backend::{fresh_test_prefix, redis_test_url, TestBackend};
pub use clients::*;
pub use logins::*;
pub use refresh::*;
pub use revocations::*;
pub use signing_keys::*;
pub use users::*;

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
            insert_many_writes_what_single_inserts_write,
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
            revocation_feed_round_trips_in_order_and_counts,
            revocation_feed_answers_any_other_cursor_with_the_whole_set,
            revocation_feed_purge_drops_ended_entries_and_raises_the_floor,
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
