//! Serde helpers for destination and validator configs.

use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::str::FromStr;

use serde::Deserializer;
use serde::de::{Error, Visitor};

struct NumberVisitor<T>(PhantomData<T>);

impl<T> NumberVisitor<T>
where
    T: FromStr,
    T::Err: Display,
{
    fn parse<E: Error>(text: &str) -> Result<T, E> {
        text.trim()
            .parse()
            .map_err(|e| E::custom(format!("`{text}` is not a valid number here: {e}")))
    }
}

impl<T> Visitor<'_> for NumberVisitor<T>
where
    T: FromStr,
    T::Err: Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, or a string holding a number")
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        Self::parse(&v.to_string())
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        Self::parse(&v.to_string())
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        Self::parse(&v.to_string())
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
        Self::parse(v)
    }
}

/// Accept a number, or a string holding one (what `"{$PORT}"` becomes after substitution).
///
/// `#[serde(deserialize_with = "webhook_core::config::de::number")]`
pub fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    deserializer.deserialize_any(NumberVisitor(PhantomData))
}

/// Like [`number`], for an optional field (`#[serde(default, deserialize_with = ...)]`).
pub fn option_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    number(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Port {
        #[serde(deserialize_with = "super::number")]
        port: u16,
        #[serde(deserialize_with = "super::number")]
        delay: f64,
    }

    #[test]
    fn numbers_and_strings() {
        let p: Port = serde_json::from_str(r#"{"port": "5672", "delay": "1.5"}"#).unwrap();
        assert_eq!((p.port, p.delay), (5672, 1.5));
        let p: Port = serde_json::from_str(r#"{"port": 5672, "delay": 2}"#).unwrap();
        assert_eq!((p.port, p.delay), (5672, 2.0));
        let err = serde_json::from_str::<Port>(r#"{"port": "70000", "delay": 1}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`70000` is not a valid number"), "{err}");
    }
}
