//! `GET /revocations`: the revocation feed. Resource servers verify tokens locally and poll this
//! the way they fetch the JWKS, so that a revoked token, a new password or a removed account is
//! refused everywhere within one poll, with no call per request. It is public like the JWKS, so
//! it names tokens by `jti` and users and clients by digests only (see `store::name_digest`).
//!
//! A poll that brings a cursor gets what was recorded after it, or `304` when nothing was: one
//! small read of the store. Any cursor the store cannot continue from (absent, malformed,
//! another store's, older than its purge floor) gets the whole set, never a 4xx, so that a
//! verifier always recovers by polling again.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use server_plumbing::wire::{RevocationFeed, RevokedClient, RevokedSubject, RevokedToken};

use super::error::{FeedErrorReply, NO_STORE};
use super::AppState;
use crate::store::{self, RevocationKind};

#[derive(ApiResponse)]
pub enum FeedReply {
    /// The entries after the cursor asked about (`complete: false`), or the whole set.
    #[oai(status = 200)]
    Ok(
        Json<RevocationFeed>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// Nothing recorded after the cursor asked about.
    #[oai(status = 304)]
    NotModified(
        #[oai(header = "ETag")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

pub struct RevocationsApi(pub Arc<AppState>);

#[OpenApi]
impl RevocationsApi {
    /// Revocation feed
    ///
    /// What a verifier must refuse besides expiry: revoked tokens by `jti`, and tokens issued
    /// before a cut-off to a subject or client, named by the base64url SHA-256 of its `sub` or
    /// `client_id`. Query `since=CURSOR` (or `If-None-Match: "CURSOR"`) with the `cursor` of an
    /// earlier answer for only what came after it; `304` when nothing did. Drop each entry once
    /// its `until` has passed.
    #[oai(path = "/revocations", method = "get")]
    async fn revocations(&self, req: &Request) -> Result<FeedReply, FeedErrorReply> {
        let state = &self.0;
        let since = since(req);
        let feed = state
            .authority
            .revocation_feed(since.as_deref(), state.clock.now())
            .await?;
        let etag = format!("\"{}\"", feed.cursor);
        if !feed.complete && since.as_deref() == Some(feed.cursor.as_str()) {
            return Ok(FeedReply::NotModified(etag, NO_STORE.to_owned()));
        }
        Ok(FeedReply::Ok(
            Json(to_wire(feed)),
            etag,
            NO_STORE.to_owned(),
        ))
    }
}

/// The cursor the request brings: `since` in the query, else the first entity tag of
/// `If-None-Match`. Read by hand, leniently: whatever a client sends here is at worst no cursor.
fn since(req: &Request) -> Option<String> {
    let query = req.uri().query().unwrap_or_default();
    if let Some((_, value)) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "since")
    {
        return Some(value.into_owned());
    }
    let header = req
        .headers()
        .get(poem::http::header::IF_NONE_MATCH)?
        .to_str()
        .ok()?;
    let tag = header.split(',').next()?.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    Some(tag.trim_matches('"').to_owned())
}

fn to_wire(feed: store::RevocationFeed) -> RevocationFeed {
    let mut wire = RevocationFeed {
        cursor: feed.cursor,
        complete: feed.complete,
        tokens: Vec::new(),
        subjects: Vec::new(),
        clients: Vec::new(),
    };
    for entry in feed.entries {
        match entry.kind {
            RevocationKind::Token => wire.tokens.push(RevokedToken {
                jti: entry.key,
                until: entry.until,
            }),
            RevocationKind::Subject => wire.subjects.push(RevokedSubject {
                sub_sha256: entry.key,
                not_before: entry.not_before,
                until: entry.until,
            }),
            RevocationKind::Client => wire.clients.push(RevokedClient {
                client_id_sha256: entry.key,
                not_before: entry.not_before,
                until: entry.until,
            }),
        }
    }
    wire
}
