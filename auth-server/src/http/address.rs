//! The client's network address, for the login throttle: the socket peer, or what trusted
//! proxies say in `X-Forwarded-For`. Reading headers is this layer's job; the throttle only
//! counts the address it is given.

use std::net::IpAddr;

/// The address of the client that sent `req`, as [`client_address`] finds it.
pub fn of_request(req: &poem::Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
    // Every field line, in order: a proxy may add its own line after the client's.
    let forwarded_for = forwarded_for_list(
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|line| line.to_str().ok()),
    );
    client_address(peer, forwarded_for.as_deref(), trusted)
}

/// The `X-Forwarded-For` list as one value: every field line in order, joined, as RFC 9110
/// §5.3 combines repeated fields. `None` for a line that is not text makes an entry that is
/// no address, where [`client_address`] stops; no lines at all is no header.
pub fn forwarded_for_list<'a>(lines: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    let lines: Vec<&str> = lines
        .into_iter()
        // Not an address, so the walk from the right ends there.
        .map(|line| line.unwrap_or("not-text"))
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// The client's address: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. IPv4-mapped IPv6
/// addresses count as the IPv4 address, for the trust check and for the answer.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?.to_canonical();
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    let mut last = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
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

    #[test]
    fn every_forwarded_for_line_is_read_and_the_rightmost_untrusted_entry_wins() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let joined = forwarded_for_list([Some("6.6.6.6, 1.2.3.4"), Some("5.6.7.8, 10.0.0.7")]);
        assert_eq!(
            joined.as_deref(),
            Some("6.6.6.6, 1.2.3.4,5.6.7.8, 10.0.0.7")
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), joined.as_deref(), &trusted),
            Some(ip("5.6.7.8")),
            "the last line is the nearest proxy's; the first one alone would name 1.2.3.4"
        );
        let not_text = forwarded_for_list([Some("1.2.3.4"), None, Some("10.0.0.7")]);
        assert_eq!(
            client_address(Some(ip("10.0.0.2")), not_text.as_deref(), &trusted),
            Some(ip("10.0.0.7")),
            "a line that is not text stops the walk at the last trusted hop"
        );
        assert_eq!(forwarded_for_list([]), None);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4_for_trust_and_for_the_client() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            client_address(
                Some(ip("::ffff:127.0.0.1")),
                Some("::ffff:198.51.100.7"),
                &trusted
            ),
            Some(ip("198.51.100.7")),
            "a dual-stack socket's mapped peer is the trusted proxy"
        );
    }
}
