//! What both servers log and count about every request, in one middleware: a request id (taken
//! from `X-Request-Id` or made), one span per request, one log line with route, status and
//! latency, and the Prometheus request counter and latency histogram.
//!
//! Nothing from the request but its method and path is logged: never a header, body or query,
//! so no token or secret can leak through it.
//!
//! Every label value comes from a bounded set, since each value the series meet is a series
//! kept for the life of the process: paths outside the API are `route="other"`, methods other
//! than the standard ones (HTTP allows a client to make one up per request) `method="other"`,
//! and the status is the server's own.
//!
//! Every request of both servers passes here, and on the cheapest (`/livez`, a cached token's
//! `/users/me`) the whole request is a few microseconds: the series of each route and method are
//! looked up in the vectors once, on their first request, and held in slots indexed by route,
//! method and common status, so that a request costs a short comparison of its path and method
//! with the known ones, array indexes and atomic adds rather than hashing its labels and taking
//! the vectors' locks (a status outside the common ones still finds its counter in the vector
//! each time). The request id is written once, into the header value it is sent in.
//!
//! Other modules do log strings a client chose (a username, a client id), so the log format
//! itself escapes control characters in every field of every line ([`EscapedFields`]; the JSON
//! format escapes them as JSON does): a value holding a line break cannot make a line of its own
//! that reads like the server's.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use poem::http::header::HeaderName;
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use tracing::Instrument;

/// The header a request id is taken from and answered in.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The methods labelled as themselves: RFC 9110 §9.3's and PATCH (RFC 5789).
static METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// The `method` label by [`method_index`]: the standard methods, then `other`.
const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|standard| standard == method)
        .unwrap_or(METHODS.len())
}

/// The statuses the servers answer often, each with a slot for its counter; the others (rare)
/// find theirs in the vector on every request.
const STATUSES: [u16; 16] = [
    200, 201, 204, 302, 304, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503,
];

/// One route's and method's series, taken from the vectors on their first request.
struct Series {
    duration: Histogram,
    /// By the index of the status in [`STATUSES`], each taken on its first request.
    requests: [OnceLock<IntCounter>; STATUSES.len()],
}

/// Request metrics, registered in the server's registry.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Paths reported as themselves; any other is reported as `other` to bound cardinality.
    routes: &'static [&'static str],
    /// By route index (`routes`, then `other`) and method index ([`METHOD_LABELS`]). A slot
    /// stays empty until its first request, so a series appears once it is used, as the
    /// vectors alone would have it.
    series: Arc<[OnceLock<Series>]>,
}

impl HttpMetrics {
    pub fn new(registry: &Registry, routes: &'static [&'static str]) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let slots = (routes.len() + 1) * METHOD_LABELS.len();
        Ok(Self {
            requests,
            duration,
            routes,
            series: (0..slots).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The route and method labels of a request to `path` with `method`.
    pub fn labels(&self, path: &str, method: &Method) -> RequestLabels {
        RequestLabels {
            route: self
                .routes
                .iter()
                .position(|r| *r == path)
                .unwrap_or(self.routes.len()),
            method: method_index(method),
        }
    }

    /// The `route` label: the path if it is one of the routes, else `other`.
    pub fn route_label(&self, labels: RequestLabels) -> &'static str {
        self.routes.get(labels.route).copied().unwrap_or("other")
    }

    /// Counts one request answered with `status` after `elapsed`; `labels` must come from this
    /// `HttpMetrics`'s own [`HttpMetrics::labels`] (or a clone's): another route table's
    /// indexes would name other routes.
    pub fn record(&self, labels: RequestLabels, status: StatusCode, elapsed: Duration) {
        // Clamped so that no index can fall outside the slots.
        let route_index = labels.route.min(self.routes.len());
        let route = self.routes.get(route_index).copied().unwrap_or("other");
        let method = METHOD_LABELS[labels.method];
        let slot = route_index * METHOD_LABELS.len() + labels.method;
        let series = self.series[slot].get_or_init(|| Series {
            duration: self.duration.with_label_values(&[route, method]),
            requests: [const { OnceLock::new() }; STATUSES.len()],
        });
        let code = status.as_u16();
        let count = || {
            self.requests
                .with_label_values(&[route, method, status.as_str()])
        };
        match STATUSES.iter().position(|common| *common == code) {
            Some(index) => series.requests[index].get_or_init(count).inc(),
            None => count().inc(),
        }
        series.duration.observe(elapsed.as_secs_f64());
    }
}

/// A request's route and method as [`HttpMetrics`] labels them (indexes into its label sets).
#[derive(Clone, Copy, Debug)]
pub struct RequestLabels {
    /// Into the routes, `routes.len()` for `other`.
    route: usize,
    /// Into [`METHOD_LABELS`].
    method: usize,
}

/// Wraps an app with request ids, the request log and request metrics.
pub struct RequestLog {
    metrics: HttpMetrics,
}

impl RequestLog {
    pub fn new(metrics: HttpMetrics) -> Self {
        Self { metrics }
    }
}

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
        }
    }
}

pub struct RequestLogEndpoint<E> {
    inner: E,
    metrics: HttpMetrics,
}

/// The request's id: the one it carries in `X-Request-Id` when that is usable
/// ([`usable_request_id`]), else a new one ([`new_request_id`]).
pub fn request_id(headers: &poem::http::HeaderMap) -> Option<HeaderValue> {
    match headers.get(&REQUEST_ID) {
        Some(given) if usable_request_id(given) => Some(given.clone()),
        _ => new_request_id(),
    }
}

/// A request id is echoed only if it is short and plain, so it cannot forge log lines.
pub fn usable_request_id(value: &HeaderValue) -> bool {
    let id = value.as_bytes();
    !id.is_empty()
        && id.len() <= 128
        && id.iter().all(
            |b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' | b'.' | b':'),
        )
}

/// The start time in microseconds and a counter, in hex (`18c3f2a9b1e40-2a`), written straight
/// into the header value.
pub fn new_request_id() -> Option<HeaderValue> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut id = [0_u8; 33];
    let mut len = write_hex(&mut id, 0, start);
    id[len] = b'-';
    len = write_hex(&mut id, len + 1, NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_bytes(&id[..len]).ok()
}

/// Writes `n` in lower-case hex without leading zeros at `at`; returns the end.
fn write_hex(buffer: &mut [u8; 33], at: usize, n: u64) -> usize {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, byte) in buffer[at..at + digits].iter_mut().enumerate() {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    at + digits
}

/// A request id as its span shows it (its characters are plain, so it is text).
struct IdText<'a>(Option<&'a HeaderValue>);

impl std::fmt::Display for IdText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.and_then(|id| id.to_str().ok()).unwrap_or_default())
    }
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = request_id(req.headers());
        let labels = self.metrics.labels(req.uri().path(), req.method());
        // The fields are written when the span is made (and not at all when it is filtered
        // out), so the request's own method is shown without being kept.
        let span = tracing::info_span!(
            "request",
            request_id = %IdText(request_id.as_ref()),
            method = %req.method(),
            route = self.metrics.route_label(labels),
        );
        async move {
            let mut response = match self.inner.call(req).await {
                Ok(response) => response.into_response(),
                Err(err) => err.into_response(),
            };
            let status = response.status();
            let elapsed = started.elapsed();
            self.metrics.record(labels, status, elapsed);
            tracing::info!(
                status = status.as_u16(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
            if let Some(id) = request_id {
                response.headers_mut().insert(REQUEST_ID, id);
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

/// The registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    encode(registry.gather())
}

fn encode(families: Vec<prometheus::proto::MetricFamily>) -> String {
    use prometheus::Encoder;
    let mut buffer = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode(&families, &mut buffer).is_err() {
        return String::new();
    }
    String::from_utf8(buffer).unwrap_or_default()
}

/// One server's metrics. A scraper shared by many services tells them apart by name, so the
/// server's own series (requests, connections, its domain metrics, `build_info`) carry the
/// application's prefix, given once here rather than in every metric's name; series whose
/// names others define keep them: the `process_*` series every exporter shares, and a
/// library's own prefix (the verifier's `oauth2_jwt_verifier_`).
#[derive(Clone)]
pub struct ServerMetrics {
    /// Where the server registers its own metrics: every name gains the prefix.
    pub own: Registry,
    /// Where series named by others are registered, unchanged.
    pub shared: Registry,
}

impl ServerMetrics {
    /// `prefix` without the trailing underscore (`auth_server`); `version` labels
    /// `PREFIX_build_info`, which is always 1.
    pub fn new(prefix: &str, version: &str) -> prometheus::Result<Self> {
        let own = Registry::new_custom(Some(prefix.to_owned()), None)?;
        let shared = Registry::new();
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new("build_info", "1, labelled with the version running"),
            &["version"],
        )?;
        build_info.with_label_values(&[version]).set(1);
        own.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        shared.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self { own, shared })
    }

    /// Both registries in the Prometheus text format, sorted by name.
    pub fn render(&self) -> String {
        let mut families = self.own.gather();
        families.extend(self.shared.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        encode(families)
    }
}

/// `GET /metrics` for a route that holds [`ServerMetrics`] as data.
#[poem::handler]
pub fn metrics_endpoint(metrics: poem::web::Data<&ServerMetrics>) -> Response {
    use poem::IntoResponse as _;
    metrics
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}

/// `text` (human) or `json` log lines, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(json: bool) {
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = log_subscriber(json, filter, std::io::stderr).try_init();
}

/// The log format of both servers, writing to `writer`.
fn log_subscriber<W>(
    json: bool,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        )
    } else {
        Box::new(builder.fmt_fields(EscapedFields).finish())
    }
}

/// `text` with every control character escaped (`\n`, `\r`, `\t`, else `\u{…}`), and the
/// Unicode line and paragraph separators with them: nothing in it can end a log line or steer
/// the terminal that shows the log.
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for character in self.0.chars() {
            match character {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                    write!(f, "\\u{{{:x}}}", u32::from(c))?
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The text format's fields as tracing-subscriber writes them by default (the message bare,
/// others `name=value`, strings quoted, the `log.*` fields of bridged `log` records left
/// out), every value passed through [`Escaped`].
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'w> tracing_subscriber::field::MakeVisitor<tracing_subscriber::fmt::format::Writer<'w>>
    for EscapedFields
{
    type Visitor = EscapedFieldsVisitor<'w>;

    fn make_visitor(&self, writer: tracing_subscriber::fmt::format::Writer<'w>) -> Self::Visitor {
        EscapedFieldsVisitor {
            writer,
            result: Ok(()),
            first: true,
        }
    }
}

/// Writes the fields of one span or event for [`EscapedFields`].
pub struct EscapedFieldsVisitor<'w> {
    writer: tracing_subscriber::fmt::format::Writer<'w>,
    result: std::fmt::Result,
    first: bool,
}

impl EscapedFieldsVisitor<'_> {
    fn write(&mut self, field: &tracing::field::Field, text: &str) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        self.result = match name {
            "message" => write!(self.writer, "{separator}{}", Escaped(text)),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.writer, "{separator}{name}={}", Escaped(text))
            }
        };
    }
}

impl tracing::field::Visit for EscapedFieldsVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

impl tracing_subscriber::field::VisitOutput<std::fmt::Result> for EscapedFieldsVisitor<'_> {
    fn finish(self) -> std::fmt::Result {
        self.result
    }
}

impl tracing_subscriber::field::VisitFmt for EscapedFieldsVisitor<'_> {
    fn writer(&mut self) -> &mut dyn std::fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use poem::EndpointExt as _;

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
        type Writer = Self;
        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    const FORGED: &str = "mallory\n2030-01-01T00:00:00.000000Z  INFO auth_server: admin logged in";

    /// Logs, inside a request span, fields of every kind that hold line breaks and terminal
    /// escapes, and returns what the log format wrote.
    fn log_hostile_fields(json: bool) -> String {
        let captured = Captured::default();
        let subscriber = log_subscriber(
            json,
            tracing_subscriber::EnvFilter::new("info"),
            captured.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = %"id\r\nforged=1");
            let _entered = span.enter();
            let text: &str = "c\u{2028}d";
            tracing::info!(
                username = %FORGED,
                client_id = ?"x\ny",
                path = text,
                "refused {}",
                "m\u{1b}[2J\u{85}n"
            );
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn client_strings_cannot_forge_text_log_lines() {
        let log = log_hostile_fields(false);
        assert_eq!(log.lines().count(), 1, "{log}");
        for escaped in [
            r"username=mallory\n2030-01-01T00:00:00.000000Z  INFO auth_server: admin logged in",
            r#"client_id="x\ny""#,
            r#"path="c\u{2028}d""#,
            r"refused m\u{1b}[2J\u{85}n",
            r"request_id=id\r\nforged=1",
        ] {
            assert!(log.contains(escaped), "{escaped} not in {log}");
        }
        let raw: Vec<char> = log
            .trim_end_matches('\n')
            .chars()
            // ESC starts the level's colour when the format uses ANSI colours.
            .filter(|c| (c.is_control() && *c != '\u{1b}') || *c == '\u{2028}')
            .collect();
        assert!(raw.is_empty(), "{raw:?} in {log:?}");
        assert!(
            !log.contains("\u{1b}[2J"),
            "the client's terminal escape is escaped"
        );
    }

    #[test]
    fn client_strings_cannot_forge_json_log_lines() {
        let log = log_hostile_fields(true);
        assert_eq!(log.lines().count(), 1, "{log}");
        let line: serde_json::Value = serde_json::from_str(log.trim_end()).unwrap();
        assert_eq!(
            line["username"], FORGED,
            "the value is kept, escaped by JSON"
        );
        assert_eq!(line["span"]["request_id"], "id\r\nforged=1");
    }

    /// Calls `app` with a request of `method` on `path` and returns the status.
    async fn status_of(app: &impl Endpoint<Output = Response>, method: Method, path: &str) -> u16 {
        let request = Request::builder()
            .method(method)
            .uri(path.parse::<poem::http::Uri>().unwrap())
            .finish();
        app.call(request).await.unwrap().status().as_u16()
    }

    /// The `method` label of every `http_requests_total` series on the page, with its value.
    fn method_labels(page: &str) -> Vec<(String, f64)> {
        page.lines()
            .filter_map(|line| line.strip_prefix("http_requests_total{"))
            .map(|rest| {
                let method = rest.split("method=\"").nth(1).unwrap();
                let method = &method[..method.find('"').unwrap()];
                let value = rest.rsplit(' ').next().unwrap().parse().unwrap();
                (method.to_owned(), value)
            })
            .collect()
    }

    fn livez_app(registry: &Registry) -> impl Endpoint<Output = Response> {
        let metrics = HttpMetrics::new(registry, &["/livez", "/teapot"]).unwrap();
        poem::Route::new()
            .at("/livez", poem::get(poem::endpoint::make_sync(|_| "ok")))
            .at(
                "/teapot",
                poem::endpoint::make_sync(|_| poem::http::StatusCode::IM_A_TEAPOT),
            )
            .with(RequestLog::new(metrics))
    }

    /// HTTP allows extension methods (RFC 9110 §9.1): a client that makes one up per request
    /// must not make a series per request. The standard methods are labelled as themselves,
    /// any other as `other`.
    #[tokio::test]
    async fn made_up_methods_share_one_method_label() {
        let registry = Registry::new();
        let app = livez_app(&registry);
        for n in 0..50 {
            let method = Method::from_bytes(format!("RANDOM{n}").as_bytes()).unwrap();
            status_of(&app, method, "/livez").await;
        }
        let standard = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
        ];
        for method in &standard {
            status_of(&app, method.clone(), "/livez").await;
        }

        let page = render(&registry);
        assert!(!page.contains("RANDOM"), "{page}");
        let labels = method_labels(&page);
        let other: f64 = labels
            .iter()
            .filter(|(method, _)| method == "other")
            .map(|(_, value)| value)
            .sum();
        assert_eq!(other, 50.0, "{page}");
        let mut names: Vec<&str> = labels.iter().map(|(method, _)| method.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut expected: Vec<&str> = standard.iter().map(Method::as_str).collect();
        expected.push("other");
        expected.sort_unstable();
        assert_eq!(names, expected, "{page}");
        let histograms = page
            .lines()
            .filter(|line| line.starts_with("http_request_duration_seconds_count{"))
            .count();
        assert_eq!(histograms, expected.len(), "{page}");
    }

    /// A series appears once a request has used it, with the count of its requests: common and
    /// rare statuses, known and unknown routes.
    #[tokio::test]
    async fn series_appear_when_used_and_count_every_request() {
        let registry = Registry::new();
        let app = livez_app(&registry);
        assert!(
            !render(&registry).contains("http_request"),
            "no series before the first request"
        );
        for _ in 0..3 {
            assert_eq!(status_of(&app, Method::GET, "/livez").await, 200);
            assert_eq!(status_of(&app, Method::GET, "/teapot").await, 418);
            assert_eq!(status_of(&app, Method::GET, "/nowhere").await, 404);
        }
        assert_eq!(status_of(&app, Method::POST, "/livez").await, 405);

        let page = render(&registry);
        let requests: Vec<&str> = page
            .lines()
            .filter(|line| line.starts_with("http_requests_total{"))
            .collect();
        assert_eq!(
            requests,
            [
                r#"http_requests_total{method="GET",route="/livez",status="200"} 3"#,
                r#"http_requests_total{method="GET",route="/teapot",status="418"} 3"#,
                r#"http_requests_total{method="GET",route="other",status="404"} 3"#,
                r#"http_requests_total{method="POST",route="/livez",status="405"} 1"#,
            ],
            "{page}"
        );
        let counts: Vec<&str> = page
            .lines()
            .filter(|line| line.starts_with("http_request_duration_seconds_count{"))
            .collect();
        assert_eq!(
            counts,
            [
                r#"http_request_duration_seconds_count{method="GET",route="/livez"} 3"#,
                r#"http_request_duration_seconds_count{method="GET",route="/teapot"} 3"#,
                r#"http_request_duration_seconds_count{method="GET",route="other"} 3"#,
                r#"http_request_duration_seconds_count{method="POST",route="/livez"} 1"#,
            ],
            "{page}"
        );
    }

    #[test]
    fn method_labels_name_the_standard_methods() {
        for (index, method) in METHODS.iter().enumerate() {
            assert_eq!(method_index(method), index);
            assert_eq!(METHOD_LABELS[index], method.as_str());
        }
        assert_eq!(METHOD_LABELS[METHODS.len()], "other");
        for made_up in [
            "get",
            "QUERY",
            "PROPFIND",
            "RANDOM123",
            "A-VERY-LONG-MADE-UP-METHOD",
        ] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_index(&method), METHODS.len(), "{made_up}");
        }
    }

    #[test]
    fn made_request_ids_are_the_start_and_a_counter_in_hex() {
        for n in [0, 1, 9, 10, 0xf, 0x10, 0xabc, 1 << 52, u64::MAX] {
            let mut buffer = [0_u8; 33];
            let end = write_hex(&mut buffer, 3, n);
            assert_eq!(&buffer[3..end], format!("{n:x}").as_bytes());
        }
        let first = new_request_id().unwrap();
        let second = new_request_id().unwrap();
        assert_ne!(first, second);
        for id in [&first, &second] {
            assert!(usable_request_id(id), "{id:?}");
            let text = id.to_str().unwrap();
            let (start, count) = text.split_once('-').unwrap();
            assert!(u64::from_str_radix(start, 16).unwrap() > 0, "{text}");
            u64::from_str_radix(count, 16).unwrap();
        }
    }

    /// The echo rule, byte by byte and by length: letters, digits and `-_.:`, 1 to 128 of them.
    #[test]
    fn only_short_plain_request_ids_are_echoed() {
        for byte in 0..=u8::MAX {
            let Ok(value) = HeaderValue::from_bytes(&[byte]) else {
                continue;
            };
            let plain = byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte);
            assert_eq!(usable_request_id(&value), plain, "{byte:#x}");
        }
        let echoed = |id: &str| usable_request_id(&HeaderValue::from_str(id).unwrap());
        assert!(echoed("abc-123_x.y:z"));
        assert!(echoed(&"a".repeat(128)));
        assert!(!echoed(&"a".repeat(129)));
        assert!(!echoed(""));
        assert!(!echoed("abc 123"));
        assert!(!echoed(r#"x", "level":"ERROR"#));
    }

    #[test]
    fn escaping_leaves_plain_text_alone() {
        assert_eq!(
            Escaped("alice é 日本 \"q\" \\").to_string(),
            "alice é 日本 \"q\" \\"
        );
        assert_eq!(Escaped("a\u{0}b\u{7f}").to_string(), r"a\u{0}b\u{7f}");
    }
}
