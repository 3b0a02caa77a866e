//! The signing-key lifecycle, shared by every replica through the store, so that all replicas
//! sign with the same key and publish the same JWKS, and a verifier never meets a token signed
//! with a key it could not have fetched yet.
//!
//! ```text
//!   next ──(activates_at has come)──▶ active ──(the next key takes over)──▶ retired ──▶ removed
//!   (published, not signing)          (signs)    (published until its tokens expired + leeway)
//!   any state ──(keys revoke)──▶ revoked (withdrawn from the JWKS at once; kept as a tombstone)
//! ```
//!
//! The store holds each key's state and times and its private key sealed under the KEK
//! (`keys::encryption`). Every step is one atomic store call with a condition, so that replicas
//! may all run the schedule at once: staging a next key succeeds only while no key is next and
//! the active key is the one the caller saw; promotion succeeds only for the caller that still
//! finds the key next. Each replica re-reads the states every `AUTH_KEY_SYNC_INTERVAL` (S) and
//! swaps in a new [`KeyRing`]; the CLI works on the store directly and the replicas follow.
//!
//! The timings, and why the JWKS max-age is what it is, are in `schedule`.
//!
//! # Why a replica that cannot read the states stops being ready
//!
//! A replica that keeps failing to read the key states keeps signing with the key it holds,
//! which `keys revoke` may have withdrawn meanwhile, and publishes a JWKS that still lists it.
//! Revocation has to fail closed, so [`KeyLifecycle::sync_health`] counts from the last
//! successful read: past three sync intervals (one miss is noise, three is an outage) the
//! replica answers 503 on `/readyz` and the load balancer drains it until a read succeeds.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use super::encryption::KeyEncryptionKey;
use super::{files, KeyRing, PublishedKey, SigningKey};
use crate::store::{KeyRevocation, KeyState, SigningKeyRecord, Store};

mod schedule;
pub use schedule::{Schedule, MAX_JWKS_MAX_AGE};

/// What one [`KeyLifecycle::advance`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Advance {
    /// Retired and revoked keys deleted.
    pub removed: u64,
    /// The next key this caller made active.
    pub promoted: Option<String>,
    /// The next key this caller staged by the schedule.
    pub staged: Option<String>,
}

/// How current this process's view of the key states is (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncHealth {
    /// Time since the key states were last read successfully.
    pub since_last_read: Duration,
    /// Three sync intervals: past it, the keys held are too stale to sign and publish with.
    pub stale_after: Duration,
}

impl SyncHealth {
    pub fn is_stale(&self) -> bool {
        self.since_last_read > self.stale_after
    }
}

/// What [`KeyLifecycle::rotate`] did.
#[derive(Debug)]
pub enum Rotation {
    /// A new next key, which starts signing at `activates_at`.
    Staged { kid: String, activates_at: u64 },
    /// A next key was waiting already; nothing changed.
    AlreadyStaged { kid: String, activates_at: u64 },
}

/// The lifecycle on one store, with the KEK that opens its keys.
pub struct KeyLifecycle {
    store: Arc<dyn Store>,
    kek: KeyEncryptionKey,
    schedule: Schedule,
    /// The active key as last parsed, so that a sync that finds no change parses nothing.
    parsed: Mutex<Option<Arc<SigningKey>>>,
    /// When [`KeyLifecycle::load`] last succeeded.
    last_read: Mutex<Instant>,
    /// Whether staleness was reported (logged) and not yet its end.
    stale_reported: AtomicBool,
}

impl std::fmt::Debug for KeyLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLifecycle")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl KeyLifecycle {
    pub fn new(store: Arc<dyn Store>, kek: KeyEncryptionKey, schedule: Schedule) -> Self {
        Self {
            store,
            kek,
            schedule,
            parsed: Mutex::new(None),
            last_read: Mutex::new(Instant::now()),
            stale_reported: AtomicBool::new(false),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// How long ago the key states were last read, against the bound of three sync intervals.
    pub fn sync_health(&self) -> SyncHealth {
        let since_last_read = self
            .last_read
            .lock()
            .map_or(Duration::MAX, |at| at.elapsed());
        SyncHealth {
            since_last_read,
            stale_after: Duration::from_secs(self.schedule.sync_interval.saturating_mul(3)),
        }
    }

    /// Records whether the states are stale now; true when that differs from what was recorded
    /// last, so that the caller logs the start and the end of an outage once each.
    pub fn note_staleness(&self, stale: bool) -> bool {
        self.stale_reported.swap(stale, Ordering::AcqRel) != stale
    }

    /// At start (server and CLI): imports the PEM key files of `keys_dir` whose kid the store
    /// lacks (the newest as active when there is no active key, the others retired), makes sure
    /// a key is active, generating one on a first start, and checks that this process's KEK
    /// opens it, so that nothing is ever sealed under a KEK the others do not have.
    pub async fn ensure(&self, keys_dir: &Path, now: u64) -> anyhow::Result<()> {
        let records = self.store.signing_keys().await?;
        if let Some(active) = records.iter().find(|r| r.state == KeyState::Active) {
            // Before anything is sealed under this KEK: it must be the one the others have.
            self.open_active(active)?;
        }
        let key_files = files::load(keys_dir)
            .with_context(|| format!("reading key files in {}", keys_dir.display()))?;
        let mut has_active = records.iter().any(|r| r.state == KeyState::Active);
        for file in key_files {
            if records.iter().any(|r| r.kid == file.key.kid()) {
                continue;
            }
            let state = if has_active {
                KeyState::Retired
            } else {
                KeyState::Active
            };
            let record = self.record(&file.key, &file.pkcs8, state, now, now)?;
            if self.store.insert_signing_key(&record).await? {
                tracing::info!(
                    kid = file.key.kid(),
                    state = %state,
                    path = %file.path.display(),
                    "imported a signing key file into the store; the file may be deleted"
                );
            }
            has_active |= state == KeyState::Active;
        }
        if !has_active {
            let (key, pkcs8) = generate().await?;
            let record = self.record(&key, &pkcs8, KeyState::Active, now, now)?;
            if self.store.insert_signing_key(&record).await? {
                tracing::info!(kid = key.kid(), "generated the first signing key");
            }
        }
        self.load(now).await.map(|_| ())
    }

    /// The keys as the store has them now: the active key (opened with the KEK) signs; next
    /// keys, and retired keys until their removal time, are published.
    pub async fn load(&self, now: u64) -> anyhow::Result<KeyRing> {
        let records = self.store.signing_keys().await?;
        let Some(active) = records.iter().find(|r| r.state == KeyState::Active) else {
            bail!("the store has no active signing key");
        };
        let signing = self.open_active(active)?;
        let published = records
            .iter()
            .filter(|r| published_at(r, now))
            .filter_map(
                |r| match PublishedKey::from_jwk(&r.kid, r.state, &r.public_jwk) {
                    Ok(key) => Some(key),
                    Err(err) => {
                        tracing::error!(kid = %r.kid, error = %err, "not publishing a damaged key");
                        None
                    }
                },
            )
            .collect();
        if let Ok(mut last_read) = self.last_read.lock() {
            *last_read = Instant::now();
        }
        Ok(KeyRing::new(signing, published))
    }

    fn open_active(&self, record: &SigningKeyRecord) -> anyhow::Result<Arc<SigningKey>> {
        let cached = self.parsed.lock().ok().and_then(|cached| cached.clone());
        if let Some(key) = cached.filter(|key| key.kid() == record.kid) {
            return Ok(key);
        }
        let pkcs8 = self.kek.open(&record.kid, &record.sealed_private_key)?;
        let key = SigningKey::from_pkcs8(&pkcs8)
            .with_context(|| format!("signing key {} in the store", record.kid))?;
        if key.kid() != record.kid {
            bail!(
                "the private key stored for {} belongs to {}",
                record.kid,
                key.kid()
            );
        }
        let key = Arc::new(key);
        if let Ok(mut cached) = self.parsed.lock() {
            *cached = Some(Arc::clone(&key));
        }
        Ok(key)
    }

    /// One step of the schedule, run by every replica every sync interval: deletes keys past
    /// their removal time, promotes a next key whose time has come (retiring the active one), or
    /// stages a next key when the rotation interval calls for one. Safe to run anywhere at once.
    pub async fn advance(&self, now: u64) -> anyhow::Result<Advance> {
        let records = self.store.signing_keys().await?;
        let mut done = Advance::default();
        if records
            .iter()
            .any(|r| r.expires_at.is_some_and(|at| at <= now))
        {
            done.removed = self.store.remove_expired_signing_keys(now).await?;
        }
        let active = records.iter().find(|r| r.state == KeyState::Active);
        let next = records.iter().find(|r| r.state == KeyState::Next);
        match (active, next) {
            (_, Some(next)) if next.activates_at <= now => {
                let retired_until = now.saturating_add(self.schedule.removal_delay());
                if self
                    .store
                    .promote_signing_key(&next.kid, now, retired_until)
                    .await?
                {
                    done.promoted = Some(next.kid.clone());
                }
            }
            (Some(active), None) => {
                if let Some(activates_at) = self.schedule.staging_due(active.activates_at, now) {
                    done.staged = self.stage(&active.kid, activates_at, now).await?;
                }
            }
            _ => {}
        }
        Ok(done)
    }

    /// `keys rotate`: stages a next key that starts signing `publish_ahead` from now, unless a
    /// next key is waiting already.
    pub async fn rotate(&self, now: u64) -> anyhow::Result<Rotation> {
        for _attempt in 0..3 {
            let records = self.store.signing_keys().await?;
            if let Some(next) = records.iter().find(|r| r.state == KeyState::Next) {
                return Ok(Rotation::AlreadyStaged {
                    kid: next.kid.clone(),
                    activates_at: next.activates_at,
                });
            }
            let Some(active) = records.iter().find(|r| r.state == KeyState::Active) else {
                bail!("the store has no active signing key");
            };
            let activates_at = now.saturating_add(self.schedule.publish_ahead);
            if let Some(kid) = self.stage(&active.kid, activates_at, now).await? {
                return Ok(Rotation::Staged { kid, activates_at });
            }
        }
        bail!("the signing keys kept changing while rotating; try again")
    }

    /// `keys revoke KID`: withdraws the key at once. When it was the active key, the next key
    /// takes over now, or a new key does.
    pub async fn revoke(&self, kid: &str, now: u64) -> anyhow::Result<KeyRevocation> {
        let (key, pkcs8) = generate().await?;
        let replacement = self.record(&key, &pkcs8, KeyState::Active, now, now)?;
        Ok(self
            .store
            .revoke_signing_key(kid, now, &replacement)
            .await?)
    }

    /// Every key the store holds, newest first.
    pub async fn list(&self) -> anyhow::Result<Vec<SigningKeyRecord>> {
        Ok(self.store.signing_keys().await?)
    }

    /// The PKCS#8 private key of `kid`, opened with the KEK (for tests that must sign as the
    /// server does; nothing in the server exports keys).
    pub async fn private_key(&self, kid: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let records = self.store.signing_keys().await?;
        let record = records
            .iter()
            .find(|r| r.kid == kid)
            .with_context(|| format!("no signing key {kid}"))?;
        Ok(self.kek.open(kid, &record.sealed_private_key)?)
    }

    async fn stage(
        &self,
        expected_active: &str,
        activates_at: u64,
        now: u64,
    ) -> anyhow::Result<Option<String>> {
        let (key, pkcs8) = generate().await?;
        let record = self.record(&key, &pkcs8, KeyState::Next, now, activates_at)?;
        Ok(self
            .store
            .stage_signing_key(&record, expected_active)
            .await?
            .then(|| key.kid().to_owned()))
    }

    fn record(
        &self,
        key: &SigningKey,
        pkcs8: &[u8],
        state: KeyState,
        now: u64,
        activates_at: u64,
    ) -> anyhow::Result<SigningKeyRecord> {
        let retired = state == KeyState::Retired;
        Ok(SigningKeyRecord {
            kid: key.kid().to_owned(),
            state,
            created_at: now,
            activates_at,
            retired_at: retired.then_some(now),
            expires_at: retired.then(|| now.saturating_add(self.schedule.removal_delay())),
            public_jwk: key.jwk().to_string(),
            sealed_private_key: self.kek.seal(key.kid(), pkcs8)?,
        })
    }
}

/// Whether the JWKS carries `record` at `now`.
fn published_at(record: &SigningKeyRecord, now: u64) -> bool {
    match record.state {
        KeyState::Next | KeyState::Active => true,
        KeyState::Retired => record.expires_at.is_none_or(|at| at > now),
        KeyState::Revoked => false,
    }
}

/// A new RSA-2048 key, generated off the async workers.
async fn generate() -> anyhow::Result<(SigningKey, Zeroizing<Vec<u8>>)> {
    Ok(tokio::task::spawn_blocking(SigningKey::generate).await??)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::SqliteStore;

    async fn lifecycle(dir: &Path, kek_byte: u8) -> KeyLifecycle {
        let store = SqliteStore::open_in(dir).await.unwrap();
        KeyLifecycle::new(
            Arc::new(store),
            KeyEncryptionKey::from_bytes(&[kek_byte; 32]).unwrap(),
            Schedule {
                access_ttl: 10,
                rotation_interval: 100,
                publish_ahead: 30,
                sync_interval: 1,
                removal_leeway: 5,
            },
        )
    }

    #[tokio::test]
    async fn a_wrong_kek_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let right = lifecycle(dir.path(), 1).await;
        right.ensure(&dir.path().join("keys"), 1000).await.unwrap();
        let kid = right.load(1000).await.unwrap().active().kid().to_owned();
        let wrong = lifecycle(dir.path(), 2).await;
        let err = format!("{:#}", wrong.load(1000).await.unwrap_err());
        assert!(err.contains(&kid), "{err}");
        assert!(err.contains("another key-encryption key"), "{err}");

        let brought = dir.path().join("brought");
        files::tests::write_pem(&brought, 1, &SigningKey::generate().unwrap().1);
        let err = format!("{:#}", wrong.ensure(&brought, 1001).await.unwrap_err());
        assert!(err.contains("another key-encryption key"), "{err}");
        assert_eq!(
            right.list().await.unwrap().len(),
            1,
            "nothing was sealed under the wrong key"
        );
    }

    #[tokio::test]
    async fn a_key_goes_next_active_retired_removed_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let keys = lifecycle(dir.path(), 1).await;
        keys.ensure(&dir.path().join("keys"), 1000).await.unwrap();
        let first = keys.load(1000).await.unwrap().active().kid().to_owned();
        assert_eq!(keys.advance(1069).await.unwrap(), Advance::default());

        let staged = keys.advance(1070).await.unwrap().staged.unwrap();
        let ring = keys.load(1071).await.unwrap();
        assert_eq!(ring.active().kid(), first, "a next key does not sign");
        assert_eq!(ring.get(&staged).unwrap().state(), KeyState::Next);
        assert!(keys.advance(1099).await.unwrap().promoted.is_none());

        assert_eq!(
            keys.advance(1100).await.unwrap().promoted,
            Some(staged.clone())
        );
        let ring = keys.load(1100).await.unwrap();
        assert_eq!(ring.active().kid(), staged);
        assert_eq!(ring.get(&first).unwrap().state(), KeyState::Retired);

        // Removal: retired at 1100, plus access_ttl 10 + sync 1 + leeway 5.
        assert!(keys.load(1115).await.unwrap().get(&first).is_some());
        assert!(keys.load(1116).await.unwrap().get(&first).is_none());
        assert_eq!(keys.advance(1116).await.unwrap().removed, 1);
        assert!(keys.list().await.unwrap().iter().all(|r| r.kid != first));
    }

    #[tokio::test]
    async fn key_files_are_imported_once_newest_active() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let (older, older_der) = SigningKey::generate().unwrap();
        let (newer, newer_der) = SigningKey::generate().unwrap();
        files::tests::write_pem(&keys_dir, 1, &older_der);
        files::tests::write_pem(&keys_dir, 2, &newer_der);
        let keys = lifecycle(dir.path(), 1).await;
        keys.ensure(&keys_dir, 1000).await.unwrap();
        keys.ensure(&keys_dir, 1001).await.unwrap();
        let listed = keys.list().await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let ring = keys.load(1001).await.unwrap();
        assert_eq!(ring.active().kid(), newer.kid());
        assert_eq!(ring.get(older.kid()).unwrap().state(), KeyState::Retired);
        assert_eq!(
            keys.private_key(newer.kid()).await.unwrap().as_slice(),
            newer_der.as_slice()
        );
    }

    #[tokio::test]
    async fn revoking_the_active_key_hands_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let keys = lifecycle(dir.path(), 1).await;
        keys.ensure(&dir.path().join("keys"), 1000).await.unwrap();
        let first = keys.load(1000).await.unwrap().active().kid().to_owned();
        let Rotation::Staged { kid: next, .. } = keys.rotate(1000).await.unwrap() else {
            panic!("a fresh store has no next key");
        };
        assert!(matches!(
            keys.rotate(1001).await.unwrap(),
            Rotation::AlreadyStaged { kid, activates_at: 1030 } if kid == next
        ));
        assert_eq!(
            keys.revoke(&first, 1002).await.unwrap(),
            KeyRevocation::Revoked {
                now_active: Some(next.clone())
            }
        );
        let ring = keys.load(1002).await.unwrap();
        assert_eq!(ring.active().kid(), next);
        assert!(ring.get(&first).is_none(), "a revoked key leaves the JWKS");
        let KeyRevocation::Revoked {
            now_active: Some(fresh),
        } = keys.revoke(&next, 1003).await.unwrap()
        else {
            panic!("revoking the active key names its successor");
        };
        assert_eq!(keys.load(1003).await.unwrap().active().kid(), fresh);
        assert_eq!(
            keys.revoke(&next, 1004).await.unwrap(),
            KeyRevocation::AlreadyRevoked
        );
        assert_eq!(
            keys.revoke("nope", 1004).await.unwrap(),
            KeyRevocation::Unknown
        );
        assert!(
            keys.private_key(&first)
                .await
                .unwrap_err()
                .to_string()
                .contains(&first),
            "a revoked key's private half is erased"
        );
    }
}
