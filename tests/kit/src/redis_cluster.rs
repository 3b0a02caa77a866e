//! A local Redis Cluster for tests: three primaries (no replicas) on free loopback ports, each a
//! [`RedisServer`] in cluster mode with a temporary directory of its own, joined with
//! `redis-cli --cluster create`. It stops when dropped, or when the test process ends (the
//! servers' supervisors see to that).
//!
//! Tests that only read and write share one per test process ([`shared_redis_cluster`]), each
//! under a key prefix of its own ([`ClusterNamespace`]); a test that moves slots
//! ([`RedisCluster::move_slot`]) starts its own. Every wait is bounded and every failure panics
//! or errs with what went wrong.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process::find_on_path;
use crate::redis::{fresh_prefix, RedisServer};
use crate::tls::{ClientCerts, TestPki};

/// How long the cluster may take to form, and a slot to move.
const FORMING_DEADLINE: Duration = Duration::from_secs(30);

/// Keys moved by one `MIGRATE`, small so that a slot with keys moves in several steps.
const MIGRATE_BATCH: usize = 20;

/// Three primaries that own every slot between them.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// The CA, client certificate and key `redis-cli` presents to a cluster that speaks TLS.
    tls: Option<[String; 3]>,
}

impl RedisCluster {
    /// Starts three primaries and joins them: every slot is served once this returns. The error
    /// says what went wrong and how to get `redis-server`.
    pub fn start() -> Result<Self, String> {
        Self::start_with(None)
    }

    /// As [`RedisCluster::start`], every node speaking TLS only (clients and the cluster bus)
    /// with the server certificate of `pki`, and asking clients for a certificate of its CA.
    pub fn start_tls(pki: &TestPki) -> Result<Self, String> {
        Self::start_with(Some(pki))
    }

    fn start_with(pki: Option<&TestPki>) -> Result<Self, String> {
        for program in ["redis-server", "redis-cli"] {
            if find_on_path(program).is_none() {
                return Err(format!(
                    "{program} is not on PATH; a Redis Cluster for the tests needs it (for \
                     example `apt-get install redis-server`, which brings redis-cli too)"
                ));
            }
        }
        let nodes = (0..3)
            .map(|_| start_node(pki))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = pki.map(|pki| {
            [pki.ca_file(), pki.client_cert_file(), pki.client_key_file()]
                .map(|path| path.display().to_string())
        });
        let cluster = Self { nodes, tls };
        cluster.create()?;
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    /// [`RedisCluster::start`], panicking with what went wrong.
    pub fn start_or_panic() -> Self {
        Self::start().unwrap_or_else(|problem| panic!("starting a Redis Cluster: {problem}"))
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (`rediss+cluster://` over
    /// TLS), the store URL without a prefix.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let scheme = match self.tls {
            Some(_) => "rediss+cluster",
            None => "redis+cluster",
        };
        format!("{scheme}://{}", hosts.join(","))
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A fresh key prefix on this cluster for the test `name`; its keys go on drop.
    pub fn namespace(&self, name: &str) -> ClusterNamespace<'_> {
        ClusterNamespace {
            cluster: self,
            prefix: fresh_prefix(name),
        }
    }

    /// The slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        let mut connection = self.connect(0);
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut connection)
            .unwrap_or_else(|err| panic!("CLUSTER KEYSLOT {key:?}: {err}"))
    }

    /// The index in [`RedisCluster::nodes`] of the primary that owns `slot`, as the first node
    /// sees it.
    pub fn owner_of(&self, slot: u16) -> usize {
        let mut connection = self.connect(0);
        let ranges: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut connection)
            .unwrap_or_else(|err| panic!("CLUSTER SLOTS: {err}"))
            .into_iter()
            .filter_map(slot_range)
            .collect();
        let port = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, (_, port))| *port)
            .unwrap_or_else(|| panic!("no node owns slot {slot}"));
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .unwrap_or_else(|| panic!("slot {slot} is owned by an unknown port {port}"))
    }

    /// Moves `slot` with its keys to the node at index `to`, as `redis-cli --cluster reshard`
    /// does: the target imports, the owner migrates, the keys go over in batches of
    /// [`MIGRATE_BATCH`] with `pause` after each (clients meanwhile get `ASK` for moved keys
    /// and `TRYAGAIN` for scripts over keys on both sides), then every node learns the new
    /// owner. Returns how many keys moved.
    pub fn move_slot(&self, slot: u16, to: usize, pause: Duration) -> usize {
        let from = self.owner_of(slot);
        if from == to {
            return 0;
        }
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let mut source = self.connect(from);
        let mut target = self.connect(to);
        let setslot = |connection: &mut redis::Connection, state: &str, id: &str| {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id)
                .query::<()>(connection)
                .unwrap_or_else(|err| panic!("CLUSTER SETSLOT {slot} {state}: {err}"));
        };
        setslot(&mut target, "IMPORTING", &from_id);
        setslot(&mut source, "MIGRATING", &to_id);
        let target_port = self.nodes[to].port();
        let deadline = Instant::now() + FORMING_DEADLINE;
        let mut moved = 0;
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(MIGRATE_BATCH)
                .query(&mut source)
                .unwrap_or_else(|err| panic!("CLUSTER GETKEYSINSLOT {slot}: {err}"));
            if keys.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot} did not empty within {FORMING_DEADLINE:?}"
            );
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(target_port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query::<()>(&mut source)
                .unwrap_or_else(|err| panic!("MIGRATE of slot {slot}: {err}"));
            moved += keys.len();
            std::thread::sleep(pause);
        }
        // The target first, so that it serves the slot before anyone is sent to it.
        setslot(&mut target, "NODE", &to_id);
        setslot(&mut source, "NODE", &to_id);
        for index in (0..self.nodes.len()).filter(|index| ![from, to].contains(index)) {
            setslot(&mut self.connect(index), "NODE", &to_id);
        }
        moved
    }

    /// Deletes every key under `prefix` on every node, one key at a time (keys of different
    /// slots may not go in one command). Best effort while slots move.
    pub fn delete_keys(&self, prefix: &str) {
        let pattern = format!("{}*", glob_escape(prefix));
        for index in 0..self.nodes.len() {
            let Ok(mut connection) = self.nodes[index].connect() else {
                continue;
            };
            let mut cursor: u64 = 0;
            loop {
                let Ok((next, keys)) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query::<(u64, Vec<String>)>(&mut connection)
                else {
                    break;
                };
                let mut pipeline = redis::pipe();
                for key in &keys {
                    pipeline.cmd("UNLINK").arg(key).ignore();
                }
                let _ = pipeline.query::<()>(&mut connection);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }

    fn connect(&self, index: usize) -> redis::Connection {
        self.nodes[index].connect().unwrap_or_else(|err| {
            panic!(
                "connecting to cluster node 127.0.0.1:{}: {err}",
                self.nodes[index].port()
            )
        })
    }

    fn node_id(&self, index: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.connect(index))
            .unwrap_or_else(|err| panic!("CLUSTER MYID: {err}"))
    }

    /// `redis-cli --cluster create`, which assigns the slots evenly and waits until the nodes
    /// agree; killed if it takes longer than [`FORMING_DEADLINE`].
    fn create(&self) -> Result<(), String> {
        let mut command = Command::new("redis-cli");
        if let Some([ca, cert, key]) = &self.tls {
            command
                .arg("--tls")
                .args(["--cacert", ca, "--cert", cert, "--key", key]);
        }
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        let mut child = command
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("running redis-cli --cluster create: {err}"))?;
        let deadline = Instant::now() + FORMING_DEADLINE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "redis-cli --cluster create did not finish within {FORMING_DEADLINE:?}"
                    ));
                }
            }
        }
        let output = child
            .wait_with_output()
            .map_err(|err| format!("reading redis-cli's output: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok` and knows an owner for every slot.
    fn wait_until_ok(&self) -> Result<(), String> {
        let deadline = Instant::now() + FORMING_DEADLINE;
        for node in &self.nodes {
            loop {
                let info: Option<String> = node.connect().ok().and_then(|mut connection| {
                    redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query(&mut connection)
                        .ok()
                });
                let ok = info.as_deref().is_some_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                });
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "cluster node 127.0.0.1:{} is not ok within {FORMING_DEADLINE:?}: {info:?}",
                        node.port()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// One node in cluster mode, its cluster bus on another free port; tried again on other ports
/// should a port be taken meanwhile.
fn as_str(arguments: &[String]) -> Vec<&str> {
    arguments.iter().map(String::as_str).collect()
}

fn start_node(pki: Option<&TestPki>) -> Result<RedisServer, String> {
    let mut last_problem = String::new();
    for _attempt in 0..3 {
        let arguments: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
            "--cluster-port",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([crate::free_port().to_string()])
        .collect();
        let started = match pki {
            None => RedisServer::with_arguments(&as_str(&arguments)),
            Some(pki) => RedisServer::tls_with_arguments(
                pki,
                ClientCerts::Required,
                // The bus speaks TLS too; a node presents the client certificate to the
                // others, whose server certificate is not made for client authentication.
                &as_str(
                    &arguments
                        .iter()
                        .cloned()
                        .chain([
                            "--tls-cluster".to_owned(),
                            "yes".to_owned(),
                            "--tls-client-cert-file".to_owned(),
                            pki.client_cert_file().display().to_string(),
                            "--tls-client-key-file".to_owned(),
                            pki.client_key_file().display().to_string(),
                        ])
                        .collect::<Vec<_>>(),
                ),
            ),
        };
        match started {
            Ok(server) => return Ok(server),
            Err(problem) => last_problem = problem,
        }
    }
    Err(last_problem)
}

/// `(first slot, last slot, (host, port) of the primary)` of one `CLUSTER SLOTS` entry.
fn slot_range(entry: redis::Value) -> Option<(u16, u16, (String, u16))> {
    let redis::Value::Array(parts) = entry else {
        return None;
    };
    let mut parts = parts.into_iter();
    let start: u16 = redis::from_redis_value(parts.next()?).ok()?;
    let end: u16 = redis::from_redis_value(parts.next()?).ok()?;
    let redis::Value::Array(primary) = parts.next()? else {
        return None;
    };
    let mut primary = primary.into_iter();
    let host: String = redis::from_redis_value(primary.next()?).ok()?;
    let port: u16 = redis::from_redis_value(primary.next()?).ok()?;
    Some((start, end, (host, port)))
}

fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// The cluster that the tests of this process share (started on first use). Tests on it must
/// not move slots: [`RedisCluster::start`] one of their own for that.
pub fn shared_redis_cluster() -> &'static RedisCluster {
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(RedisCluster::start_or_panic)
}

/// A key prefix of its own on a cluster, for one test; its keys are deleted on drop.
pub struct ClusterNamespace<'a> {
    cluster: &'a RedisCluster,
    prefix: String,
}

impl ClusterNamespace<'_> {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store URL an auth-server takes (`AUTH_STORE`): the cluster URL with `?prefix=`.
    pub fn store_url(&self) -> String {
        let prefix: String = url::form_urlencoded::byte_serialize(self.prefix.as_bytes()).collect();
        format!("{}/?prefix={prefix}", self.cluster.url())
    }
}

impl Drop for ClusterNamespace<'_> {
    fn drop(&mut self) {
        self.cluster.delete_keys(&self.prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_every_slot_and_moves_one_with_its_keys() {
        let cluster = RedisCluster::start_or_panic();
        assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));
        let namespace = cluster.namespace("kit-cluster");
        let key = format!("{}{{moving}}:k", namespace.prefix());
        let slot = cluster.slot_of(&key);
        let owner = cluster.owner_of(slot);
        let mut connection = cluster.nodes()[owner].connect().unwrap();
        redis::cmd("SET")
            .arg(&key)
            .arg("v")
            .query::<()>(&mut connection)
            .unwrap();
        let to = (owner + 1) % 3;
        assert_eq!(cluster.move_slot(slot, to, Duration::ZERO), 1);
        assert_eq!(cluster.owner_of(slot), to);
        let mut connection = cluster.nodes()[to].connect().unwrap();
        let value: String = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
        assert_eq!(value, "v");
        drop(namespace);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query(&mut connection)
            .unwrap();
        assert!(!exists, "the namespace's keys go on drop");
    }
}
