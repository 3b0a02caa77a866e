//! What both backends must make of records they did not write themselves: rows and hashes of an
//! older version, and data edited by hand. Each backend's tests write such records their own way
//! (SQL, raw Redis commands), then hold the store to the same expectations here.

use super::{GrantType, Store, StoreError};

/// A user `old`, a client `rs` and a refresh token `t1` of `old`, written before the credential
/// lifecycle: no stamps, flags or cut-offs. They read as empty stamps (which match each other,
/// so refresh tokens keep refreshing until the first change that ends sessions), no cut-off,
/// and a client that keeps the right to introspect that every client had then.
pub(crate) async fn read_as_upgraded(store: &dyn Store) {
    let user = store.user("old").await.unwrap().unwrap();
    assert_eq!((user.stamp.as_str(), user.not_before), ("", 0));
    let client = store.client("rs").await.unwrap().unwrap();
    assert!(client.introspect && !client.public);
    assert_eq!(client.grants, vec![GrantType::ClientCredentials]);
    assert_eq!((client.stamp.as_str(), client.not_before), ("", 0));
    assert_eq!(client.previous_secret, None);
    let context = store.refresh_context("t1").await.unwrap().unwrap();
    assert_eq!(
        (
            context.record.user_stamp.as_str(),
            context.record.client_stamp.as_str()
        ),
        ("", "")
    );
    assert_eq!(context.user.map(|user| user.stamp), Some(String::new()));
}

/// Clients `web` with grants `password  refresh_token` (two spaces) and `old` with `password
/// implicit`. Grants are stored as the words of the token request: a word that names no grant
/// type reads as corrupt rather than as a client with fewer grants.
pub(crate) async fn grant_words_read_back_or_are_corrupt(store: &dyn Store) {
    let web = store.client("web").await.unwrap().unwrap();
    assert_eq!(
        web.grants,
        vec![GrantType::Password, GrantType::RefreshToken]
    );
    let old = store.client("old").await;
    assert!(
        matches!(&old, Err(StoreError::Corrupt(message)) if message.contains("implicit")),
        "{old:?}"
    );
}
