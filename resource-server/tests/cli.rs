//! The binary's start: a bad setting stops it before it binds, with one line naming the setting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::Path;

use test_kit::process::{assert_setting_refused, command};

#[test]
fn an_out_of_range_setting_stops_the_start_with_one_line_naming_it() {
    for (variable, value, says) in [
        (
            "RS_JWKS_MAX_STALE",
            "31536001",
            "31536001 is out of range; must be from 0 to 31536000",
        ),
        ("RS_UNKNOWN_KID_COOLDOWN", "0", "0 is out of range"),
        ("RS_JWKS_MIN_REFRESH", "0", "0 is out of range"),
        (
            "RS_TOKEN_CACHE_CAPACITY",
            "99999999",
            "99999999 is out of range",
        ),
        (
            "RS_MAX_TOKEN_BYTES",
            "20000",
            "must not exceed RS_MAX_HEADER_BYTES",
        ),
        (
            "RS_REVOCATION_POLL",
            "3601",
            "3601 is out of range; must be from 0 to 3600",
        ),
        (
            "RS_REVOCATION_MAX_STALE",
            "9",
            "must be at least twice RS_REVOCATION_POLL",
        ),
        ("RS_REVOCATION_FAIL_CLOSED", "maybe", ""),
        // Beyond what the setting's type holds: refused as well, never wrapped.
        ("RS_JWKS_MAX_STALE", "18446744073709551616", ""),
        ("RS_SHUTDOWN_TIMEOUT", "-1", ""),
    ] {
        assert_setting_refused(
            command(
                Path::new(env!("CARGO_BIN_EXE_resource-server")),
                &["RS_", "RUST_LOG"],
                &[],
            )
            .env("RS_LISTEN", "127.0.0.1:0"),
            variable,
            value,
            says,
        );
    }
}

/// `resource-server healthcheck`: the container health check of an image without a shell.
mod healthcheck {
    use std::net::SocketAddr;
    use std::path::Path;
    use std::process::Command;

    use test_kit::ports::free_port;
    use test_kit::process::{command, run, Server};
    use test_kit::signer::TestSigner;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn resource_server() -> Command {
        command(
            Path::new(env!("CARGO_BIN_EXE_resource-server")),
            &["RS_", "RUST_LOG"],
            &[],
        )
    }

    /// Answers every request on a loopback port with `body` as JSON: the issuer's key set.
    async fn serve_json(body: String) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    let _ = stream.read(&mut head).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// The resource server with an admin address, on keys served by `jwks`, once the public
    /// port answers 200 on `ready_path`.
    async fn start(dir: &Path, jwks: SocketAddr, ready_path: &str) -> (Server, SocketAddr) {
        let admin = std::sync::Mutex::new(None);
        let server = Server::start(dir.join("rs.log"), ready_path, |addr| {
            let admin_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            *admin.lock().unwrap() = Some(admin_addr);
            let mut command = resource_server();
            command
                .env("RS_LISTEN", addr.to_string())
                .env("RS_ADMIN_LISTEN", admin_addr.to_string())
                .env("RS_ISSUER", format!("http://{jwks}"))
                .env("RS_JWKS_URL", format!("http://{jwks}/jwks.json"))
                .env("RS_REVOCATION_POLL", "0");
            command
        })
        .await;
        let admin = admin.lock().unwrap().unwrap();
        (server, admin)
    }

    fn healthcheck(server: &Server, admin: SocketAddr) -> test_kit::process::Run {
        run(
            resource_server()
                .args(["healthcheck", "--timeout", "2"])
                .env("RS_LISTEN", server.addr().to_string())
                .env("RS_ADMIN_LISTEN", admin.to_string()),
            None,
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_server_holding_keys_passes_on_its_admin_address() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = serve_json(TestSigner::generate().jwks("k1")).await;
        let (server, admin) = start(dir.path(), jwks, "/readyz").await;
        let run = healthcheck(&server, admin);
        assert!(run.success(), "{}", run.stderr);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_server_without_keys_fails_naming_the_503() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing serves keys there: the server runs, but is not ready.
        let nowhere = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (server, admin) = start(dir.path(), nowhere, "/livez").await;
        let line = healthcheck(&server, admin)
            .one_error_line("healthcheck of a server without keys")
            .to_owned();
        assert!(line.contains("answered 503"), "{line}");
    }

    #[test]
    fn nothing_listening_fails_with_one_line() {
        let nothing = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let run = run(
            resource_server()
                .args(["healthcheck", "--timeout", "1"])
                .env("RS_LISTEN", &nothing),
            None,
        );
        let line = run.one_error_line("healthcheck with nothing listening");
        assert!(line.contains(&nothing), "{line}");
    }
}
