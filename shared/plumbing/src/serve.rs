//! The accept loop both servers run, in place of `poem::Server`.
//!
//! poem's server closes a connection only after it has been idle for a while, so a client that
//! sends its request head a byte at a time (slow loris) holds a connection and a task for as
//! long as it keeps trickling, and nothing bounds how many such connections pile up. hyper has
//! the defences, but poem does not expose them: a deadline for the request head, a cap on its
//! size and header count. This loop drives the same poem endpoint through hyper's HTTP/1.1
//! server with those set, and adds a cap on open connections.
//!
//! - **Header read timeout**: the head of every request (the first and each one after on a
//!   kept-alive connection) must arrive within it, else hyper closes the connection. It is also
//!   how long an idle kept-alive connection stays open.
//! - **Header bytes and count**: a head larger than the limit, or with more fields, is refused
//!   with `431 Request Header Fields Too Large` before any handler runs.
//! - **Connections**: at the cap the loop stops accepting, so further clients wait in the
//!   kernel's backlog rather than being dropped, and are served as soon as a slot frees (at
//!   the latest after one header read timeout, when a stalled client is cut off).
//!
//! Bodies are read by the endpoints; the auth-server bounds their size and read time in its
//! own middleware. HTTP/2 is not offered: these servers speak plain HTTP behind a proxy or to
//! services on a private network, and every slow-client defence above is HTTP/1.1's.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt};
use prometheus::{IntCounter, IntGauge, Registry};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Bounds on each connection and on how many are open. [`Default`] holds the defaults both
/// servers document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time for a request head to arrive; also the keep-alive idle time.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and header fields), in bytes; at least 8192.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// hyper refuses a smaller read buffer; the settings check against it.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Connection gauges on the server's `/metrics`.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: IntGauge,
    accepted: IntCounter,
    timed_out: IntCounter,
}

impl ConnectionMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGauge::new("http_connections_open", "HTTP connections open now")?;
        let accepted = IntCounter::new("http_connections_total", "HTTP connections accepted")?;
        let timed_out = IntCounter::new(
            "http_connections_timed_out_total",
            "Connections closed because a request head did not arrive within the header read timeout",
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(accepted.clone()))?;
        registry.register(Box::new(timed_out.clone()))?;
        Ok(Self {
            open,
            accepted,
            timed_out,
        })
    }
}

/// Serves `endpoint` on `listener` until `stop` completes, then stops accepting and lets the
/// requests in flight finish for up to `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ConnectionLimits,
    metrics: Option<ConnectionMetrics>,
    stop: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let endpoint = Arc::new(endpoint.map_to_response().boxed());
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();

    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // pause instead of spinning, and go on.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let remote = RemoteAddr(Addr::SocketAddr(peer));
        let local = local.clone();
        let endpoint = endpoint.clone();
        let service = service_fn(move |req: poem::http::Request<hyper::body::Incoming>| {
            let request = poem::Request::from((
                req,
                local.clone(),
                remote.clone(),
                poem::http::uri::Scheme::HTTP,
            ));
            let endpoint = endpoint.clone();
            async move {
                let response = endpoint.get_response(request).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Some(metrics) = &metrics {
                metrics.accepted.inc();
                metrics.open.inc();
            }
            if let Err(err) = connection.await {
                if err.is_timeout() {
                    if let Some(metrics) = &metrics {
                        metrics.timed_out.inc();
                    }
                    tracing::debug!(%peer, "request head not received in time; connection closed");
                } else {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            }
            if let Some(metrics) = &metrics {
                metrics.open.dec();
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "requests still in flight at the end of the shutdown timeout were cut off"
        );
    }
    Ok(())
}

/// An admin listener and what it serves (metrics and health, apart from the public port).
pub struct AdminListener {
    /// Bound already, so that a taken port stops the start before anything is served.
    pub listener: TcpListener,
    /// `/metrics`, `/livez` and `/readyz`.
    pub endpoint: poem::endpoint::BoxEndpoint<'static>,
}

/// As [`serve`] on the public listener and, when given, on the admin listener too, with the
/// same limits and metrics: `stop` stops both, and both drain within `grace`.
pub async fn serve_with_admin(
    listener: TcpListener,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
    admin: Option<AdminListener>,
    limits: ConnectionLimits,
    metrics: Option<ConnectionMetrics>,
    stop: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()> {
    let Some(admin) = admin else {
        return serve(listener, endpoint, limits, metrics, stop, grace).await;
    };
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut admin_stop = stopped;
    let admin_task = tokio::spawn(serve(
        admin.listener,
        admin.endpoint,
        limits,
        metrics.clone(),
        async move {
            // A closed channel (the public loop ended) stops the admin loop as well.
            let _ = admin_stop.wait_for(|stop| *stop).await;
        },
        grace,
    ));
    let public = serve(
        listener,
        endpoint,
        limits,
        metrics,
        async move {
            stop.await;
            let _ = stopping.send(true);
        },
        grace,
    )
    .await;
    let admin = admin_task
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err)));
    public.and(admin)
}
