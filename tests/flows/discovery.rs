//! What clients and verifiers read first: RFC 8414 metadata, the RFC 7517 key set, health.

use base64::Engine;
use system_tests::{TestAuth, TestResource};

#[tokio::test]
async fn metadata_lists_what_is_supported_rfc8414_3_2() {
    let auth = TestAuth::spawn().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let response = auth.get(path).await;
        assert_eq!(response.status(), 200);
        let cache = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cache.contains("max-age="), "{cache}");
        let metadata: serde_json::Value = response.json().await.unwrap();
        assert_eq!(metadata["issuer"], auth.url);
        assert_eq!(metadata["token_endpoint"], auth.url("/token"));
        assert_eq!(metadata["jwks_uri"], auth.url("/.well-known/jwks.json"));
        assert_eq!(metadata["revocation_endpoint"], auth.url("/revoke"));
        assert_eq!(metadata["introspection_endpoint"], auth.url("/introspect"));
        assert_eq!(
            metadata["grant_types_supported"],
            serde_json::json!(["password", "client_credentials", "refresh_token"])
        );
        let methods = metadata["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(
            methods.contains(&"client_secret_basic".into())
                && methods.contains(&"client_secret_post".into())
        );
    }
}

#[tokio::test]
async fn jwks_publishes_public_members_only_rfc7517_4() {
    let auth = TestAuth::spawn().await;
    let response = auth.get("/.well-known/jwks.json").await;
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let jwks: serde_json::Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert!(key["kid"].is_string() && key["n"].is_string() && key["e"].is_string());
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            key.get(private).is_none(),
            "{private} must not be published"
        );
    }
    let modulus = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        key["n"].as_str().unwrap(),
    )
    .unwrap();
    assert!(modulus.len() * 8 >= 2048);
}

#[tokio::test]
async fn keys_are_created_on_first_start_with_mode_0600_and_kept() {
    use std::os::unix::fs::PermissionsExt;
    let mut auth = TestAuth::spawn().await;
    let kid = auth.jwks().await["keys"][0]["kid"].clone();
    let keys_dir = auth.settings.keys_dir.clone();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&keys_dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{:?}", entry.file_name());
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(
        names,
        ["client-secret.key", "key-encryption.key"],
        "the secrets replicas share, and no private key in the clear"
    );
    let mode = std::fs::metadata(&keys_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    auth.stop().await;
    let store = auth.settings.store.clone();
    let restarted = TestAuth::spawn_with(|s| {
        s.keys_dir = keys_dir.clone();
        s.store = store;
    })
    .await;
    assert_eq!(
        restarted.jwks().await["keys"][0]["kid"],
        kid,
        "the same key after a restart"
    );
}

/// The upgrade path: key files of the former layout (or brought by the operator) are imported
/// into the store on start, the newest signing, and still read only when private to their owner.
#[tokio::test]
async fn pem_key_files_in_the_keys_dir_are_imported_newest_active() {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("brought-keys");
    std::fs::create_dir(&keys_dir).unwrap();
    std::fs::set_permissions(&keys_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut kids = Vec::new();
    for name in ["signing-key-1.pem", "signing-key-2.pem"] {
        let key = test_kit::TestSigner::generate();
        let body = base64::engine::general_purpose::STANDARD.encode(key.pkcs8_der());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(keys_dir.join(name))
            .unwrap();
        std::io::Write::write_all(&mut file, pem.as_bytes()).unwrap();
        kids.push(key.thumbprint());
    }
    let auth = TestAuth::spawn_with(|s| s.keys_dir = keys_dir.clone()).await;
    assert_eq!(auth.active_kid().await, kids[1], "the newest file signs");
    let published: Vec<String> = auth.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(published, vec![kids[1].clone(), kids[0].clone()]);

    std::fs::set_permissions(
        keys_dir.join("signing-key-1.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = auth_server::Application::build_on(
        auth_server::Settings {
            listen: listener.local_addr().unwrap(),
            keys_dir: keys_dir.clone(),
            store: auth_server::settings::StoreUrl(format!(
                "sqlite://{}",
                dir.path().join("other.db").display()
            )),
            ..auth_server::Settings::default()
        },
        listener,
    )
    .await
    .err()
    .expect("a readable key file stops the start");
    assert!(format!("{refused:#}").contains("chmod 600"), "{refused:#}");
}

#[tokio::test]
async fn resource_server_starts_before_the_auth_server_and_is_ready_once_keys_arrive() {
    // Reserve an address for the auth-server, start the resource server against it first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let issuer = format!("http://{addr}");
    let api = TestResource::spawn_for(&issuer, false).await;
    let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "no keys yet");
    assert_eq!(
        api.http
            .get(api.url("/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let early = api
        .get_me("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6IngifQ.e30.c2ln")
        .await;
    assert_eq!(
        early.status(),
        503,
        "keys that cannot be fetched are not the client's fault"
    );

    // Now the auth-server comes up on the reserved address.
    let dir = tempfile::tempdir().unwrap();
    let settings = auth_server::Settings {
        listen: addr,
        issuer: issuer.parse().unwrap(),
        store: auth_server::settings::StoreUrl(format!(
            "sqlite://{}",
            dir.path().join("auth.db").display()
        )),
        keys_dir: dir.path().join("keys"),
        ..auth_server::Settings::default()
    };
    let app = auth_server::Application::build(settings).await.unwrap();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    system_tests::wait_ready(&api.http, &api.url("/readyz")).await;
    server.abort();
}

#[tokio::test]
async fn resource_server_keeps_verifying_while_the_auth_server_is_down() {
    let mut auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    let token = auth
        .add_logged_in_user("alice", "alice-pw-1", "")
        .await
        .access_token;
    auth.stop().await;
    let me = api.get_me(&token).await;
    assert_eq!(me.status(), 200, "cached keys keep serving");
}

#[tokio::test]
async fn health_endpoints_answer() {
    let auth = TestAuth::spawn().await;
    assert_eq!(auth.get("/livez").await.status(), 200);
    assert_eq!(auth.get("/readyz").await.status(), 200);
    let metrics = auth.metrics().await;
    assert!(
        metrics.contains("auth_server_http_requests_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn cors_preflight_allows_swagger_uis_token_request_from_a_configured_origin() {
    let auth =
        TestAuth::spawn_with(|s| s.cors_origins = vec!["http://127.0.0.1:8001".into()]).await;
    let preflight = |origin: &'static str| {
        auth.http
            .request(reqwest::Method::OPTIONS, auth.url("/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-requested-with",
            )
            .send()
    };
    let allowed = preflight("http://127.0.0.1:8001").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://127.0.0.1:8001"
    );
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        headers.contains("x-requested-with") && headers.contains("authorization"),
        "{headers}"
    );
    let foreign = preflight("http://evil.example").await.unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
