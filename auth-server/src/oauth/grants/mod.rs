//! The grants of the token endpoint, one file each, as operations of the [`Authority`]: each
//! takes an authenticated client and the request's parsed fields, and issues tokens or refuses.

pub mod client_credentials;
pub mod password;
pub mod refresh;

use std::time::Duration;

use super::client_auth::Client;
use crate::store::UserRecord;

#[cfg(doc)]
use super::Authority;

/// The `iat` of a token minted at `now` for `user` through `client`: never before either's
/// cut-off. A change sets its cut-off one second past the second it was made in, so that a
/// token minted earlier in that second falls below it; a token minted after the change within
/// that same second waits for the cut-off's second to begin (at most a second, and only just
/// after a change to that user or client) rather than carry an `iat` in the future, which many
/// verifiers refuse. A cut-off further ahead, from a clock that runs ahead of this one, is taken
/// as `iat` without waiting.
async fn issued_at(now: u64, user: Option<&UserRecord>, client: &Client) -> u64 {
    let cut_off = user
        .map_or(0, |user| user.not_before)
        .max(client.not_before());
    if cut_off == now.saturating_add(1) {
        tokio::time::sleep(super::clock::until(cut_off).min(Duration::from_secs(1))).await;
    }
    now.max(cut_off)
}
