//! Brute-force protection for the password grant, counted in the store so that it holds across
//! replicas. Failures are counted per username-and-address and per username: a flood from one
//! address locks that address out for that user first (low limit), while the per-username limit
//! is higher and slower, against guessing spread over many addresses, so that one attacker
//! cannot lock a user out everywhere. The check comes before any password hashing is spent.

use std::net::IpAddr;

use crate::grants::TokenError;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct ThrottlePolicy {
    /// Seconds a window of failures lasts, from its first failure.
    pub window: u64,
    /// Failures allowed per username and client address within a window; 0 turns it off.
    pub per_address: u64,
    /// Failures allowed per username from all addresses within a window; 0 turns it off.
    pub per_user: u64,
}

fn address_key(username: &str, address: Option<IpAddr>) -> String {
    let address = address.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    format!("login:{address}:{username}")
}

fn user_key(username: &str) -> String {
    format!("login:*:{username}")
}

impl ThrottlePolicy {
    /// `Throttled` with the seconds until the fullest window ends, when either limit is reached.
    pub async fn check(
        &self,
        store: &dyn Store,
        username: &str,
        address: Option<IpAddr>,
        now: u64,
    ) -> Result<(), TokenError> {
        for (key, limit) in [
            (address_key(username, address), self.per_address),
            (user_key(username), self.per_user),
        ] {
            if limit == 0 {
                continue;
            }
            let (count, window_end) = store.failures(&key, now).await?;
            if count >= limit {
                return Err(TokenError::Throttled {
                    retry_after: window_end.saturating_sub(now).max(1),
                });
            }
        }
        Ok(())
    }

    pub async fn record_failure(
        &self,
        store: &dyn Store,
        username: &str,
        address: Option<IpAddr>,
        now: u64,
    ) -> Result<(), TokenError> {
        if self.per_address > 0 {
            store
                .record_failure(&address_key(username, address), now, self.window)
                .await?;
        }
        if self.per_user > 0 {
            store
                .record_failure(&user_key(username), now, self.window)
                .await?;
        }
        Ok(())
    }

    /// A good login forgives that address its failures; the per-user count runs out on its own.
    pub async fn record_success(
        &self,
        store: &dyn Store,
        username: &str,
        address: Option<IpAddr>,
    ) -> Result<(), TokenError> {
        if self.per_address > 0 {
            store
                .clear_failures(&address_key(username, address))
                .await?;
        }
        Ok(())
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    let mut last = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return Some(ip),
            Err(_) => return Some(last),
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_address(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), Some("1.2.3.4, 10.0.0.7"), &trusted),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), Some("6.6.6.6, 1.2.3.4"), &trusted),
            Some(ip("1.2.3.4")),
            "a client cannot pick its address by sending its own header"
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), Some("garbage"), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), None, &trusted),
            Some(ip("10.0.0.2"))
        );
    }
}
