//! Liveness and readiness, for load balancers and orchestrators. Readiness fails closed: a
//! replica that has not read the signing-key states for three sync intervals is drained, as it
//! may still sign with a key revoked meanwhile.

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

    /// Ready: the key states were read within three sync intervals, the store answers and a
    /// signing key is loaded
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> HealthReply {
        // First, and without I/O: a replica that cannot read the key states may sign with a
        // revoked key (see `keys::lifecycle`), whatever the store answers to a ping.
        let sync = self.0.keys.sync_health();
        self.0
            .metrics
            .signing_keys_stale
            .set(i64::from(sync.is_stale()));
        if sync.is_stale() {
            return HealthReply::Unavailable(Json(Health {
                status: format!(
                    "signing-key states not read for {} s (three sync intervals are {} s)",
                    sync.since_last_read.as_secs(),
                    sync.stale_after.as_secs()
                ),
            }));
        }
        let state = &self.0;
        let store =
            tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
        match store {
            Ok(Ok(())) if state.tokens.keys().published().next().is_some() => {
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
