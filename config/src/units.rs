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

/// Parses a percentage below 100% with at most four decimals (`99.9%`,
/// `99.95%`) into parts per million: `999000`, `999500`. Zero, 100% and
/// more are refused: an objective of 100% has no error budget to spend.
pub fn parse_percent_ppm(text: &str) -> Option<u32> {
    let number = text.trim().strip_suffix('%')?.trim_end();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (number.contains('.') && !digits(fraction)) || fraction.len() > 4 {
        return None;
    }
    let whole: u32 = whole.parse().ok().filter(|w| *w < 100)?;
    let fraction: u32 = format!("{fraction:0<4}").parse().ok()?;
    let ppm = whole * 10_000 + fraction;
    (ppm > 0).then_some(ppm)
}

/// Writes parts per million back as YAML takes them: `99.9%`.
pub fn format_percent_ppm(ppm: u32) -> String {
    let text = format!("{}.{:04}", ppm / 10_000, ppm % 10_000);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A percentage in the YAML, written as a string, in parts per million.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PercentText(pub u32);

const PERCENT_EXPECTED: &str =
    "a percentage above 0% and below 100% with at most 4 decimals, such as `99.9%`";

impl<'de> Deserialize<'de> for PercentText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PercentText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PERCENT_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PercentText, E> {
                parse_percent_ppm(s)
                    .map(PercentText)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for PercentText {
    fn schema_name() -> Cow<'static, str> {
        "Percentage".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]{1,2}(\\.[0-9]{1,4})?%$",
            "description": "A percentage below 100% with at most 4 decimals: `99.9%`."
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
    fn percentages_parse_to_parts_per_million_and_round_trip() {
        assert_eq!(parse_percent_ppm("99.9%"), Some(999_000));
        assert_eq!(parse_percent_ppm("99.9999%"), Some(999_999));
        assert_eq!(parse_percent_ppm("95%"), Some(950_000));
        assert_eq!(parse_percent_ppm("0.0001%"), Some(1));
        for bad in [
            "",
            "99.9",
            "100%",
            "100.0%",
            "0%",
            "0.0%",
            "99.99999%",
            "-1%",
            "99.%",
            ".9%",
            "9 9%",
            "1e2%",
            "99,9%",
            "NaN%",
        ] {
            assert_eq!(parse_percent_ppm(bad), None, "{bad}");
        }
        for text in ["99.9%", "99.95%", "95%", "0.0001%", "99.9999%"] {
            assert_eq!(format_percent_ppm(parse_percent_ppm(text).unwrap()), text);
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
