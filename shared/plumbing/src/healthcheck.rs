//! The `healthcheck` subcommand's client. The container image has no shell and no HTTP tool, so
//! a container engine's health check runs the server's own binary: it asks the running server
//! for `/readyz` over plain HTTP/1.1 on loopback and says 0 or 1. A bare request over a TCP
//! stream is enough for one status line and keeps an HTTP client out of the servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where to reach a server bound to `bound`: an unspecified address (`0.0.0.0`, `::`) is reached
/// on loopback, any other as it is.
pub fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// `GET path` at `addr`: the response's status code, or why there is none, all within `timeout`.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    match tokio::time::timeout(timeout, status_of(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer from {addr} within {} ms",
            timeout.as_millis()
        )),
    }
}

async fn status_of(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connecting to {addr}: {err}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("writing to {addr}: {err}"))?;
    // The status line is all that is read: `HTTP/1.1 200 OK`.
    let mut head = Vec::with_capacity(64);
    let mut buffer = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream
            .read(&mut buffer)
            .await
            .map_err(|err| format!("reading from {addr}: {err}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{addr} answered no HTTP status line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_reached_on_loopback() {
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:9000".parse().unwrap());
        let any6: SocketAddr = "[::]:9000".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:9000".parse().unwrap());
        let given: SocketAddr = "10.0.0.5:9000".parse().unwrap();
        assert_eq!(reachable(given), given);
    }
}
