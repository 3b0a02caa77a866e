//! Redis behind Sentinel for tests: a primary, one replica (`--replicaof`) or more, and three
//! sentinels (`redis-server sentinel.conf --sentinel`), each a [`RedisServer`] on a free loopback port
//! with a temporary directory of its own, all stopped on drop. The data nodes ask for a password,
//! the sentinels do not (they hold it as `sentinel auth-pass`), as in a usual deployment. The
//! sentinels judge a silent primary down after a second, so that a failover test ends quickly;
//! every wait here is bounded and panics, saying what it waited for, when it runs out.
//!
//! [`shared_sentinel_redis`] is one such set for a whole test process, which tests share under
//! key prefixes of their own and never fail over; a test that fails over starts its own with
//! [`SentinelRedis::start`].

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::redis::{ClientCerts, RedisServer};
use crate::tls::TestPki;

/// The name the sentinels know the primary by.
pub const MASTER_NAME: &str = "kit-primary";

/// The data nodes' password (`requirepass`, `masterauth`).
pub const PASSWORD: &str = "sentinel-kit-password";

/// After how long without an answer a sentinel thinks the primary down.
const DOWN_AFTER_MS: u64 = 1000;

/// `failover-timeout`: also twice this before the same sentinels try again.
const FAILOVER_TIMEOUT_MS: u64 = 2000;

/// The longest a set may take to start, or to settle after a failover.
const SETTLE: Duration = Duration::from_secs(20);

/// A primary, its replicas and three sentinels that watch them.
pub struct SentinelRedis {
    /// The data nodes, the first started as the primary; failovers swap their roles.
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
    /// Whether everything speaks TLS only.
    tls: bool,
}

impl SentinelRedis {
    /// Starts a primary with one replica, and the sentinels; waits until the sentinels know
    /// the replica and each other, so that a failover can start at once. Panics, saying why,
    /// when it cannot.
    pub fn start() -> Self {
        Self::start_with_replicas(1)
    }

    /// As [`SentinelRedis::start`], with `replicas` replicas: with two, one is left to
    /// acknowledge writes (`WAIT`) after the other is promoted.
    pub fn start_with_replicas(replicas: usize) -> Self {
        Self::try_start(replicas)
            .unwrap_or_else(|problem| panic!("starting Redis with sentinels: {problem}"))
    }

    /// As [`SentinelRedis::start`], every node and sentinel speaking TLS only with the server
    /// certificate of `pki` (client certificates not asked for); the nodes replicate and the
    /// sentinels watch over TLS. Its URL is `rediss+sentinel://`.
    pub fn start_tls(pki: &TestPki) -> Self {
        Self::try_start_with(1, Some(pki))
            .unwrap_or_else(|problem| panic!("starting TLS Redis with sentinels: {problem}"))
    }

    pub fn try_start(replicas: usize) -> Result<Self, String> {
        Self::try_start_with(replicas, None)
    }

    fn try_start_with(replicas: usize, pki: Option<&TestPki>) -> Result<Self, String> {
        let node = |arguments: &[&str]| match pki {
            None => RedisServer::with_arguments(arguments),
            Some(pki) => {
                let mut arguments = arguments.to_vec();
                arguments.extend(["--tls-replication", "yes"]);
                RedisServer::tls_with_arguments(pki, ClientCerts::NotAsked, &arguments)
            }
        };
        let auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD];
        let primary = node(&auth)?;
        let first_primary = primary.port();
        let primary_port = first_primary.to_string();
        let mut replica_arguments = auth.to_vec();
        replica_arguments.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let mut nodes = vec![primary];
        for _ in 0..replicas {
            nodes.push(node(&replica_arguments)?);
        }
        let config = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
             sentinel auth-pass {MASTER_NAME} {PASSWORD}\n\
             sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        let sentinels = (0..3)
            .map(|_| match pki {
                None => RedisServer::sentinel(&config),
                Some(pki) => RedisServer::sentinel_tls(pki, &config),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let set = Self {
            nodes,
            sentinels,
            tls: pki.is_some(),
        };
        set.wait_until_settled(first_primary)?;
        Ok(set)
    }

    /// `redis+sentinel://:PASSWORD@127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/MASTER_NAME/0`: what
    /// `AUTH_STORE` takes.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect();
        let scheme = if self.tls {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        format!(
            "{scheme}://:{PASSWORD}@{}/{MASTER_NAME}/0",
            sentinels.join(",")
        )
    }

    /// The port of the node the first sentinel that answers names the primary.
    pub fn primary_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|sentinel| sentinel_view(sentinel).ok())
            .map(|view| view.port)
            .unwrap_or_else(|| panic!("no sentinel names a primary"))
    }

    /// The ports of the data nodes that are not the primary.
    pub fn replica_ports(&self) -> Vec<u16> {
        let primary = self.primary_port();
        self.nodes
            .iter()
            .map(RedisServer::port)
            .filter(|port| *port != primary)
            .collect()
    }

    /// The data node on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// The data node on `port`, to stop or pause it.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// Asks a sentinel to fail the primary over at once (`SENTINEL FAILOVER`), waits until the
    /// sentinels name the replica and it is a primary, and returns its port. The old primary
    /// is made a replica of it later (the sentinels wait some seconds before they convert it).
    pub fn failover(&self) -> u16 {
        let old = self.primary_port();
        let deadline = Instant::now() + SETTLE;
        loop {
            let answer: redis::RedisResult<String> =
                self.sentinels[0].connect().and_then(|mut connection| {
                    redis::cmd("SENTINEL")
                        .arg("FAILOVER")
                        .arg(MASTER_NAME)
                        .query(&mut connection)
                });
            match answer {
                Ok(_) => break,
                // INPROG or NOGOODSLAVE while the sentinels catch up.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(err) => panic!("SENTINEL FAILOVER: {err}"),
            }
        }
        self.wait_for_another_primary(old)
    }

    /// Stops the primary's process and returns its port; the sentinels fail over by
    /// themselves once they find it down ([`SentinelRedis::wait_for_another_primary`]).
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port();
        self.node_mut(port).stop();
        port
    }

    /// Waits until every sentinel names a primary other than the one on `old`, and it says so
    /// itself (`ROLE`); returns its port.
    pub fn wait_for_another_primary(&self, old: u16) -> u16 {
        let deadline = Instant::now() + SETTLE;
        loop {
            let views: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|sentinel| sentinel_view(sentinel).ok().map(|view| view.port))
                .collect();
            if let Some(Some(port)) = views.first() {
                let agreed = views.iter().all(|view| *view == Some(*port));
                if *port != old && agreed && role(self.node(*port)).as_deref() == Some("master") {
                    return *port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover from port {old} within {SETTLE:?}: the sentinels say {views:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the node on `primary` is the primary every sentinel names, every other
    /// running data node replicates it, and each sentinel knows the others and the replica.
    fn wait_until_settled(&self, primary: u16) -> Result<(), String> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let problem = self.unsettled(primary);
            let Some(problem) = problem else {
                return Ok(());
            };
            if Instant::now() > deadline {
                return Err(format!("not settled within {SETTLE:?}: {problem}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn unsettled(&self, primary: u16) -> Option<String> {
        if role(self.node(primary)).as_deref() != Some("master") {
            return Some(format!("the node on {primary} is not a primary"));
        }
        let replicas: Vec<&RedisServer> = self
            .nodes
            .iter()
            .filter(|node| node.port() != primary && node.is_running())
            .collect();
        for replica in &replicas {
            let linked = replica
                .connect()
                .and_then(|mut connection| {
                    redis::cmd("INFO")
                        .arg("replication")
                        .query::<String>(&mut connection)
                })
                .is_ok_and(|info| {
                    info.contains(&format!("master_port:{primary}"))
                        && info.contains("master_link_status:up")
                });
            if !linked {
                return Some(format!(
                    "the node on {} does not replicate {primary} yet",
                    replica.port()
                ));
            }
        }
        for sentinel in &self.sentinels {
            let view = match sentinel_view(sentinel) {
                Ok(view) => view,
                Err(err) => return Some(format!("sentinel {}: {err}", sentinel.port())),
            };
            let ready = view.port == primary
                && view.flags == "master"
                && view.other_sentinels >= self.sentinels.len() - 1
                && view.replicas >= replicas.len();
            if !ready {
                return Some(format!("sentinel {} sees {view:?}", sentinel.port()));
            }
        }
        None
    }

    /// Deletes every key under `prefix` on the primary.
    pub fn delete_keys(&self, prefix: &str) -> redis::RedisResult<()> {
        self.node(self.primary_port()).delete_keys(prefix)
    }
}

/// What a sentinel says of the master (`SENTINEL MASTER`).
#[derive(Debug)]
struct View {
    port: u16,
    flags: String,
    other_sentinels: usize,
    replicas: usize,
}

fn sentinel_view(sentinel: &RedisServer) -> Result<View, String> {
    let fields: HashMap<String, String> = sentinel
        .connect()
        .and_then(|mut connection| {
            redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(MASTER_NAME)
                .query(&mut connection)
        })
        .map_err(|err| err.to_string())?;
    let number = |name: &str| -> Result<usize, String> {
        fields
            .get(name)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("SENTINEL MASTER without {name}"))
    };
    Ok(View {
        port: u16::try_from(number("port")?).map_err(|err| err.to_string())?,
        flags: fields.get("flags").cloned().unwrap_or_default(),
        other_sentinels: number("num-other-sentinels")?,
        replicas: number("num-slaves")?,
    })
}

/// The node's `ROLE`: `master` or `slave`; `None` when it does not answer.
fn role(node: &RedisServer) -> Option<String> {
    let mut connection = node.connect().ok()?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut connection).ok()?;
    match role.first() {
        Some(redis::Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Some(redis::Value::SimpleString(text)) => Some(text.clone()),
        _ => None,
    }
}

/// One [`SentinelRedis`] for the whole test process, started on first use; tests share it under
/// key prefixes of their own and must not fail it over.
pub fn shared_sentinel_redis() -> &'static SentinelRedis {
    static SHARED: OnceLock<SentinelRedis> = OnceLock::new();
    SHARED.get_or_init(SentinelRedis::start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failover_moves_the_primary_and_keeps_what_was_replicated() {
        let redis = SentinelRedis::start();
        let old = redis.primary_port();
        let mut connection = redis.node(old).connect().unwrap();
        redis::cmd("SET")
            .arg("kit-sentinel:k")
            .arg("v")
            .query::<()>(&mut connection)
            .unwrap();
        // Replicated before the switch, so that it survives it.
        let _: u64 = redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query(&mut connection)
            .unwrap();
        let new = redis.failover();
        assert_ne!(new, old);
        let mut connection = redis.node(new).connect().unwrap();
        let value: String = redis::cmd("GET")
            .arg("kit-sentinel:k")
            .query(&mut connection)
            .unwrap();
        assert_eq!(value, "v");
        assert!(redis.url().starts_with("redis+sentinel://:"));
    }
}
