//! Which scope a request gets: what it asked for, within what the user and the client may have
//! now (RFC 6749 §3.3).

use oauth2_jwt_verifier::Scope;

use super::client_auth::Client;
use super::error::TokenError;
use crate::store::UserRecord;

/// Parses an optional requested scope; an empty one counts as none (Swagger UI sends `scope=`).
pub fn requested(scope: Option<&str>) -> Result<Option<Scope>, TokenError> {
    match scope.map(Scope::parse) {
        None => Ok(None),
        Some(Ok(scope)) if scope.is_empty() => Ok(None),
        Some(Ok(scope)) => Ok(Some(scope)),
        Some(Err(_)) => Err(TokenError::InvalidScope),
    }
}

/// The scope to grant: the requested one if within `allowed`, else `allowed` itself.
pub fn grant(requested: Option<Scope>, allowed: &Scope) -> Result<Scope, TokenError> {
    match requested {
        Some(scope) if scope.is_subset_of(allowed) => Ok(scope),
        Some(_) => Err(TokenError::InvalidScope),
        None => Ok(allowed.clone()),
    }
}

/// The scope tokens of `a` that are also in `b`.
pub fn intersect(a: &Scope, b: &Scope) -> Scope {
    Scope::from_tokens(a.iter().filter(|t| b.contains(t)))
}

/// What a user may be granted through a client now: the user's scopes, narrowed by the
/// client's own unless it is the default public client.
pub fn of_user(user: &UserRecord, client: &Client) -> Scope {
    match client.scopes() {
        Some(client_scopes) => intersect(&user.scopes, client_scopes),
        None => user.scopes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_scope_counts_as_none_as_swagger_ui_sends_it() {
        assert!(requested(Some("")).unwrap().is_none());
        assert!(requested(None).unwrap().is_none());
        assert!(matches!(
            requested(Some("a\"b")),
            Err(TokenError::InvalidScope)
        ));
    }

    #[test]
    fn requested_scope_must_lie_within_the_allowed_rfc6749_3_3() {
        let allowed = Scope::parse("read write").unwrap();
        assert_eq!(
            grant(Scope::parse("read").ok(), &allowed)
                .unwrap()
                .to_string(),
            "read"
        );
        assert_eq!(grant(None, &allowed).unwrap(), allowed);
        assert!(matches!(
            grant(Scope::parse("admin").ok(), &allowed),
            Err(TokenError::InvalidScope)
        ));
    }
}
