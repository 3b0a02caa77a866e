//! Brute-force protection for the password grant, counted in the store so that it holds across
//! replicas. Failures are counted per username-and-address and per username: a flood from one
//! address locks that address out for that user first (low limit), while the per-username limit
//! is higher and slower, against guessing spread over many addresses, so that one attacker
//! cannot lock a user out everywhere.
//!
//! A check takes its slot before any password is hashed, in one atomic store step over both
//! counters, and a good login hands it back. Reading the count first and writing it after the
//! hash would let every request of a burst pass the read before the first one wrote: a burst of
//! guesses sent at once would all be checked. Taken first, at most the limit are, however many
//! arrive together and at whichever replica.
//!
//! The counters are keyed by a digest of the username, so that no client string of any length
//! reaches a store key, and by the client's network: an IPv6 client is counted by its /64, the
//! block one subscriber usually holds whole, and an IPv4-mapped IPv6 address as the IPv4 address
//! it is.

use std::net::{IpAddr, Ipv6Addr};

use sha2::{Digest, Sha256};

use super::error::TokenError;
use crate::store::{LoginSubject, SlotRelease, Store, StoreError};

#[derive(Clone, Debug)]
pub struct ThrottlePolicy {
    /// Seconds a window of failures lasts, from its first failure.
    pub window: u64,
    /// Failures allowed per username and client address within a window; 0 turns it off.
    pub per_address: u64,
    /// Failures allowed per username from all addresses within a window; 0 turns it off.
    pub per_user: u64,
}

/// The counter of one username from all addresses.
const USER_COUNTER: &str = "user";

/// The store's subject for `username`: its SHA-256, a fixed size whatever the client sent.
fn login_subject(username: &str) -> LoginSubject {
    LoginSubject(Sha256::digest(username.as_bytes()).into())
}

/// The counter of one username from one client network: `address:` and the IPv4 address, the
/// IPv6 /64 network (`address:2001:db8:1:2::/64`), or `unknown`.
fn address_counter(address: Option<IpAddr>) -> String {
    match address.map(|address| address.to_canonical()) {
        None => "address:unknown".to_owned(),
        Some(IpAddr::V4(v4)) => format!("address:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("address:{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
    }
}

impl ThrottlePolicy {
    /// Takes one slot on the username's counters before its password is checked: `Throttled`,
    /// with the seconds until the fullest window ends, when either is at its limit. The slots
    /// stay taken, as a failure, unless the returned [`LoginSlots`] hands them back; a request
    /// abandoned during the check so counts as a failure, never as a free guess.
    pub async fn reserve(
        &self,
        store: &dyn Store,
        username: &str,
        address: Option<IpAddr>,
        now: u64,
    ) -> Result<LoginSlots, TokenError> {
        let slots = LoginSlots {
            subject: login_subject(username),
            address_counter: (self.per_address > 0).then(|| address_counter(address)),
            user_counter: self.per_user > 0,
            taken_at: now,
            window: self.window,
        };
        let mut counters = Vec::with_capacity(2);
        if let Some(counter) = &slots.address_counter {
            counters.push((counter.as_str(), self.per_address));
        }
        if slots.user_counter {
            counters.push((USER_COUNTER, self.per_user));
        }
        if counters.is_empty() {
            return Ok(slots);
        }
        match store
            .reserve_login_slots(&slots.subject, &counters, now, self.window)
            .await?
        {
            None => Ok(slots),
            Some(window_end) => Err(TokenError::Throttled {
                retry_after: window_end.saturating_sub(now).max(1),
            }),
        }
    }
}

/// The slots one login attempt took. Dropped as it is, they stay counted: a failed check.
#[must_use = "slots not handed back count as a failed login"]
#[derive(Debug)]
pub struct LoginSlots {
    subject: LoginSubject,
    address_counter: Option<String>,
    user_counter: bool,
    taken_at: u64,
    window: u64,
}

impl LoginSlots {
    /// A good login: gives back its slot on the username's counter (the failures of others stay
    /// counted) and forgives this address its failures.
    pub async fn succeeded(self, store: &dyn Store) -> Result<(), TokenError> {
        Ok(self.release(store, SlotRelease::Forget).await?)
    }

    /// The password was never checked (the store or the password workers could not take the
    /// request): gives back every slot, best effort, since the request fails anyway.
    pub async fn unchecked(self, store: &dyn Store) {
        if let Err(err) = self.release(store, SlotRelease::GiveBack).await {
            tracing::warn!(error = %err, "could not give back the login slots of an unchecked request");
        }
    }

    async fn release(self, store: &dyn Store, address: SlotRelease) -> Result<(), StoreError> {
        let mut counters = Vec::with_capacity(2);
        if let Some(counter) = &self.address_counter {
            counters.push((counter.as_str(), address));
        }
        if self.user_counter {
            counters.push((USER_COUNTER, SlotRelease::GiveBack));
        }
        if counters.is_empty() {
            return Ok(());
        }
        store
            .release_login_slots(&self.subject, &counters, self.taken_at, self.window)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert_eq!(
            address_counter(Some(ip("::ffff:198.51.100.7"))),
            address_counter(Some(ip("198.51.100.7")))
        );
        assert_eq!(
            address_counter(Some(ip("198.51.100.7"))),
            "address:198.51.100.7"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(
            address_counter(Some(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"))),
            "address:2001:db8:1:2::/64"
        );
        assert_eq!(
            address_counter(Some(ip("2001:db8:1:2::1"))),
            address_counter(Some(ip("2001:db8:1:2:ffff::9")))
        );
        assert_ne!(
            address_counter(Some(ip("2001:db8:1:2::1"))),
            address_counter(Some(ip("2001:db8:1:3::1")))
        );
        assert_eq!(address_counter(None), "address:unknown");
    }

    #[test]
    fn the_subject_has_one_size_whatever_the_username() {
        let long = "x".repeat(100_000);
        assert_eq!(login_subject(&long).hex().len(), 64);
        assert_eq!(login_subject("alice").hex().len(), 64);
        assert_ne!(login_subject("alice"), login_subject("alice "));
        assert!(login_subject("a:b{c}")
            .hex()
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
    }
}
