//! Ports for servers under test. Tests run in parallel, so no test may name a fixed port: the
//! system picks a free one.

use std::net::TcpListener;

/// A port on 127.0.0.1 that was free a moment ago (the system picked it for a listener on port
/// 0, then the listener closed). Another process may take it before the caller binds it, so a
/// caller that hands it to a child process retries on a bind error; one that can keep the
/// listener should bind `127.0.0.1:0` itself instead.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("no free port on 127.0.0.1: {err}"))
}
