//! A token endpoint on an ephemeral port for the tests: real HTTP over hyper, counting the
//! requests it gets and answering from a script before it issues tokens `token-1`, `token-2`…
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use oauth2_token_source::{ClientSecret, Config, ConfigBuilder, Endpoint};

/// An answer the endpoint gives instead of a token.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Reply {
    pub fn busy(status: u16, retry_after: Option<u64>) -> Self {
        Self {
            status,
            retry_after,
            body: String::new(),
        }
    }

    pub fn oauth(status: u16, error: &str, description: &str) -> Self {
        Self {
            status,
            retry_after: None,
            body: format!(r#"{{"error":"{error}","error_description":"{description}"}}"#),
        }
    }
}

#[derive(Default)]
pub struct State {
    /// Token requests received.
    pub requests: AtomicUsize,
    /// When each token request arrived.
    pub arrivals: Mutex<Vec<Instant>>,
    /// Answers given, in order, before tokens are issued.
    pub script: Mutex<VecDeque<Reply>>,
    /// Answered to every token request when set, once the script is spent.
    pub always: Mutex<Option<Reply>>,
    pub expires_in: AtomicU64,
    /// The Authorization header and form of the last token request.
    pub last_authorization: Mutex<Option<String>>,
    pub last_form: Mutex<String>,
    /// Tokens `/api` answers 401 for.
    pub rejected: Mutex<HashSet<String>>,
    /// Requests to `/api` with their Authorization header.
    pub api_calls: Mutex<Vec<String>>,
    /// Whether `/.well-known/oauth-authorization-server` is 404 (the OpenID fallback answers).
    pub rfc8414_missing: std::sync::atomic::AtomicBool,
    /// The `token_endpoint` the metadata names, when not this server's `/token`.
    pub token_endpoint: Mutex<Option<String>>,
    pub issued: AtomicUsize,
}

pub struct TokenServer {
    pub url: String,
    pub state: Arc<State>,
    /// While `true`, token requests wait before they are answered.
    pub hold: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        state.expires_in.store(300, Ordering::SeqCst);
        let (hold, held) = tokio::sync::watch::channel(false);
        let (served, issuer) = (state.clone(), url.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, held, issuer) = (served.clone(), held.clone(), issuer.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(state.clone(), held.clone(), issuer.clone(), request)
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self {
            url,
            state,
            hold,
            task,
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    pub fn expires_in(&self, seconds: u64) {
        self.state.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// A configuration for the client `svc` against this endpoint.
    pub fn config(&self) -> ConfigBuilder {
        Config::builder(
            Endpoint::Token(self.token_url().parse().unwrap()),
            "svc",
            ClientSecret::new("the-client-secret"),
        )
        .max_retry_wait(Duration::from_secs(5))
    }

    /// Polls until `condition` holds, for at most ten seconds.
    pub async fn until(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition(self) {
            assert!(Instant::now() < deadline, "{what}: not within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn respond(status: u16, retry_after: Option<u64>, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store");
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

async fn answer(
    state: Arc<State>,
    mut held: tokio::sync::watch::Receiver<bool>,
    issuer: String,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let token_endpoint = state.token_endpoint.lock().unwrap().clone();
    let token_endpoint = token_endpoint.unwrap_or_else(|| format!("{issuer}/token"));
    let metadata = format!(r#"{{"issuer":"{issuer}","token_endpoint":"{token_endpoint}"}}"#);
    match path.as_str() {
        "/.well-known/oauth-authorization-server" => {
            if state.rfc8414_missing.load(Ordering::SeqCst) {
                return Ok(respond(404, None, String::new()));
            }
            return Ok(respond(200, None, metadata));
        }
        "/.well-known/openid-configuration" => return Ok(respond(200, None, metadata)),
        "/api" => {
            let authorization = authorization.unwrap_or_default();
            state.api_calls.lock().unwrap().push(authorization.clone());
            let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
            let status = if state.rejected.lock().unwrap().contains(token) {
                401
            } else {
                200
            };
            return Ok(respond(status, None, "{}".into()));
        }
        "/token" => {}
        _ => return Ok(respond(404, None, String::new())),
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.arrivals.lock().unwrap().push(Instant::now());
    *state.last_authorization.lock().unwrap() = authorization;
    *state.last_form.lock().unwrap() = String::from_utf8(body.to_vec()).unwrap();
    let _ = held.wait_for(|held| !*held).await;
    let scripted = state.script.lock().unwrap().pop_front();
    let scripted = scripted.or_else(|| state.always.lock().unwrap().clone());
    if let Some(reply) = scripted {
        return Ok(respond(reply.status, reply.retry_after, reply.body));
    }
    let number = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    Ok(respond(
        200,
        None,
        format!(
            r#"{{"access_token":"token-{number}","token_type":"Bearer","expires_in":{expires_in}}}"#
        ),
    ))
}
