//! Certificates for tests of TLS to Redis. A deployment's certificates come from its own CA, so
//! the tests make one of their own per run: a CA, a server certificate for the names a test
//! connects to, and a client certificate for mutual TLS, all as PEM files in a temporary
//! directory, the form `redis-server` and the auth-server read them in.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use crate::redis::RedisServer;

/// Whether a TLS server asks its clients for a certificate (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    /// `yes`: a client without a certificate from the CA is refused (mutual TLS).
    Required,
    /// `no`: the server does not ask for one.
    NotAsked,
}

/// What the kit connects to a TLS server with: the CA and the client certificate and key.
#[derive(Clone)]
pub(crate) struct TlsFiles {
    pub(crate) ca: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
}

/// Makes aws-lc-rs the process's rustls provider unless one is set: the build enables more
/// than one, and then rustls picks none by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The names the server certificate of [`TestPki::new`] is valid for.
pub const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A CA of its own and the certificates it signed, as PEM files that live as long as this.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// A fresh CA, a server certificate for [`SERVER_NAMES`] and a client certificate.
    pub fn new() -> Self {
        Self::for_server_names(&SERVER_NAMES)
    }

    /// As [`TestPki::new`], with a server certificate valid for `names` only: a test that
    /// connects to 127.0.0.1 with a certificate for another name shows the hostname check.
    pub fn for_server_names(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("creating a directory for test certificates");
        let ca_key = KeyPair::generate().expect("generating the test CA's key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test-kit CA");
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .expect("self-signing the test CA");
        let ca = Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text)
                .unwrap_or_else(|err| panic!("writing {name}: {err}"))
        };
        write("ca.pem", ca_cert.pem());
        for (stem, names, purpose) in [
            (
                "server",
                names.iter().map(|name| (*name).to_owned()).collect(),
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "client",
                vec!["auth-server".to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().expect("generating a test key");
            let mut params = CertificateParams::new(names).expect("certificate parameters");
            params.distinguished_name.push(DnType::CommonName, stem);
            params.extended_key_usages = vec![purpose];
            let cert = params
                .signed_by(&key, &ca)
                .expect("signing a test certificate");
            write(&format!("{stem}.pem"), cert.pem());
            write(&format!("{stem}.key"), key.serialize_pem());
        }
        Self { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA's certificate: what `--tls-ca-cert-file` and `AUTH_REDIS_CA_FILE` take.
    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.pem")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.file("server.pem")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The client certificate for mutual TLS (`AUTH_REDIS_CLIENT_CERT`).
    pub fn client_cert_file(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client certificate's key (`AUTH_REDIS_CLIENT_KEY`).
    pub fn client_key_file(&self) -> PathBuf {
        self.file("client.key")
    }

    /// The directory that holds the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A TLS-only Redis that requires client certificates, with the certificates to reach it.
pub struct TlsRedis {
    pub pki: TestPki,
    pub server: RedisServer,
}

/// One [`TlsRedis`] for the whole test process, started on first use, so that a suite of
/// tests shares one server as they share the plain one ([`crate::redis::shared_url`]); each
/// test works under a key prefix of its own. Panics, saying why, when it cannot start.
pub fn shared_tls_redis() -> &'static TlsRedis {
    static SHARED: OnceLock<TlsRedis> = OnceLock::new();
    SHARED.get_or_init(|| {
        let pki = TestPki::new();
        let server = RedisServer::start_tls(&pki, ClientCerts::Required);
        TlsRedis { pki, server }
    })
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_server_answers_with_the_test_certificates_and_only_over_tls() {
        let pki = TestPki::new();
        let server = RedisServer::start_tls(&pki, ClientCerts::Required);
        assert!(server.url().starts_with("rediss://127.0.0.1:"));
        drop(pki);
        let mut connection = server.connect().unwrap();
        let pong: String = redis::cmd("PING").query(&mut connection).unwrap();
        assert_eq!(pong, "PONG");
        let plain = format!("redis://127.0.0.1:{}/0", server.port());
        let answer = redis::Client::open(plain)
            .unwrap()
            .get_connection_with_timeout(std::time::Duration::from_secs(1))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
        assert!(answer.is_err(), "plain text on the TLS port must fail");
    }
}
