//! What both servers log and count about every request, in one middleware: a request id (taken
//! from `X-Request-Id` or made), one span per request, one log line with route, status and
//! latency, and the Prometheus request counter and latency histogram.
//!
//! Nothing from the request but its method and path is logged: never a header, body or query,
//! so no token or secret can leak through it.
//!
//! Other modules do log strings a client chose (a username, a client id), so the log format
//! itself escapes control characters in every field of every line ([`EscapedFields`]; the JSON
//! format escapes them as JSON does): a value holding a line break cannot make a line of its own
//! that reads like the server's.

use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing::Instrument;

const REQUEST_ID: &str = "x-request-id";

/// Request metrics, registered in the server's registry.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Paths reported as themselves; any other is reported as `other` to bound cardinality.
    routes: &'static [&'static str],
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
        Ok(Self {
            requests,
            duration,
            routes,
        })
    }

    fn route(&self, path: &str) -> &'static str {
        self.routes
            .iter()
            .find(|r| **r == path)
            .copied()
            .unwrap_or("other")
    }
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

/// A request id is echoed only if it is short and plain, so it cannot forge log lines.
fn usable_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    plain.then(|| text.to_owned())
}

fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    format!("{:x}-{:x}", start, NEXT.fetch_add(1, Ordering::Relaxed))
}

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let request_id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(usable_request_id)
            .unwrap_or_else(new_request_id);
        let route = self.metrics.route(req.uri().path());
        let method = req.method().clone();
        let span =
            tracing::info_span!("request", request_id = %request_id, method = %method, route);
        let mut response = match self.inner.call(req).instrument(span.clone()).await {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        };
        let status = response.status();
        let elapsed = started.elapsed();
        self.metrics
            .requests
            .with_label_values(&[route, method.as_str(), status.as_str()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[route, method.as_str()])
            .observe(elapsed.as_secs_f64());
        span.in_scope(|| {
            tracing::info!(
                status = status.as_u16(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        });
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
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

    #[test]
    fn escaping_leaves_plain_text_alone() {
        assert_eq!(
            Escaped("alice é 日本 \"q\" \\").to_string(),
            "alice é 日本 \"q\" \\"
        );
        assert_eq!(Escaped("a\u{0}b\u{7f}").to_string(), r"a\u{0}b\u{7f}");
    }
}
