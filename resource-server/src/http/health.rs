//! Liveness and readiness: ready once the signing keys have been fetched.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
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

    /// Ready once the auth-server's keys have been fetched
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> HealthReply {
        if self.0.is_ready() {
            HealthReply::Ok(Json(Health {
                status: "ok".into(),
            }))
        } else {
            HealthReply::Unavailable(Json(Health {
                status: "signing keys not fetched yet".into(),
            }))
        }
    }
}
