//! What clients and resource servers read before anything else: the RFC 8414 metadata and the
//! RFC 7517 key set. Both are computed from settings and keys and cacheable.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use server_plumbing::wire::ServerMetadata;

use super::AppState;
use crate::store::GrantType;

/// How long clients may cache the metadata. The key set's lifetime follows the key schedule
/// (`keys::lifecycle::Schedule::jwks_max_age`).
pub const CACHE_CONTROL: &str = "public, max-age=300";

#[derive(ApiResponse)]
pub enum MetadataReply {
    /// RFC 8414 §3.2.
    #[oai(status = 200)]
    Ok(
        Json<ServerMetadata>,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(ApiResponse)]
pub enum JwksReply {
    /// RFC 7517 §5: public keys only.
    #[oai(status = 200)]
    Ok(
        Json<serde_json::Value>,
        #[oai(header = "Cache-Control")] String,
    ),
}

pub struct DiscoveryApi(pub Arc<AppState>);

impl DiscoveryApi {
    fn metadata(&self) -> ServerMetadata {
        let settings = &self.0.settings;
        let auth_methods = vec![
            "client_secret_basic".to_owned(),
            "client_secret_post".to_owned(),
        ];
        let mut token_auth_methods = auth_methods.clone();
        if settings.password_grant_without_client {
            token_auth_methods.push("none".to_owned());
        }
        ServerMetadata {
            issuer: settings.issuer_str().to_owned(),
            token_endpoint: settings.endpoint("/token"),
            jwks_uri: settings.endpoint("/.well-known/jwks.json"),
            revocation_endpoint: Some(settings.endpoint("/revoke")),
            introspection_endpoint: Some(settings.endpoint("/introspect")),
            revocation_feed_endpoint: Some(settings.endpoint("/revocations")),
            grant_types_supported: GrantType::ALL
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            response_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: token_auth_methods.clone(),
            revocation_endpoint_auth_methods_supported: token_auth_methods,
            introspection_endpoint_auth_methods_supported: auth_methods,
            scopes_supported: Vec::new(),
            service_documentation: Some(settings.endpoint("/docs")),
        }
    }
}

#[OpenApi]
impl DiscoveryApi {
    /// Authorization server metadata (RFC 8414)
    #[oai(path = "/.well-known/oauth-authorization-server", method = "get")]
    async fn oauth_metadata(&self) -> MetadataReply {
        MetadataReply::Ok(Json(self.metadata()), CACHE_CONTROL.to_owned())
    }

    /// The same metadata, where OpenID Connect clients look for it
    #[oai(path = "/.well-known/openid-configuration", method = "get")]
    async fn openid_configuration(&self) -> MetadataReply {
        MetadataReply::Ok(Json(self.metadata()), CACHE_CONTROL.to_owned())
    }

    /// Signing keys (RFC 7517)
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self) -> JwksReply {
        let keys = self.0.tokens.keys();
        let jwks = serde_json::from_str(keys.jwks_json()).unwrap_or_default();
        let max_age = self.0.keys.schedule().jwks_max_age();
        JwksReply::Ok(Json(jwks), format!("public, max-age={max_age}"))
    }
}
