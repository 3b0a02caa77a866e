//! Redis behind Sentinel (`redis+sentinel://`, `rediss+sentinel://`): the store asks the
//! sentinels which node is the primary, talks to it, and asks again when it stops being the
//! primary, so that a failover needs no restart.
//!
//! # Why not a connection manager
//!
//! The single-node connection reconnects to the address it was given, which after a failover is
//! the old primary: restarted, it answers as a primary until the sentinels demote it, and what it
//! accepts in that time is lost when it is. So here a connection that fails in a way that may
//! mean a switch (dropped, refused, timed out, or `READONLY` from a demoted primary) is dropped,
//! never reconnected, and the next request asks the sentinels first.
//!
//! # Finding the primary
//!
//! One search at a time (the others wait for its outcome, so a burst of failed requests asks the
//! sentinels once), bounded by [`DISCOVERY_DEADLINE`]: every sentinel is asked `SENTINEL MASTER`
//! at once, and the address with the highest `config-epoch` wins, since a sentinel that missed
//! the last failover still names the old primary, with the older epoch. The sentinel that runs a
//! failover takes the new epoch first and names the new primary only at its end, so while that
//! sentinel says `failover_in_progress` there is no primary (the old one may still take writes
//! that the promoted replica never sees). The node named must then say `ROLE` `master`; a node
//! that calls itself a replica is not written to. A search that finds
//! nothing answers every request for [`RETRY_PAUSE`] with the same failure instead of asking
//! again. While a connection works, the first request after every [`CHECK_INTERVAL`] has the
//! sentinels asked again in the background, so a primary that others have replaced (cut off
//! from the sentinels but not from this replica) is left within about that time.
//!
//! # Waiting for replicas
//!
//! Replication is asynchronous: what the primary acknowledged and had not passed on is gone
//! after a failover, and for this store that is a rotation, a revocation or a user change undone.
//! So after every script (every write is one) the store sends `WAIT` for `replica_acks` replicas
//! (default [`DEFAULT_REPLICA_ACKS`], at most [`REPLICA_ACK_TIMEOUT`]) on the same connection,
//! which covers every write sent on it before, and answers `Unavailable` when too few confirm.
//! Such a write has run, so it is not sent again; until a later `WAIT` succeeds, reads wait too,
//! since a refresh retried within its grace reads its rotation back and would hand out a token
//! the failover may undo. A shortfall also has the sentinels asked again: the node may have been
//! left behind. `WAIT` holds the connection's later requests until it returns, which is the cost
//! of the guarantee; `replica_acks=0` turns it off.
//!
//! This is a small part of the client library's `sentinel` feature, done here so that the
//! sentinels and the data nodes are reached with the same TLS files as `rediss://` (through
//! `tls::client`), every step is bounded in time, and the epochs are compared.
//!
//! # Credentials
//!
//! `USER:PASSWORD` in the URL authenticate to the data nodes, and to the sentinels when they ask
//! for a password; a sentinel that has none configured (the usual setup: `sentinel auth-pass`
//! holds the data nodes' password) is asked without. The password never reaches a message.
//!
//! Requests that fail during a switch end as [`crate::store::StoreError::Unavailable`], as when
//! a single Redis is away; whether one is sent again stays with the caller (see the module doc
//! of `store::redis`, "When Redis is away"): a write is only when it cannot have run, a refused
//! connection or `READONLY`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, FromRedisValue, RedisError, RedisResult};

use super::connection::{percent_decode, Request};
use super::tls::{self, RedisTls};
use super::{CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};
use crate::store::StoreError;

/// The schemes that name sentinels instead of a Redis node.
const SCHEMES: [&str; 2] = ["redis+sentinel", "rediss+sentinel"];

/// The sentinels' port when the URL names none.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// The longest one search for the primary may take: asking the sentinels and connecting to it.
pub const DISCOVERY_DEADLINE: Duration = Duration::from_millis(1500);

/// How long a search that found no primary stands for every request before the next one.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How often a working connection's node is checked against the sentinels' view.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How many replicas must hold a script's writes before the store answers, unless the URL says
/// otherwise (`?replica_acks=N`; 0 turns the wait off).
pub const DEFAULT_REPLICA_ACKS: u32 = 1;

/// The longest the store waits for the replicas to acknowledge a write (`WAIT`).
pub const REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether `url` names sentinels (and so is for [`Target::parse`]).
pub fn names_sentinels(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// Checks a store URL's form without connecting: nothing for another scheme, the problem with a
/// sentinel URL (naming it with its password replaced) for a malformed one.
pub fn check_url(url: &str) -> Result<(), String> {
    if names_sentinels(url) {
        Target::parse(url)?;
    }
    Ok(())
}

/// What a sentinel URL names:
/// `redis[s]+sentinel://[USER:PASSWORD@]HOST[:PORT],HOST[:PORT]…/MASTER_NAME[/DB][?prefix=…&replica_acks=N]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    tls: bool,
    /// `USER:PASSWORD` as written (percent-encoded), for the URLs of the nodes.
    credentials: Option<String>,
    sentinels: Vec<(String, u16)>,
    master: String,
    db: u32,
    prefix: Option<String>,
    replica_acks: u32,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Target {
    /// Parses a sentinel URL. The error says what is wrong, with the URL's password replaced.
    pub fn parse(url: &str) -> Result<Self, String> {
        let fail = |why: &str| {
            Err(format!(
                "AUTH_STORE {}: {why}",
                crate::store::redact_url(url)
            ))
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return fail("is not a URL");
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "redis+sentinel" => false,
            "rediss+sentinel" => true,
            _ => return fail("must start with redis+sentinel:// or rediss+sentinel://"),
        };
        if rest.contains('#') {
            return fail(
                "a Redis URL takes no #fragment; the servers' certificates and names are \
                 always checked (#insecure is refused)",
            );
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let mut prefix = None;
        let mut replica_acks = DEFAULT_REPLICA_ACKS;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "prefix" => prefix = Some(value.into_owned()),
                "replica_acks" => match value.parse::<u32>() {
                    Ok(acks) if acks <= 16 => replica_acks = acks,
                    _ => return fail("replica_acks is a number of replicas, 0 to 16"),
                },
                _ => {
                    return fail(&format!(
                        "unknown parameter {name:?}; a sentinel URL takes only prefix= and \
                         replica_acks="
                    ))
                }
            }
        }
        let Some((authority, path)) = rest.split_once('/') else {
            return fail("names no master: add /MASTER_NAME after the sentinels");
        };
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) if !credentials.is_empty() => {
                (Some(credentials.to_owned()), hosts)
            }
            Some((_, hosts)) => (None, hosts),
            None => (None, authority),
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',') {
            match parse_host(host) {
                Ok(address) => sentinels.push(address),
                Err(why) => return fail(&why),
            }
        }
        let mut segments = path.split('/');
        let master = segments.next().unwrap_or_default();
        if master.is_empty() {
            return fail("names no master: add /MASTER_NAME after the sentinels");
        }
        if !master
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return fail("the master name may hold only letters, digits, '.', '_' and '-'");
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => match db.parse::<u32>() {
                Ok(db) => db,
                Err(_) => return fail(&format!("the database {db:?} is not a number")),
            },
        };
        if segments.any(|segment| !segment.is_empty()) {
            return fail("the path is /MASTER_NAME or /MASTER_NAME/DB");
        }
        Ok(Self {
            tls,
            credentials,
            sentinels,
            master: master.to_owned(),
            db,
            prefix,
            replica_acks,
        })
    }

    /// The `prefix` query parameter, if the URL has one.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The URL with its password replaced, for messages.
    pub fn redacted(&self) -> String {
        let mut url = format!(
            "{}://",
            if self.tls {
                "rediss+sentinel"
            } else {
                "redis+sentinel"
            }
        );
        if let Some(credentials) = &self.credentials {
            match credentials.split_once(':') {
                Some((user, _)) => url.push_str(&format!("{user}:redacted@")),
                None => url.push_str(&format!("{credentials}@")),
            }
        }
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        url.push_str(&format!("{}/{}/{}", hosts.join(","), self.master, self.db));
        url
    }

    /// The URL of one node: a data node's with the database, a sentinel's without.
    fn node_url(&self, host: &str, port: u16, db: Option<u32>, credentials: bool) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let credentials = match (&self.credentials, credentials) {
            (Some(credentials), true) => format!("{credentials}@"),
            _ => String::new(),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        match db {
            Some(db) => format!("{scheme}://{credentials}{host}:{port}/{db}"),
            None => format!("{scheme}://{credentials}{host}:{port}"),
        }
    }

    /// `message` without the password, as written or decoded, should a library quote it.
    fn scrub(&self, message: &str) -> String {
        let Some((_, password)) = self
            .credentials
            .as_deref()
            .and_then(|credentials| credentials.split_once(':'))
        else {
            return message.to_owned();
        };
        let mut scrubbed = message.to_owned();
        for secret in [percent_decode(password), password.to_owned()] {
            if !secret.is_empty() {
                scrubbed = scrubbed.replace(&secret, "[redacted]");
            }
        }
        scrubbed
    }
}

/// `HOST[:PORT]` or `[IPV6][:PORT]`.
fn parse_host(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("a sentinel's IPv6 address lacks its closing ']'".to_owned());
        };
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (text.to_owned(), None),
        }
    };
    let bad_host = host.is_empty()
        || host.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#' | ',')
        });
    if bad_host {
        // The text is not quoted: with a raw `/` or `@` in a password, it may hold a piece.
        return Err(
            "a sentinel address is not a HOST[:PORT]: list HOST:PORT,HOST:PORT, and \
                    percent-encode any '/', '?', '#' or '@' in the password"
                .to_owned(),
        );
    }
    let port = match port {
        None => DEFAULT_SENTINEL_PORT,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(
                    "a sentinel address has no valid port (percent-encode any '/', \
                            '?', '#' or '@' in the password)"
                        .to_owned(),
                )
            }
        },
    };
    Ok((host, port))
}

/// Splits the `prefix` query parameter off a sentinel URL; the rest is the URL to open.
pub fn split_prefix(url: &str) -> (String, Option<String>) {
    let Some((rest, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut prefix = None;
    let mut others = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == "prefix" {
            prefix = Some(value.into_owned());
        } else {
            others.append_pair(&name, &value);
        }
    }
    let others = others.finish();
    if others.is_empty() {
        (rest.to_owned(), prefix)
    } else {
        (format!("{rest}?{others}"), prefix)
    }
}

/// The connection to whichever node the sentinels name the primary; cheap to clone, all clones
/// share the connection and the search.
#[derive(Clone)]
pub struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    target: Target,
    tls: RedisTls,
    /// The node in use, if any: a failure that may mean a switch empties it.
    primary: Mutex<Option<Primary>>,
    /// Held by the one search under way; holds the last failed search's outcome.
    search: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// Whether a background check is under way.
    checking: std::sync::atomic::AtomicBool,
    /// Connections made so far.
    connections: std::sync::atomic::AtomicU64,
    /// The node (`HOST:PORT`) where a write ran but was not seen replicated in time: until a
    /// `WAIT` there succeeds, reads there wait for the replicas too, so that no answer rests on
    /// a write a failover may undo (a refresh retried within the grace reads its rotation
    /// back). Another node, the primary after a failover, starts confirmed.
    unconfirmed: Mutex<Option<String>>,
}

#[derive(Clone)]
struct Primary {
    connection: MultiplexedConnection,
    /// `HOST:PORT`, as the sentinels gave it.
    address: String,
    /// Which connection this is, so that a failure drops only the connection it met.
    generation: u64,
    checked_at: Instant,
}

/// What one sentinel says of the master.
struct Sighting {
    epoch: u64,
    host: String,
    port: u16,
    /// Whether this sentinel is failing the master over: it has taken the new epoch but names
    /// the old address until the replica is promoted and the others follow it.
    failing_over: bool,
}

impl SentinelConnection {
    /// Finds the primary and connects to it, or says why not (with the password replaced).
    pub async fn open(url: &str, tls: &RedisTls) -> Result<Self, StoreError> {
        let target = Target::parse(url).map_err(StoreError::Unavailable)?;
        let connection = Self {
            shared: Arc::new(Shared {
                target,
                tls: tls.clone(),
                primary: Mutex::new(None),
                search: tokio::sync::Mutex::new(None),
                checking: std::sync::atomic::AtomicBool::new(false),
                connections: std::sync::atomic::AtomicU64::new(0),
                unconfirmed: Mutex::new(None),
            }),
        };
        let redacted = connection.shared.target.redacted();
        connection
            .primary()
            .await
            .map_err(|err| StoreError::Unavailable(format!("connecting to {redacted}: {err}")))?;
        Ok(connection)
    }

    /// Sends `request` to the primary, finding it first if there is no connection. A script
    /// (every write is one) answers only once its writes reached the replicas the URL asks for.
    pub(super) async fn attempt<T: FromRedisValue>(&self, request: Request<'_>) -> RedisResult<T> {
        let primary = self.primary().await?;
        let mut connection = primary.connection.clone();
        let acks = self.shared.target.replica_acks;
        let unconfirmed = |at: Option<&str>| {
            if let Ok(mut node) = self.shared.unconfirmed.lock() {
                *node = at.map(str::to_owned);
            }
        };
        let wait = acks > 0
            && (matches!(request, Request::Script(_))
                || self.shared.unconfirmed.lock().map_or(true, |node| {
                    node.as_deref() == Some(primary.address.as_str())
                }));
        let outcome = match request.run(&mut connection).await {
            Ok(answer) if wait => match replicated(&mut connection, acks).await {
                Ok(()) => {
                    unconfirmed(None);
                    Ok(answer)
                }
                Err(err) => {
                    if err.kind() == ErrorKind::Client {
                        // Too few replicas: perhaps this node was left behind by a failover.
                        unconfirmed(Some(&primary.address));
                        if primary.checked_at.elapsed() > RETRY_PAUSE {
                            self.check_in_background();
                        }
                    }
                    Err(err)
                }
            },
            outcome => outcome,
        };
        match &outcome {
            Err(err) if may_mean_a_switch(err) => self.drop_connection(primary.generation),
            _ if primary.checked_at.elapsed() > CHECK_INTERVAL => self.check_in_background(),
            _ => {}
        }
        outcome
    }

    /// The node in use, or the one a search finds.
    async fn primary(&self) -> RedisResult<Primary> {
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        let mut last_failure = self.shared.search.lock().await;
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        if let Some((at, why)) = last_failure.as_ref() {
            if at.elapsed() < RETRY_PAUSE {
                return Err(unavailable(why.clone()));
            }
        }
        let found = tokio::time::timeout(DISCOVERY_DEADLINE, self.search())
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no primary found within {} ms",
                    DISCOVERY_DEADLINE.as_millis()
                ))
            });
        match found {
            Ok((address, connection)) => {
                let generation = self
                    .shared
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut slot = self.lock_primary();
                tracing::info!(
                    master = %self.shared.target.master,
                    primary = %address,
                    "connected to the Redis primary the sentinels name"
                );
                let primary = Primary {
                    connection,
                    address,
                    generation,
                    checked_at: Instant::now(),
                };
                *slot = Some(primary.clone());
                *last_failure = None;
                Ok(primary)
            }
            Err(why) => {
                let why = self.shared.target.scrub(&why);
                tracing::warn!(master = %self.shared.target.master, problem = %why,
                    "no Redis primary found through the sentinels");
                *last_failure = Some((Instant::now(), why.clone()));
                Err(unavailable(why))
            }
        }
    }

    fn lock_primary(&self) -> std::sync::MutexGuard<'_, Option<Primary>> {
        self.shared
            .primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Option<Primary> {
        self.lock_primary().clone()
    }

    /// Forgets the connection of `generation`, unless a newer one has replaced it already.
    fn drop_connection(&self, generation: u64) {
        let mut slot = self.lock_primary();
        if slot
            .as_ref()
            .is_some_and(|primary| primary.generation == generation)
        {
            *slot = None;
        }
    }

    /// Asks the sentinels which node is the primary and connects to it.
    async fn search(&self) -> Result<(String, MultiplexedConnection), String> {
        let sighting = self.ask_sentinels().await?;
        let target = &self.shared.target;
        let address = format!("{}:{}", sighting.host, sighting.port);
        let url = target.node_url(&sighting.host, sighting.port, Some(target.db), true);
        let client = tls::client(&url, &self.shared.tls)?;
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await
            .map_err(|err| format!("connecting to the primary {address}: {err}"))?;
        let role: redis::Value = redis::cmd("ROLE")
            .query_async(&mut connection)
            .await
            .map_err(|err| format!("asking {address} for its role: {err}"))?;
        match role {
            redis::Value::Array(items) if matches!(items.first(), Some(redis::Value::BulkString(role)) if role == b"master") => {
                Ok((address, connection))
            }
            _ => Err(format!(
                "{address}, which the sentinels name the primary, is not one (yet)"
            )),
        }
    }

    /// Every sentinel's view of the master, at once; the one with the highest epoch.
    async fn ask_sentinels(&self) -> Result<Sighting, String> {
        let target = &self.shared.target;
        let mut asking = tokio::task::JoinSet::new();
        for (host, port) in &target.sentinels {
            let with = tls::client(&target.node_url(host, *port, None, true), &self.shared.tls)?;
            let without =
                tls::client(&target.node_url(host, *port, None, false), &self.shared.tls)?;
            let master = target.master.clone();
            let address = format!("{host}:{port}");
            asking.spawn(async move {
                let sighting = match ask_sentinel(&with, &master).await {
                    Err(err) if asks_no_password(&err) => ask_sentinel(&without, &master).await,
                    outcome => outcome,
                };
                sighting.map_err(|err| format!("sentinel {address}: {err}"))
            });
        }
        let mut best: Option<Sighting> = None;
        let mut problems = Vec::new();
        while let Some(answer) = asking.join_next().await {
            match answer {
                Ok(Ok(sighting)) => {
                    if best.as_ref().is_none_or(|best| sighting.epoch > best.epoch) {
                        best = Some(sighting);
                    }
                }
                Ok(Err(problem)) => problems.push(problem),
                Err(err) => problems.push(err.to_string()),
            }
        }
        match best {
            Some(best) if best.failing_over => Err(format!(
                "a failover is under way (epoch {}); no primary until it ends",
                best.epoch
            )),
            Some(best) => Ok(best),
            None => {
                problems.sort();
                Err(format!("no sentinel answered: {}", problems.join("; ")))
            }
        }
    }

    /// Starts a check of the node in use against the sentinels, unless one is under way.
    fn check_in_background(&self) {
        use std::sync::atomic::Ordering;
        if self.shared.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let view = tokio::time::timeout(DISCOVERY_DEADLINE, this.ask_sentinels()).await;
            let mut slot = this.lock_primary();
            if let Some(primary) = slot.as_mut() {
                match view {
                    Ok(Ok(sighting))
                        if format!("{}:{}", sighting.host, sighting.port) != primary.address =>
                    {
                        tracing::warn!(
                            master = %this.shared.target.master,
                            was = %primary.address,
                            "the sentinels name another Redis primary; switching"
                        );
                        *slot = None;
                    }
                    _ => primary.checked_at = Instant::now(),
                }
            }
            drop(slot);
            this.shared.checking.store(false, Ordering::Release);
        });
    }
}

/// `SENTINEL MASTER name` on one sentinel: the master's address and the epoch of its config.
async fn ask_sentinel(client: &redis::Client, master: &str) -> RedisResult<Sighting> {
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&connection_config())
        .await?;
    let fields: std::collections::HashMap<String, String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(master)
        .query_async(&mut connection)
        .await?;
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let (Ok(port), Ok(epoch)) = (field("port").parse::<u16>(), field("config-epoch").parse())
    else {
        return Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "SENTINEL MASTER answered without port or config-epoch",
        )));
    };
    if field("ip").is_empty() {
        return Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "SENTINEL MASTER answered without ip",
        )));
    }
    Ok(Sighting {
        epoch,
        host: field("ip").to_owned(),
        port,
        failing_over: field("flags").contains("failover_in_progress"),
    })
}

/// Waits until `acks` replicas hold every write sent on `connection` so far (`WAIT`), which a
/// failover then keeps: the sentinels promote the replica furthest along. Fewer in time is a
/// failure, of a write that has run: it is not sent again.
async fn replicated(connection: &mut MultiplexedConnection, acks: u32) -> RedisResult<()> {
    let acknowledged: u64 = redis::cmd("WAIT")
        .arg(acks)
        .arg(REPLICA_ACK_TIMEOUT.as_millis() as u64)
        .query_async(connection)
        .await?;
    if acknowledged >= u64::from(acks) {
        return Ok(());
    }
    Err(RedisError::from((
        ErrorKind::Client,
        "the write was not replicated in time",
        format!(
            "{acknowledged} of {acks} replicas acknowledged it within {} ms",
            REPLICA_ACK_TIMEOUT.as_millis()
        ),
    )))
}

fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}

/// A sentinel without a password refuses one ("AUTH … called without any password configured",
/// which the client library reports as a failed authentication): it is then asked without. A
/// sentinel that does want a password, and not this one, refuses that too.
fn asks_no_password(err: &RedisError) -> bool {
    err.kind() == ErrorKind::AuthenticationFailed
}

/// Whether a failure may mean that the node is no longer the primary: then its connection is
/// dropped and the next request asks the sentinels.
fn may_mean_a_switch(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_unrecoverable_error()
        || err.is_timeout()
        || super::connection::refused_by_a_replica(err)
        || err.code() == Some("MASTERDOWN")
}

/// A failure to find the primary, as a refused connection: no request was sent.
fn unavailable(why: String) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        why,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_sentinels_a_master_a_database_and_a_prefix() {
        let target = Target::parse(
            "redis+sentinel://app:s%3Acret@10.0.0.1:26379,sentinel-2,[::1]:26380/mymaster/3?prefix=team%3A",
        )
        .unwrap();
        assert!(!target.tls);
        assert_eq!(
            target.sentinels,
            vec![
                ("10.0.0.1".to_owned(), 26379),
                ("sentinel-2".to_owned(), DEFAULT_SENTINEL_PORT),
                ("[::1]".to_owned(), 26380)
            ]
        );
        assert_eq!(target.master, "mymaster");
        assert_eq!(target.db, 3);
        assert_eq!(target.prefix(), Some("team:"));
        assert_eq!(target.replica_acks, DEFAULT_REPLICA_ACKS);
        assert_eq!(
            target.node_url("10.0.0.9", 6379, Some(3), true),
            "redis://app:s%3Acret@10.0.0.9:6379/3"
        );
        assert_eq!(
            target.node_url("::1", 26380, None, false),
            "redis://[::1]:26380"
        );
        let target = Target::parse("rediss+sentinel://s1:1,s2:2/m?replica_acks=0").unwrap();
        assert_eq!(target.replica_acks, 0);
        assert!(target.tls);
        assert_eq!(target.db, 0);
        assert_eq!(target.prefix(), None);
        assert_eq!(
            target.node_url("h", 6380, Some(0), true),
            "rediss://h:6380/0"
        );
    }

    #[test]
    fn bad_forms_are_refused_with_what_is_wrong_and_never_the_password() {
        for (url, why) in [
            ("redis+sentinel://:hunter2@s1:1,s2:2", "names no master"),
            ("redis+sentinel://:hunter2@s1:1/", "names no master"),
            (
                "redis+sentinel://:hunter2@s1:1,,s2:2/m",
                "is not a HOST[:PORT]",
            ),
            ("redis+sentinel://:hunter2@s1:0/m", "no valid port"),
            ("redis+sentinel://:hunter2@s1:x/m", "no valid port"),
            ("redis+sentinel://:hunter2@[::1/m", "closing ']'"),
            ("redis+sentinel://:hunter2@s1/m/zero", "is not a number"),
            ("redis+sentinel://:hunter2@s1/m/0/x", "/MASTER_NAME/DB"),
            (
                "redis+sentinel://:hunter2@s1/m%20x",
                "master name may hold only",
            ),
            (
                "redis+sentinel://:hunter2@s1/m?protocol=resp3",
                "takes only prefix=",
            ),
            ("redis+sentinel://:hunter2@s1/m?replica_acks=x", "0 to 16"),
            (
                "rediss+sentinel://:hunter2@s1/m#insecure",
                "#insecure is refused",
            ),
            ("redis+sentinal://:hunter2@s1/m", "must start with"),
        ] {
            let err = Target::parse(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
            assert!(err.starts_with("AUTH_STORE "), "{err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn the_password_stays_out_of_every_form_of_the_url() {
        let url = "redis+sentinel://app:hun%40ter2@s1:1,s2:2/m/1?prefix=p";
        let target = Target::parse(url).unwrap();
        assert_eq!(
            target.redacted(),
            "redis+sentinel://app:redacted@s1:1,s2:2/m/1"
        );
        assert_eq!(format!("{target:?}"), target.redacted());
        let redacted = crate::store::redact_url(url);
        assert!(!redacted.contains("hun"), "{redacted}");
        assert!(redacted.contains("s1:1,s2:2/m/1"), "{redacted}");
        assert_eq!(
            target.scrub("AUTH hun@ter2 and hun%40ter2 failed"),
            "AUTH [redacted] and [redacted] failed"
        );
    }

    #[test]
    fn the_prefix_is_split_off_and_other_parameters_kept_for_the_check() {
        assert_eq!(
            split_prefix("redis+sentinel://s1,s2/m/0?prefix=a%3A"),
            (
                "redis+sentinel://s1,s2/m/0".to_owned(),
                Some("a:".to_owned())
            )
        );
        assert_eq!(
            split_prefix("redis+sentinel://s1/m?x=1&prefix=b"),
            ("redis+sentinel://s1/m?x=1".to_owned(), Some("b".to_owned()))
        );
        assert_eq!(
            split_prefix("redis+sentinel://s1/m"),
            ("redis+sentinel://s1/m".to_owned(), None)
        );
    }

    #[test]
    fn only_sentinel_schemes_are_checked_here() {
        assert!(names_sentinels("REDIS+SENTINEL://s/m"));
        assert!(names_sentinels("rediss+sentinel://s/m"));
        assert!(!names_sentinels("redis://h:6379/0"));
        assert!(check_url("redis://h:6379/0").is_ok());
        assert!(check_url("redis+sentinel://s1,s2/m").is_ok());
        assert!(check_url("redis+sentinel://s1,s2").is_err());
    }

    #[tokio::test]
    async fn unreachable_sentinels_are_unavailable_within_the_deadline_and_without_the_password() {
        let started = Instant::now();
        let url = format!(
            "redis+sentinel://:hunter2@127.0.0.1:{},127.0.0.1:{}/m",
            test_kit::free_port(),
            test_kit::free_port()
        );
        let message = match SentinelConnection::open(&url, &RedisTls::default()).await {
            Err(StoreError::Unavailable(message)) => message,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("closed ports answered"),
        };
        assert!(started.elapsed() < DISCOVERY_DEADLINE + Duration::from_millis(500));
        assert!(message.contains("no sentinel answered"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

/// Against the primary, replica and sentinels that the tests of this process share.
#[cfg(test)]
mod server_tests {
    use test_kit::redis_sentinel::shared_sentinel_redis;

    use super::super::connection::{refused_by_a_replica, Resend};
    use super::*;
    use crate::store::redis::RedisStore;
    use crate::store::Store;

    /// What a demoted primary answers a write: `READONLY`, having run nothing of the script, so
    /// the store may send it to the new primary.
    #[tokio::test]
    async fn a_write_script_on_a_replica_is_refused_before_it_writes() {
        let redis = tokio::task::spawn_blocking(shared_sentinel_redis)
            .await
            .unwrap();
        let replica = redis.node(redis.replica_ports()[0]).url();
        let mut connection = redis::Client::open(replica)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let script = redis::Script::new("redis.call('SET', KEYS[1], 'x'); return 1");
        let err = script
            .key("sentinel-test:readonly")
            .invoke_async::<u64>(&mut connection)
            .await
            .unwrap_err();
        assert!(refused_by_a_replica(&err), "{err:?}");
        assert!(Resend::IfNotSent.allows(&err));
        assert!(may_mean_a_switch(&err));
    }

    #[tokio::test]
    async fn the_store_writes_through_the_sentinels_and_waits_for_the_replica() {
        let redis = tokio::task::spawn_blocking(shared_sentinel_redis)
            .await
            .unwrap();
        let prefix = test_kit::redis::fresh_prefix("sentinel-store");
        let url = format!("{}?prefix={prefix}", redis.url());
        let store = RedisStore::open(&url).await.unwrap();
        store.ping().await.unwrap();
        store
            .revoke_access_token("jti-1", test_kit::unix_now() + 60)
            .await
            .unwrap();
        // Answered once the replica held it: it is there to read.
        let replica = redis.node(redis.replica_ports()[0]).url();
        let mut connection = redis::Client::open(replica)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let present: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}revoked-jti:jti-1"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(present, "the replica holds the write the store answered");
        let prefix_for_cleanup = prefix.clone();
        tokio::task::spawn_blocking(move || redis.delete_keys(&prefix_for_cleanup))
            .await
            .unwrap()
            .unwrap();
    }

    /// `rediss+sentinel://`: the sentinels and the nodes speak TLS only, checked against the
    /// test CA; the store finds the primary and writes through it, the replica confirming.
    #[tokio::test]
    async fn over_tls_the_sentinels_and_the_primary_are_reached_with_the_ca_file() {
        let (pki, redis) = tokio::task::spawn_blocking(|| {
            let pki = test_kit::tls::TestPki::new();
            let redis = test_kit::redis_sentinel::SentinelRedis::start_tls(&pki);
            (pki, redis)
        })
        .await
        .unwrap();
        let ca_file = pki.ca_file();
        let url = format!("{}?prefix=sentinel-tls:", redis.url());
        assert!(url.starts_with("rediss+sentinel://"));
        let tls = RedisTls {
            ca_file: Some(ca_file),
            ..RedisTls::default()
        };
        let store = RedisStore::open_tls(&url, &tls).await.unwrap();
        store
            .revoke_access_token("jti-tls", test_kit::unix_now() + 60)
            .await
            .unwrap();
        assert!(store
            .access_token_revoked("jti-tls", test_kit::unix_now())
            .await
            .unwrap());
        let err = RedisStore::open_tls(&url, &RedisTls::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("certificate"),
            "the system roots do not know the test CA: {err}"
        );
        assert!(!err.contains(test_kit::redis_sentinel::PASSWORD), "{err}");
        tokio::task::spawn_blocking(move || drop(redis))
            .await
            .unwrap();
    }
}
