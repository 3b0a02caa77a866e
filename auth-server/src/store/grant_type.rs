//! The grant types a client may be registered for, typed once. The store keeps them as the
//! same words the token request uses, so that a record reads back unchanged and an unknown
//! word in stored data is found when it is read, not when a request happens to compare it.

use std::fmt;
use std::str::FromStr;

/// A grant of the token endpoint (RFC 6749 §4.3, §4.4, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrantType {
    Password,
    ClientCredentials,
    RefreshToken,
}

/// A word that names no grant type this server knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownGrantType;

impl GrantType {
    /// Every grant type, in the order the metadata and the CLI list them.
    pub const ALL: &'static [GrantType] = &[
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    /// The `grant_type` word of the token request, also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// The grant type a word names; exact and case-sensitive, as RFC 6749 §3.2 values are.
    pub fn parse(word: &str) -> Option<GrantType> {
        GrantType::ALL
            .iter()
            .copied()
            .find(|grant| grant.as_str() == word)
    }

    /// The words of `grants`, joined by `separator`.
    pub fn join(grants: &[GrantType], separator: &str) -> String {
        grants
            .iter()
            .map(|grant| grant.as_str())
            .collect::<Vec<_>>()
            .join(separator)
    }
}

impl FromStr for GrantType {
    type Err = UnknownGrantType;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        GrantType::parse(word).ok_or(UnknownGrantType)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_type_reads_back_from_its_word_rfc6749_4_3_4_4_6() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Some(*grant));
            assert_eq!(grant.as_str().parse::<GrantType>(), Ok(*grant));
        }
        assert_eq!(
            GrantType::join(GrantType::ALL, " "),
            "password client_credentials refresh_token"
        );
    }

    #[test]
    fn other_words_name_no_grant_type() {
        for word in [
            "",
            "implicit",
            "Password",
            "password ",
            "authorization_code",
        ] {
            assert_eq!(GrantType::parse(word), None, "{word:?}");
            assert_eq!(word.parse::<GrantType>(), Err(UnknownGrantType));
        }
    }
}
