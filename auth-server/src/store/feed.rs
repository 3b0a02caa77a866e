//! The revocation feed's records and cursors, shared by both backends: what an entry refuses,
//! the digest that names a user or a client without naming it, and which cursors a store can
//! continue from (anything else gets the complete set).

/// What an entry of the revocation feed refuses (see `http::revocations` for the wire form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationKind {
    /// One access token, by its `jti`.
    Token,
    /// Tokens whose `sub` has this digest and whose `iat` is before `not_before`.
    Subject,
    /// Tokens whose `client_id` has this digest and whose `iat` is before `not_before`.
    Client,
}

impl RevocationKind {
    pub const ALL: [RevocationKind; 3] = [Self::Token, Self::Subject, Self::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Subject => "subject",
            Self::Client => "client",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One entry of the revocation feed. `key` is a `jti`, or the base64url SHA-256 of a `sub` or
/// `client_id`: the feed is public, so names never reach the store in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RevocationEntry {
    pub kind: RevocationKind,
    pub key: String,
    /// For subjects and clients: tokens issued before this Unix time are refused. 0 for tokens.
    pub not_before: u64,
    /// Holders drop the entry after this Unix time: no token it refuses can live longer.
    pub until: u64,
}

impl RevocationEntry {
    pub fn token(jti: &str, until: u64) -> Self {
        Self {
            kind: RevocationKind::Token,
            key: jti.to_owned(),
            not_before: 0,
            until,
        }
    }

    /// Refuses tokens of the subject `sub` issued before `not_before`.
    pub fn subject(sub: &str, not_before: u64, until: u64) -> Self {
        Self {
            kind: RevocationKind::Subject,
            key: name_digest(sub),
            not_before,
            until,
        }
    }

    /// Refuses tokens of the client `client_id` issued before `not_before`.
    pub fn client(client_id: &str, not_before: u64, until: u64) -> Self {
        Self {
            kind: RevocationKind::Client,
            key: name_digest(client_id),
            not_before,
            until,
        }
    }
}

/// The base64url (unpadded) SHA-256 of a name's UTF-8: what the feed publishes instead of it.
pub fn name_digest(name: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(name.as_bytes()))
}

/// What [`Store::revocations_since`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationFeed {
    /// `"{epoch}.{seq}"` of the newest entry the store holds.
    pub cursor: String,
    /// The whole current set (true) or only what was recorded after the cursor asked about.
    pub complete: bool,
    /// In the order recorded; one entry per kind and key (a later recording replaces it).
    pub entries: Vec<RevocationEntry>,
}

/// A cursor of the feed, `"{epoch}.{seq}"`; `None` for anything else.
pub fn parse_cursor(cursor: &str) -> Option<(&str, u64)> {
    let (epoch, seq) = cursor.rsplit_once('.')?;
    if epoch.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((epoch, seq.parse().ok()?))
}

/// Whether an answer for `since` (already parsed against the store's `epoch`) can be the
/// entries after it: the cursor must be this store's, not ahead of `seq` (a store restored from
/// an older copy) and not behind `floor` (entries after it may have been purged).
pub fn cursor_position(since: Option<&str>, epoch: &str, seq: u64, floor: u64) -> Option<u64> {
    let (their_epoch, their_seq) = parse_cursor(since?)?;
    (their_epoch == epoch && their_seq <= seq && their_seq >= floor).then_some(their_seq)
}

#[cfg(test)]
mod cursor_tests {
    use super::{cursor_position, name_digest, parse_cursor};

    #[test]
    fn a_cursor_is_epoch_dot_seq_and_nothing_else() {
        assert_eq!(parse_cursor("3q2-7w.42"), Some(("3q2-7w", 42)));
        assert_eq!(parse_cursor("a.b.7"), Some(("a.b", 7)));
        for bad in [
            "",
            ".",
            "e.",
            ".1",
            "e",
            "e.+1",
            "e.-1",
            "e.1x",
            "e. 1",
            "e.99999999999999999999",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_cursor_of_this_epoch_between_floor_and_seq_is_a_position() {
        assert_eq!(cursor_position(Some("e.5"), "e", 9, 3), Some(5));
        assert_eq!(cursor_position(Some("e.9"), "e", 9, 3), Some(9));
        assert_eq!(cursor_position(Some("e.3"), "e", 9, 3), Some(3));
        assert_eq!(
            cursor_position(Some("e.2"), "e", 9, 3),
            None,
            "behind the floor"
        );
        assert_eq!(
            cursor_position(Some("e.10"), "e", 9, 3),
            None,
            "ahead of the store"
        );
        assert_eq!(
            cursor_position(Some("f.5"), "e", 9, 3),
            None,
            "another store"
        );
        assert_eq!(cursor_position(None, "e", 9, 3), None);
    }

    #[test]
    fn a_name_digest_is_unpadded_base64url_sha256() {
        assert_eq!(
            name_digest("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
