//! [`TestAuth`]: the auth-server's application on an ephemeral port with its own keys and
//! store, and the shortcuts tests take to set up users, clients and replicas and to ask for,
//! refresh, revoke and introspect tokens: one copy of each request the flows send again and again.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_server::store::{ClientRecord, Store, UserRecord};
use server_plumbing::wire::TokenResponse;

use crate::{http_client, init_logs, reqwest, scrape_metrics, spawn_server, wait_ready, Running};

/// An auth-server on 127.0.0.1:0 with temporary keys and SQLite store.
pub struct TestAuth {
    pub url: String,
    pub addr: SocketAddr,
    pub settings: auth_server::Settings,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The server's clock: a test moves it forward instead of waiting for tokens to expire.
    pub clock: auth_server::oauth::Clock,
    running: Option<Running>,
}

impl TestAuth {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts with settings adjusted by `adjust` (the listen address, issuer, keys and store
    /// are set already; `adjust` may replace them).
    pub async fn spawn_with(adjust: impl FnOnce(&mut auth_server::Settings)) -> Self {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let mut settings = auth_server::Settings {
            listen: addr,
            issuer: url.parse().unwrap(),
            store: auth_server::settings::StoreUrl(format!(
                "sqlite://{}",
                dir.path().join("auth.db").display()
            )),
            keys_dir: dir.path().join("keys"),
            password_workers: 2,
            ..auth_server::Settings::default()
        };
        adjust(&mut settings);
        Self::start(settings, listener, dir).await
    }

    async fn start(
        settings: auth_server::Settings,
        listener: std::net::TcpListener,
        dir: tempfile::TempDir,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let clock = auth_server::oauth::Clock::system();
        let http = http_client();
        let running = Self::launch(&settings, listener, &clock, &http).await;
        let store = settings.open_store().await.unwrap();
        Self {
            url,
            addr,
            settings,
            store,
            http,
            dir,
            clock,
            running: Some(running),
        }
    }

    /// Runs the application on `listener` and waits until it is ready.
    async fn launch(
        settings: &auth_server::Settings,
        listener: std::net::TcpListener,
        clock: &auth_server::oauth::Clock,
        http: &reqwest::Client,
    ) -> Running {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app =
            auth_server::Application::build_with_clock(settings.clone(), listener, clock.clone())
                .await
                .unwrap();
        let running = spawn_server(|stopped| {
            app.run_until(async move {
                let _ = stopped.await;
            })
        });
        wait_ready(http, &format!("{url}/readyz")).await;
        running
    }

    /// Starts the server again after [`stop`](Self::stop): on the same address, with the same
    /// settings, keys directory, store and clock, as a restarted process would be.
    pub async fn start_again(&mut self) {
        assert!(self.running.is_none(), "stop the server first");
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        let running = Self::launch(&self.settings, listener, &self.clock, &self.http).await;
        self.running = Some(running);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// This server's `/metrics` page.
    pub async fn metrics(&self) -> String {
        scrape_metrics(&self.http, &self.url("/metrics")).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }

    /// Adds a user straight into the store, with an Argon2id hash of `password`.
    pub async fn add_user(&self, username: &str, password: &str, scopes: &str) {
        let password = password.to_owned();
        let password_hash =
            tokio::task::spawn_blocking(move || auth_server::passwords::hash_blocking(&password))
                .await
                .unwrap()
                .unwrap();
        self.add_user_with_hash(username, &password_hash, |user| {
            user.full_name = Some(format!("{username} full name"));
            user.email = Some(format!("{username}@example.com"));
            user.scopes = oauth2_jwt_verifier::Scope::parse(scopes).unwrap();
            user.stamp = auth_server::tokens::new_stamp();
        })
        .await;
    }

    /// Adds a user straight into the store with `password_hash` as it is (of any scheme, as
    /// an imported user's may be), no name, email or scopes and an empty stamp, adjusted by
    /// `adjust` before it is stored.
    pub async fn add_user_with_hash(
        &self,
        username: &str,
        password_hash: &str,
        adjust: impl FnOnce(&mut UserRecord),
    ) {
        let mut user = UserRecord {
            username: username.to_owned(),
            full_name: None,
            email: None,
            password_hash: password_hash.to_owned(),
            disabled: false,
            scopes: oauth2_jwt_verifier::Scope::default(),
            stamp: String::new(),
            not_before: 0,
        };
        adjust(&mut user);
        self.store.insert_user(&user).await.unwrap();
    }

    /// Registers a client with `secret`, as `auth-server client add` does.
    pub async fn add_client(
        &self,
        client_id: &str,
        secret: &str,
        grants: &[&str],
        scopes: &str,
        audiences: &[&str],
    ) {
        self.add_client_with(client_id, secret, grants, scopes, audiences, |_| {})
            .await;
    }

    /// Registers a confidential client that may introspect any token (`client add --introspect`),
    /// as a resource server that introspects would be.
    pub async fn add_introspecting_client(&self, client_id: &str, secret: &str) {
        self.add_client_with(client_id, secret, &["client_credentials"], "", &[], |c| {
            c.introspect = true
        })
        .await;
    }

    /// Registers a public client (`client add ID --public`): no secret, the password and
    /// refresh_token grants.
    pub async fn add_public_client(&self, client_id: &str, scopes: &str) {
        self.add_client_with(
            client_id,
            "",
            &["password", "refresh_token"],
            scopes,
            &[],
            |c| {
                c.public = true;
                c.secret_hash = String::new();
            },
        )
        .await;
    }

    /// Registers a client as [`add_client`](Self::add_client) does, with the record adjusted
    /// by `adjust` before it is stored.
    pub async fn add_client_with(
        &self,
        client_id: &str,
        secret: &str,
        grants: &[&str],
        scopes: &str,
        audiences: &[&str],
        adjust: impl FnOnce(&mut ClientRecord),
    ) {
        let key = auth_server::keys::files::client_secret_key(&self.settings.keys_dir).unwrap();
        let mut record = ClientRecord {
            client_id: client_id.to_owned(),
            secret_hash: auth_server::oauth::client_auth::hash_secret(&key, secret),
            previous_secret: None,
            public: false,
            introspect: false,
            grants: grants
                .iter()
                .map(|g| g.parse().expect("the test names a known grant type"))
                .collect(),
            scopes: oauth2_jwt_verifier::Scope::parse(scopes).unwrap(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            stamp: auth_server::tokens::new_stamp(),
            not_before: 0,
        };
        adjust(&mut record);
        self.store.insert_client(&record).await.unwrap();
    }

    /// `POST path` with a form, with HTTP Basic client authentication when `basic` names a
    /// client and its secret.
    async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path));
        if let Some((client_id, secret)) = basic {
            request = request.basic_auth(client_id, Some(secret));
        }
        request.form(form).send().await.unwrap()
    }

    /// `POST /token` with a form.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_form("/token", None, form).await
    }

    /// `POST /token` with a form and HTTP Basic client authentication.
    pub async fn token_basic(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_form("/token", Some((client_id, secret)), form)
            .await
    }

    /// `POST /token` with the refresh_token grant and no client authentication.
    pub async fn refresh_grant(&self, refresh_token: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// `attempts` refresh grants of one `refresh_token`, sent at once and spread over `servers`
    /// in turn, without client authentication; the status and body of each answer.
    pub async fn refresh_at_once(
        servers: &[&TestAuth],
        refresh_token: &str,
        attempts: usize,
    ) -> Vec<(u16, serde_json::Value)> {
        let sent: Vec<_> = (0..attempts)
            .map(|attempt| {
                let server = servers[attempt % servers.len()];
                let request = server.http.post(server.url("/token")).form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ]);
                tokio::spawn(async move {
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    (status, response.json().await.unwrap())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for answer in sent {
            answers.push(answer.await.unwrap());
        }
        answers
    }

    /// `POST /revoke` with a form and no client authentication.
    pub async fn revoke(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_form("/revoke", None, form).await
    }

    /// RFC 7662 introspection of `token` by `client_id` (HTTP Basic with `secret`), which must
    /// answer 200; the answer.
    pub async fn introspect(
        &self,
        client_id: &str,
        secret: &str,
        token: &str,
    ) -> serde_json::Value {
        let response = self
            .post_form(
                "/introspect",
                Some((client_id, secret)),
                &[("token", token)],
            )
            .await;
        assert_eq!(response.status(), 200, "introspection by {client_id}");
        response.json().await.unwrap()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// A password grant that must succeed.
    pub async fn password_grant(&self, username: &str, password: &str) -> TokenResponse {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", ""),
            ])
            .await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        response.json().await.unwrap()
    }

    /// Adds a user as [`add_user`](Self::add_user) does and logs it in with a password grant
    /// that must succeed; its tokens.
    pub async fn add_logged_in_user(
        &self,
        username: &str,
        password: &str,
        scopes: &str,
    ) -> TokenResponse {
        self.add_user(username, password, scopes).await;
        self.password_grant(username, password).await
    }

    /// A client_credentials grant that must succeed.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
    ) -> TokenResponse {
        let response = self
            .token_basic(
                client_id,
                secret,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(response.status(), 200, "client_credentials for {client_id}");
        response.json().await.unwrap()
    }

    /// The signing-key lifecycle on this server's store, with its key-encryption key, as the
    /// CLI works on it.
    pub fn key_lifecycle(&self) -> auth_server::keys::lifecycle::KeyLifecycle {
        self.settings.key_lifecycle(self.store.clone()).unwrap()
    }

    /// The kid of the key the store has active.
    pub async fn active_kid(&self) -> String {
        self.key_lifecycle()
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|key| key.state == auth_server::store::KeyState::Active)
            .expect("the store has an active key")
            .kid
    }

    /// The PKCS#8 private key of `kid`, opened from the store.
    pub async fn private_signing_key(&self, kid: &str) -> Vec<u8> {
        self.key_lifecycle()
            .private_key(kid)
            .await
            .unwrap()
            .to_vec()
    }

    /// The server's JWKS.
    pub async fn jwks(&self) -> serde_json::Value {
        self.get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap()
    }
}

impl TestAuth {
    /// An auth-server on the Redis store at `store_url` (a URL with its `?prefix=`, as from
    /// [`RedisNamespace::store_url`](crate::RedisNamespace::store_url)), with settings adjusted by `adjust` as in
    /// [`TestAuth::spawn_with`]. Replicas share a store URL, and also the keys directory and the
    /// issuer, which `adjust` sets.
    pub async fn spawn_on_redis(
        store_url: &str,
        adjust: impl FnOnce(&mut auth_server::Settings),
    ) -> Self {
        let store_url = store_url.to_owned();
        Self::spawn_with(move |settings| {
            settings.store = auth_server::settings::StoreUrl(store_url);
            adjust(settings);
        })
        .await
    }

    /// A replica of this server: another auth-server on the same store, keys directory and
    /// issuer (as replicas share one store and mount one secret), with settings adjusted by
    /// `adjust`.
    pub async fn spawn_replica(&self, adjust: impl FnOnce(&mut auth_server::Settings)) -> Self {
        let store = self.settings.store.clone();
        let (keys_dir, issuer) = (self.settings.keys_dir.clone(), self.settings.issuer.clone());
        Self::spawn_with(move |settings| {
            settings.store = store;
            settings.keys_dir = keys_dir;
            settings.issuer = issuer;
            adjust(settings);
        })
        .await
    }
}
