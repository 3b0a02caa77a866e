//! RFC 6749 §4.3: a user's name and password for a token. Legacy in RFC 9700 §2.4, kept because
//! the tutorial's clients and Swagger UI speak it; services should use client_credentials.

use oauth2_jwt_verifier::Scope;
use zeroize::Zeroizing;

use super::issued_at;
use crate::oauth::client_auth::Client;
use crate::oauth::{require_grant, scope, Authority, IssuedTokens, TokenError};
use crate::passwords::Verdict;
use crate::store::{GrantType, RefreshRecord};
use crate::tokens::{self, Subject};

/// A password grant request, its fields already parsed from the form.
pub struct PasswordRequest<'a> {
    pub username: &'a str,
    pub password: Zeroizing<String>,
    pub scope: Option<Scope>,
    /// The audience wanted (RFC 8707).
    pub resource: Option<&'a str>,
    /// The client's network address, for the brute-force throttle.
    pub address: Option<std::net::IpAddr>,
    pub now: u64,
}

impl Authority {
    pub(crate) async fn password(
        &self,
        client: &Client,
        request: PasswordRequest<'_>,
    ) -> Result<IssuedTokens, TokenError> {
        let PasswordRequest {
            username,
            password,
            scope,
            resource,
            address,
            now,
        } = request;
        self.check_default_public(client)?;
        require_grant(client, GrantType::Password)?;
        if username.is_empty() || password.is_empty() {
            return Err(TokenError::InvalidRequest(
                "username and password are required",
            ));
        }
        // No user can have such a name: answered as an unknown user, before the throttle and
        // the store see it.
        if !is_acceptable_username(username) {
            return Err(TokenError::InvalidGrant("wrong username or password"));
        }
        let slots = self
            .policy
            .throttle
            .reserve(self.store.as_ref(), username, address, now)
            .await?;
        let checked = match self.store.user(username).await {
            Ok(user) => self
                .passwords
                .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
                .await
                .map(|verdict| (user, verdict))
                .map_err(TokenError::from),
            Err(err) => Err(err.into()),
        };
        let (user, verdict) = match checked {
            Ok(checked) => checked,
            Err(err) => {
                slots.unchecked(self.store.as_ref()).await;
                return Err(err);
            }
        };
        // Unknown user, wrong password and disabled account answer alike (RFC 6749 §5.2); the
        // slot taken stays counted as the failure.
        let (user, rehash) = match (user, verdict) {
            (Some(user), Verdict::Valid { rehash }) if !user.disabled => (user, rehash),
            _ => return Err(TokenError::InvalidGrant("wrong username or password")),
        };
        slots.succeeded(self.store.as_ref()).await?;
        if let Some(new_hash) = rehash {
            match self
                .store
                .replace_password_hash(&user.username, &user.password_hash, &new_hash)
                .await
            {
                Ok(_) => tracing::info!(username = %user.username, "password hash upgraded"),
                Err(err) => {
                    tracing::warn!(error = %err, "could not store the upgraded password hash")
                }
            }
        }

        let scope = scope::grant(scope, &scope::of_user(&user, client))?;
        let audience = self.audience(client, resource)?;
        let subject = Subject::user(&user);
        let iat = issued_at(now, Some(&user), client).await;
        let (access_token, claims) =
            self.tokens
                .mint_access(&subject, client.id(), &scope, &audience, iat)?;

        let refresh_token = tokens::new_refresh_token();
        self.store
            .insert_refresh(&RefreshRecord {
                id: tokens::refresh_token_id(&refresh_token),
                family_id: tokens::random_token(16),
                client_id: client.id().to_owned(),
                username: user.username.clone(),
                scope: scope.clone(),
                audience,
                user_stamp: user.stamp.clone(),
                client_stamp: client.stamp().to_owned(),
                issued_at: iat,
                expires_at: now + self.policy.refresh_ttl,
                used_at: None,
                sealed_successor: None,
                successor_id: None,
            })
            .await?;
        tracing::info!(jti = %claims.jti, client_id = %client.id(), "access token issued to a user");
        Ok(self.issued(access_token, Some(refresh_token), &scope))
    }
}

/// The longest username, in bytes of UTF-8, that `auth-server user add` accepts and a login
/// looks up.
pub const MAX_USERNAME_BYTES: usize = 256;

/// Whether `username` could name a user: at most [`MAX_USERNAME_BYTES`] bytes and no control
/// character, as `auth-server user add` and `user import` require.
pub fn is_acceptable_username(username: &str) -> bool {
    username.len() <= MAX_USERNAME_BYTES && !username.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_bounded_and_free_of_control_characters() {
        assert!(is_acceptable_username("alice"));
        assert!(is_acceptable_username(&"x".repeat(MAX_USERNAME_BYTES)));
        assert!(is_acceptable_username(&"é".repeat(MAX_USERNAME_BYTES / 2)));
        assert!(!is_acceptable_username(&"x".repeat(MAX_USERNAME_BYTES + 1)));
        assert!(!is_acceptable_username(
            &"é".repeat(MAX_USERNAME_BYTES / 2 + 1)
        ));
        for control in ["a\nb", "a\rb", "\u{0}", "a\u{1b}[31m", "a\u{7f}", "a\u{85}"] {
            assert!(!is_acceptable_username(control), "{control:?}");
        }
    }
}
