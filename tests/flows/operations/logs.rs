//! The logs of a full run of both built servers and the CLI at debug level: JSON lines with the
//! request id, and no password, secret, token or key in any encoding.

use std::time::Duration;

use base64::Engine;
use system_tests::binaries::{auth_env, binaries, cli, start_server};

use super::{CLIENT_SECRET, PASSWORD};

/// `text`, as it is and as a form or URL would carry it.
fn encodings(text: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    vec![text.to_owned(), form.clone(), form.replace('+', "%20")]
}

fn request_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .filter(|line| {
            line["message"] == "request" && line["target"] == "server_plumbing::telemetry"
        })
        .collect()
}

/// Checks that every line logged inside a request names its request id, and that each request
/// line has the route, status and latency. Returns the request lines.
fn check_json_log(log: &str, name: &str) -> Vec<serde_json::Value> {
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        let line: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("{name}: not JSON ({err}): {line}"));
        if let Some(spans) = line["spans"].as_array().filter(|spans| !spans.is_empty()) {
            assert!(
                spans[0]["request_id"].is_string(),
                "{name}: a line in a request without its id: {line}"
            );
        }
    }
    let requests = request_lines(log);
    for line in &requests {
        let span = &line["span"];
        assert!(
            span["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{name}: {line}"
        );
        assert!(
            span["route"].is_string() && span["method"].is_string(),
            "{name}: {line}"
        );
        assert!(
            line["status"].is_u64() && line["latency_ms"].is_f64(),
            "{name}: {line}"
        );
    }
    requests
}

#[tokio::test]
async fn logs_of_a_full_run_at_debug_level_carry_no_password_secret_token_or_key() {
    let binaries = binaries().await;
    let dir = tempfile::tempdir().unwrap();
    let env = auth_env(
        dir.path(),
        &[("RUST_LOG", "debug"), ("AUTH_LOG_FORMAT", "json")],
    );
    let wrong_password = "wrong battery horse 9Z";
    let wrong_secret = "not the svc secret 0123456789 abcdef";
    let mut cli_output = String::new();

    let auth = start_server(
        &binaries.auth,
        dir.path().join("auth.log"),
        "AUTH_LISTEN",
        |addr| {
            let mut env = env.clone();
            env.push(("AUTH_ISSUER".to_owned(), format!("http://{addr}")));
            env
        },
    )
    .await;
    let issuer = auth.url("");
    let resource = start_server(
        &binaries.resource,
        dir.path().join("resource.log"),
        "RS_LISTEN",
        |_| {
            vec![
                ("RS_ISSUER".to_owned(), issuer.clone()),
                ("RS_LOG_FORMAT".to_owned(), "json".to_owned()),
                ("RS_SHUTDOWN_TIMEOUT".to_owned(), "5".to_owned()),
                ("RUST_LOG".to_owned(), "debug".to_owned()),
            ]
        },
    )
    .await;
    cli_output += &cli(
        &binaries.auth,
        &env,
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--scope",
            "read",
        ],
        PASSWORD,
    )
    .await;
    cli_output += &cli(
        &binaries.auth,
        &env,
        &[
            "client",
            "add",
            "svc",
            "--secret-stdin",
            "--grant",
            "client_credentials",
            "--scope",
            "read",
        ],
        CLIENT_SECRET,
    )
    .await;

    let http = system_tests::http_client();
    let token = |form: Vec<(&'static str, String)>, basic: Option<(&'static str, &'static str)>| {
        let mut request = http.post(auth.url("/token")).form(&form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let field = |body: &serde_json::Value, name: &str| {
        body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .to_owned()
    };

    let password_form = |password: &str| {
        vec![
            ("grant_type", "password".to_owned()),
            ("username", "alice".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let (status, first) = token(password_form(PASSWORD), None).await;
    assert_eq!(status, 200, "{first}");
    let (status, refreshed) = token(
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", field(&first, "refresh_token")),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, basic) = token(
        vec![("grant_type", "client_credentials".to_owned())],
        Some(("svc", CLIENT_SECRET)),
    )
    .await;
    assert_eq!(status, 200, "{basic}");
    let post_form = vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", "svc".to_owned()),
        ("client_secret", CLIENT_SECRET.to_owned()),
    ];
    let (status, posted) = token(post_form, None).await;
    assert_eq!(status, 200, "{posted}");
    let (status, _) = token(
        vec![("grant_type", "client_credentials".to_owned())],
        Some(("svc", wrong_secret)),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = token(password_form(wrong_password), None).await;
    assert_eq!(status, 400);

    let introspected = http
        .post(auth.url("/introspect"))
        .basic_auth("svc", Some(CLIENT_SECRET))
        .form(&[("token", field(&refreshed, "access_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(introspected.status(), 200);
    let me = http
        .get(resource.url("/users/me"))
        .bearer_auth(field(&refreshed, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let revoked = http
        .post(auth.url("/revoke"))
        .form(&[
            ("token", field(&refreshed, "refresh_token")),
            ("token_type_hint", "refresh_token".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let reused = token(
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", field(&first, "refresh_token")),
        ],
        None,
    )
    .await;
    assert_eq!(
        reused.0, 400,
        "a used refresh token is refused (and its refusal logged)"
    );

    let (mut auth, mut resource) = (auth, resource);
    resource.signal("TERM");
    auth.signal("TERM");
    assert_eq!(
        resource.exit_within(Duration::from_secs(10)).await.code(),
        Some(0)
    );
    assert_eq!(
        auth.exit_within(Duration::from_secs(30)).await.code(),
        Some(0)
    );
    let (auth_log, resource_log) = (auth.log_text(), resource.log_text());

    let mut secrets: Vec<String> = [PASSWORD, wrong_password, CLIENT_SECRET, wrong_secret]
        .iter()
        .flat_map(|s| encodings(s))
        .collect();
    for (id, secret) in [("svc", CLIENT_SECRET), ("svc", wrong_secret)] {
        secrets.push(base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
    }
    for body in [&first, &refreshed, &basic, &posted] {
        let access_token = field(body, "access_token");
        secrets.push(access_token.rsplit_once('.').unwrap().1.to_owned()); // the signature alone
        secrets.push(access_token);
        if let Some(refresh_token) = body["refresh_token"].as_str() {
            secrets.extend(encodings(refresh_token));
        }
    }
    // The private keys, opened from the store as the server does, in the base64 a PEM file or
    // a store dump would show; the sealed blobs; the key-encryption key.
    let keys_dir = dir.path().join("keys");
    let store_url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let settings = auth_server::Settings {
        keys_dir: keys_dir.clone(),
        ..auth_server::Settings::default()
    };
    let keys = settings
        .key_lifecycle(auth_server::store::open(&store_url).await.unwrap())
        .unwrap();
    let mut n_private_keys = 0;
    for record in keys.list().await.unwrap() {
        let Ok(der) = keys.private_key(&record.kid).await else {
            continue; // revoked: erased
        };
        n_private_keys += 1;
        let armoured = base64::engine::general_purpose::STANDARD.encode(der.as_slice());
        secrets.extend(
            armoured
                .as_bytes()
                .chunks(64)
                .map(|line| String::from_utf8_lossy(line).into_owned()),
        );
        let sealed = base64::engine::general_purpose::STANDARD.encode(&record.sealed_private_key);
        secrets.push(sealed[..64].to_owned());
    }
    assert!(n_private_keys >= 1, "the store holds a private key");
    let kek = std::fs::read(keys_dir.join("key-encryption.key")).unwrap();
    secrets.push(base64::engine::general_purpose::STANDARD.encode(&kek));
    secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&kek));

    for (name, log) in [
        ("auth-server", &auth_log),
        ("resource-server", &resource_log),
        ("the CLI", &cli_output),
    ] {
        assert!(!log.contains("PRIVATE KEY"), "{name} logged PEM text");
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{name} logged a secret ({}…)",
                &secret[..6]
            );
        }
    }

    let auth_requests = check_json_log(&auth_log, "auth-server");
    let resource_requests = check_json_log(&resource_log, "resource-server");
    assert!(
        auth_requests.len() >= 10,
        "one line per request: {}",
        auth_requests.len()
    );
    assert!(
        auth_requests
            .iter()
            .any(|line| line["span"]["route"] == "/token" && line["status"] == 401),
        "the refused client appears by route and status"
    );
    assert!(
        resource_requests
            .iter()
            .any(|line| line["span"]["route"] == "/users/me" && line["status"] == 200),
        "{resource_requests:?}"
    );
}
