//! Settings plumbing both servers share, so that they read their settings the same way: the
//! layers (defaults, a TOML file, prefixed environment variables, command-line flags) and the
//! documented range of every number, with one wording for a value out of range. Each server
//! keeps its own settings type, prefix and ranges; this module knows none of them.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Seconds in the units ranges are written in.
pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 60 * MINUTE;
pub const DAY: u64 = 24 * HOUR;
pub const YEAR: u64 = 365 * DAY;

/// The range of a numeric setting, inclusive, as the README's settings table states it.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// The field name: with the server's prefix, `access_token_ttl` is `AUTH_ACCESS_TOKEN_TTL`.
    pub name: &'static str,
    pub min: u64,
    pub max: u64,
}

impl Range {
    pub const fn new(name: &'static str, min: u64, max: u64) -> Self {
        Self { name, min, max }
    }

    /// The environment variable that sets it under `prefix`.
    pub fn variable(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.name.to_uppercase())
    }

    /// One line naming the variable when `value` is outside the range.
    pub fn check(&self, prefix: &str, value: u64) -> Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            return Ok(());
        }
        Err(format!(
            "{}: {value} is out of range; must be from {} to {}",
            self.variable(prefix),
            self.min,
            self.max
        ))
    }

    /// Values just outside the range, and the largest of all: what a check must refuse.
    pub fn outside(&self) -> Vec<u64> {
        let mut values = vec![self.max.saturating_add(1), u64::MAX];
        if self.min > 0 {
            values.push(self.min - 1);
        }
        values
    }
}

/// Checks each named number against its range in `ranges`; the first one outside is the error.
pub fn check_ranges(
    prefix: &str,
    ranges: &[Range],
    numbers: &[(&'static str, u64)],
) -> Result<(), String> {
    for (name, value) in numbers {
        if let Some(range) = ranges.iter().find(|range| range.name == *name) {
            range.check(prefix, *value)?;
        }
    }
    Ok(())
}

/// A `usize` setting widened to `u64` for its range check; one beyond `u64` saturates (and is
/// out of range anyway).
pub fn widen(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// What disagrees between a server's numeric settings (`numbers`), their ranges and the README's
/// settings table (rows `` | `PREFIX_NAME` | … | MIN–MAX … | ``): one line per number without
/// exactly one range, per range without a number, and per setting whose row is missing or states
/// another range. Each server's tests hold its README and its checks to its code with it.
pub fn readme_disagreements(
    readme: &str,
    prefix: &str,
    ranges: &[Range],
    numbers: &[(&'static str, u64)],
) -> Vec<String> {
    let mut lines: Vec<String> = numbers
        .iter()
        .filter(|(name, _)| ranges.iter().filter(|r| r.name == *name).count() != 1)
        .map(|(name, _)| format!("{name} needs exactly one range"))
        .collect();
    if numbers.len() != ranges.len() {
        lines.push(format!(
            "{} numbers, {} ranges",
            numbers.len(),
            ranges.len()
        ));
    }
    lines.extend(ranges.iter().filter_map(|range| {
        let variable = format!("`{}`", range.variable(prefix));
        let Some(row) = readme
            .lines()
            .find(|line| line.starts_with(&format!("| {variable} |")))
        else {
            return Some(format!("no README row for {variable}"));
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let stated = format!("{}–{}", range.min, range.max);
        let cell = cells.get(3).copied().unwrap_or_default();
        (!cell.starts_with(&stated))
            .then(|| format!("README states {cell:?} for {variable}, the code {stated}"))
    }));
    lines
}

/// Sets each value just outside each range on `defaults` through serde, as a file or the
/// environment would, and runs `validate`: one line per value that is not refused with one
/// line starting with the variable's name and "is out of range". Each server's tests hold its
/// checks to its ranges with it.
pub fn unrefused<T: Serialize + DeserializeOwned>(
    defaults: &T,
    prefix: &str,
    ranges: &[Range],
    validate: impl Fn(&T) -> Result<(), String>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for range in ranges {
        let variable = range.variable(prefix);
        for value in range.outside() {
            let settings: T = match Figment::from(Serialized::defaults(defaults))
                .merge(Serialized::default(range.name, value))
                .extract()
            {
                Ok(settings) => settings,
                Err(err) => {
                    lines.push(format!("{variable}={value} does not deserialize: {err}"));
                    continue;
                }
            };
            match validate(&settings) {
                Ok(()) => lines.push(format!("{variable}={value} is accepted")),
                Err(err)
                    if !err.starts_with(&format!("{variable}: {value} is out of range"))
                        || err.lines().count() != 1 =>
                {
                    lines.push(format!("{variable}={value}: {err}"));
                }
                Err(_) => {}
            }
        }
    }
    lines
}

/// Every layer in order, each over the one before: `defaults`, the TOML file `config` (which
/// must exist), the `prefix`ed environment variables named in `known`, then `overrides`.
pub fn layered(
    defaults: &impl Serialize,
    config: Option<&Path>,
    prefix: &str,
    known: &[&str],
    overrides: &impl Serialize,
) -> Result<Figment, String> {
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = config {
        if !path.is_file() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    Ok(figment
        .merge(Env::prefixed(prefix).only(known))
        .merge(Serialized::defaults(overrides)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGES: &[Range] = &[Range::new("ttl", 1, 10), Range::new("queue", 0, 5)];

    #[test]
    fn a_number_outside_its_range_is_named_in_one_line() {
        assert!(check_ranges("X_", RANGES, &[("ttl", 1), ("queue", 5)]).is_ok());
        let err = check_ranges("X_", RANGES, &[("ttl", 5), ("queue", 6)]).unwrap_err();
        assert_eq!(err, "X_QUEUE: 6 is out of range; must be from 0 to 5");
        for range in RANGES {
            for value in range.outside() {
                assert!(range.check("X_", value).is_err(), "{range:?} {value}");
            }
        }
        assert_eq!(widen(usize::MAX), u64::try_from(usize::MAX).unwrap());
    }

    #[test]
    fn the_readme_must_state_every_range() {
        let readme = "| `X_TTL` | s | 1–10 (default 5) |\n| `X_QUEUE` | n | 0–6 |\n";
        let numbers = [("ttl", 1), ("queue", 0)];
        assert_eq!(
            readme_disagreements(readme, "X_", RANGES, &numbers),
            vec!["README states \"0–6\" for `X_QUEUE`, the code 0–5"]
        );
        assert_eq!(
            readme_disagreements("", "X_", &RANGES[..1], &numbers[..1]),
            vec!["no README row for `X_TTL`"]
        );
        assert_eq!(
            readme_disagreements(
                readme.replace("0–6", "0–5").as_str(),
                "X_",
                RANGES,
                &numbers[..1]
            ),
            vec!["1 numbers, 2 ranges"]
        );
    }

    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct Example {
        ttl: u64,
        queue: u64,
    }

    #[test]
    fn values_outside_a_range_must_be_refused_naming_the_variable() {
        let defaults = Example { ttl: 5, queue: 1 };
        let strict = |example: &Example| {
            check_ranges(
                "X_",
                RANGES,
                &[("ttl", example.ttl), ("queue", example.queue)],
            )
        };
        assert!(unrefused(&defaults, "X_", RANGES, strict).is_empty());
        let lax = |example: &Example| check_ranges("X_", RANGES, &[("ttl", example.ttl)]);
        assert_eq!(unrefused(&defaults, "X_", RANGES, lax).len(), 2);
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let err = layered(&(), Some(Path::new("/nonexistent/x.toml")), "X_", &[], &()).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
