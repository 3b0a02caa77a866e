//! The stores the rules run on: the embedded one in a temporary directory, and Redis under a
//! fresh key prefix (`REDIS_URL`, else a private `redis-server` from `PATH`, which the test kit
//! starts), over TLS, through Sentinel (a primary, a replica and three sentinels that the test
//! kit starts), or on a three-primary Redis Cluster that the test kit starts.

use super::*;

/// A store for one test, with what must outlive it (a temporary directory) and what to clean
/// up after it (a Redis key prefix).
pub struct TestBackend {
    store: Arc<dyn Store>,
    redis_namespace: Option<(String, String)>,
    /// The shared TLS Redis, whose keys under the prefix are deleted at the end.
    tls_namespace: Option<String>,
    /// The shared Redis Cluster, whose keys under the prefix are deleted at the end.
    cluster_namespace: Option<String>,
    /// The shared Redis behind sentinels, whose keys under the prefix are deleted at the end.
    sentinel_namespace: Option<String>,
    _keep_alive: Box<dyn Any + Send + Sync>,
}

impl TestBackend {
    /// Wraps `store`; `keep_alive` (say, its `TempDir`) is dropped with the backend.
    pub fn new(store: impl Store + 'static, keep_alive: impl Any + Send + Sync) -> Self {
        Self {
            store: Arc::new(store),
            redis_namespace: None,
            tls_namespace: None,
            cluster_namespace: None,
            sentinel_namespace: None,
            _keep_alive: Box::new(keep_alive),
        }
    }

    /// A [`RedisStore`] on the test Redis ([`redis_test_url`]) under a fresh key prefix, so that
    /// tests run in parallel on one server. Panics, naming the (redacted) URL, when Redis cannot
    /// be reached.
    pub async fn redis() -> Self {
        let url = redis_test_url();
        let prefix = fresh_test_prefix();
        let store = RedisStore::open_with_prefix(&url, &prefix)
            .await
            .unwrap_or_else(|err| panic!("no Redis for the tests: {err}; set REDIS_URL to a reachable server, or unset it to start redis-server from PATH"));
        Self {
            store: Arc::new(store),
            redis_namespace: Some((url, prefix)),
            tls_namespace: None,
            cluster_namespace: None,
            sentinel_namespace: None,
            _keep_alive: Box::new(()),
        }
    }

    /// A [`RedisStore`] over mutual TLS (`rediss://`, the test CA in a CA file, a client
    /// certificate) on the TLS-only Redis that the tests of this process share, under a fresh
    /// key prefix.
    pub async fn redis_tls() -> Self {
        let shared = test_kit::tls::shared_tls_redis();
        let prefix = fresh_test_prefix();
        let tls = super::super::redis::RedisTls {
            ca_file: Some(shared.pki.ca_file()),
            client_cert: Some(shared.pki.client_cert_file()),
            client_key: Some(shared.pki.client_key_file()),
        };
        let store = RedisStore::open_with_prefix_tls(&shared.server.url(), &prefix, &tls)
            .await
            .unwrap_or_else(|err| panic!("no TLS Redis for the tests: {err}"));
        Self {
            store: Arc::new(store),
            redis_namespace: None,
            tls_namespace: Some(prefix),
            cluster_namespace: None,
            sentinel_namespace: None,
            _keep_alive: Box::new(()),
        }
    }

    /// A [`RedisStore`] on the three-primary Redis Cluster that the tests of this process share
    /// (`redis+cluster://` with every node as a seed), under a fresh key prefix.
    pub async fn redis_cluster() -> Self {
        let cluster = tokio::task::spawn_blocking(test_kit::redis_cluster::shared_redis_cluster)
            .await
            .expect("starting the test Redis Cluster");
        let prefix = fresh_test_prefix();
        let store = RedisStore::open_with_prefix(&cluster.url(), &prefix)
            .await
            .unwrap_or_else(|err| panic!("no Redis Cluster for the tests: {err}"));
        Self {
            store: Arc::new(store),
            redis_namespace: None,
            tls_namespace: None,
            cluster_namespace: Some(prefix),
            sentinel_namespace: None,
            _keep_alive: Box::new(()),
        }
    }

    /// A [`RedisStore`] that finds its primary through the sentinels
    /// (`redis+sentinel://…?prefix=`) of the set that the tests of this process share, under a
    /// fresh key prefix.
    pub async fn redis_sentinel() -> Self {
        let shared = tokio::task::spawn_blocking(test_kit::redis_sentinel::shared_sentinel_redis)
            .await
            .expect("starting Redis with sentinels");
        let prefix = fresh_test_prefix();
        let mut url = shared.url();
        url.push_str("?prefix=");
        url.extend(url::form_urlencoded::byte_serialize(prefix.as_bytes()));
        let store = RedisStore::open(&url)
            .await
            .unwrap_or_else(|err| panic!("no Redis through the sentinels: {err}"));
        assert_eq!(store.prefix(), prefix, "the URL's prefix is the store's");
        Self {
            store: Arc::new(store),
            redis_namespace: None,
            tls_namespace: None,
            cluster_namespace: None,
            sentinel_namespace: Some(prefix),
            _keep_alive: Box::new(()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// A handle to share with servers under test.
    pub fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Ends the test: deletes the Redis keys under its prefix, or the temporary files.
    pub async fn finish(self) {
        if let Some((url, prefix)) = &self.redis_namespace {
            delete_redis_namespace(url, prefix).await;
        }
        if let Some(prefix) = self.tls_namespace.clone() {
            tokio::task::spawn_blocking(move || {
                test_kit::tls::shared_tls_redis()
                    .server
                    .delete_keys(&prefix)
            })
            .await
            .expect("deleting the test keys")
            .expect("deleting the test keys");
        }
        if let Some(prefix) = self.cluster_namespace.clone() {
            tokio::task::spawn_blocking(move || {
                test_kit::redis_cluster::shared_redis_cluster().delete_keys(&prefix)
            })
            .await
            .expect("deleting the test keys");
        }
        if let Some(prefix) = self.sentinel_namespace.clone() {
            tokio::task::spawn_blocking(move || {
                test_kit::redis_sentinel::shared_sentinel_redis().delete_keys(&prefix)
            })
            .await
            .expect("deleting the test keys")
            .expect("deleting the test keys");
        }
    }
}

/// A key prefix no other test uses.
pub fn fresh_test_prefix() -> String {
    test_kit::redis::fresh_prefix("conformance")
}

/// The Redis that tests use: `REDIS_URL` when it is set, else a private `redis-server` from
/// `PATH`, started once per test process. With neither, panics with a message that says how to
/// get one.
pub fn redis_test_url() -> String {
    test_kit::redis::shared_url()
}

async fn delete_redis_namespace(url: &str, prefix: &str) {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    tokio::task::spawn_blocking(move || test_kit::redis::delete_keys(&url, &prefix))
        .await
        .expect("deleting the test keys")
        .expect("deleting the test keys");
}
