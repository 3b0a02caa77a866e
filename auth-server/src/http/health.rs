//! Liveness and readiness, for load balancers and orchestrators.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::AppState;

#[derive(Object)]
pub struct Health {
    /// `ok`, or what is missing.
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

pub struct HealthApi(pub Arc<AppState>);

#[OpenApi]
impl HealthApi {
    /// The process is alive
    #[oai(path = "/livez", method = "get")]
    async fn livez(&self) -> LiveReply {
        LiveReply::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Ready: the store answers and a signing key is loaded
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> HealthReply {
        let grants = &self.0.grants;
        let store =
            tokio::time::timeout(std::time::Duration::from_secs(2), grants.store.ping()).await;
        match store {
            Ok(Ok(())) if grants.tokens.keys().published().next().is_some() => {
                HealthReply::Ok(Json(Health {
                    status: "ok".into(),
                }))
            }
            Ok(Ok(())) => HealthReply::Unavailable(Json(Health {
                status: "no signing key".into(),
            })),
            _ => HealthReply::Unavailable(Json(Health {
                status: "store unavailable".into(),
            })),
        }
    }
}
