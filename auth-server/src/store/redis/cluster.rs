//! Redis Cluster: `redis+cluster://[USER:PASSWORD@]HOST:PORT,HOST:PORT[/][?prefix=PREFIX]`, or
//! `rediss+cluster://…` for TLS with the same files as `rediss://`. The hosts are seeds: the
//! client asks them for the slot map and then talks to every primary itself, following `MOVED`
//! (a slot has a new owner) and `ASK` (a slot is being moved) and waiting out `TRYAGAIN` and
//! `CLUSTERDOWN`, each within the store's deadline. A redirect is safe for every request,
//! writes included, because a node that redirects has not run it. But the library also sends a
//! request again after a lost connection or a timeout, when a write may have run: the store's
//! own resend is off for writes on a Cluster, and the writes that would do harm twice are made
//! to find themselves done (a refresh insert, a secret rotation); see the README's "Sending
//! again" for what remains.
//!
//! The key layout puts the keys of each script and `MULTI` block under one hash tag, so each runs
//! on one node (the static check is in the tests below). A Cluster has database 0 only, so the
//! URL takes no other database.
//!
//! A Cluster URL lists several hosts, which the `url` crate does not parse, so this file reads
//! it by hand and builds one ordinary node URL per host for the client library.

use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;

use super::connection::{percent_decode, scrub_password};
use super::tls::{certificates, RedisTls};
use super::{CONNECTION_TIMEOUT, REQUEST_DEADLINE, RESPONSE_TIMEOUT};

/// How often the client library sends one request again after a redirect, a `TRYAGAIN` or a
/// lost connection, with waits from [`MIN_RETRY_WAIT_MS`] doubling to [`MAX_RETRY_WAIT_MS`]
/// (jittered); [`REQUEST_DEADLINE`] still bounds the whole.
const RETRIES: u32 = 8;
const MIN_RETRY_WAIT_MS: u64 = 10;
const MAX_RETRY_WAIT_MS: u64 = 300;

/// The longest opening may take: the seeds are asked for the slot map, then every primary is
/// connected.
const OPENING_DEADLINE: Duration = Duration::from_secs(5);

/// Whether `url` names a Cluster.
pub(super) fn is_cluster_url(url: &str) -> bool {
    url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://")
}

/// A Cluster URL taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClusterUrl {
    /// One `redis://[USER:PASSWORD@]HOST:PORT` (or `rediss://`) per seed.
    pub(super) nodes: Vec<String>,
    /// The `prefix` query parameter, decoded.
    pub(super) prefix: Option<String>,
}

/// Reads `redis+cluster://[USERINFO@]HOST[:PORT],…[/[0]][?prefix=P]`. The error says what is
/// wrong and never quotes a password.
pub(super) fn parse(url: &str) -> Result<ClusterUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("a Cluster URL starts with redis+cluster:// or rediss+cluster://")?;
    let node_scheme = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return Err("a Cluster URL starts with redis+cluster:// or rediss+cluster://".into()),
    };
    if rest.contains('#') {
        return Err("a Redis URL takes no #fragment".into());
    }
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    if !matches!(path, "" | "0") {
        return Err("a Redis Cluster has database 0 only: end the host list with / or /0".into());
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut prefix = None;
    for pair in query.into_iter().flat_map(|query| query.split('&')) {
        match pair.split_once('=') {
            Some(("prefix", value)) => prefix = Some(percent_decode(&value.replace('+', " "))),
            _ if pair.is_empty() => {}
            _ => return Err("a Cluster URL takes no query parameter but prefix".into()),
        }
    }
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() {
            return Err("a Cluster URL names at least one HOST:PORT, separated by commas".into());
        }
        let node = match userinfo {
            Some(userinfo) => format!("{node_scheme}://{userinfo}@{host}"),
            None => format!("{node_scheme}://{host}"),
        };
        match url::Url::parse(&node) {
            Ok(parsed) if parsed.host_str().is_some_and(|h| !h.is_empty()) => {}
            // The text is not quoted: with a raw `/` or `@` in a password, it may hold a piece.
            _ => {
                return Err(
                    "a node in the list is not a HOST:PORT (percent-encode any '/', '?', \
                            '#' or '@' in the password)"
                        .into(),
                )
            }
        }
        nodes.push(node);
    }
    Ok(ClusterUrl { nodes, prefix })
}

/// `url` with any password replaced, for logs and errors. The user info runs to the last `@`
/// of the whole text, so that a password holding a raw `/`, `?` or `#` (which no parser reads
/// as one) is masked all the same; a query holding `@` masks too much, never too little.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, tail)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:redacted@{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Connects to the Cluster that the seeds of `url` (without its prefix) belong to, with the
/// store's timeouts and, for `rediss+cluster://`, the files of `tls`.
pub(super) async fn connect(
    url: &str,
    nodes: &[String],
    tls: &RedisTls,
) -> Result<ClusterConnection, String> {
    let scrub = |message: String| {
        nodes
            .first()
            .map_or(message.clone(), |node| scrub_password(node, &message))
    };
    tls.check_url(url)?;
    let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .connection_timeout(CONNECTION_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .overall_response_timeout(Some(REQUEST_DEADLINE))
        .retries(RETRIES)
        .min_retry_wait(MIN_RETRY_WAIT_MS)
        .max_retry_wait(MAX_RETRY_WAIT_MS);
    if url.starts_with("rediss+cluster://") {
        if let Some(certificates) = certificates(tls)? {
            builder = builder.certs(certificates);
        }
    }
    let client = builder.build().map_err(|err| scrub(err.to_string()))?;
    match tokio::time::timeout(OPENING_DEADLINE, client.get_async_connection()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(scrub(err.to_string())),
        Err(_) => Err(format!(
            "the Cluster did not answer within {} s",
            OPENING_DEADLINE.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_names_its_seeds_with_their_credentials_and_the_prefix() {
        let parsed =
            parse("redis+cluster://app:s%3Acret@10.0.0.1:7000,redis-b:7001/?prefix=team%3A")
                .unwrap();
        assert_eq!(
            parsed,
            ClusterUrl {
                nodes: vec![
                    "redis://app:s%3Acret@10.0.0.1:7000".to_owned(),
                    "redis://app:s%3Acret@redis-b:7001".to_owned(),
                ],
                prefix: Some("team:".to_owned()),
            }
        );
        let parsed = parse("rediss+cluster://h:7000").unwrap();
        assert_eq!(parsed.nodes, vec!["rediss://h:7000".to_owned()]);
        assert_eq!(parsed.prefix, None);
        assert!(parse("redis+cluster://h:7000/0").is_ok());
    }

    #[test]
    fn a_cluster_url_takes_no_database_fragment_or_other_parameter() {
        for (url, problem) in [
            ("redis+cluster://h:7000/1", "database 0 only"),
            (
                "redis+cluster://h:7000/?protocol=resp3",
                "no query parameter",
            ),
            ("rediss+cluster://h:7000/#insecure", "no #fragment"),
            ("redis+cluster://h:7000,,h:7001", "at least one HOST:PORT"),
            ("redis+cluster://h:port", "is not a HOST:PORT"),
            ("redis://h:7000", "starts with redis+cluster://"),
        ] {
            let err = parse(url).unwrap_err();
            assert!(err.contains(problem), "{url}: {err}");
        }
    }

    #[test]
    fn a_cluster_urls_password_is_redacted() {
        assert_eq!(
            redact("redis+cluster://app:hunter2@h1:7000,h2:7001/?prefix=a"),
            "redis+cluster://app:redacted@h1:7000,h2:7001/?prefix=a"
        );
        assert_eq!(
            redact("rediss+cluster://:hunter2@h1:7000"),
            "rediss+cluster://:redacted@h1:7000"
        );
        assert_eq!(
            redact("redis+cluster://h1:7000,h2:7001"),
            "redis+cluster://h1:7000,h2:7001"
        );
    }

    /// A password with a raw `/`, `?` or `#` is no URL to any parser, and must still be masked
    /// wherever the URL or a parse error is shown: in the store's URL form and in Sentinel's.
    #[test]
    fn a_raw_slash_in_a_password_is_masked_and_never_quoted() {
        for (url, secret) in [
            ("redis+sentinel://app:ab/cd@s1:26379/m", "ab/cd"),
            ("redis+cluster://app:pa?ss#x@h1:7000", "pa?ss#x"),
            ("redis://u:12/xyz@h:6379/0", "12/xyz"),
        ] {
            let shown = crate::store::redact_url(url);
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains(":redacted@"), "{shown}");
        }
        let sentinel = super::super::sentinel::Target::parse("redis+sentinel://app:qzj/kwv@s1/m");
        let cluster = parse("redis+cluster://app:qzj/kwv@h1:7000");
        for err in [
            sentinel.map(|_| ()).unwrap_err(),
            cluster.map(|_| ()).unwrap_err(),
        ] {
            assert!(!err.contains("qzj") && !err.contains("kwv"), "{err}");
        }
    }

    #[test]
    fn tls_files_go_with_a_rediss_cluster_url_only() {
        let files = RedisTls {
            ca_file: Some("ca.pem".into()),
            ..RedisTls::default()
        };
        assert!(files.check_url("rediss+cluster://h:7000,h:7001").is_ok());
        let err = files.check_url("redis+cluster://h:7000").unwrap_err();
        assert!(err.contains("rediss+cluster://"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_named_without_the_password() {
        let url = "redis+cluster://app:hunter2@127.0.0.1:1,127.0.0.1:2";
        let parsed = parse(url).unwrap();
        let err = connect(url, &parsed.nodes, &RedisTls::default())
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// The slot Redis Cluster gives `key` (its own CRC16 over the hash tag, the part between
    /// the first `{` and the next `}` when not empty, else over the whole key), written out here
    /// so that the check below does not rest on the client library alone.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
            let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &bytes[open + 1..open + 1 + close])
        });
        let mut crc: u16 = 0;
        for &byte in tagged.unwrap_or(bytes) {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn the_slot_function_is_the_clusters() {
        // The CRC16 check value of the Cluster specification.
        assert_eq!(slot("123456789"), 0x31c3);
        for key in [
            "auth:{rt}:ab",
            "a{}b",
            "{",
            "x{y}z{w}",
            "auth:{users}:user:a}b",
            "",
        ] {
            let expected = redis::cluster_routing::Slot::for_key(key);
            assert_eq!(
                redis::cluster_routing::Slot::new(slot(key)),
                Some(expected),
                "{key}"
            );
        }
    }

    /// Every script, pipeline and multi-key command of the store, with the keys its call sites
    /// build for `name` (a username, client id, token id …), by the name of its script.
    fn atomic_steps(
        keys: &super::super::keys::Keys,
        name: &str,
    ) -> Vec<(&'static str, Vec<String>)> {
        use crate::store::LoginSubject;
        let subject = LoginSubject([0x5a; 32]);
        let feed = |parts: &[&str]| parts.iter().map(|part| keys.revocations(part)).collect();
        vec![
            ("insert_expiring", vec![keys.refresh(name)]),
            ("set_fields_if_exists", vec![keys.user(name)]),
            ("set_fields_if_exists", vec![keys.client(name)]),
            (
                "insert_account",
                vec![keys.user(name), keys.user_index(), keys.removed_user(name)],
            ),
            (
                "insert_account",
                vec![
                    keys.client(name),
                    keys.client_index(),
                    keys.removed_client(name),
                ],
            ),
            (
                "remove_account",
                vec![keys.user(name), keys.user_index(), keys.removed_user(name)],
            ),
            (
                "remove_account",
                vec![
                    keys.client(name),
                    keys.client_index(),
                    keys.removed_client(name),
                ],
            ),
            ("cut_sessions", vec![keys.user(name)]),
            ("rotate_client_secret", vec![keys.client(name)]),
            ("compare_and_set_field", vec![keys.user(name)]),
            (
                "rotate",
                vec![keys.refresh(name), keys.refresh("successor-id")],
            ),
            ("revoke", vec![keys.revoked_family(name)]),
            ("revoke", vec![keys.revoked_jti(name)]),
            (
                "reserve_login_slots",
                vec![
                    keys.login(&subject, "user"),
                    keys.login(&subject, &format!("address:{name}")),
                ],
            ),
            (
                "release_login_slots",
                vec![
                    keys.login(&subject, "user"),
                    keys.login(&subject, &format!("address:{name}")),
                ],
            ),
            ("insert_signing_key", vec![keys.signing_keys()]),
            ("stage_signing_key", vec![keys.signing_keys()]),
            ("promote_signing_key", vec![keys.signing_keys()]),
            ("revoke_signing_key", vec![keys.signing_keys()]),
            ("remove_expired_signing_keys", vec![keys.signing_keys()]),
            (
                "record_revocation",
                feed(&["meta", "log", "entries", "ends"]),
            ),
            ("revocations_since", feed(&["meta", "log", "entries"])),
            (
                "purge_revocations",
                feed(&["meta", "log", "entries", "ends"]),
            ),
            // Not scripts: the pipeline that reads an index's records, and the `EXISTS` that
            // asks for the other kind's record and removal before an insert.
            (
                "(pipeline) indexed",
                vec![keys.user(name), keys.user("another")],
            ),
            (
                "(pipeline) indexed",
                vec![keys.client(name), keys.client("another")],
            ),
            (
                "(command) EXISTS",
                vec![keys.client(name), keys.removed_client(name)],
            ),
            (
                "(command) EXISTS",
                vec![keys.user(name), keys.removed_user(name)],
            ),
        ]
    }

    /// The cluster rule: the keys of one script, pipeline or multi-key command share a slot,
    /// whatever the names in them (braces included) and whatever the prefix.
    #[test]
    fn every_atomic_step_touches_one_slot() {
        for prefix in ["auth:", "", "team-a:", "conformance:1f-2a-3:"] {
            let keys = super::super::keys::Keys {
                prefix: prefix.to_owned(),
            };
            for name in ["alice", "a}b", "{x}", "}{", "ü", "", "0123abcd"] {
                for (step, step_keys) in atomic_steps(&keys, name) {
                    let slots: std::collections::BTreeSet<u16> =
                        step_keys.iter().map(|key| slot(key)).collect();
                    assert_eq!(slots.len(), 1, "{step} over {step_keys:?} spans {slots:?}");
                }
            }
        }
    }

    /// Every script under `scripts/` is in the table above, so none escapes the check.
    #[test]
    fn the_check_covers_every_script() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/redis/scripts");
        let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|file| file.strip_suffix(".lua").map(str::to_owned))
            .collect();
        let keys = super::super::keys::Keys {
            prefix: "auth:".to_owned(),
        };
        let checked: std::collections::BTreeSet<String> = atomic_steps(&keys, "x")
            .into_iter()
            .map(|(step, _)| step.to_owned())
            .filter(|step| !step.starts_with('('))
            .collect();
        assert_eq!(on_disk, checked);
    }

    /// A script may only touch the keys it is given: a key name built inside Lua would not be
    /// declared to the cluster, which routes by the declared keys. So the key argument of every
    /// `redis.call` is `KEYS[n]`, or `key` in a loop over `ipairs(KEYS)`.
    #[test]
    fn scripts_touch_only_the_keys_they_are_given() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/redis/scripts");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            let loops_over_keys = source.contains("in ipairs(KEYS)");
            let mut calls = 0;
            for (_, rest) in source
                .match_indices("redis.call(")
                .map(|(at, _)| source.split_at(at))
            {
                calls += 1;
                let arguments = &rest["redis.call(".len()..];
                let key = arguments
                    .split_once(',')
                    .map(|(_, after)| after)
                    .and_then(|after| after.split([',', ')']).next())
                    .map(str::trim)
                    .unwrap_or_default();
                let declared = key.strip_prefix("KEYS[").and_then(|n| n.strip_suffix(']'));
                assert!(
                    declared.is_some_and(|n| n.parse::<u8>().is_ok())
                        || (loops_over_keys && key == "key"),
                    "{}: redis.call names the key {key:?}",
                    path.display()
                );
            }
            assert!(calls > 0, "{}: no redis.call", path.display());
        }
    }
}

/// Against a real three-primary Cluster that speaks TLS only, with certificates made for the
/// test.
#[cfg(test)]
mod server_tests {
    use test_kit::redis_cluster::RedisCluster;
    use test_kit::tls::TestPki;

    use super::super::RedisStore;
    use super::RedisTls;
    use crate::store::Store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rediss_cluster_url_speaks_mutual_tls_to_every_primary() {
        let pki = TestPki::new();
        let cluster = tokio::task::block_in_place(|| RedisCluster::start_tls(&pki))
            .unwrap_or_else(|problem| panic!("starting a TLS Redis Cluster: {problem}"));
        let url = format!("{}/?prefix=cluster-tls:", cluster.url());
        assert!(url.starts_with("rediss+cluster://127.0.0.1:"), "{url}");
        let tls = RedisTls {
            ca_file: Some(pki.ca_file()),
            client_cert: Some(pki.client_cert_file()),
            client_key: Some(pki.client_key_file()),
        };
        let store = RedisStore::open_tls(&url, &tls)
            .await
            .expect("the cluster opens over mutual TLS");
        store.ping().await.expect("and answers");
        // Keys of several slots, so that more than one primary is spoken to.
        for name in ["tls-user-1", "tls-user-2"] {
            let user = crate::store::UserRecord {
                username: name.to_owned(),
                full_name: None,
                email: None,
                password_hash: "$argon2id$x".to_owned(),
                disabled: false,
                scopes: oauth2_jwt_verifier::Scope::from_tokens(["read"]),
                stamp: "s".to_owned(),
                not_before: 0,
            };
            store.insert_user(&user).await.expect("writes {users}");
        }
        store
            .revoke_access_token("jti-on-another-slot", u64::MAX / 4)
            .await
            .expect("writes a key of another slot");
        assert!(store
            .access_token_revoked("jti-on-another-slot", 0)
            .await
            .unwrap());
        assert_eq!(store.list_users().await.unwrap().len(), 2);

        let without_certificate = RedisTls {
            ca_file: Some(pki.ca_file()),
            ..RedisTls::default()
        };
        let refused = RedisStore::open_tls(&url, &without_certificate).await;
        assert!(
            refused.is_err(),
            "a client without a certificate is refused"
        );
        let stranger = TestPki::new();
        let untrusted = RedisTls {
            ca_file: Some(stranger.ca_file()),
            ..tls.clone()
        };
        assert!(
            RedisStore::open_tls(&url, &untrusted).await.is_err(),
            "a cluster whose certificates another CA signed is refused"
        );
    }
}
