//! What the issuer has revoked, learnt from its revocation feed, so that a revocation at the
//! issuer is refused here within one poll interval without asking the issuer per request.
//!
//! The feed names revoked tokens by `jti` and users and clients by the SHA-256 of their `sub`
//! or `client_id`, each with a cut-off (`not_before`): tokens issued before it are refused.
//! Every entry has an `until` past which no token it could refuse is still alive, and is
//! dropped then. The list is replaced whole (copy-on-write) and read through an `ArcSwap`, so
//! the check on the request path takes no lock and allocates nothing: a jti looked up by
//! `&str`, and a digest hashed into a stack array only when there are entries of that kind.
//!
//! The poll is single-flight and incremental: it sends the cursor of the list held as `since`,
//! keeps the list on `304`, adds a delta (`complete: false`) to a copy, and replaces the list
//! with a complete one. While the issuer is away it backs off (jittered, exponentially, up to
//! [`MAX_BACKOFF_FACTOR`] poll intervals) and keeps serving the list held: refusing every token
//! because the list is old would turn an issuer outage into an outage of every resource
//! server, so that is the operator's choice ([`super::VerifierConfig::revocation_fail_closed`]);
//! either way readiness and the `oauth2_jwt_verifier_revocation_feed_age_seconds` gauge say the list is stale.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use url::Url;

use super::{discovery, unix_now, FetchError, Inner};
use crate::claims::AccessClaims;

/// A feed answer larger than this is refused: an entry is well under 200 bytes.
const MAX_FEED_BYTES: usize = 16 * 1024 * 1024;

/// Backoff while the feed fails grows to at most this many poll intervals.
pub(super) const MAX_BACKOFF_FACTOR: u32 = 8;

/// While the issuer advertises no feed, its metadata is read again every this many poll
/// intervals, so that a feed added by an upgrade of the issuer is found without a restart.
const REDISCOVER_FACTOR: u32 = 60;

/// The SHA-256 of a `sub` or `client_id`, as the feed names users and clients.
type Digest32 = [u8; 32];

/// Tokens issued (`iat`) before `not_before` are refused; the entry lives until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    not_before: u64,
    until: u64,
}

/// The wire format of one feed answer.
#[derive(Deserialize)]
struct FeedBody {
    cursor: String,
    complete: bool,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    #[serde(default)]
    subjects: Vec<SubjectEntry>,
    #[serde(default)]
    clients: Vec<ClientEntry>,
}

#[derive(Deserialize)]
struct TokenEntry {
    jti: String,
    until: u64,
}

#[derive(Deserialize)]
struct SubjectEntry {
    sub_sha256: String,
    not_before: u64,
    until: u64,
}

#[derive(Deserialize)]
struct ClientEntry {
    client_id_sha256: String,
    not_before: u64,
    until: u64,
}

/// One feed answer, parsed, with every digest decoded.
#[derive(Debug)]
pub(super) struct Feed {
    cursor: String,
    complete: bool,
    tokens: Vec<(String, u64)>,
    subjects: Vec<(Digest32, Cut)>,
    clients: Vec<(Digest32, Cut)>,
}

impl Feed {
    /// Parses an answer; a digest that is not 32 bytes of unpadded base64url refuses the whole
    /// answer (an entry skipped would be a revocation missed).
    pub(super) fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let body: FeedBody = serde_json::from_slice(body)?;
        let decode = |text: &str| -> Result<Digest32, serde_json::Error> {
            URL_SAFE_NO_PAD
                .decode(text)
                .ok()
                .and_then(|bytes| Digest32::try_from(bytes).ok())
                .ok_or_else(|| {
                    <serde_json::Error as serde::de::Error>::custom(
                        "a digest is not 32 bytes of unpadded base64url",
                    )
                })
        };
        let subjects = body
            .subjects
            .iter()
            .map(|entry| {
                let cut = Cut {
                    not_before: entry.not_before,
                    until: entry.until,
                };
                decode(&entry.sub_sha256).map(|digest| (digest, cut))
            })
            .collect::<Result<_, _>>()?;
        let clients = body
            .clients
            .iter()
            .map(|entry| {
                let cut = Cut {
                    not_before: entry.not_before,
                    until: entry.until,
                };
                decode(&entry.client_id_sha256).map(|digest| (digest, cut))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cursor: body.cursor,
            complete: body.complete,
            tokens: body
                .tokens
                .into_iter()
                .map(|entry| (entry.jti, entry.until))
                .collect(),
            subjects,
            clients,
        })
    }
}

/// The entries held and the cursor of the answer they came from.
#[derive(Clone, Debug, Default)]
pub(super) struct Entries {
    cursor: Option<String>,
    /// `jti` → `until`.
    tokens: HashMap<String, u64>,
    subjects: HashMap<Digest32, Cut>,
    clients: HashMap<Digest32, Cut>,
}

impl Entries {
    /// Whether the list refuses a token with these claims. No allocation, no lock.
    pub(super) fn refuses(&self, claims: &AccessClaims) -> bool {
        if self.tokens.contains_key(claims.jti.as_str()) {
            return true;
        }
        let cut_off = |cuts: &HashMap<Digest32, Cut>, name: &str| {
            if cuts.is_empty() {
                return false;
            }
            let mut key = [0u8; 32];
            key.copy_from_slice(digest(&SHA256, name.as_bytes()).as_ref());
            cuts.get(&key)
                .is_some_and(|cut| claims.iat < cut.not_before)
        };
        cut_off(&self.subjects, &claims.sub) || cut_off(&self.clients, &claims.client_id)
    }

    pub(super) fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len() + self.clients.len()
    }

    fn any_expired(&self, now: u64) -> bool {
        self.tokens.values().any(|&until| until < now)
            || self.subjects.values().any(|cut| cut.until < now)
            || self.clients.values().any(|cut| cut.until < now)
    }

    fn drop_expired(&mut self, now: u64) {
        self.tokens.retain(|_, until| *until >= now);
        self.subjects.retain(|_, cut| cut.until >= now);
        self.clients.retain(|_, cut| cut.until >= now);
    }

    /// The entries after `feed`: its own when complete, else these with its entries added;
    /// expired entries dropped either way. A user or client named twice keeps the later
    /// cut-off and the later end.
    pub(super) fn after(&self, feed: Feed, now: u64) -> Self {
        let mut next = if feed.complete {
            Self::default()
        } else {
            self.clone()
        };
        next.cursor = Some(feed.cursor);
        for (jti, until) in feed.tokens {
            let held = next.tokens.entry(jti).or_insert(until);
            *held = (*held).max(until);
        }
        for (map, entries) in [
            (&mut next.subjects, feed.subjects),
            (&mut next.clients, feed.clients),
        ] {
            for (digest, cut) in entries {
                let held = map.entry(digest).or_insert(cut);
                held.not_before = held.not_before.max(cut.not_before);
                held.until = held.until.max(cut.until);
            }
        }
        next.drop_expired(now);
        next
    }
}

/// Where the verifier stands with the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FeedStatus {
    /// Nobody has polled: a verifier without its background task, before
    /// [`super::Verifier::poll_revocations_now`].
    NotPolled,
    /// Turned off by the configuration, or the issuer advertises no feed.
    Off,
    /// The feed is expected, but no complete list has arrived yet.
    Pending,
    /// A complete list has arrived; deltas keep it current.
    Live,
}

/// What a verification reads: the entries, and when the feed last answered.
#[derive(Clone, Debug)]
pub(super) struct RevocationList {
    pub(super) status: FeedStatus,
    /// The last successful poll (a `304` included).
    pub(super) polled_at: Option<Instant>,
    /// Shared between lists that differ only in status or poll time.
    pub(super) entries: Arc<Entries>,
}

impl RevocationList {
    pub(super) fn new(status: FeedStatus) -> Self {
        Self {
            status,
            polled_at: None,
            entries: Arc::new(Entries::default()),
        }
    }

    /// Time since the last successful poll, once a complete list is held.
    pub(super) fn age(&self) -> Option<Duration> {
        match self.status {
            FeedStatus::Live => self.polled_at.map(|at| at.elapsed()),
            _ => None,
        }
    }

    /// A live list older than `max_stale`.
    pub(super) fn is_stale(&self, max_stale: Duration) -> bool {
        self.age().is_some_and(|age| age > max_stale)
    }

    /// What failing closed refuses on: no list yet, or a stale one.
    pub(super) fn unusable(&self, max_stale: Duration) -> bool {
        self.status == FeedStatus::Pending || self.is_stale(max_stale)
    }
}

/// What one poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedPoll {
    /// The feed is off (configured so, or not advertised by the issuer).
    Off,
    /// A complete list replaced the one held.
    Complete,
    /// Changes since the cursor held were added.
    Delta,
    /// `304`: nothing changed.
    NotModified,
}

impl FeedPoll {
    /// The `result` label of `oauth2_jwt_verifier_revocation_polls_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Complete => "complete",
            Self::Delta => "delta",
            Self::NotModified => "not_modified",
        }
    }
}

/// The feed's address and the outage report, held under the poll lock (single-flight).
#[derive(Default)]
pub(super) struct FeedState {
    url: Option<Url>,
    /// Set once a stale list was logged; cleared by the next successful poll.
    stale_reported: bool,
}

impl Inner {
    /// One poll at a time: a caller that finds a poll under way waits for it and polls again
    /// (which, with the cursor just learnt, is a cheap `304`).
    pub(super) async fn poll_revocations(&self) -> Result<FeedPoll, FetchError> {
        let mut state = self.feed.lock().await;
        let result = self.poll(&mut state).await;
        self.counters.count_poll(result.as_ref().ok().copied());
        self.publish_gauges();
        let list = self.revocations.load();
        match &result {
            Ok(_) if state.stale_reported => {
                state.stale_reported = false;
                tracing::info!("the revocation feed answers again; the revocation list is current");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "polling the revocation feed failed; keeping the list held");
                if list.is_stale(self.config.revocation_max_stale) && !state.stale_reported {
                    state.stale_reported = true;
                    tracing::error!(
                        age_s = list.age().map_or(0, |age| age.as_secs()),
                        fail_closed = self.config.revocation_fail_closed,
                        "the revocation list has gone unrefreshed for longer than allowed \
                         (revocation_max_stale): revocations since are not known here"
                    );
                }
            }
        }
        result
    }

    async fn poll(&self, state: &mut FeedState) -> Result<FeedPoll, FetchError> {
        if self.config.revocation_poll.is_zero() {
            self.set_status(FeedStatus::Off);
            return Ok(FeedPoll::Off);
        }
        let url = match &state.url {
            Some(url) => url.clone(),
            None => {
                let found = match &self.config.revocation_feed_url {
                    Some(url) => Some(url.clone()),
                    None => {
                        discovery::discover_revocation_feed(&self.http, &self.config.issuer).await?
                    }
                };
                match found {
                    Some(url) => {
                        state.url = Some(url.clone());
                        let status = self.revocations.load().status;
                        if matches!(status, FeedStatus::NotPolled | FeedStatus::Off) {
                            self.set_status(FeedStatus::Pending);
                        }
                        url
                    }
                    None => {
                        if self.revocations.load().status != FeedStatus::Off {
                            tracing::info!(
                                "the issuer advertises no revocation_feed_endpoint: revocations \
                                 reach this server only as tokens expire"
                            );
                        }
                        self.set_status(FeedStatus::Off);
                        return Ok(FeedPoll::Off);
                    }
                }
            }
        };
        let held = self.revocations.load_full();
        let mut request = url.clone();
        if let Some(cursor) = &held.entries.cursor {
            request.query_pairs_mut().append_pair("since", cursor);
        }
        let answer =
            discovery::get_unless_not_modified(&self.http, &request, MAX_FEED_BYTES).await?;
        let now = unix_now();
        let (entries, outcome) = match answer {
            None if held.entries.any_expired(now) => {
                let mut entries = Entries::clone(&held.entries);
                entries.drop_expired(now);
                (Arc::new(entries), FeedPoll::NotModified)
            }
            None => (held.entries.clone(), FeedPoll::NotModified),
            Some(body) => {
                let feed = Feed::parse(&body).map_err(|source| FetchError::Parse {
                    url: url.clone(),
                    source,
                })?;
                if !feed.complete && held.status != FeedStatus::Live {
                    return Err(FetchError::DeltaWithoutBase { url });
                }
                let outcome = if feed.complete {
                    FeedPoll::Complete
                } else {
                    FeedPoll::Delta
                };
                (Arc::new(held.entries.after(feed, now)), outcome)
            }
        };
        let status = match (outcome, held.status) {
            (FeedPoll::Complete, _) => FeedStatus::Live,
            (_, status) => status,
        };
        self.revocations.store(Arc::new(RevocationList {
            status,
            polled_at: Some(Instant::now()),
            entries,
        }));
        Ok(outcome)
    }

    fn set_status(&self, status: FeedStatus) {
        let held = self.revocations.load();
        if held.status != status {
            self.revocations.store(Arc::new(RevocationList {
                status,
                ..RevocationList::clone(&held)
            }));
        }
    }
}

/// Polls every `revocation_poll` while the verifier lives; backs off while the feed fails.
pub(super) async fn poll_loop(inner: Weak<Inner>) {
    let mut failures: u32 = 0;
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            let interval = inner.config.revocation_poll;
            match inner.poll_revocations().await {
                Ok(FeedPoll::Off) if interval.is_zero() => return,
                Ok(FeedPoll::Off) => {
                    failures = 0;
                    interval.saturating_mul(REDISCOVER_FACTOR)
                }
                Ok(_) => {
                    failures = 0;
                    interval
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    backoff(interval, failures, random_fraction())
                }
            }
        };
        tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
    }
}

/// The wait after the `failures`th failure in a row: the poll interval doubled per failure up
/// to [`MAX_BACKOFF_FACTOR`] intervals, then scaled into its upper half by `fraction` (0..1),
/// so that resource servers that lost the issuer together do not return together.
pub(super) fn backoff(interval: Duration, failures: u32, fraction: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(MAX_BACKOFF_FACTOR.ilog2());
    let full = interval.saturating_mul(1 << doublings);
    full.mul_f64(0.5 + 0.5 * fraction.clamp(0.0, 1.0))
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests;
