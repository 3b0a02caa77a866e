//! Operations (issue 6): Prometheus metrics on both servers, request ids, graceful shutdown of
//! the real `auth-server` binary on SIGTERM and Ctrl-C, and logs that never carry a secret.
//!
//! The shutdown and log tests run the built binaries, not the library: signals, the exit status
//! and the log subscriber belong to the process. See [`binaries`] for how they are found.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use system_tests::binaries::{auth_env, binaries, cli, command};
use system_tests::{metric_sample, metric_value, reqwest, scrape_metrics, TestAuth, TestResource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct horse battery staple 7Q";
const CLIENT_SECRET: &str = "svc secret 0123456789 abcdefghij KLMN";

// ---------------------------------------------------------------------------------------------
// Metrics

/// Counters end in `_total` (Prometheus naming conventions).
fn assert_counter_names(text: &str) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} should end in _total"
                );
            }
        }
    }
}

#[tokio::test]
async fn auth_server_metrics_count_requests_grants_failed_logins_and_password_hashing() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    auth.add_user("alice", PASSWORD, "read").await;
    auth.add_client("svc", CLIENT_SECRET, &["client_credentials"], "read", &[])
        .await;

    let tokens = auth.password_grant("alice", PASSWORD).await;
    auth.client_credentials("svc", CLIENT_SECRET, "read").await;
    let wrong = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "not the password"),
        ])
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(api.get_me(&tokens.access_token).await.status(), 200);

    let text = scrape_metrics(&auth.http, &auth.url("/metrics")).await;
    assert_eq!(
        metric_value(
            &text,
            "http_requests_total",
            &[("route", "/token"), ("method", "POST"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            "http_requests_total",
            &[("route", "/token"), ("status", "400")]
        ),
        1.0
    );
    assert!(
        metric_value(
            &text,
            "http_request_duration_seconds_bucket",
            &[("route", "/token"), ("le", "+Inf")]
        ) >= 3.0
    );
    assert!(
        metric_value(
            &text,
            "http_request_duration_seconds_count",
            &[("route", "/token")]
        ) >= 3.0
    );
    assert_eq!(
        metric_value(&text, "tokens_issued_total", &[("grant_type", "password")]),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "tokens_issued_total",
            &[("grant_type", "client_credentials")]
        ),
        1.0
    );
    assert_eq!(metric_value(&text, "login_failures_total", &[]), 1.0);
    assert_eq!(metric_value(&text, "throttled_requests_total", &[]), 0.0);
    assert_eq!(
        metric_value(&text, "password_hash_queue_depth", &[]),
        0.0,
        "nothing waits once all answered"
    );
    assert!(
        metric_value(&text, "password_hash_wait_seconds_count", &[]) >= 2.0,
        "the good and the wrong password"
    );
    assert_eq!(metric_value(&text, "store_errors_total", &[]), 0.0);
    assert_counter_names(&text);
}

#[tokio::test]
async fn resource_server_metrics_count_verifications_by_outcome_and_key_fetches() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    auth.add_user("alice", PASSWORD, "read").await;
    let tokens = auth.password_grant("alice", PASSWORD).await;

    assert_eq!(api.get_me(&tokens.access_token).await.status(), 200);
    assert_eq!(api.get_me("not-a-jwt").await.status(), 401);
    let (signed, _) = tokens.access_token.rsplit_once('.').unwrap();
    let forged_signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256]);
    assert_eq!(
        api.get_me(&format!("{signed}.{forged_signature}"))
            .await
            .status(),
        401
    );

    let text = scrape_metrics(&api.http, &api.url("/metrics")).await;
    assert!(metric_value(&text, "token_verifications_total", &[("outcome", "ok")]) >= 1.0);
    assert_eq!(
        metric_value(
            &text,
            "token_verifications_total",
            &[("outcome", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "token_verifications_total",
            &[("outcome", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "token_verifications_total",
            &[("outcome", "expired")]
        ),
        0.0,
        "every outcome is exported"
    );
    assert!(metric_value(&text, "jwks_fetches_total", &[]) >= 1.0);
    assert!(
        metric_sample(&text, "jwks_fetch_failures_total", &[]).is_some(),
        "{text}"
    );
    assert_eq!(metric_value(&text, "jwks_keys", &[]), 1.0);
    let age = metric_value(&text, "jwks_age_seconds", &[]);
    assert!(
        (0.0..60.0).contains(&age),
        "keys fetched at start, {age} s ago"
    );
    assert!(
        metric_value(
            &text,
            "http_requests_total",
            &[("route", "/users/me"), ("status", "401")]
        ) >= 2.0
    );
    assert_counter_names(&text);
}

// ---------------------------------------------------------------------------------------------
// Request ids

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

async fn get_with_id(http: &reqwest::Client, url: &str, id: Option<&[u8]>) -> reqwest::Response {
    let mut request = http.get(url);
    if let Some(id) = id {
        request = request.header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(id).unwrap(),
        );
    }
    request.send().await.unwrap()
}

/// Sends `GET /livez` with a raw `X-Request-Id` line (which no HTTP client would send) and
/// returns the whole response as text.
async fn raw_get(addr: &str, id_line: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Request-Id: ".to_vec();
    request.extend_from_slice(id_line);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_plain_request_id_is_echoed_and_any_other_is_replaced() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    for (http, base) in [(&auth.http, auth.url.clone()), (&api.http, api.url.clone())] {
        let url = format!("{base}/livez");

        let given = get_with_id(http, &url, Some(b"abc-123")).await;
        assert_eq!(given.status(), 200);
        assert_eq!(request_id(&given), "abc-123", "{url}");

        let first = request_id(&get_with_id(http, &url, None).await);
        let second = request_id(&get_with_id(http, &url, None).await);
        assert!(
            is_plain_id(&first) && is_plain_id(&second),
            "{first} {second}"
        );
        assert_ne!(first, second, "made ids are unique");

        let long = "a".repeat(129);
        let hostile: [&[u8]; 6] = [
            b"abc 123",
            b"abc\t123",
            br#"x", "level":"ERROR"#,
            long.as_bytes(),
            "caf\u{e9}".as_bytes(),
            b"a=b;c",
        ];
        for id in hostile {
            let response = get_with_id(http, &url, Some(id)).await;
            assert_eq!(response.status(), 200);
            let replaced = request_id(&response);
            assert!(
                is_plain_id(&replaced) && replaced.as_bytes() != id,
                "{id:?} came back as {replaced:?}"
            );
        }

        // A line break ends the header (HTTP/1.1 parsers accept a bare LF), so what follows is
        // another request header: it is never echoed, and the id echoed is plain.
        let addr = base.trim_start_matches("http://");
        for line in [
            &b"evil\nX-Injected: yes"[..],
            b"evil\r\nX-Injected: yes",
            b"evil\r X-Injected: yes",
        ] {
            let response = raw_get(addr, line).await;
            let (head, _) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            assert!(
                head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 400"),
                "{head}"
            );
            assert!(!head.to_ascii_lowercase().contains("x-injected"), "{head}");
            let echoed = head.lines().find_map(|l| l.strip_prefix("x-request-id: "));
            assert!(echoed.is_none_or(is_plain_id), "{head}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real binaries

/// A port free a moment ago. Another process may take it before the server binds it, so
/// [`Process::start`] retries on a bind error.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process whose stdout and stderr go to a file; killed if still running when dropped.
struct Process {
    child: tokio::process::Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` on a free port (`listen_env`) with the settings `env(addr)` and waits
    /// until `/readyz` answers 200.
    async fn start(
        binary: &Path,
        log: PathBuf,
        listen_env: &str,
        env: impl Fn(SocketAddr) -> Vec<(String, String)>,
    ) -> Self {
        let http = system_tests::http_client();
        for _attempt in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let file = std::fs::File::create(&log).unwrap();
            let mut settings = env(addr);
            settings.push((listen_env.to_owned(), addr.to_string()));
            let child = command(binary, &settings)
                .stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut process = Self {
                child,
                addr,
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = process.child.try_wait().unwrap() {
                    let log = process.log_text();
                    assert!(
                        log.contains("binding"),
                        "{} exited with {status}:\n{log}",
                        binary.display()
                    );
                    break; // the port was taken meanwhile: try another
                }
                if let Ok(response) = http.get(process.url("/readyz")).send().await {
                    if response.status() == 200 {
                        return process;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not ready within 20 s:\n{}",
                    binary.display(),
                    process.log_text()
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("no free port for {} in 5 attempts", binary.display());
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Sends `signal` (`TERM`, `INT`) to this process, and only to it.
    async fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = tokio::process::Command::new("kill")
            .args([format!("-{signal}").as_str(), pid.as_str()])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process to exit, for at most `limit`.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "still running {limit:?} after the signal:\n{}",
                self.log_text()
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

/// An auth-server with one password worker and user `alice`, so that password grants queue up.
async fn slow_auth_server(dir: &Path, extra: &[(&str, &str)]) -> Process {
    let binaries = binaries().await;
    // Many logins of one user from one address at once, each holding a throttle slot while it
    // waits: the throttle is off, as these tests are about shutdown.
    let mut settings = vec![
        ("AUTH_PASSWORD_WORKERS", "1"),
        ("RUST_LOG", "info"),
        ("AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS", "0"),
        ("AUTH_LOGIN_MAX_FAILURES_PER_USER", "0"),
    ];
    settings.extend_from_slice(extra);
    let env = auth_env(dir, &settings);
    cli(
        &binaries.auth,
        &env,
        &["user", "add", "alice", "--password-stdin"],
        PASSWORD,
    )
    .await;
    Process::start(
        &binaries.auth,
        dir.join("auth.log"),
        "AUTH_LISTEN",
        |addr| {
            let mut env = env.clone();
            env.push(("AUTH_ISSUER".to_owned(), format!("http://{addr}")));
            env
        },
    )
    .await
}

/// Password grants sent at once on separate connections; each task gives its outcome.
struct Grants {
    tasks: Vec<tokio::task::JoinHandle<Result<u16, String>>>,
    answered: Arc<AtomicUsize>,
}

impl Grants {
    fn send(server: &Process, n: usize) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let tasks = (0..n)
            .map(|_| {
                let (http, url, answered) = (http.clone(), server.url("/token"), answered.clone());
                tokio::spawn(async move {
                    let form = [
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", PASSWORD),
                    ];
                    let outcome = async {
                        let response = http
                            .post(url)
                            .form(&form)
                            .send()
                            .await
                            .map_err(|e| e.to_string())?;
                        let status = response.status().as_u16();
                        let body: serde_json::Value =
                            response.json().await.map_err(|e| e.to_string())?;
                        if status == 200 && body["access_token"].as_str().is_none() {
                            return Err(format!("200 without a token: {body}"));
                        }
                        Ok(status)
                    }
                    .await;
                    answered.fetch_add(1, Ordering::SeqCst);
                    outcome
                })
            })
            .collect();
        Self { tasks, answered }
    }

    fn pending(&self) -> usize {
        self.tasks.len() - self.answered.load(Ordering::SeqCst)
    }

    /// Waits until every grant has reached the server: each is answered or holds a place in the
    /// password queue (`password_hash_queue_depth`). Returns how many are still unanswered.
    async fn wait_all_at_server(&self, server: &Process) -> usize {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = scrape_metrics(&http, &server.url("/metrics")).await;
            let queued = metric_value(&text, "password_hash_queue_depth", &[]) as usize;
            let answered = self.answered.load(Ordering::SeqCst);
            if queued + answered >= self.tasks.len() {
                return self.tasks.len() - answered;
            }
            assert!(
                Instant::now() < deadline,
                "the grants did not all reach the server: {queued} queued, {answered} answered"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn outcomes(self) -> Vec<Result<u16, String>> {
        let mut outcomes = Vec::new();
        for task in self.tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    }
}

/// Polls until a new connection to `addr` is refused; returns how many grants were unanswered
/// at that moment.
async fn wait_refused(addr: SocketAddr, grants: &Grants) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                return grants.pending()
            }
            // A connection caught in the backlog as the listener closes is reset: not served,
            // but not a clean refusal yet either.
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(err) => panic!("connecting to {addr}: {err}"),
            Ok(stream) => drop(stream),
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections 10 s after the signal"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Signals a busy server and checks that it stops accepting at once, answers every request it
/// had accepted, and exits 0.
async fn in_flight_requests_finish_after(signal: &str) {
    const GRANTS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let mut server = slow_auth_server(dir.path(), &[("AUTH_SHUTDOWN_TIMEOUT", "20")]).await;
    let grants = Grants::send(&server, GRANTS);
    let unanswered = grants.wait_all_at_server(&server).await;
    assert!(
        unanswered >= 2,
        "the grants should queue behind one worker; only {unanswered} waited"
    );

    server.signal(signal).await;
    let signalled = Instant::now();
    let unanswered_when_refused = wait_refused(server.addr, &grants).await;
    let outcomes = grants.outcomes().await;
    let status = server.exit_within(Duration::from_secs(20)).await;

    assert!(
        outcomes.iter().all(|o| *o == Ok(200)),
        "every accepted request is answered: {outcomes:?}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIG{signal}:\n{}",
        server.log_text()
    );
    assert!(
        unanswered_when_refused > 0,
        "new connections should be refused while requests are still being answered (refused after {:?})",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn sigterm_refuses_new_connections_lets_in_flight_grants_finish_and_exits_0() {
    in_flight_requests_finish_after("TERM").await;
}

#[tokio::test]
async fn ctrl_c_refuses_new_connections_lets_in_flight_grants_finish_and_exits_0() {
    in_flight_requests_finish_after("INT").await;
}

#[tokio::test]
async fn requests_longer_than_the_shutdown_timeout_are_cut_off_and_the_exit_is_still_0() {
    // 150 hashes on one worker take several seconds; the limit is one.
    const GRANTS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let mut server = slow_auth_server(
        dir.path(),
        &[
            ("AUTH_SHUTDOWN_TIMEOUT", "1"),
            ("AUTH_PASSWORD_QUEUE", "200"),
        ],
    )
    .await;
    let grants = Grants::send(&server, GRANTS);
    grants.wait_all_at_server(&server).await;

    server.signal("TERM").await;
    let signalled = Instant::now();
    let status = server.exit_within(Duration::from_secs(10)).await;
    let waited = signalled.elapsed();
    let outcomes = grants.outcomes().await;

    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(
        waited >= Duration::from_millis(900),
        "in-flight requests get the whole limit; exited after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "the limit is one second; exited after {waited:?}"
    );
    assert!(
        outcomes.iter().any(Result::is_err),
        "some requests outlive the limit and are cut off"
    );
    // Each request is answered or cut off; on a loaded machine the store may also answer
    // 503 temporarily_unavailable before shutdown, which is no shutdown failure.
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(200) | Ok(503) | Err(_))),
        "{outcomes:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Logs

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
        .filter(|line| line["message"] == "request" && line["target"] == "shared::telemetry")
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

    let auth = Process::start(
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
    let resource = Process::start(
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
    resource.signal("TERM").await;
    auth.signal("TERM").await;
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
