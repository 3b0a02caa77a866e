//! Talking to Redis: the kinds of request, the connections they go through, when one is sent
//! again, and what its errors mean for the store; URLs with a key prefix and passwords kept out
//! of messages.

use redis::aio::ConnectionLike;
use redis::{ErrorKind, FromRedisValue, RedisError, RedisResult, ServerErrorKind};

use super::{EXPIRY_GRACE_SECS, MAX_EXPIRE_AT};
use crate::store::StoreError;

/// One request to Redis: a command, a pipeline (or `MULTI` block) or a script.
#[derive(Clone, Copy)]
pub(super) enum Request<'a> {
    Command(&'a redis::Cmd),
    Pipeline(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'a>),
}

impl Request<'_> {
    /// Sends the request once through `connection` (any of the store's connections).
    pub(super) async fn run<T: FromRedisValue, C: ConnectionLike + Send>(
        self,
        connection: &mut C,
    ) -> RedisResult<T> {
        match self {
            Self::Command(command) => command.query_async(connection).await,
            Self::Pipeline(pipeline) => pipeline.query_async(connection).await,
            Self::Script(invocation) => invocation.invoke_async(connection).await,
        }
    }
}

/// When a request that failed on the connection is sent once more (see the module doc).
#[derive(Clone, Copy)]
pub(super) enum Resend {
    /// After any connection failure: a read, or a write that leaves the same state when it runs
    /// twice.
    Always,
    /// Only when the request cannot have run: the connection was refused, or a replica (a
    /// demoted primary) refused the write.
    IfNotSent,
}

impl Resend {
    pub(super) fn allows(self, err: &RedisError) -> bool {
        let not_run = err.is_connection_refusal() || refused_by_a_replica(err);
        match self {
            Self::Always => not_run || err.is_connection_dropped(),
            Self::IfNotSent => not_run,
        }
    }
}

/// `READONLY`: the node is a replica and wrote nothing (a write command is refused; a script
/// stops at its first write, having written nothing before it). After a failover, the old
/// primary answers so until the store moves to the new one.
pub(super) fn refused_by_a_replica(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

/// Splits an optional `prefix` query parameter off `url`; the rest goes to the Redis client.
pub(super) fn split_prefix(url: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), None);
    };
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let Some(prefix) = pairs
        .iter()
        .find(|(name, _)| name == "prefix")
        .map(|(_, value)| value.clone())
    else {
        return (url.to_owned(), None);
    };
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(name, _)| name != "prefix").collect();
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    (parsed.to_string(), Some(prefix))
}

/// Removes the URL's password, as written and as decoded, from a message, should the client
/// library ever quote it.
pub(super) fn scrub_password(url: &str, message: &str) -> String {
    let Some(password) = url::Url::parse(url)
        .ok()
        .and_then(|parsed| parsed.password().map(str::to_owned))
    else {
        return message.to_owned();
    };
    let mut scrubbed = message.to_owned();
    for secret in [percent_decode(&password), password] {
        if !secret.is_empty() {
            scrubbed = scrubbed.replace(&secret, "[redacted]");
        }
    }
    scrubbed
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

pub(super) fn store_error(err: RedisError) -> StoreError {
    let corrupt = matches!(
        err.kind(),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType
    ) || err.code() == Some("WRONGTYPE");
    if corrupt {
        StoreError::Corrupt(err.to_string())
    } else {
        StoreError::Unavailable(err.to_string())
    }
}

/// The `EXPIREAT` time for data that stops mattering at `expires_at`.
pub(super) fn expire_at(expires_at: u64) -> u64 {
    expires_at
        .saturating_add(EXPIRY_GRACE_SECS)
        .min(MAX_EXPIRE_AT)
}
