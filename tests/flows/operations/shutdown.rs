//! Graceful shutdown of the built auth-server on SIGTERM and Ctrl-C: new connections refused at
//! once, accepted requests answered within the shutdown timeout, exit status 0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use system_tests::binaries::{auth_env, binaries, cli, start_server, Server};
use system_tests::{metric_value, reqwest, scrape_metrics};

use super::PASSWORD;

/// An auth-server with one password worker and user `alice`, so that password grants queue up.
async fn slow_auth_server(dir: &Path, extra: &[(&str, &str)]) -> Server {
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
    start_server(
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
    fn send(server: &Server, n: usize) -> Self {
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
    /// password queue (`auth_server_password_hash_queue_depth`). Returns how many are still
    /// unanswered.
    async fn wait_all_at_server(&self, server: &Server) -> usize {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = scrape_metrics(&http, &server.url("/metrics")).await;
            let queued = metric_value(&text, "auth_server_password_hash_queue_depth", &[]) as usize;
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

    server.signal(signal);
    let signalled = Instant::now();
    let unanswered_when_refused = wait_refused(server.addr(), &grants).await;
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

    server.signal("TERM");
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
