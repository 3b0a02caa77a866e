//! `auth-server keys …`: the signing-key lifecycle on the configured store (see
//! `keys::lifecycle`). Running servers follow within their key sync interval.

use clap::Subcommand;

use crate::keys::lifecycle::Rotation;
use crate::oauth::clock::unix_now;
use crate::store::KeyRevocation;
use crate::Settings;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Every key with its state and dates, newest first.
    List,
    /// Stage a new key: published now, signing after AUTH_KEY_PUBLISH_AHEAD seconds.
    Rotate,
    /// Withdraw a key from the JWKS at once (a compromised key). Tokens it signed are refused
    /// from then on; if it was signing, the next key (or a new one) signs at once.
    Revoke {
        /// A kid is base64url, so it may start with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

pub async fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let store = settings.open_store().await?;
    let keys = settings.key_lifecycle(store)?;
    let now = unix_now();
    keys.ensure(&settings.keys_dir, now).await?;
    match command {
        KeysCommand::List => {
            for key in keys.list().await? {
                let mut line = format!(
                    "{}\t{}\tcreated={}",
                    key.kid,
                    key.state,
                    rfc3339(key.created_at)
                );
                let activates = match key.state {
                    crate::store::KeyState::Next => "activates",
                    _ => "activated",
                };
                line.push_str(&format!("\t{activates}={}", rfc3339(key.activates_at)));
                if let Some(retired_at) = key.retired_at {
                    let what = match key.state {
                        crate::store::KeyState::Revoked => "revoked",
                        _ => "retired",
                    };
                    line.push_str(&format!("\t{what}={}", rfc3339(retired_at)));
                }
                if let Some(expires_at) = key.expires_at {
                    line.push_str(&format!("\tremoved={}", rfc3339(expires_at)));
                }
                println!("{line}");
            }
        }
        KeysCommand::Rotate => match keys.rotate(now).await? {
            Rotation::Staged { kid, activates_at } => println!(
                "staged signing key {kid}: published now, signing from {}",
                rfc3339(activates_at)
            ),
            Rotation::AlreadyStaged { kid, activates_at } => println!(
                "signing key {kid} is staged already and signs from {}; nothing changed",
                rfc3339(activates_at)
            ),
        },
        KeysCommand::Revoke { kid } => match keys.revoke(&kid, now).await? {
            KeyRevocation::Unknown => anyhow::bail!("no signing key {kid}"),
            KeyRevocation::AlreadyRevoked => println!("signing key {kid} was revoked already"),
            KeyRevocation::Revoked { now_active } => {
                println!(
                    "revoked signing key {kid}: it leaves the JWKS within {} s, and tokens it \
                     signed are refused once resource servers refresh their keys",
                    keys.schedule().sync_interval
                );
                if let Some(active) = now_active {
                    println!(
                        "signing key {active} signs now; verifiers fetch it on its first token"
                    );
                }
            }
        },
    }
    Ok(())
}

/// `seconds` since the Unix epoch as an RFC 3339 UTC time, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar).
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
