//! TLS to Redis (`rediss://`), so that the store may cross a network that others share. The
//! server's certificate is always checked, chain and name: a store that could be talked into
//! skipping the check would hand refresh tokens and revocations to whoever sits in between, so
//! there is no way to turn it off (the client library's `#insecure` fragment is refused, and its
//! feature that would honour it is not built). A private CA is given as a PEM file; mutual TLS
//! takes a client certificate and its key, both PEM files. Files are read when the store opens:
//! a missing or unreadable file stops the start with its path named, never its content.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files TLS to Redis takes. All optional: without a CA file the server is checked against
/// the system's trusted roots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM certificates of the CAs that may sign the server's certificate, instead of the
    /// system's roots (`AUTH_REDIS_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to Redis for mutual TLS (`AUTH_REDIS_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (`AUTH_REDIS_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

impl RedisTls {
    /// Whether any file is named, which only a `rediss://` URL can use.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// Whether these files fit the store URL `url`: a client certificate comes with its key,
    /// files only with a `rediss` scheme, and no URL fragment (the client library reads
    /// `#insecure` as "skip the certificate check"). The error names what is wrong.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(
                "AUTH_REDIS_CLIENT_CERT and AUTH_REDIS_CLIENT_KEY go together: set both \
                        for mutual TLS, or neither"
                    .to_owned(),
            );
        }
        // Cluster and Sentinel URLs list several hosts and are no URLs to the `url` crate:
        // look at the text.
        if url.contains('#') {
            return Err(
                "AUTH_STORE: a Redis URL takes no #fragment; the server's certificate \
                        and name are always checked (#insecure is refused)"
                    .to_owned(),
            );
        }
        if self.is_set() && !is_tls_url(url) {
            return Err(
                "AUTH_REDIS_CA_FILE, AUTH_REDIS_CLIENT_CERT and AUTH_REDIS_CLIENT_KEY \
                        need AUTH_STORE=rediss://… (or rediss+sentinel://…, rediss+cluster://…)"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// Whether `url`'s scheme asks for TLS: `rediss://`, `rediss+sentinel://` or `rediss+cluster://`.
pub(super) fn is_tls_url(url: &str) -> bool {
    matches!(
        url.split_once("://").map(|(scheme, _)| scheme),
        Some("rediss" | "rediss+sentinel" | "rediss+cluster")
    )
}

/// The Redis client for `url`: over TLS for `rediss://`, with the files of `tls`.
pub(super) fn client(url: &str, tls: &RedisTls) -> Result<redis::Client, String> {
    tls.check_url(url)?;
    if !url.starts_with("rediss://") {
        return redis::Client::open(url).map_err(|err| err.to_string());
    }
    match certificates(tls)? {
        None => redis::Client::open(url).map_err(|err| err.to_string()),
        Some(certificates) => {
            redis::Client::build_with_tls(url, certificates).map_err(|err| err.to_string())
        }
    }
}

/// The CA and client certificate of `tls`, read from their files; `None` when no file is
/// named, so that the system's roots check the server.
pub(super) fn certificates(tls: &RedisTls) -> Result<Option<redis::TlsCertificates>, String> {
    // The build enables more than one rustls provider, and then rustls picks none by itself.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let root_cert = tls.ca_file.as_deref().map(read_certificates).transpose()?;
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read_certificates(cert)?,
            client_key: read_key(key)?,
        }),
        _ => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return Ok(None);
    }
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// The file at `path`, which must hold at least one PEM certificate.
fn read_certificates(path: &Path) -> Result<Vec<u8>, String> {
    let pem = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => Ok(pem),
        _ => Err(format!("{}: no PEM certificate", path.display())),
    }
}

/// The file at `path`, which must hold a PEM private key. Its content never reaches a message.
fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let pem = read(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(_) => Err(format!(
            "{}: no PEM private key (PKCS #8, PKCS #1 or SEC1)",
            path.display()
        )),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ca: bool, cert: bool, key: bool) -> RedisTls {
        RedisTls {
            ca_file: ca.then(|| PathBuf::from("ca.pem")),
            client_cert: cert.then(|| PathBuf::from("client.pem")),
            client_key: key.then(|| PathBuf::from("client.key")),
        }
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_the_other_way_round() {
        for tls in [files(false, true, false), files(true, false, true)] {
            let err = tls.check_url("rediss://h:6379/0").unwrap_err();
            assert!(err.contains("AUTH_REDIS_CLIENT_CERT and AUTH_REDIS_CLIENT_KEY"));
        }
        assert!(files(true, true, true)
            .check_url("rediss://h:6379/0")
            .is_ok());
        assert!(RedisTls::default().check_url("rediss://h:6379/0").is_ok());
    }

    #[test]
    fn certificate_checks_cannot_be_turned_off_by_the_url() {
        for url in [
            "rediss://h:6379/0#insecure",
            "rediss://h:6379/#insecure",
            "redis://h:6379/0#x",
        ] {
            let err = RedisTls::default().check_url(url).unwrap_err();
            assert!(err.contains("#insecure is refused"), "{url}: {err}");
        }
    }

    #[test]
    fn tls_files_need_a_rediss_url() {
        let err = files(true, false, false)
            .check_url("redis://h:6379/0")
            .unwrap_err();
        assert!(err.contains("need AUTH_STORE=rediss://"), "{err}");
        assert!(RedisTls::default().check_url("redis://h:6379/0").is_ok());
    }

    #[test]
    fn unreadable_or_wrong_files_are_named_and_a_key_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "secret-key-material-not-pem").unwrap();
        let cert = dir.path().join("client.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let tls = RedisTls {
            ca_file: Some(dir.path().join("missing.pem")),
            ..RedisTls::default()
        };
        let err = client("rediss://127.0.0.1:1/0", &tls).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        let tls = RedisTls {
            ca_file: None,
            client_cert: Some(cert),
            client_key: Some(key),
        };
        let err = client("rediss://127.0.0.1:1/0", &tls).unwrap_err();
        assert!(err.contains("client.pem: no PEM certificate"), "{err}");
        let err = read_key(tls.client_key.as_deref().unwrap()).unwrap_err();
        assert!(err.contains("client.key: no PEM private key"), "{err}");
        assert!(!err.contains("secret-key-material"), "{err}");
    }
}

/// Against real `redis-server`s that speak TLS only, with certificates made for the test.
#[cfg(test)]
mod server_tests {
    use test_kit::redis::{ClientCerts, RedisServer};
    use test_kit::tls::TestPki;

    use super::RedisTls;
    use crate::store::redis::RedisStore;
    use crate::store::Store;

    fn trusting(pki: &TestPki) -> RedisTls {
        RedisTls {
            ca_file: Some(pki.ca_file()),
            ..RedisTls::default()
        }
    }

    fn with_client_cert(pki: &TestPki) -> RedisTls {
        RedisTls {
            client_cert: Some(pki.client_cert_file()),
            client_key: Some(pki.client_key_file()),
            ..trusting(pki)
        }
    }

    /// Opens the store and pings it: a handshake refused after it seemed done (TLS 1.3 sends
    /// the server's verdict on a client certificate with its first answer) fails the ping.
    async fn reach(url: &str, tls: &RedisTls) -> Result<(), String> {
        let store = RedisStore::open_with_prefix_tls(url, "tls-test:", tls)
            .await
            .map_err(|err| err.to_string())?;
        store.ping().await.map_err(|err| err.to_string())
    }

    fn with_password(url: &str) -> String {
        url.replacen("rediss://", "rediss://:tls-test-password@", 1)
    }

    #[tokio::test]
    async fn a_server_certificate_from_another_ca_is_refused() {
        let pki = TestPki::new();
        let server = RedisServer::start_tls(&pki, ClientCerts::NotAsked);
        reach(&server.url(), &trusting(&pki))
            .await
            .expect("the server's own CA is trusted");
        let stranger = TestPki::new();
        let err = reach(&with_password(&server.url()), &trusting(&stranger))
            .await
            .expect_err("a certificate from an untrusted CA must be refused");
        assert!(err.contains("certificate"), "{err}");
        assert!(!err.contains("tls-test-password"), "{err}");
        let err = reach(&server.url(), &RedisTls::default())
            .await
            .expect_err("the system's roots do not know the test CA");
        assert!(err.contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn a_certificate_for_another_hostname_is_refused() {
        let pki = TestPki::for_server_names(&["redis.internal"]);
        let server = RedisServer::start_tls(&pki, ClientCerts::NotAsked);
        let err = reach(&server.url(), &trusting(&pki))
            .await
            .expect_err("a certificate for another name must be refused");
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[tokio::test]
    async fn mutual_tls_needs_the_client_certificate_and_works_with_it() {
        let pki = TestPki::new();
        let server = RedisServer::start_tls(&pki, ClientCerts::Required);
        let err = reach(&server.url(), &trusting(&pki))
            .await
            .expect_err("a client without a certificate must be refused");
        // The server's refusal, not ours: our side verified the server and sent no certificate.
        assert!(
            err.contains("received fatal alert: CertificateRequired"),
            "{err}"
        );
        let url = format!("{}?prefix=mtls:", server.url());
        let store = RedisStore::open_tls(&url, &with_client_cert(&pki))
            .await
            .expect("with the client certificate the store opens");
        store.ping().await.expect("and answers");
        let user = crate::store::UserRecord {
            username: "tls-user".to_owned(),
            full_name: None,
            email: None,
            password_hash: "$argon2id$x".to_owned(),
            disabled: false,
            scopes: oauth2_jwt_verifier::Scope::from_tokens(["read"]),
            stamp: "s".to_owned(),
            not_before: 0,
        };
        store.insert_user(&user).await.expect("writes");
        let read = store.user("tls-user").await.expect("reads");
        assert_eq!(read.map(|user| user.username).as_deref(), Some("tls-user"));
        let another_client = TestPki::new();
        let err = reach(&server.url(), &with_client_cert_of(&pki, &another_client))
            .await
            .expect_err("a client certificate from another CA must be refused");
        // Again the server's refusal (a fatal alert), of a certificate its CA did not sign.
        assert!(err.contains("received fatal alert"), "{err}");
    }

    /// Trusts `server_pki`'s CA and presents `client_pki`'s client certificate.
    fn with_client_cert_of(server_pki: &TestPki, client_pki: &TestPki) -> RedisTls {
        RedisTls {
            client_cert: Some(client_pki.client_cert_file()),
            client_key: Some(client_pki.client_key_file()),
            ..trusting(server_pki)
        }
    }
}
