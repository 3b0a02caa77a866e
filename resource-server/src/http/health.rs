//! Liveness and readiness: ready while the verifier holds signing keys it may use, that is,
//! once they have been fetched and until they have been stale for longer than
//! `RS_JWKS_MAX_STALE` (then tokens are refused, and the load balancer should send them
//! elsewhere).

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use shared::verifier::Readiness;
use shared::Verifier;

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

    /// Ready while the auth-server's keys are held and not too stale to use
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
            _ => unavailable("signing keys not usable".into()),
        }
    }
}
