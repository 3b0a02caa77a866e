//! An issuer on loopback for the adoption tests: metadata at whichever well-known locations a
//! test publishes, a JWKS of a key the test signs with, a revocation feed; over plain HTTP or
//! over TLS with a certificate of a CA the test makes (so that trusting it is the test's
//! choice, never the system's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use test_kit::signer::{unix_now, TestSigner};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;
use url::Url;

/// Where the issuer publishes its metadata.
#[derive(Clone, Copy, Debug)]
pub(super) enum Publishes {
    /// RFC 8414 only.
    Rfc8414,
    /// OpenID Connect Discovery only: the RFC 8414 location answers 404.
    OpenIdOnly,
    /// The RFC 8414 location answers this status; the OpenID document exists too.
    Rfc8414Failing(u16),
    /// OpenID Connect Discovery only, naming another issuer.
    OpenIdOnlyNaming(&'static str),
}

/// A CA made for one test and the certificate it issued to 127.0.0.1.
pub(super) struct TestCa {
    /// The CA's certificate, PEM: what a CA file holds.
    pub(super) pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TestCa {
    pub(super) fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "verifier test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        Self {
            pem: ca_cert.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// Writes the CA's certificate to a file of its own and returns its path.
    pub(super) fn write_pem(&self, name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "verifier-test-ca-{}-{name}.pem",
            std::process::id()
        ));
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

/// The issuer: its base URL, its signing key, and the paths it was asked for.
pub(super) struct TestIssuer {
    pub(super) base: Url,
    pub(super) signer: TestSigner,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestIssuer {
    /// Serves over TLS with `ca`'s certificate when given, plain HTTP otherwise.
    pub(super) async fn start(publishes: Publishes, ca: Option<&TestCa>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if ca.is_some() { "https" } else { "http" };
        let base: Url = format!("{scheme}://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let signer = TestSigner::generate();
        let issuer = base.as_str().trim_end_matches('/').to_owned();
        let metadata = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks.json"),
            "revocation_feed_endpoint": format!("{issuer}/revocations"),
        })
        .to_string();
        let empty_feed = json!({"cursor": "e.1", "complete": true, "tokens": [],
                                "subjects": [], "clients": []});
        let mut routes: HashMap<String, (u16, String)> = HashMap::new();
        routes.insert("/jwks.json".into(), (200, signer.jwks("k1")));
        routes.insert("/revocations".into(), (200, empty_feed.to_string()));
        let rfc8414 = "/.well-known/oauth-authorization-server".to_owned();
        let openid = "/.well-known/openid-configuration".to_owned();
        match publishes {
            Publishes::Rfc8414 => {
                routes.insert(rfc8414, (200, metadata));
            }
            Publishes::OpenIdOnly => {
                routes.insert(openid, (200, metadata));
            }
            Publishes::Rfc8414Failing(status) => {
                routes.insert(rfc8414, (status, "{}".into()));
                routes.insert(openid, (200, metadata));
            }
            Publishes::OpenIdOnlyNaming(other) => {
                let metadata = json!({"issuer": other, "jwks_uri": format!("{issuer}/jwks.json")});
                routes.insert(openid, (200, metadata.to_string()));
            }
        }
        let routes = Arc::new(routes);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = ca.map(|ca| ca.acceptor.clone());
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (routes, recorded, acceptor) =
                    (routes.clone(), recorded.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        // A client that does not trust the CA aborts the handshake: no request.
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(socket).await {
                                answer(tls, &routes, &recorded).await;
                            }
                        }
                        None => answer(socket, &routes, &recorded).await,
                    }
                });
            }
        });
        Self {
            base,
            signer,
            requests,
        }
    }

    /// The paths asked for so far, in order.
    pub(super) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// A token of this issuer for `aud`, valid for 15 minutes, with `extra` claims merged in.
    pub(super) fn token(&self, aud: Value, extra: Value) -> String {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.base.as_str().trim_end_matches('/'), "sub": "alice", "aud": aud,
            "exp": now + 900, "iat": now, "jti": format!("t-{now}-{}", rand_suffix()),
            "client_id": "web", "scope": "read",
        });
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        self.signer.sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
            &claims,
        )
    }
}

/// Distinct `jti`s within one second.
fn rand_suffix() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    routes: &HashMap<String, (u16, String)>,
    recorded: &Mutex<Vec<String>>,
) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let target = head.split(' ').nth(1).unwrap_or("");
    let path = target.split('?').next().unwrap_or("").to_owned();
    recorded.lock().unwrap().push(path.clone());
    let (status, body) = routes.get(&path).cloned().unwrap_or((404, "{}".to_owned()));
    let response = format!(
        "HTTP/1.1 {status} X\r\ncache-control: max-age=300\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
