//! Records as Redis hashes and back: absent optional fields are `None`, lists and scopes are
//! space-separated, and a record that does not read is `StoreError::Corrupt`, naming the field.

use std::collections::HashMap;

use oauth2_jwt_verifier::Scope;

use crate::store::{
    ClientRecord, GrantType, KeyState, PreviousSecret, RefreshRecord, SigningKeyRecord, StoreError,
    UserRecord,
};

/// The fields of one stored hash, read into a record.
pub(super) struct Fields {
    what: String,
    map: HashMap<String, Vec<u8>>,
}

impl Fields {
    pub(super) fn new(what: impl Into<String>, map: HashMap<String, Vec<u8>>) -> Self {
        Self {
            what: what.into(),
            map,
        }
    }

    pub(super) fn corrupt(&self, field: &str, problem: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: field {field} {problem}", self.what))
    }

    pub(super) fn optional_bytes(&mut self, field: &str) -> Option<Vec<u8>> {
        self.map.remove(field)
    }

    pub(super) fn optional_text(&mut self, field: &str) -> Result<Option<String>, StoreError> {
        match self.map.remove(field) {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| self.corrupt(field, "is not UTF-8")),
        }
    }

    pub(super) fn text(&mut self, field: &str) -> Result<String, StoreError> {
        self.optional_text(field)?
            .ok_or_else(|| self.corrupt(field, "is missing"))
    }

    pub(super) fn optional_number(&mut self, field: &str) -> Result<Option<u64>, StoreError> {
        match self.optional_text(field)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(field, "is not a number")),
        }
    }

    pub(super) fn number(&mut self, field: &str) -> Result<u64, StoreError> {
        self.optional_number(field)?
            .ok_or_else(|| self.corrupt(field, "is missing"))
    }

    pub(super) fn scope(&mut self, field: &str) -> Result<Scope, StoreError> {
        let text = self.text(field)?;
        Scope::parse(&text).map_err(|_| self.corrupt(field, "is not a scope"))
    }

    pub(super) fn words(&mut self, field: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .text(field)?
            .split(' ')
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Stored grant words; one that names no grant type is corrupt.
    pub(super) fn grants(&mut self, field: &str) -> Result<Vec<GrantType>, StoreError> {
        let words = self.words(field)?;
        words
            .iter()
            .map(|word| {
                GrantType::parse(word)
                    .ok_or_else(|| self.corrupt(field, &format!("names an unknown grant {word:?}")))
            })
            .collect()
    }
}

pub(super) fn user_from(
    username: &str,
    hash: HashMap<String, Vec<u8>>,
) -> Result<UserRecord, StoreError> {
    let mut fields = Fields::new(format!("user {username}"), hash);
    Ok(UserRecord {
        username: username.to_owned(),
        full_name: fields.optional_text("full_name")?,
        email: fields.optional_text("email")?,
        password_hash: fields.text("password_hash")?,
        disabled: fields.text("disabled")? == "1",
        scopes: fields.scope("scopes")?,
        stamp: fields.optional_text("stamp")?.unwrap_or_default(),
        not_before: fields.optional_number("not_before")?.unwrap_or(0),
    })
}

pub(super) fn user_fields(user: &UserRecord) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("password_hash", user.password_hash.clone()),
        ("disabled", flag(user.disabled).to_owned()),
        ("scopes", user.scopes.to_string()),
        ("stamp", user.stamp.clone()),
        ("not_before", user.not_before.to_string()),
    ];
    if let Some(full_name) = &user.full_name {
        pairs.push(("full_name", full_name.clone()));
    }
    if let Some(email) = &user.email {
        pairs.push(("email", email.clone()));
    }
    pairs
}

pub(super) fn flag(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

pub(super) fn client_from(
    client_id: &str,
    hash: HashMap<String, Vec<u8>>,
) -> Result<ClientRecord, StoreError> {
    let mut fields = Fields::new(format!("client {client_id}"), hash);
    let previous_hash = fields.optional_text("previous_secret_hash")?;
    let previous_expires_at = fields.optional_number("previous_secret_expires_at")?;
    Ok(ClientRecord {
        client_id: client_id.to_owned(),
        secret_hash: fields.text("secret_hash")?,
        previous_secret: previous_hash
            .zip(previous_expires_at)
            .map(|(hash, expires_at)| PreviousSecret { hash, expires_at }),
        public: fields.optional_text("public")?.as_deref() == Some("1"),
        // Absent on a client registered before the field existed: such a client could
        // introspect any token, and keeps the right (as the embedded store's migration does).
        introspect: fields.optional_text("introspect")?.as_deref() != Some("0"),
        grants: fields.grants("grants")?,
        scopes: fields.scope("scopes")?,
        audiences: fields.words("audiences")?,
        stamp: fields.optional_text("stamp")?.unwrap_or_default(),
        not_before: fields.optional_number("not_before")?.unwrap_or(0),
    })
}

pub(super) fn client_fields(client: &ClientRecord) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("secret_hash", client.secret_hash.clone()),
        ("public", flag(client.public).to_owned()),
        ("introspect", flag(client.introspect).to_owned()),
        ("grants", GrantType::join(&client.grants, " ")),
        ("scopes", client.scopes.to_string()),
        ("audiences", client.audiences.join(" ")),
        ("stamp", client.stamp.clone()),
        ("not_before", client.not_before.to_string()),
    ];
    if let Some(previous) = &client.previous_secret {
        pairs.push(("previous_secret_hash", previous.hash.clone()));
        pairs.push((
            "previous_secret_expires_at",
            previous.expires_at.to_string(),
        ));
    }
    pairs
}

pub(super) fn refresh_from(
    id: &str,
    hash: HashMap<String, Vec<u8>>,
) -> Result<RefreshRecord, StoreError> {
    let mut fields = Fields::new(format!("refresh token {id}"), hash);
    Ok(RefreshRecord {
        id: id.to_owned(),
        family_id: fields.text("family_id")?,
        client_id: fields.text("client_id")?,
        username: fields.text("username")?,
        scope: fields.scope("scope")?,
        audience: fields.text("audience")?,
        user_stamp: fields.optional_text("user_stamp")?.unwrap_or_default(),
        client_stamp: fields.optional_text("client_stamp")?.unwrap_or_default(),
        issued_at: fields.number("issued_at")?,
        expires_at: fields.number("expires_at")?,
        used_at: fields.optional_number("used_at")?,
        sealed_successor: fields.optional_bytes("sealed_successor"),
        successor_id: fields.optional_text("successor_id")?,
    })
}

/// A signing key as the JSON value of its field in `P{keys}:signing`; the scripts read and
/// change `state` and the times, never the key material.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredSigningKey {
    state: String,
    created_at: u64,
    activates_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    jwk: String,
    /// Standard base64 of the sealed private key.
    sealed: String,
}

pub(super) fn signing_key_json(key: &SigningKeyRecord) -> Result<String, StoreError> {
    use base64::Engine;
    serde_json::to_string(&StoredSigningKey {
        state: key.state.as_str().to_owned(),
        created_at: key.created_at,
        activates_at: key.activates_at,
        retired_at: key.retired_at,
        expires_at: key.expires_at,
        jwk: key.public_jwk.clone(),
        sealed: base64::engine::general_purpose::STANDARD.encode(&key.sealed_private_key),
    })
    .map_err(|err| StoreError::Corrupt(format!("signing key {}: {err}", key.kid)))
}

pub(super) fn signing_key_from(kid: &str, json: &[u8]) -> Result<SigningKeyRecord, StoreError> {
    use base64::Engine;
    let corrupt = |what: &str| StoreError::Corrupt(format!("signing key {kid}: {what}"));
    let stored: StoredSigningKey =
        serde_json::from_slice(json).map_err(|err| corrupt(&err.to_string()))?;
    Ok(SigningKeyRecord {
        kid: kid.to_owned(),
        state: KeyState::parse(&stored.state).ok_or_else(|| corrupt("unknown state"))?,
        created_at: stored.created_at,
        activates_at: stored.activates_at,
        retired_at: stored.retired_at,
        expires_at: stored.expires_at,
        public_jwk: stored.jwk,
        sealed_private_key: base64::engine::general_purpose::STANDARD
            .decode(stored.sealed)
            .map_err(|_| corrupt("sealed key is not base64"))?,
    })
}

/// The fields of a token that has not been used yet.
pub(super) fn refresh_fields(token: &RefreshRecord) -> [(&'static str, String); 9] {
    [
        ("family_id", token.family_id.clone()),
        ("client_id", token.client_id.clone()),
        ("username", token.username.clone()),
        ("scope", token.scope.to_string()),
        ("audience", token.audience.clone()),
        ("user_stamp", token.user_stamp.clone()),
        ("client_stamp", token.client_stamp.clone()),
        ("issued_at", token.issued_at.to_string()),
        ("expires_at", token.expires_at.to_string()),
    ]
}
