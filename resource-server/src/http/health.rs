//! Liveness and readiness: ready while the verifier holds signing keys it may use, that is,
//! once they have been fetched and until they have been stale for longer than
//! `RS_JWKS_MAX_STALE` (then tokens are refused, and the load balancer should send them
//! elsewhere), and, where the issuer publishes a revocation feed, once the first revocation
//! list has arrived. A list older than `RS_REVOCATION_MAX_STALE` makes the server unready only
//! when it fails closed (`RS_REVOCATION_FAIL_CLOSED`, every token refused); failing open it
//! stays ready and says so in the body, because every replica loses the issuer at once and
//! taking them all out would stop the API that failing open exists to keep up.

use oauth2_jwt_verifier::Readiness;
use oauth2_jwt_verifier::Verifier;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(Object)]
pub struct Health {
    pub status: String,
}

#[derive(ApiResponse)]
pub enum LiveReply {
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(ApiResponse)]
pub enum HealthReply {
    #[oai(status = 200)]
    Ok(Json<Health>),
    #[oai(status = 503)]
    Unavailable(Json<Health>),
}

pub struct HealthApi(pub Verifier);

#[OpenApi]
impl HealthApi {
    /// The process is alive
    #[oai(path = "/livez", method = "get")]
    async fn livez(&self) -> LiveReply {
        LiveReply::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Ready while the auth-server's keys and revocation list are held and not too stale
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> HealthReply {
        let unavailable = |status: String| HealthReply::Unavailable(Json(Health { status }));
        match self.0.readiness() {
            Readiness::Ready => HealthReply::Ok(Json(Health {
                status: "ok".into(),
            })),
            Readiness::NotFetched => unavailable("signing keys not fetched yet".into()),
            Readiness::TooStale { age } => unavailable(format!(
                "signing keys stale: last fetched {} s ago, longer than their lifetime plus \
                 RS_JWKS_MAX_STALE; tokens are refused until the issuer can be reached",
                age.as_secs()
            )),
            Readiness::RevocationsNotFetched => {
                unavailable("revocation list not fetched yet".into())
            }
            Readiness::RevocationsStale { age } => unavailable(format!(
                "revocation list stale: the issuer's revocation feed last answered {} s ago, \
                 longer than RS_REVOCATION_MAX_STALE; tokens are refused \
                 (RS_REVOCATION_FAIL_CLOSED) until it answers",
                age.as_secs()
            )),
            // Failing open, every replica is in the same state: taking them all out of the load
            // balancer would stop every API. Ready, saying what is wrong.
            Readiness::ReadyWithStaleRevocations { age } => HealthReply::Ok(Json(Health {
                status: format!(
                    "ok; revocation list stale: the issuer's revocation feed last answered {} s \
                     ago, longer than RS_REVOCATION_MAX_STALE; revocations since are not known \
                     here",
                    age.as_secs()
                ),
            })),
            _ => unavailable("signing keys not usable".into()),
        }
    }
}
