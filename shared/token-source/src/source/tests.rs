#![allow(clippy::unwrap_used)]
use super::*;
use crate::secret::ClientSecret;

fn config(margin: u64, jitter: u64) -> Config {
    Config::builder(
        Endpoint::Token("http://127.0.0.1:9/token".parse().unwrap()),
        "svc",
        ClientSecret::new("secret"),
    )
    .refresh_margin(Duration::from_secs(margin))
    .refresh_jitter(Duration::from_secs(jitter))
    .expiry_skew(Duration::from_secs(2))
    .build()
}

fn remaining_at_refresh(config: &Config, lifetime: u64, random: f64) -> (Duration, Duration) {
    let sent = Instant::now();
    let lifetime = Duration::from_secs(lifetime);
    let cached = schedule(
        config,
        Issued {
            token: AccessToken::new("t"),
            sent,
            lifetime,
        },
        sent,
        random,
    );
    (
        sent + lifetime - cached.refresh_at,
        sent + lifetime - cached.expires_at,
    )
}

#[test]
fn refresh_falls_within_margin_plus_or_minus_jitter() {
    let config = config(60, 15);
    let (low, skew) = remaining_at_refresh(&config, 900, 0.0);
    let (high, _) = remaining_at_refresh(&config, 900, 1.0);
    assert_eq!(low, Duration::from_secs(45));
    assert_eq!(high, Duration::from_secs(75));
    assert_eq!(skew, Duration::from_secs(2));
    let spread: std::collections::HashSet<_> = (0..50)
        .map(|_| remaining_at_refresh(&config, 900, rand::random()).0)
        .inspect(|lead| {
            assert!(*lead >= Duration::from_secs(45) && *lead <= Duration::from_secs(75))
        })
        .collect();
    assert!(spread.len() > 1, "the jitter spreads refresh times");
}

#[test]
fn short_lived_tokens_are_used_for_at_least_a_quarter_of_their_life() {
    let config = config(60, 15);
    // A 4 s token: the margin is cut to 2 s and the jitter to 1 s.
    let (most, skew) = remaining_at_refresh(&config, 4, 1.0);
    let (least, _) = remaining_at_refresh(&config, 4, 0.0);
    assert_eq!(most, Duration::from_secs(3));
    assert_eq!(least, Duration::from_secs(2));
    assert_eq!(skew, Duration::from_secs(2));
    // A 1 s token is never unusable at once.
    let (lead, skew) = remaining_at_refresh(&config, 1, 0.5);
    assert!(lead < Duration::from_secs(1) && skew < Duration::from_secs(1));
}
