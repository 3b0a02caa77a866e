//! Every number's documented range and the settings that must agree with each other, checked
//! once before anything uses a setting: a mistake stops the start with one line naming the
//! setting, and no later sum or product of settings can overflow.

use server_plumbing::settings::{check_ranges, widen, Range, DAY, HOUR, MINUTE, YEAR};

use super::{Secret, Settings, SettingsError, ENV_PREFIX};

/// Every numeric setting's range. The bounds keep each value meaningful (a floor that the
/// protocol or the HTTP stack needs, a ceiling no deployment needs) and keep every sum and
/// product of settings (`now + ttl`, `access_ttl + sync + leeway`, `3 × sync`) far from `u64`
/// overflow; the arithmetic saturates all the same.
pub const RANGES: &[Range] = &[
    Range::new("access_token_ttl", 1, YEAR),
    Range::new("refresh_token_ttl", 1, YEAR),
    Range::new("refresh_reuse_grace", 0, 5 * MINUTE),
    Range::new("password_workers", 0, 1024),
    Range::new("password_queue", 0, 65_536),
    Range::new("login_throttle_window", 1, 30 * DAY),
    Range::new("login_max_failures_per_address", 0, 100_000_000),
    Range::new("login_max_failures_per_user", 0, 100_000_000),
    Range::new("max_body_bytes", 1024, 16 * 1024 * 1024),
    // A token request may carry that many fields.
    Range::new("max_form_fields", 8, 1024),
    Range::new("body_read_timeout", 1, HOUR),
    Range::new("header_read_timeout", 1, HOUR),
    Range::new(
        "max_header_bytes",
        server_plumbing::serve::MIN_HEADER_BYTES as u64,
        1024 * 1024,
    ),
    Range::new("max_connections", 1, 1_048_576),
    Range::new("shutdown_timeout", 0, HOUR),
    // 0 turns the schedule off; otherwise at least `key_publish_ahead` (checked below).
    Range::new("key_rotation_interval", 0, YEAR),
    // At least 3 × `key_sync_interval` (checked below).
    Range::new("key_publish_ahead", 3, 30 * DAY),
    Range::new("key_sync_interval", 1, HOUR),
    Range::new("key_removal_leeway", 0, DAY),
];
impl Settings {
    /// Checks every numeric setting against its range ([`RANGES`]) and the settings that must
    /// agree with each other. `load` calls it, and so does the server before it starts, whoever
    /// built the settings.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        let fail = |name: &str, why: &str| {
            Err(SettingsError(format!(
                "{ENV_PREFIX}{}: {why}",
                name.to_uppercase()
            )))
        };
        check_ranges(ENV_PREFIX, RANGES, &self.numbers()).map_err(SettingsError)?;
        if self.audience.trim().is_empty() {
            return fail("audience", "must not be empty");
        }
        if !matches!(self.issuer.scheme(), "http" | "https")
            || self.issuer.query().is_some()
            || self.issuer.fragment().is_some()
        {
            return fail(
                "issuer",
                "must be an http(s) URL without query or fragment (RFC 8414 §2)",
            );
        }
        self.redis_tls()
            .check_url(&self.store.0)
            .map_err(SettingsError)?;
        crate::store::redis::sentinel::check_url(&self.store.0).map_err(SettingsError)?;
        self.validate_keys()
    }

    /// Every numeric setting by name, widened to `u64`.
    fn numbers(&self) -> [(&'static str, u64); 19] {
        [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("refresh_reuse_grace", self.refresh_reuse_grace),
            ("password_workers", widen(self.password_workers)),
            ("password_queue", widen(self.password_queue)),
            ("login_throttle_window", self.login_throttle_window),
            (
                "login_max_failures_per_address",
                self.login_max_failures_per_address,
            ),
            (
                "login_max_failures_per_user",
                self.login_max_failures_per_user,
            ),
            ("max_body_bytes", widen(self.max_body_bytes)),
            ("max_form_fields", widen(self.max_form_fields)),
            ("body_read_timeout", self.body_read_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("max_header_bytes", widen(self.max_header_bytes)),
            ("max_connections", widen(self.max_connections)),
            ("shutdown_timeout", self.shutdown_timeout),
            ("key_rotation_interval", self.key_rotation_interval),
            ("key_publish_ahead", self.key_publish_ahead),
            ("key_sync_interval", self.key_sync_interval),
            ("key_removal_leeway", self.key_removal_leeway),
        ]
    }

    /// The key lifecycle's timings must keep a new key published for a whole JWKS cache
    /// lifetime before it signs (see `keys::lifecycle`).
    fn validate_keys(&self) -> Result<(), SettingsError> {
        let fail = |name: &str, why: String| {
            Err(SettingsError(format!(
                "{ENV_PREFIX}{}: {why}",
                name.to_uppercase()
            )))
        };
        if let Some(Secret(text)) = &self.key_encryption_key {
            if crate::keys::encryption::KeyEncryptionKey::from_base64(text).is_err() {
                return fail("key_encryption_key", "must be base64 of 32 bytes".into());
            }
        }
        let three_syncs = self.key_sync_interval.saturating_mul(3);
        if self.key_publish_ahead < three_syncs {
            return fail(
                "key_publish_ahead",
                format!(
                    "must be at least 3 × AUTH_KEY_SYNC_INTERVAL ({three_syncs} s), so that a new \
                     key is published for a JWKS cache lifetime before it signs"
                ),
            );
        }
        if self.key_rotation_interval != 0 && self.key_rotation_interval < self.key_publish_ahead {
            return fail(
                "key_rotation_interval",
                "must be 0 (no schedule) or at least AUTH_KEY_PUBLISH_AHEAD".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_timings_that_break_the_derivation() {
        let valid = Settings::default();
        assert!(valid.validate().is_ok());
        assert_eq!(valid.key_schedule().jwks_max_age(), 300);
        let too_short = Settings {
            key_publish_ahead: 29,
            ..Settings::default()
        };
        let err = too_short.validate().unwrap_err().to_string();
        assert!(err.starts_with("AUTH_KEY_PUBLISH_AHEAD: "), "{err}");
        let no_sync = Settings {
            key_sync_interval: 0,
            ..Settings::default()
        };
        assert!(no_sync.validate().is_err());
        let rotating_faster_than_publishing = Settings {
            key_rotation_interval: 60,
            ..Settings::default()
        };
        let err = rotating_faster_than_publishing
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("AUTH_KEY_ROTATION_INTERVAL: "), "{err}");
        let bad_kek = Settings {
            key_encryption_key: Some(crate::settings::Secret("c2hvcnQ=".into())),
            ..Settings::default()
        };
        let err = bad_kek.validate().unwrap_err().to_string();
        assert!(err.starts_with("AUTH_KEY_ENCRYPTION_KEY: "), "{err}");
        assert!(!err.contains("c2hvcnQ"), "the value is never echoed: {err}");
        assert!(!format!("{bad_kek:?}").contains("c2hvcnQ"));
        assert!(!bad_kek.to_masked_toml().contains("c2hvcnQ"));
    }

    #[test]
    fn redis_tls_settings_must_fit_the_store_url() {
        let with = |store: &str, ca: bool, cert: bool, key: bool| Settings {
            store: super::super::StoreUrl(store.into()),
            redis_ca_file: ca.then(|| "ca.pem".into()),
            redis_client_cert: cert.then(|| "client.pem".into()),
            redis_client_key: key.then(|| "client.key".into()),
            ..Settings::default()
        };
        let refused = |settings: Settings| settings.validate().unwrap_err().to_string();
        let err = refused(with("rediss://:pw@redis:6380/0", true, true, false));
        assert!(err.starts_with("AUTH_REDIS_CLIENT_CERT and AUTH_REDIS_CLIENT_KEY"));
        let err = refused(with("rediss://:pw@redis:6380/0", false, false, true));
        assert!(err.starts_with("AUTH_REDIS_CLIENT_CERT and AUTH_REDIS_CLIENT_KEY"));
        let err = refused(with(
            "rediss://:pw@redis:6380/0#insecure",
            false,
            false,
            false,
        ));
        assert!(err.starts_with("AUTH_STORE: "), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        let err = refused(with("sqlite://data/auth.db", true, false, false));
        assert!(err.contains("need AUTH_STORE=rediss://"), "{err}");
        assert!(with("rediss://:pw@redis:6380/0", true, true, true)
            .validate()
            .is_ok());
        assert!(with("rediss://redis:6380/0", false, false, false)
            .validate()
            .is_ok());
    }

    #[test]
    fn sentinel_urls_are_checked_at_start_and_take_the_tls_files_only_with_rediss() {
        let with = |store: &str, ca: bool| Settings {
            store: super::super::StoreUrl(store.into()),
            redis_ca_file: ca.then(|| "ca.pem".into()),
            ..Settings::default()
        };
        let url = "redis+sentinel://:sentinel-pw@s1:26379,s2:26379/mymaster/0?prefix=a:";
        assert!(with(url, false).validate().is_ok());
        let debug = format!("{:?}", with(url, false));
        assert!(!debug.contains("sentinel-pw"), "{debug}");
        assert!(debug.contains("s1:26379,s2:26379/mymaster"), "{debug}");
        let err = with(url, true).validate().unwrap_err().to_string();
        assert!(err.contains("rediss+sentinel://"), "{err}");
        let tls = "rediss+sentinel://:sentinel-pw@s1,s2/mymaster";
        assert!(with(tls, true).validate().is_ok());
        for bad in [
            "redis+sentinel://:sentinel-pw@s1,s2",
            "redis+sentinel://:sentinel-pw@s1:99999/m",
            "rediss+sentinel://:sentinel-pw@s1/m#insecure",
        ] {
            let err = with(bad, false).validate().unwrap_err().to_string();
            assert!(err.starts_with("AUTH_STORE"), "{bad}: {err}");
            assert!(!err.contains("sentinel-pw"), "{bad}: {err}");
        }
    }

    #[test]
    fn limits_below_their_floor_are_refused_with_the_setting_named() {
        for (adjust, name) in [
            (
                (|s: &mut Settings| s.max_header_bytes = 4096) as fn(&mut Settings),
                "AUTH_MAX_HEADER_BYTES",
            ),
            (|s| s.max_form_fields = 3, "AUTH_MAX_FORM_FIELDS"),
            (|s| s.header_read_timeout = 0, "AUTH_HEADER_READ_TIMEOUT"),
            (|s| s.body_read_timeout = 0, "AUTH_BODY_READ_TIMEOUT"),
            (|s| s.max_connections = 0, "AUTH_MAX_CONNECTIONS"),
        ] {
            let mut settings = Settings::default();
            adjust(&mut settings);
            let err = settings.validate().expect_err(name);
            assert!(err.0.starts_with(name), "{err}");
        }
    }

    #[test]
    fn every_numeric_setting_has_one_range_and_the_readme_table_states_it() {
        let readme = include_str!("../../../README.md");
        let numbers = Settings::default().numbers();
        let disagreements =
            server_plumbing::settings::readme_disagreements(readme, ENV_PREFIX, RANGES, &numbers);
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }

    #[test]
    fn out_of_range_numbers_are_refused_with_one_line_naming_the_setting() {
        let defaults = Settings::default();
        assert!(defaults.validate().is_ok());
        let unrefused = server_plumbing::settings::unrefused(
            &defaults,
            ENV_PREFIX,
            RANGES,
            |settings: &Settings| settings.validate().map_err(|err| err.to_string()),
        );
        assert!(unrefused.is_empty(), "{unrefused:#?}");
    }

    #[test]
    fn timings_at_their_ceilings_do_not_overflow() {
        let settings = Settings {
            access_token_ttl: YEAR,
            key_rotation_interval: YEAR,
            key_publish_ahead: 30 * DAY,
            key_sync_interval: HOUR,
            key_removal_leeway: DAY,
            ..Settings::default()
        };
        assert!(settings.validate().is_ok());
        let schedule = settings.key_schedule();
        assert_eq!(schedule.removal_delay(), YEAR + HOUR + DAY);
        assert_eq!(schedule.jwks_max_age(), 300);
        // Debug builds panic on overflow: these sums must saturate instead.
        let _ = schedule.staging_due(u64::MAX - 1, u64::MAX - 1);
        let huge = crate::keys::lifecycle::Schedule {
            access_ttl: u64::MAX,
            sync_interval: u64::MAX,
            ..schedule
        };
        assert_eq!(huge.removal_delay(), u64::MAX);
        assert_eq!(huge.jwks_max_age(), 1);
    }
}
