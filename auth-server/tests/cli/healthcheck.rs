//! `auth-server healthcheck`: the container health check of an image without a shell. It asks
//! `/readyz` on the configured address (the admin address when set) and exits 0 or 1.

use std::net::SocketAddr;
use std::sync::Mutex;

use test_kit::ports::free_port;
use test_kit::process::Server;

use crate::Env;

/// The built server on a free port, with an admin address when `admin` is set; returns it and
/// the admin address it was given.
async fn serve(env: &Env, admin: bool) -> (Server, Option<SocketAddr>) {
    let chosen = Mutex::new(None);
    let server = Server::start(env.path("server.log"), "/readyz", |addr| {
        let mut command = env.command(&["serve"]);
        command
            .env("AUTH_LISTEN", addr.to_string())
            .env("AUTH_ISSUER", format!("http://{addr}"));
        if admin {
            let admin_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            command.env("AUTH_ADMIN_LISTEN", admin_addr.to_string());
            *chosen.lock().unwrap() = Some(admin_addr);
        }
        command
    })
    .await;
    let admin_addr = *chosen.lock().unwrap();
    (server, admin_addr)
}

#[tokio::test]
async fn a_ready_server_passes_the_healthcheck() {
    let env = Env::new();
    let (server, _) = serve(&env, false).await;
    let run = test_kit::process::run(
        env.command(&["healthcheck"])
            .env("AUTH_LISTEN", server.addr().to_string()),
        None,
    );
    assert!(run.success(), "{}", run.stderr);
}

#[tokio::test]
async fn the_healthcheck_asks_the_admin_address_when_one_is_set() {
    let env = Env::new();
    let (server, admin) = serve(&env, true).await;
    let admin = admin.unwrap().to_string();
    let run = test_kit::process::run(
        env.command(&["healthcheck"])
            .env("AUTH_LISTEN", server.addr().to_string())
            .env("AUTH_ADMIN_LISTEN", &admin),
        None,
    );
    assert!(run.success(), "{}", run.stderr);
    // The admin address is the one asked: with nothing there, the check fails although the
    // public port answers.
    let nothing = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let run = test_kit::process::run(
        env.command(&["healthcheck", "--timeout", "1"])
            .env("AUTH_LISTEN", server.addr().to_string())
            .env("AUTH_ADMIN_LISTEN", &nothing),
        None,
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
}

#[test]
fn nothing_listening_fails_with_one_line() {
    let env = Env::new();
    let nothing = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let run = test_kit::process::run(
        env.command(&["healthcheck", "--timeout", "1"])
            .env("AUTH_LISTEN", &nothing),
        None,
    );
    let line = run.one_error_line("healthcheck with nothing listening");
    assert!(line.contains(&nothing), "{line}");
}

#[test]
fn a_listener_that_never_answers_fails_at_the_timeout() {
    let env = Env::new();
    // Connections complete in the backlog, but nothing ever reads or answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let run = test_kit::process::run(
        env.command(&["healthcheck", "--timeout", "1"])
            .env("AUTH_LISTEN", &addr),
        None,
    );
    let line = run.one_error_line("healthcheck against a silent listener");
    assert!(line.contains("no answer"), "{line}");
}
