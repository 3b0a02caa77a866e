//! What the crypto alone allows on this machine, measured with the servers' own code and
//! parameters, so that `bench/run` can print each endpoint's rate as a share of its limit:
//!
//! - `sign`: auth-server's `SigningKey::sign_jwt` (aws-lc-rs, key parsed once) over the claims of
//!   a user token, the one RSA operation of every token the server mints;
//! - `verify`: the RS256 signature check of a user token with the key as `oauth2_jwt_verifier::Verifier`
//!   holds it (aws-lc-rs `ParsedPublicKey`, parsed once per key set), the one RSA operation of
//!   every `/users/me`;
//! - `verify_rsa` (for information): the same check with the key built from its components on
//!   every call, as `jsonwebtoken` does it;
//! - `verify_jwt` (for information): `jsonwebtoken::decode` with a `Validation` equal to the
//!   verifier's rules (header, signature, claims), the library's complete verification;
//! - `verifier` (for information): `oauth2_jwt_verifier::Verifier::verify` itself, with the key held and its
//!   cache off: the signature plus header, claims and their checks;
//! - `argon2`: `passwords::verify_blocking` against a hash at the server's parameters: the
//!   server's own check, in a working area allocated per check (the server's workers keep one).
//!
//! Each is run on 1 and 2 threads (`--threads`). Output on stdout, one line per measurement,
//! tab-separated: `limit NAME THREADS OPS_PER_SECOND`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use benchmarks::{
    decoding_key, key_set, now, ops_per_second, signing_key, user_claims, verifier_validation,
    AUDIENCE, ISSUER,
};
use clap::Parser;
use oauth2_jwt_verifier::{AccessClaims, Verifier, VerifierConfig};

#[derive(Parser)]
#[command(about = "Measures sign, verify and Argon2id rates with the servers' own code")]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Thread counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Sign with the newest key of this keys directory instead of a new key.
    #[arg(long)]
    keys_dir: Option<PathBuf>,
    /// Measurements to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sign,verify,verify_rsa,verify_jwt,verifier,argon2"
    )]
    only: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let key = signing_key(args.keys_dir.as_deref())?;
    let claims_json = serde_json::to_vec(&user_claims(now()))?;
    let token = key.sign_jwt(&claims_json)?;
    let keys = key_set(&key)?;
    let parsed = keys
        .get(key.kid())
        .ok_or_else(|| anyhow!("the key set lacks the key"))?;
    let decoding_key = decoding_key(&key)?;
    let validation = verifier_validation(ISSUER, AUDIENCE);

    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| anyhow!("a signed token has three parts"))?;
    let signature = URL_SAFE_NO_PAD.decode(signature)?;
    let jwk = key.jwk();
    let component = |name: &str| -> anyhow::Result<Vec<u8>> {
        let text = jwk[name]
            .as_str()
            .ok_or_else(|| anyhow!("the JWK lacks {name}"))?;
        Ok(URL_SAFE_NO_PAD.decode(text)?)
    };
    let public = RsaPublicKeyComponents {
        n: component("n")?,
        e: component("e")?,
    };

    let mut config = VerifierConfig::new(ISSUER.parse()?, AUDIENCE);
    config.unknown_kid_cooldown = Duration::from_secs(24 * 3600);
    config.token_cache_capacity = 0;
    let verifier = Verifier::with_keys(config, key_set(&key)?)?;

    let password = "correct horse battery staple";
    let hash = auth_server::passwords::hash_blocking(password)?;

    for name in &args.only {
        for &threads in &args.threads {
            let rate = match name.as_str() {
                "sign" => ops_per_second(threads, duration, || {
                    key.sign_jwt(&claims_json)?;
                    Ok(())
                }),
                "verify" => ops_per_second(threads, duration, || {
                    parsed
                        .verify_sig(signing_input.as_bytes(), &signature)
                        .map_err(|_| anyhow!("the signature does not verify"))
                }),
                "verify_jwt" => ops_per_second(threads, duration, || {
                    jsonwebtoken::decode::<AccessClaims>(&token, &decoding_key, &validation)?;
                    Ok(())
                }),
                "verify_rsa" => ops_per_second(threads, duration, || {
                    public
                        .verify(
                            &RSA_PKCS1_2048_8192_SHA256,
                            signing_input.as_bytes(),
                            &signature,
                        )
                        .map_err(|_| anyhow!("the signature does not verify"))
                }),
                // `verify` returns at once for a known kid; a current-thread runtime per thread
                // polls it.
                "verifier" => {
                    let verifier = &verifier;
                    let token = &token;
                    ops_per_second(threads, duration, move || {
                        block_on(verifier.verify(token))??;
                        Ok(())
                    })
                }
                "argon2" => ops_per_second(threads, duration, || {
                    match auth_server::passwords::verify_blocking(password, &hash) {
                        auth_server::passwords::Verdict::Valid { .. } => Ok(()),
                        auth_server::passwords::Verdict::Invalid => {
                            Err(anyhow!("the password does not verify"))
                        }
                    }
                }),
                other => Err(anyhow!("unknown measurement {other}")),
            }
            .with_context(|| format!("measuring {name} on {threads} threads"))?;
            println!("limit\t{name}\t{threads}\t{rate:.0}");
            eprintln!("limits: {name:<10} {threads} thread(s) {rate:>9.0}/s");
        }
    }
    Ok(())
}

/// Polls a future that is ready without waiting on I/O (a verification with the key held) on
/// a current-thread runtime of the calling thread.
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    thread_local! {
        static RUNTIME: Option<tokio::runtime::Runtime> =
            tokio::runtime::Builder::new_current_thread().build().ok();
    }
    RUNTIME.with(|runtime| {
        runtime
            .as_ref()
            .map(|runtime| runtime.block_on(future))
            .ok_or_else(|| anyhow!("no tokio runtime for this thread"))
    })
}
