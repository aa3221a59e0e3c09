//! Durations (`30s`, `1h30m`, `14d`) and byte sizes (`1MiB`) as written in YAML.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The units a duration may use, largest first.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
    ("us", 1),
];

/// Parses `30s`, `800ms`, `1h30m` or `14d`. Zero is allowed here; callers
/// that need a positive duration say so.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (_, micros) = DURATION_UNITS.iter().find(|(u, _)| *u == unit)?;
        total = total.checked_add(number.checked_mul(*micros)?)?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_micros(total))
}

/// Writes a duration the way YAML takes it back: `1h30m`, `800ms`.
pub fn format_duration(d: Duration) -> String {
    let mut micros = d.as_micros() as u64;
    if micros == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS {
        if micros >= *size {
            out.push_str(&format!("{}{unit}", micros / size));
            micros %= size;
        }
    }
    out
}

/// A duration in the YAML, written as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DurationText(pub Duration);

const DURATION_EXPECTED: &str = "a duration such as `30s`, `800ms`, `1h30m` or `14d`";

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationText, E> {
                parse_duration(s)
                    .map(DurationText)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(d|h|m|s|ms|us))+$",
            "description": "A duration: digits and a unit (d, h, m, s, ms, us), repeated: `30s`, `1h30m`."
        })
    }
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// Parses `1MiB`, `512KiB`, `100KB` or `2048B`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim();
    let (_, size) = SIZE_UNITS.iter().find(|(u, _)| *u == unit)?;
    number.checked_mul(*size)
}

/// A byte size in the YAML, written as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SizeText(pub u64);

const SIZE_EXPECTED: &str = "a size such as `1MiB`, `512KiB` or `100KB`";

impl<'de> Deserialize<'de> for SizeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SizeText, E> {
                parse_size(s)
                    .map(SizeText)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for SizeText {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+ ?(B|KB|MB|GB|KiB|MiB|GiB)$",
            "description": "A size in bytes with a unit: `1MiB`, `512KiB`, `100KB`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_compound_units_and_round_trip() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("800ms"), Some(Duration::from_millis(800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("14d"), Some(Duration::from_secs(14 * 86400)));
        for bad in [
            "",
            "30",
            "s",
            "3x",
            "1.5s",
            "-1s",
            "30 s",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for text in ["1h30m", "800ms", "14d", "1m1s", "250us"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("100KB"), Some(100_000));
        assert_eq!(parse_size("7B"), Some(7));
        assert_eq!(parse_size("1 MiB"), Some(1 << 20));
        for bad in ["", "MiB", "1mb", "1.5MiB", "1TiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
