//! Reading rules shared by both settings blocks (`jwk-aggregator` in `settings.rs`,
//! `jwk-aggregator-auth` in `policy.rs`): typed blocks read by serde with the path of every field,
//! errors that name the field and show the value as written, durations and counts as KrakenD
//! configurations write them, and the comment keys KrakenD allows.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use serde_path_to_error::Segment;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::time::Duration;

/// A configuration error. The message names the field and the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}



/// Keys of a block that are none of its fields.
pub(crate) type Others = BTreeMap<String, IgnoredAny>;

/// The first key that is neither a field nor a comment (`@`, `$`, `_`, `#` prefixes, as KrakenD
/// configurations use them).
pub(crate) fn unknown_key(others: &Others) -> Option<&str> {
    others.keys().map(String::as_str).find(|k| !k.starts_with(['@', '$', '_', '#']))
}

/// Reads a settings object into its typed block. Errors become `{prefix}invalid "<field>": ...`,
/// the field written as the user would look for it: `port`, `origins[1]`, `issuers["<url>"]`,
/// `rules[0].alg`.
pub(crate) fn read_block<T: de::DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = String::new();
        let mut after_key = false;
        for segment in e.path() {
            let _ = match segment {
                Segment::Seq { index } => write!(field, "[{index}]"),
                Segment::Map { key } if field.is_empty() => write!(field, "{key}"),
                // A map keyed by the user's strings (`issuers["<url>"]`); a nested block's own
                // fields read as fields (`rules[0].dpop.mode`).
                Segment::Map { key } if after_key && !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') => {
                    write!(field, "[{key:?}]")
                }
                Segment::Map { key } => write!(field, ".{key}"),
                Segment::Enum { variant } => write!(field, ".{variant}"),
                Segment::Unknown => write!(field, "?"),
            };
            after_key = matches!(segment, Segment::Map { .. });
        }
        ConfigError(format!("{prefix}invalid \"{field}\": {}", e.inner()))
    })
}

/// Reads a value as written and converts it with `read`; `None` is an error showing the value.
pub(crate) fn expect<'de, D: Deserializer<'de>, T>(
    d: D,
    expected: &str,
    read: impl FnOnce(&Value) -> Option<T>,
) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    read(&v).ok_or_else(|| invalid(expected, &v))
}

/// The error of a field reader: what was expected and the value as written.
pub(crate) fn invalid<E: de::Error>(expected: &str, got: &Value) -> E {
    E::custom(format_args!("expected {expected}, got {}", show(got)))
}

/// A non-empty list whose entries are read as `T`, each at its own path (`origins[1]`).
pub(crate) fn non_empty_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    expected: &'static str,
) -> Result<Vec<T>, D::Error> {
    let list: Vec<T> = shaped(d, Shape::List, expected)?;
    if list.is_empty() {
        return Err(invalid(expected, &Value::Array(vec![])));
    }
    Ok(list)
}

/// A `T` read from a JSON object; anything else is an error showing the value (serde's own
/// message would describe it instead: "invalid type: string ...").
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        shaped(d, Shape::Object, "an object").map(Object)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    List,
    Object,
}

/// Reads a list or an object into `T` (a `Vec`, a map, a struct) without losing the paths of its
/// entries; any other JSON value is an error showing it, instead of serde's "invalid type".
pub(crate) fn shaped<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    shape: Shape,
    expected: &'static str,
) -> Result<T, D::Error> {
    struct Shaped<T> {
        shape: Shape,
        expected: &'static str,
        read: PhantomData<T>,
    }
    impl<T> Shaped<T> {
        fn other<E: de::Error>(&self, v: Value) -> Result<T, E> {
            Err(invalid(self.expected, &v))
        }
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Shaped<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            let d = de::value::SeqAccessDeserializer::new(seq);
            match self.shape {
                Shape::List => T::deserialize(d),
                Shape::Object => self.other(Value::deserialize(d)?),
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let d = de::value::MapAccessDeserializer::new(map);
            match self.shape {
                Shape::Object => T::deserialize(d),
                Shape::List => self.other(Value::deserialize(d)?),
            }
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            self.other(Value::from(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.other(Value::from(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.other(Value::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            self.other(Value::from(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            self.other(Value::from(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<T, E> {
            self.other(Value::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<T, E> {
            self.other(Value::Null)
        }
    }
    d.deserialize_any(Shaped { shape, expected, read: PhantomData })
}

/// Shows a value the way the user wrote it, cut short so a huge value cannot flood the log.
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let mut end = 117;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// An integral JSON number (Go hands integers over as float64, so `9876.0` counts).
pub(crate) fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)),
        _ => None,
    }
}

/// The longest duration Go (and so KrakenD) can express, about 292 years. Every duration setting
/// ends up added to the clock (deadlines, freshness, back-off); a longer one would overflow it and
/// panic the thread that refreshes the keys.
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// Parses Go-style durations as KrakenD configurations write them: "500ms", "5s", "1h30m".
/// Anything longer than `MAX_DURATION` is refused.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::try_from_secs_f64(number * unit).ok()?)?;
    }
    (total <= MAX_DURATION).then_some(total)
}

pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

// Field readers both blocks share. Each returns what the field means, or an error "expected ...,
// got <the value as written>" that `read_block` puts the field's name in front of.

/// `true` or `false`.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    expect(d, "true or false", Value::as_bool)
}

/// A duration as KrakenD configurations write them.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    as_duration(&Value::deserialize(d)?).map(Some)
}

pub(crate) fn as_duration<E: de::Error>(v: &Value) -> Result<Duration, E> {
    match v {
        Value::String(s) => parse_duration(s).ok_or_else(|| invalid(r#"a duration such as "500ms", "5s", "10m" or "1h30m", at most 2562047h"#, v)),
        _ => Err(invalid(r#"a duration string such as "5s""#, v)),
    }
}

/// An integer from `min` to `max` (Go's floats included).
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D, min: usize, max: usize) -> Result<usize, D::Error> {
    expect(d, &format!("an integer from {min} to {max}"), |v| {
        integer(v).filter(|&n| n >= min as i64 && n as u64 <= max as u64).map(|n| n as usize)
    })
}

/// A non-empty string.
pub(crate) fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    expect(d, "a non-empty string", |v| v.as_str().filter(|s| !s.is_empty()).map(|s| Some(s.to_owned())))
}

/// A string or a list of strings.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("a list of strings", &v)),
        _ => Err(invalid("a string or a list of strings", &v)),
    }
}

/// "invalid \"<field>\": expected ..., got <value>" for checks made after reading.
pub(crate) fn err(field: &str, expected: &str, got: &Value) -> ConfigError {
    ConfigError(format!("invalid \"{field}\": expected {expected}, got {}", show(got)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("2562047h"), Some(Duration::from_secs(2_562_047 * 3600)));
        for bad in ["", "s", "5", "5x", "-1s", "1.2.3s", "2562048h", "5000000000000000h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
