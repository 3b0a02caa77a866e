//! JSON bodies that cross the wire between the auth-server, its clients and resource servers.

use poem_openapi::Object;
use serde::{Deserialize, Serialize};

/// Successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope, space-delimited.
    pub scope: String,
}

/// Error response (RFC 6749 §5.2, RFC 6750 §3, RFC 7009 §2.2.1): the verifier's, so that an
/// OpenAPI document showing both the servers' errors and the bearer refusals names one schema.
pub use oauth2_jwt_verifier::poem::ErrorResponse;

/// Authorization server metadata (RFC 8414 §2): the subset a client or verifier reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Extension member: the auth-server's revocation feed ([`RevocationFeed`]), which
    /// verifiers poll to refuse revoked tokens; absent, there is none to poll.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_feed_endpoint: Option<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_documentation: Option<String>,
}

/// The revocation feed (`GET /revocations` at the auth-server): what verifiers that check tokens
/// locally must refuse besides expiry. It names no user, client or token: a token by its `jti`,
/// subjects and clients by the SHA-256 of their name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct RevocationFeed {
    /// Ask again with `since=` this (or `If-None-Match`) for what comes after it.
    pub cursor: String,
    /// True: the whole current set, which replaces what the holder has. False: only entries
    /// recorded after the cursor asked about, which the holder adds.
    pub complete: bool,
    #[serde(default)]
    pub tokens: Vec<RevokedToken>,
    #[serde(default)]
    pub subjects: Vec<RevokedSubject>,
    #[serde(default)]
    pub clients: Vec<RevokedClient>,
}

/// Refuse the token with this `jti`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct RevokedToken {
    pub jti: String,
    /// Unix time after which the holder drops the entry.
    pub until: u64,
}

/// Refuse tokens whose `sub` has this digest and whose `iat` is before `not_before`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct RevokedSubject {
    /// base64url (unpadded) SHA-256 of the UTF-8 `sub`.
    pub sub_sha256: String,
    pub not_before: u64,
    /// Unix time after which the holder drops the entry.
    pub until: u64,
}

/// Refuse tokens whose `client_id` has this digest and whose `iat` is before `not_before`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct RevokedClient {
    /// base64url (unpadded) SHA-256 of the UTF-8 `client_id`.
    pub client_id_sha256: String,
    pub not_before: u64,
    /// Unix time after which the holder drops the entry.
    pub until: u64,
}
