//! The registered clients held in memory (`AUTH_CLIENT_CACHE=true`), so that a token request
//! costs its signature and not also a store round trip to look its client up.
//!
//! Clients change only through the command line, another process and perhaps another machine,
//! so no replica hears of a change: each re-reads every client at least twice per
//! `AUTH_KEY_SYNC_INTERVAL` (S) and serves a snapshot only while it is younger than S, counted
//! from the moment its read began. A record served is therefore never older than S, whatever
//! the reload loop does: when a reload fails or lags, lookups go to the store, as without the
//! cache. That is the bound: a change to a client holds at every replica within S.
//!
//! What the bound must not cost: a client removed, or whose secret was rotated without overlap,
//! could still obtain tokens at a replica for up to S, and those tokens would outlive the change
//! by their whole lifetime. With the cache on, the command line sets such a change's cut-off
//! S + 2 seconds ahead (`cli::client`), so that every token a replica mints from the record it
//! held (whose `iat` is the time it was minted) falls below it and is inactive at introspection
//! and refused by resource servers through the revocation feed.
//!
//! What is not cached: an id the store does not know (every lookup of it goes to the store, so
//! the cache never grows with made-up ids), and a refusal: a secret that matches neither of the
//! held record's secrets is checked again against the store's record (`client_auth`), so that a
//! new secret works at once at every replica.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::store::{ClientRecord, Store, StoreError};

/// The clients read at `loaded_at`, and those looked up since.
struct Snapshot {
    /// Counts reloads, so that a lookup that began before one never adds its older answer to the
    /// snapshot that replaced it.
    generation: u64,
    /// When the read of this snapshot began; `None` before the first read and after a failed one.
    loaded_at: Option<Instant>,
    clients: HashMap<String, ClientRecord>,
}

pub struct ClientCache {
    max_age: Duration,
    snapshot: RwLock<Snapshot>,
}

impl ClientCache {
    /// A cache whose records are never older than `max_age`; a zero `max_age` holds nothing.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            snapshot: RwLock::new(Snapshot {
                generation: 0,
                loaded_at: None,
                clients: HashMap::new(),
            }),
        }
    }

    /// How often [`ClientCache::reload`] should run: twice per `max_age`, so that a snapshot is
    /// replaced well before it may no longer be served.
    pub fn reload_interval(&self) -> Duration {
        (self.max_age / 2).max(Duration::from_millis(100))
    }

    /// The record held for `client_id`, if one is held and young enough.
    pub fn get(&self, client_id: &str) -> Option<ClientRecord> {
        let snapshot = self.snapshot.read().ok()?;
        if !self.fresh(&snapshot) {
            return None;
        }
        snapshot.clients.get(client_id).cloned()
    }

    /// The client as held, or as the store has it now (then held); the flag says whether the
    /// record came from the cache.
    pub async fn client(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<(Option<ClientRecord>, bool), StoreError> {
        if let Some(record) = self.get(client_id) {
            return Ok((Some(record), true));
        }
        Ok((self.read_through(store, client_id).await?, false))
    }

    /// The client as the store has it now, held for later lookups.
    pub async fn read_through(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let generation = self.generation();
        let record = store.client(client_id).await?;
        if let Some(record) = &record {
            self.hold(generation, record);
        }
        Ok(record)
    }

    /// Replaces the snapshot with every client the store has now. On failure nothing is held
    /// until the next read succeeds: lookups go to the store.
    pub async fn reload(&self, store: &dyn Store) -> Result<usize, StoreError> {
        if self.max_age.is_zero() {
            return Ok(0);
        }
        let started = Instant::now();
        let listed = store.list_clients().await;
        let Ok(mut snapshot) = self.snapshot.write() else {
            return Ok(0);
        };
        snapshot.generation = snapshot.generation.wrapping_add(1);
        match listed {
            Ok(clients) => {
                let count = clients.len();
                snapshot.clients = clients
                    .into_iter()
                    .map(|client| (client.client_id.clone(), client))
                    .collect();
                snapshot.loaded_at = Some(started);
                Ok(count)
            }
            Err(err) => {
                snapshot.clients.clear();
                snapshot.loaded_at = None;
                Err(err)
            }
        }
    }

    fn fresh(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .loaded_at
            .is_some_and(|at| at.elapsed() < self.max_age)
    }

    fn generation(&self) -> Option<u64> {
        let snapshot = self.snapshot.read().ok()?;
        self.fresh(&snapshot).then_some(snapshot.generation)
    }

    /// Adds `record`, read during `generation`, unless a reload has happened since (its record
    /// is then the newer one) or the snapshot is too old to serve.
    fn hold(&self, generation: Option<u64>, record: &ClientRecord) {
        let Some(generation) = generation else {
            return;
        };
        if let Ok(mut snapshot) = self.snapshot.write() {
            if snapshot.generation == generation && self.fresh(&snapshot) {
                snapshot
                    .clients
                    .insert(record.client_id.clone(), record.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{GrantType, Removal};
    use oauth2_jwt_verifier::Scope;

    fn client(id: &str, secret_hash: &str) -> ClientRecord {
        ClientRecord {
            client_id: id.to_owned(),
            secret_hash: secret_hash.to_owned(),
            previous_secret: None,
            public: false,
            introspect: false,
            grants: vec![GrantType::ClientCredentials],
            scopes: Scope::default(),
            audiences: Vec::new(),
            stamp: "stamp".to_owned(),
            not_before: 0,
        }
    }

    async fn store() -> (tempfile::TempDir, std::sync::Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap_or_else(|err| unreachable!("tempdir: {err}"));
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = crate::store::open(&url)
            .await
            .unwrap_or_else(|err| unreachable!("open: {err}"));
        (dir, store)
    }

    #[tokio::test]
    async fn a_held_record_is_served_until_the_next_reload_and_never_past_its_age() {
        let (_dir, store) = store().await;
        store.insert_client(&client("svc", "one")).await.ok();
        let cache = ClientCache::new(Duration::from_millis(2000));
        assert_eq!(cache.reload(store.as_ref()).await.ok(), Some(1));
        let (record, cached) = cache
            .client(store.as_ref(), "svc")
            .await
            .unwrap_or_default();
        assert!(cached);
        assert_eq!(record.map(|r| r.secret_hash), Some("one".to_owned()));

        let removal = Removal {
            not_before: 1,
            keep_until: 2,
        };
        store.remove_client("svc", removal).await.ok();
        // Held: the removal is not seen before the next reload or the snapshot's age...
        assert!(cache.get("svc").is_some());
        // ...and once the snapshot is older than its bound, the store answers.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(cache.get("svc").is_none());
        let (record, cached) = cache
            .client(store.as_ref(), "svc")
            .await
            .unwrap_or_default();
        assert!(record.is_none() && !cached);
        // A reload sees the removal at once.
        cache.reload(store.as_ref()).await.ok();
        assert!(cache.get("svc").is_none());
    }

    #[tokio::test]
    async fn unknown_ids_are_never_held_and_new_clients_are_read_through() {
        let (_dir, store) = store().await;
        let cache = ClientCache::new(Duration::from_secs(60));
        cache.reload(store.as_ref()).await.ok();
        let (record, cached) = cache
            .client(store.as_ref(), "later")
            .await
            .unwrap_or_default();
        assert!(record.is_none() && !cached);
        assert!(cache.get("later").is_none());
        store.insert_client(&client("later", "h")).await.ok();
        let (record, cached) = cache
            .client(store.as_ref(), "later")
            .await
            .unwrap_or_default();
        assert!(record.is_some() && !cached);
        assert!(cache.get("later").is_some());
    }

    #[tokio::test]
    async fn a_zero_bound_holds_nothing() {
        let (_dir, store) = store().await;
        store.insert_client(&client("svc", "h")).await.ok();
        let cache = ClientCache::new(Duration::ZERO);
        cache.reload(store.as_ref()).await.ok();
        let (record, cached) = cache
            .client(store.as_ref(), "svc")
            .await
            .unwrap_or_default();
        assert!(record.is_some() && !cached);
        assert!(cache.get("svc").is_none());
    }
}
